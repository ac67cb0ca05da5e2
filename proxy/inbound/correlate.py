"""Which send a callback reports on, and which webhook gets its event: the message ledger's
inbound half (README "Safe retries and delivery reports").

Only delivery reports and read replies are looked up: a message, an opt-out or an opt-in
(MM7 DeliverReq, Mogreet's incoming POST) answers no send. For a report::

    match        ledger.recall(message_id, route.vendor): the namespace is the vendor,
                 which the send route that remembered the id shares (mm7, moms)
                   a record            matched: the event's submit is record.as_submit()
                   None                unmatched: submit stays null
                   LedgerUnavailable   submit stays null; the reason is kept for the log
                                       and the error counted, not as unmatched (the send
                                       may well be known)
                 No ledger configured: not looked up (``Match.result`` None).
    destination  a matched report whose client has its own webhook (clients[].webhook)
                 goes there; every other event to the inbound route's ``deliver_to``

A report is delivered whatever the ledger says: an unknown send, or a ledger that is down,
costs the event its ``submit`` (and a client's own webhook), never the event.
"""

from collections.abc import Mapping
from dataclasses import dataclass

from proxy.inbound.types import Callback, DeliveryReport, MogreetCallback, ReadReply
from proxy.ledger import Correlation, Ledger, LedgerUnavailable
from proxy.upstream import Endpoint
from proxy.vocab import CorrelationResult


@dataclass(frozen=True, slots=True)
class Match:
    """What the ledger said about a callback's send.

    ``record``: what the send was remembered with (None: unknown, or not looked up).
    ``result``: matched or unmatched; None when the ledger was not asked (no ledger, not
    a report) or failed. ``error``: the ``LedgerUnavailable`` reason (fixed text, no
    secret) when it failed.
    """

    record: Correlation | None = None
    result: CorrelationResult | None = None
    error: str | None = None


#: A callback the ledger was not asked about.
NOT_LOOKED_UP = Match()


async def match(
    ledger: Ledger | None, callback: Callback | MogreetCallback, namespace: str
) -> Match:
    """What ``ledger`` remembers of the send ``callback`` reports on, in ``namespace`` (the
    route's vendor). Never raises for the ledger: its failure is a ``Match`` with
    ``error``."""
    if ledger is None or not isinstance(callback, DeliveryReport | ReadReply):
        return NOT_LOOKED_UP
    try:
        record = await ledger.recall(callback.message_id, namespace)
    except LedgerUnavailable as exc:
        return Match(error=exc.reason)
    return Match(record, "matched" if record is not None else "unmatched")


@dataclass(frozen=True, slots=True)
class Destination:
    """Where an event goes: ``client`` names the client whose own webhook ``endpoint`` is;
    None for the inbound route's ``deliver_to``."""

    endpoint: Endpoint
    client: str | None = None


def destination(
    found: Match, deliver_to: Endpoint, client_webhooks: Mapping[str, Endpoint]
) -> Destination:
    """The matched send's client's own webhook when it has one (``client_webhooks``: by
    client name, built at start-up), else the route's ``deliver_to`` (pure)."""
    if found.record is not None:
        own = client_webhooks.get(found.record.client)
        if own is not None:
            return Destination(own, found.record.client)
    return Destination(deliver_to)


__all__ = ["NOT_LOOKED_UP", "Destination", "Match", "destination", "match"]
