"""The message ledger's stages of a send (README "Safe retries and delivery reports").

``handle`` calls them around the forward stage when the config has a ``ledger``::

    read_keys      pure: Idempotency-Key and X-Callback-Data → Keys, or a Refused
                   (400: invalid, or missing on a route that requires one)
    claim          a key only: ledger.begin → Claim (forward, the body hashed as it goes)
                   or the answer now: 409 in flight, the stored answer replayed, 422 for
                   another request, 503 when the ledger fails (never forwarded)
    settle         after the answer: a retryable one releases the key (a retry executes),
                   any other is kept for replay, TIMEOUT and CONNECTION_LOST included;
                   a request the gateway never got whole releases it too
    correlate      a send that succeeded with a message id, keyed or not: remember it for
                   its delivery reports before the app gets the answer

A request without a key reads nothing from the ledger before it is forwarded. Nothing
here logs a key, callback data or a fingerprint's input: they are the app's data.
"""

import asyncio
from dataclasses import dataclass

from aiohttp import StreamReader, web
from multidict import CIMultiDict, CIMultiDictProxy

from proxy.codes.classify import Outcome
from proxy.config import LedgerSettings, Route
from proxy.ledger import (
    ANONYMOUS,
    Correlation,
    Done,
    Fingerprinter,
    HeaderProblem,
    InFlight,
    Ledger,
    LedgerUnavailable,
    Scope,
    Started,
    StoredAnswer,
    in_flight_ttl,
    parse_callback_data,
    parse_idempotency_key,
    utc_now,
)
from proxy.observability.ledger_metrics import LedgerMetrics
from proxy.observability.logs import get_logger
from proxy.vocab import FailureKind, IdempotencyResult, LedgerOperation

#: The header that marks a replayed answer (draft-ietf-httpapi-idempotency-key-header).
REPLAYED = "Idempotent-Replayed"
#: Pauses between tries of a ``finish`` that failed: the answer the app gets must be kept,
#: or the key's marker expires into a second send.
FINISH_PAUSES = (0.05, 0.2, 0.5)
# Outcomes of a request the gateway never received whole (its body broke, stalled or was
# over the limit, or the app went away before its end): nothing to replay, a retry is safe.
_NEVER_WHOLE: frozenset[FailureKind] = frozenset(
    {"request_too_large", "bad_request", "client_timeout", "client_closed"}
)

_log = get_logger("gateway_proxy")


@dataclass(frozen=True, slots=True)
class Keys:
    """What the app asked the ledger for: its key and its own reference (None: none)."""

    key: str | None
    callback_data: str | None


@dataclass(frozen=True, slots=True)
class Refused:
    """The proxy answers at once, without the gateway (``kind`` → the catalog's code)."""

    kind: FailureKind
    detail: str


@dataclass(frozen=True, slots=True)
class Replay:
    """The answer stored for the key, to send again as it was."""

    answer: StoredAnswer


class BodyHash:
    """The fingerprint of the request as its body goes upstream.

    Fed by the exchange with each chunk and the body's offset of it, so a body sent again
    (a held body failed over to the next endpoint) is hashed once.
    """

    __slots__ = ("_fingerprint", "length")

    def __init__(self, method: str, target: str) -> None:
        self._fingerprint = Fingerprinter(method, target)
        self.length = 0

    def __call__(self, chunk: bytes, offset: int) -> None:
        end = offset + len(chunk)
        if end <= self.length or offset > self.length:
            return  # hashed already (a resend); a gap cannot happen
        self._fingerprint.update(memoryview(chunk)[self.length - offset :])
        self.length = end

    def digest(self) -> str:
        return self._fingerprint.digest()


@dataclass(slots=True)
class Claim:
    """A key this request holds in the ledger: forward, then ``settle``."""

    scope: Scope
    started: Started
    body: BodyHash


def message_id_of(outcome: Outcome) -> str | None:
    """The message id of a send that succeeded (MM7 MessageID, MoMS message_id), else None."""
    message_id = outcome.data.get("message_id") if outcome.code.ok else None
    if not isinstance(message_id, str | int) or isinstance(message_id, bool):
        return None
    return str(message_id)


def read_keys(headers: CIMultiDictProxy[str], route: Route) -> Keys | Refused:
    """The request's Idempotency-Key and X-Callback-Data, or why it is refused (400)."""
    key = parse_idempotency_key(headers.getall("Idempotency-Key", []))
    if isinstance(key, HeaderProblem):
        return Refused("idempotency_key_invalid", key.reason)
    if key is None and route.require_idempotency_key:
        detail = f"route {route.name!r} requires an Idempotency-Key on every request"
        return Refused("idempotency_key_missing", detail)
    data = parse_callback_data(headers.getall("X-Callback-Data", []))
    if isinstance(data, HeaderProblem):
        return Refused("callback_data_invalid", data.reason)
    return Keys(key, data)


