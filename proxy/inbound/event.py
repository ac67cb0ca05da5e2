"""Turn a parsed callback into the one JSON event the app's webhook receives (pure).

The shape is ``docs/event.schema.json``. Every event has ``event`` (``delivery_report``,
``read_reply``, ``message``, ``opt_out`` or ``opt_in``), ``id``, ``route``,
``received_at``, ``message_id``, ``recipient``, ``sender``, ``timestamp`` (the relay's
Date/TimeStamp as sent) and ``vendor``. Reports add ``status`` and ``final`` from the
catalog's tables (``proxy.inbound.tables``), delivery reports ``status_extension``;
messages add ``subject``, ``priority``, ``linked_id``, ``recipients`` and ``parts``
(``text`` for text parts, ``base64`` for the others, ``url`` for content the gateway
hosts); opt-outs and opt-ins add ``text``, what the subscriber sent.

``vendor`` is MM7's (``name`` mm7, the raw ``mm_status``, ``status_text``,
``transaction_id``, ``relay_server_id``, ``mm7_version``) or Mogreet's (``name`` moms, the
raw ``event`` word, ``campaign_id``, ``carrier``). A Mogreet POST becomes the event the
catalog's ``inbound.moms`` names for its ``event`` word; its subscriber is the
``sender`` (a number), and it carries no message id, recipient or timestamp (null).

Reports (and only reports: a message, an opt-out or an opt-in answers no send) always
carry ``submit``: what the message ledger remembered of the send whose message id they
report on. ``build_event`` sets it to None (unknown: no ledger, or not looked up yet);
``with_submit(event, submit)`` puts the ``Correlation.as_submit()`` mapping there. So an
app sees one shape whether the proxy runs a ledger or not.

An event is personal data (addresses, subjects, content): it is posted, never logged.
"""

import base64
import mimetypes
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from proxy.inbound.tables import InboundTables, ReportKind
from proxy.inbound.types import (
    Address,
    Callback,
    ContentPart,
    Deliver,
    DeliveryReport,
    MogreetCallback,
    ReadReply,
)

#: The type of hosted content whose name says nothing (no known image extension).
_UNKNOWN_TYPE = "application/octet-stream"


def build_event(
    callback: Callback | MogreetCallback,
    *,
    route: str,
    event_id: str,
    received_at: str,
    statuses: InboundTables,
) -> dict[str, Any]:
    """The webhook event for ``callback`` (a dict ready for JSON).

    ``received_at`` is the proxy's RFC 3339 timestamp of the request; ``statuses`` the
    tables read from the catalog. An MMStatus outside them becomes their ``unknown``
    status, with the word kept in ``vendor.mm_status``; a Mogreet ``event`` word outside
    them becomes their ``unknown`` event, the word kept in ``vendor.event``. Never raises
    for a parsed callback.
    """
    if isinstance(callback, MogreetCallback):
        return _mogreet(callback, route, event_id, received_at, statuses)
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
    event["submit"] = None  # the send is unknown until the ledger says (with_submit)
    event["vendor"] = _vendor(callback, callback.mm_status, callback.status_text)
    return event


def with_submit(event: dict[str, Any], submit: Mapping[str, str | None] | None) -> dict[str, Any]:
    """``event`` (a report's) with ``submit``: what its message id was sent with, or None
    (unknown). ``event`` itself is not changed."""
    return {**event, "submit": None if submit is None else dict(submit)}


def _mogreet(
    callback: MogreetCallback,
    route: str,
    event_id: str,
    received_at: str,
    statuses: InboundTables,
) -> dict[str, Any]:
    kind = statuses.moms.resolve(callback.event).event
    event: dict[str, Any] = {
        "event": kind,
        "id": event_id,
        "route": route,
        "received_at": received_at,
        "timestamp": None,  # Mogreet's POST carries no time of its own
        "message_id": None,
        "recipient": None,  # the short code is not in the POST; campaign_id says which
        "sender": {"type": "number", "value": callback.msisdn},
    }
    if kind == "message":
        text = (
            [{"content_type": "text/plain", "content_id": None, "content_location": None,
              "text": callback.message}]
            if callback.message is not None
            else []
        )  # fmt: skip
        event |= {
            "subject": callback.subject,
            "priority": None,
            "linked_id": None,
            "recipients": {"to": [], "cc": [], "bcc": []},
            "parts": [*text, *(_image(url) for url in callback.images)],
        }
    else:
        event["text"] = callback.message
    event["vendor"] = {
        "name": "moms",
        "event": callback.event,
        "campaign_id": callback.campaign_id,
        "carrier": callback.carrier,
    }
    return event


def _image(url: str) -> dict[str, Any]:
    """An image Mogreet hosts for a while: its URL, and its type by the name's extension."""
    guessed, _ = mimetypes.guess_type(urlsplit(url).path, strict=False)
    content_type = guessed if guessed and guessed.startswith("image/") else _UNKNOWN_TYPE
    return {"content_type": content_type, "content_id": None, "content_location": url, "url": url}


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


__all__ = ["build_event", "with_submit"]
