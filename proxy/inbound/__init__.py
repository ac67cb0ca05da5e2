"""Inbound callbacks: what a relay or Mogreet sends the app, read and answered (sans-io).

After a SubmitReq the MMS relay calls the application back: a ``DeliveryReportReq`` (did
the message reach the handset), a ``ReadReplyReq`` (was it read) or a ``DeliverReq`` (a
message a subscriber sent in). Mogreet POSTs what a subscriber texted in (a message, an
opt-out). The inbound route reads it, posts one JSON event to the app's webhook, and
answers the sender only once the app has answered. These modules are the pure half; the
HTTP side (handler.py) picks the parser and the answer by the route's vendor::

    relay ──► parse     mm7.py      bytes + Content-Type → Callback | CallbackError
              │         mime.py     (hostile-XML-safe, as replies; multipart content)
              │         mogreet.py  bytes → MogreetCallback | MogreetError
              ├─ event  event.py    callback → the webhook event (docs/event.schema.json),
              │         tables.py   statuses and Mogreet's event words from
              │                     config/codes.yaml (delivery_statuses, inbound), read
              │                     from the already-parsed catalog; with_submit adds the
              │                     ledger's record of the send
              ├─ match  correlate.py  a report → what the ledger remembers of its send
              │                     (its one call out: Ledger.recall), and where the event
              │                     goes: the send's client's own webhook, else deliver_to
              └─ answer answer.py   outcome + MM7 status → (HTTP status, type, SOAP body);
                                    answer_code(webhook status) picks the MM7 status
                        mogreet_answer.py  webhook status → Mogreet's (status, text)

    types.py  the frozen values passed between them

Events and callbacks are personal data (addresses, subjects, content): nothing in this
package logs, and callers must not log them either.
"""

import importlib
from typing import TYPE_CHECKING, Any

# The catalog reads tables.py at every start; the rest is loaded on first use (PEP 562), so
# a proxy without inbound routes keeps the parser and the event builder out of memory.
if TYPE_CHECKING:
    from proxy.inbound.answer import RETRY_CODES, Answer, answer_code, build_answer
    from proxy.inbound.event import build_event, with_submit
    from proxy.inbound.mm7 import parse_callback
    from proxy.inbound.mogreet import parse_mogreet
    from proxy.inbound.mogreet_answer import answer_mogreet, refuse_mogreet
    from proxy.inbound.tables import (
        DeliveryStatus,
        EventMap,
        InboundTables,
        InboundTablesError,
        parse_inbound_tables,
        read_inbound_tables,
    )
    from proxy.inbound.types import (
        Address,
        Callback,
        CallbackError,
        ContentPart,
        Deliver,
        DeliveryReport,
        Echo,
        MogreetCallback,
        MogreetError,
        ReadReply,
        Recipients,
    )

_HOMES = {
    "RETRY_CODES": "answer",
    "Answer": "answer",
    "answer_code": "answer",
    "build_answer": "answer",
    "build_event": "event",
    "with_submit": "event",
    "parse_callback": "mm7",
    "parse_mogreet": "mogreet",
    "answer_mogreet": "mogreet_answer",
    "refuse_mogreet": "mogreet_answer",
    "DeliveryStatus": "tables",
    "EventMap": "tables",
    "InboundTables": "tables",
    "InboundTablesError": "tables",
    "parse_inbound_tables": "tables",
    "read_inbound_tables": "tables",
    "Address": "types",
    "Callback": "types",
    "CallbackError": "types",
    "ContentPart": "types",
    "Deliver": "types",
    "DeliveryReport": "types",
    "Echo": "types",
    "MogreetCallback": "types",
    "MogreetError": "types",
    "ReadReply": "types",
    "Recipients": "types",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)


__all__ = [
    "RETRY_CODES",
    "Address",
    "Answer",
    "Callback",
    "CallbackError",
    "ContentPart",
    "Deliver",
    "DeliveryReport",
    "DeliveryStatus",
    "Echo",
    "EventMap",
    "InboundTables",
    "InboundTablesError",
    "MogreetCallback",
    "MogreetError",
    "ReadReply",
    "Recipients",
    "answer_code",
    "answer_mogreet",
    "build_answer",
    "build_event",
    "parse_callback",
    "parse_inbound_tables",
    "parse_mogreet",
    "read_inbound_tables",
    "refuse_mogreet",
    "with_submit",
]
