"""Turn a parsed callback into the one JSON event the app's webhook receives (pure).

The shape is ``docs/event.schema.json``. Every event has ``event`` (``delivery_report``,
``read_reply`` or ``message``), ``id``, ``route``, ``received_at``, ``message_id``,
``recipient``, ``sender``, ``timestamp`` (the relay's Date/TimeStamp as sent) and
``vendor`` (``name``, the raw ``mm_status``, ``status_text``, ``transaction_id``,
``relay_server_id``, ``mm7_version``). Reports add ``status`` and ``final`` from the
catalog's tables (``proxy.inbound.tables``), delivery reports ``status_extension``;
messages add ``subject``, ``priority``, ``linked_id``, ``recipients`` and ``parts``
(``text`` for text parts, ``base64`` for the others).

An event is personal data (addresses, subjects, content): it is posted, never logged.
"""

import base64
from typing import Any

from proxy.inbound.tables import InboundTables, ReportKind
from proxy.inbound.types import Address, Callback, ContentPart, Deliver, DeliveryReport, ReadReply


def build_event(
    callback: Callback,
    *,
    route: str,
    event_id: str,
    received_at: str,
    statuses: InboundTables,
) -> dict[str, Any]:
    """The webhook event for ``callback`` (a dict ready for JSON).

    ``received_at`` is the proxy's RFC 3339 timestamp of the request; ``statuses`` the
    tables read from the catalog. An MMStatus outside them becomes their ``unknown``
    status, with the word kept in ``vendor.mm_status``. Never raises for a parsed callback.
    """
    common: dict[str, Any] = {
        "id": event_id,
        "route": route,
        "received_at": received_at,
        "timestamp": callback.timestamp,
    }
    if isinstance(callback, Deliver):
        return {"event": "message", **common, **_message(callback)}
    report: ReportKind = "delivery_report" if isinstance(callback, DeliveryReport) else "read_reply"
    resolution = statuses.resolve("mm7", report, callback.mm_status)
    event: dict[str, Any] = {
        "event": report,
        **common,
        "message_id": callback.message_id,
        "recipient": _address(callback.recipient),
        "sender": _address(callback.sender),
        "status": resolution.status.name,
        "final": resolution.final,
    }
    if isinstance(callback, DeliveryReport):
        event["status_extension"] = callback.status_extension
    event["vendor"] = _vendor(callback, callback.mm_status, callback.status_text)
    return event


def _message(callback: Deliver) -> dict[str, Any]:
    recipients = callback.recipients
    return {
        "message_id": callback.message_id,
        "recipient": _address(recipients.first),
        "sender": _address(callback.sender),
        "subject": callback.subject,
        "priority": callback.priority,
        "linked_id": callback.linked_id,
        "recipients": {
            "to": [_address(a) for a in recipients.to],
            "cc": [_address(a) for a in recipients.cc],
            "bcc": [_address(a) for a in recipients.bcc],
        },
        "parts": [_part(p) for p in callback.parts],
        "vendor": _vendor(callback, None, None),
    }


def _address(address: Address | None) -> dict[str, str] | None:
    return None if address is None else {"type": address.type, "value": address.value}


def _part(part: ContentPart) -> dict[str, Any]:
    out: dict[str, Any] = {
        "content_type": part.content_type,
        "content_id": part.content_id,
        "content_location": part.content_location,
    }
    if isinstance(part.body, str):
        out["text"] = part.body
    else:
        out["base64"] = base64.b64encode(part.body).decode("ascii")
    return out


def _vendor(
    callback: DeliveryReport | ReadReply | Deliver, mm_status: str | None, text: str | None
) -> dict[str, Any]:
    return {
        "name": "mm7",
        "mm_status": mm_status,
        "status_text": text,
        "transaction_id": callback.echo.transaction_id,
        "relay_server_id": callback.relay_server_id,
        "mm7_version": callback.echo.mm7_version,
    }


__all__ = ["build_event"]
