"""Mogreet's incoming-message POST, played by the simulator (sans-io).

When a subscriber texts the keyword, Mogreet POSTs a ``<mogreet>`` document to the
callback URL set in its dashboard (developer.mogreet.com/docs/messaging/receiving). The
simulator plays that side on demand: ``POST /sim/mogreet/incoming`` with the fields as
query or form parameters makes it POST one to ``--moms-callback-url`` (callback.py sends
it). This module decides what it says and what the answer means; it shares nothing with
the proxy's parser (tests/test_sim_codes.py checks)::

    event         message-in (default), stop, or any word (sent as given)
    msisdn        the subscriber (required)
    campaign_id   default 1
    carrier, message, subject      optional text (CDATA, as Mogreet sends them)
    image         repeatable: the URLs of an MMS's images

``incoming_request(incoming)`` renders the document::

    <?xml version="1.0"?>
    <mogreet><event/><campaign_id/><msisdn/><carrier/><message/><subject/><images><image/>…

``incoming_verdict(http_status)``: how the sender takes the answer. Mogreet documents no
retry policy, so the simulator plays the common webhook rule: 2xx accepted; no answer or
a 5xx retried; anything else refused (not resent).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from lxml import etree

from proxy.tools.sim.report import Verdict

CONTENT_TYPE = "application/xml"
DEFAULT_EVENT = "message-in"
DEFAULT_CAMPAIGN = "1"
_FIELDS = ("carrier", "message", "subject")
_XML_DECLARATION = b'<?xml version="1.0"?>\n'


class IncomingError(ValueError):
    """The trigger's parameters cannot make a POST (no msisdn); the message says why."""


@dataclass(frozen=True, slots=True)
class Incoming:
    """One POST Mogreet makes: what the subscriber did, and what they sent."""

    event: str
    campaign_id: str
    msisdn: str
    carrier: str | None = None
    message: str | None = None
    subject: str | None = None
    images: tuple[str, ...] = ()


def incoming_from_params(params: Mapping[str, str], images: Sequence[str] = ()) -> Incoming:
    """The POST the trigger's parameters describe. Raises ``IncomingError``."""
    msisdn = params.get("msisdn", "").strip()
    if not msisdn:
        raise IncomingError("msisdn is required (the subscriber who texted in)")
    fields = {name: params[name] for name in _FIELDS if name in params}
    return Incoming(
        event=params.get("event", "").strip() or DEFAULT_EVENT,
        campaign_id=params.get("campaign_id", "").strip() or DEFAULT_CAMPAIGN,
        msisdn=msisdn,
        images=tuple(url.strip() for url in images if url.strip()),
        **fields,
    )


def _field(parent: etree._Element, name: str, text: str | None, *, cdata: bool) -> None:
    element = etree.SubElement(parent, name)
    if text is not None:
        # CDATA cannot hold its own end marker: such a text goes escaped instead.
        element.text = etree.CDATA(text) if cdata and "]]>" not in text else text


def incoming_request(incoming: Incoming) -> bytes:
    """The ``<mogreet>`` document for ``incoming`` (UTF-8, as Mogreet's samples)."""
    root = etree.Element("mogreet")
    _field(root, "event", incoming.event, cdata=False)
    _field(root, "campaign_id", incoming.campaign_id, cdata=False)
    _field(root, "msisdn", incoming.msisdn, cdata=False)
    for name in _FIELDS:
        value = getattr(incoming, name)
        if value is not None:
            _field(root, name, value, cdata=True)
    if incoming.images:
        holder = etree.SubElement(root, "images")
        for url in incoming.images:
            _field(holder, "image", url, cdata=True)
    return _XML_DECLARATION + etree.tostring(root, encoding="UTF-8", xml_declaration=False)


def incoming_verdict(http_status: int | None) -> Verdict:
    """How the sender takes the answer to a POST (None: no answer came at all)."""
    if http_status is None or http_status >= 500:
        return "retry"
    return "accepted" if 200 <= http_status < 300 else "refused"


__all__ = [
    "CONTENT_TYPE",
    "DEFAULT_CAMPAIGN",
    "DEFAULT_EVENT",
    "Incoming",
    "IncomingError",
    "incoming_from_params",
    "incoming_request",
    "incoming_verdict",
]
