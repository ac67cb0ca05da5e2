"""The ``Ledger`` interface both stores implement, what ``begin`` returns, the one error.

A keyed send goes through the ledger like this (the integration's pipeline stages)::

    begin(scope, in_flight_ttl(route.timeout.total))
      Started(token)  the key is now in flight (set-if-absent with expiry): forward, hash
                      the body as it streams (Fingerprinter), then
                        retryable answer          → release(scope, token)
                        any other answer          → finish(scope, fingerprint, answer, ttl)
      InFlight()      another request with this key is unanswered: 409, not forwarded
      Done(fp, ans)   answered before: read (not forward) the body to fingerprint it;
                      the same fingerprint → replay ``ans``; another → 422

    remember(message_id, namespace, Correlation, correlation_ttl)   after a send that
                      succeeded with a message id, before the app gets its answer
    recall(message_id, namespace) → Correlation | None               on each event

``namespace`` keeps message ids of different gateways apart: use the route's vendor
(``mm7``, ``moms``), which both the send route and the inbound route know.

**The in-flight marker expires.** A proxy that crashes between ``begin`` and
``finish`` must not block its key forever, so the marker lives ``in_flight_ttl`` seconds:
the route's ``timeout.total`` (the exchange cannot outlive it) plus ``IN_FLIGHT_MARGIN``
for the ledger's own calls and classification. After a crash the key can be used again
once it expires; whether the crashed send reached the gateway is then unknown, as it is
without a ledger. ``release`` needs the ``Started`` token, so a request whose marker
expired cannot drop a marker another request holds now. ``finish`` keeps the first
answer: it never replaces a stored answer.

**Failures.** Every backend failure (unreachable, timed out, locked, a record it cannot
read) raises ``LedgerUnavailable`` with a reason that names no secret; the caller answers
``LEDGER_UNAVAILABLE`` (503, retryable) and does not forward. Nothing else is raised.
"""

import abc
from dataclasses import dataclass

from proxy.ledger.key import Scope
from proxy.ledger.records import Correlation, StoredAnswer

#: Seconds an in-flight marker outlives the route's ``timeout.total``.
IN_FLIGHT_MARGIN = 10.0


class LedgerUnavailable(Exception):
    """The ledger's store failed; ``reason`` is fixed text naming no secret."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Started:
    """The key is now in flight, held by this request; ``token`` proves it."""

    token: str


@dataclass(frozen=True, slots=True)
class InFlight:
    """Another request with this key has not been answered yet."""


@dataclass(frozen=True, slots=True)
class Done:
    """The key was answered: the request's fingerprint then, and the answer to replay."""

    fingerprint: str
    answer: StoredAnswer


Begin = Started | InFlight | Done


def in_flight_ttl(total_timeout: float, margin: float = IN_FLIGHT_MARGIN) -> float:
    """How long an in-flight marker lives for a route whose ``timeout.total`` is given."""
    return total_timeout + margin


class Ledger(abc.ABC):
    """An idempotency and correlation store. Every method raises only
    ``LedgerUnavailable``; ``ttl`` is in seconds (> 0)."""

    @abc.abstractmethod
    async def begin(self, scope: Scope, ttl: float) -> Begin:
        """Mark ``scope`` in flight for ``ttl`` s unless it is in flight or answered."""

    @abc.abstractmethod
    async def finish(
        self, scope: Scope, fingerprint: str, answer: StoredAnswer, ttl: float
    ) -> bool:
        """Store the answer for ``ttl`` s; False when an answer is stored already (kept)."""

    @abc.abstractmethod
    async def release(self, scope: Scope, started: Started) -> bool:
        """Drop the in-flight marker ``started`` holds; False when it holds none now."""

    @abc.abstractmethod
    async def remember(
        self, message_id: str, namespace: str, record: Correlation, ttl: float
    ) -> None:
        """Keep what ``message_id`` was sent with for ``ttl`` s (replacing an older one)."""

    @abc.abstractmethod
    async def recall(self, message_id: str, namespace: str) -> Correlation | None:
        """What ``message_id`` was sent with, or None (never sent here, or expired)."""

    @abc.abstractmethod
    async def ping(self) -> None:
        """Raise ``LedgerUnavailable`` when the store cannot be used now (health)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the store's connections and threads (idempotent)."""


__all__ = [
    "IN_FLIGHT_MARGIN",
    "Begin",
    "Done",
    "InFlight",
    "Ledger",
    "LedgerUnavailable",
    "Started",
    "in_flight_ttl",
]