class Stage:
    """The ledger as one request's stages see it: the store, its metrics, the route, and
    the ``ledger:`` settings (how long answers and message ids are kept)."""

    __slots__ = ("ledger", "metrics", "route", "settings")

    def __init__(
        self,
        ledger: Ledger,
        metrics: LedgerMetrics | None,
        route: Route,
        settings: LedgerSettings,
    ) -> None:
        self.ledger, self.metrics, self.route, self.settings = ledger, metrics, route, settings

    async def claim(
        self, request: web.Request, key: str, client: str, body_idle: float
    ) -> Claim | Refused | Replay:
        """Hold ``key`` for this request, or the answer to give now."""
        route = self.route
        scope = Scope(client or ANONYMOUS, route.name, key)
        try:
            begun = await self.ledger.begin(scope, in_flight_ttl(_longest_send(route)))
        except LedgerUnavailable as exc:
            self.failed("begin", exc)
            self.count("unavailable")
            detail = "the message ledger cannot be reached; nothing was sent, retry later"
            return Refused("ledger_unavailable", detail)
        if isinstance(begun, Started):
            return Claim(scope, begun, BodyHash(request.method, request.raw_path))
        if isinstance(begun, InFlight):
            self.count("in_flight")
            detail = "a request with this Idempotency-Key is not answered yet; retry later"
            return Refused("idempotency_in_flight", detail)
        assert isinstance(begun, Done)
        body = BodyHash(request.method, request.raw_path)
        whole = await _hash_rest(request, body, body_idle, route.max_request_bytes)
        if whole and body.digest() == begun.fingerprint:
            self.count("replayed")
            return Replay(begun.answer)
        self.count("mismatch")
        detail = (
            "this Idempotency-Key was used for another request (method, path, query or body "
            "differ); use a new key for a new message"
        )
        return Refused("idempotency_mismatch", detail)

    async def settle(
        self,
        request: web.Request,
        claim: Claim,
        outcome: Outcome,
        answer: StoredAnswer,
        body_idle: float,
    ) -> None:
        """Keep the answer for replay, or release the key; before the app gets it."""
        if outcome.retryable or outcome.failure in _NEVER_WHOLE:
            await self.release(claim, "released")
            return
        # The gateway may have answered before it read the whole body: hash the rest, so
        # that the same request sent again is recognised.
        await _hash_rest(request, claim.body, body_idle, self.route.max_request_bytes)
        if await self.keep(claim, answer):
            self.count("stored")

    async def abandon(self, claim: Claim, answer: StoredAnswer | None) -> None:
        """The app went away before its answer. ``answer`` None: the request provably
        never reached the gateway, so the key is released; else (it may have) the answer
        that says so is kept, and a retry with the key gets it instead of a second send."""
        if answer is None:
            await self.release(claim, "abandoned")
            return
        await self.keep(claim, answer)
        self.count("abandoned")

    async def keep(self, claim: Claim, answer: StoredAnswer) -> bool:
        """Store ``answer`` for the key; False when the ledger failed (logged, counted)."""
        ttl, fingerprint = self.settings.idempotency_ttl, claim.body.digest()
        failure = LedgerUnavailable("finish: not tried")
        for pause in (*FINISH_PAUSES, None):
            try:
                await self.ledger.finish(claim.scope, fingerprint, answer, ttl)
            except LedgerUnavailable as exc:
                failure = exc
                if pause is None:
                    break
                await asyncio.sleep(pause)  # a blip: the marker outlives these pauses
            else:
                return True  # (a finish that had landed before is kept: never replaced)
        # The app still gets the real answer; a retry finds the key in flight until its
        # marker expires, then executes: logged and counted, for the alert.
        self.failed("finish", failure)
        return False

    async def release(self, claim: Claim, result: IdempotencyResult) -> None:
        try:
            await self.ledger.release(claim.scope, claim.started)
        except LedgerUnavailable as exc:
            self.failed("release", exc)  # the marker expires on its own
        self.count(result)

    async def correlate(self, message_id: str, request_id: str, client: str, keys: Keys) -> None:
        """Remember the send of ``message_id`` (``message_id_of``), for its reports."""
        record = Correlation(
            request_id=request_id,
            client=client or ANONYMOUS,
            idempotency_key=keys.key,
            callback_data=keys.callback_data,
            submitted_at=utc_now(),
            route=self.route.name,
        )
        try:
            ttl = self.settings.correlation_ttl
            await self.ledger.remember(message_id, self.route.vendor, record, ttl)
        except LedgerUnavailable as exc:
            self.failed("remember", exc)  # its reports arrive with submit: null

    def count(self, result: IdempotencyResult) -> None:
        if self.metrics is not None:
            self.metrics.request(self.route.name, result)

    def failed(self, operation: LedgerOperation, exc: LedgerUnavailable) -> None:
        _log.warning(
            "ledger_unavailable", route=self.route.name, operation=operation, reason=exc.reason
        )
        if self.metrics is not None:
            self.metrics.error(self.route.name, operation)


def _longest_send(route: Route) -> float:
    """The longest a send of ``route`` can take: its ``timeout.total`` (every attempt of a
    failover together) plus, on a rate-limited route, the time in the queue (``max_wait``,
    which also bounds a throttled request's pauses). The key stays in flight that long."""
    queued = route.rate_limit.max_wait if route.rate_limit is not None else 0.0
    return route.timeout.total + queued


async def _hash_rest(request: web.Request, body: BodyHash, idle: float, limit: int | None) -> bool:
    """Read what is left of the app's body into ``body`` (not forwarded anywhere); False
    when it stalls, breaks or is over ``limit``: the fingerprint is then incomplete."""
    if not request.body_exists:
        return True
    content: StreamReader = request.content
    try:
        while not content.at_eof():
            async with asyncio.timeout(idle):
                chunk = await content.readany()
            if not chunk:
                break
            body(chunk, body.length)
            if limit is not None and body.length > limit:
                return False
    except (TimeoutError, OSError, RuntimeError, asyncio.IncompleteReadError):
        return False
    return True


def replay_headers(stored: StoredAnswer) -> CIMultiDict[str]:
    """The stored answer's headers, marked as a replay."""
    headers: CIMultiDict[str] = CIMultiDict(stored.headers)
    headers[REPLAYED] = "true"
    return headers


__all__ = [
    "REPLAYED",
    "BodyHash",
    "Claim",
    "Keys",
    "Refused",
    "Replay",
    "Stage",
    "message_id_of",
    "read_keys",
    "replay_headers",
]
