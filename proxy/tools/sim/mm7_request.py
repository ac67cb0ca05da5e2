"""Reading a VASP's request to the simulated MM7 relay (sans-io, the simulator's own code).

``parse_request(body, content_type)`` reads a SOAP envelope, or a ``multipart/related``
body whose root part (``start=``, else the first part) is the envelope, and returns an
``Mm7Request`` (its kind, TransactionID, first recipient and sender). It raises
``Mm7RequestError`` carrying the MM7 code a relay would answer: 4004 (validation error)
for anything unparseable or incomplete, 4003 for an unknown ``*Req``, 4002 for an
unsupported MM7Version. ``answer_status(body)`` reads the StatusCode of a VASP's answer
to the relay's own requests (the DeliveryReportRsp to a delivery report, report.py).

This is deliberately not the proxy's parser (``proxy.vendors``): the simulator is the
oracle of the end-to-end tests, and a bug shared by both sides would pass them. It may be
simpler, as it reads trusted test input: lxml straight (a parser that never resolves
entities, loads a DTD or touches the network, and a body with a DOCTYPE is refused), and
the stdlib ``email`` package for ``multipart/related``.
"""

import email.parser
import email.policy
import email.utils
from dataclasses import dataclass
from email.message import Message
from typing import Literal, cast

from lxml import etree

#: What the relay accepts from VASPs: any other ``*Req`` is answered with 4003.
KNOWN_REQUESTS = frozenset(
    {
        "SubmitReq", "CancelReq", "ReplaceReq", "ExtendedCancelReq", "ExtendedReplaceReq",
        "DeliverReq", "DeliveryReportReq", "ReadReplyReq",
    }
)  # fmt: skip
AddressKind = Literal["Number", "RFC2822Address", "ShortCode"]
_ADDRESS_NAMES = frozenset({"Number", "RFC2822Address", "ShortCode"})
_NO_SOAP_PART = "multipart/related body without a SOAP part"


class Mm7RequestError(Exception):
    """The request cannot be served; ``code`` is the MM7 status the relay answers with."""

    def __init__(self, code: str, details: str, transaction_id: str | None = None) -> None:
        super().__init__(details)
        self.code = code
        self.details = details
        self.transaction_id = transaction_id


@dataclass(frozen=True, slots=True)
class Mm7Address:
    """One MM7 address: its element (``Number``, ``RFC2822Address``, ``ShortCode``) and text."""

    kind: AddressKind
    value: str


@dataclass(frozen=True, slots=True)
class Mm7Request:
    """What the relay needs from a request: its kind, TransactionID, first recipient (``to``)
    and, when it names one, the sender (``SenderIdentification/SenderAddress``)."""

    kind: str  # "SubmitReq", "CancelReq", ...
    transaction_id: str
    mm7_version: str
    to: Mm7Address | None = None
    sender: Mm7Address | None = None

    @property
    def recipient(self) -> str | None:
        """The first recipient's address text (what the outcome is chosen by), or None."""
        return self.to.value if self.to is not None else None

    @property
    def response_kind(self) -> str:
        """The answer's element name: ``SubmitReq`` → ``SubmitRsp``."""
        return self.kind[: -len("Req")] + "Rsp"


def _local(el: etree._Element) -> str:
    tag: object = el.tag  # not a str for comments and processing instructions
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def _child(el: etree._Element | None, name: str) -> etree._Element | None:
    if el is None:
        return None
    return next((c for c in el if _local(c) == name), None)


def _text(el: etree._Element | None) -> str | None:
    if el is None:
        return None
    return "".join(t for t in el.itertext() if isinstance(t, str)).strip() or None


def _with_headers(content_type: str, body: bytes) -> Message:
    # The email parser wants ASCII headers on their own lines.
    header = content_type.encode("ascii", "replace").replace(b"\r", b" ").replace(b"\n", b" ")
    parser = email.parser.BytesParser(policy=email.policy.compat32)
    return parser.parsebytes(b"Content-Type: " + header + b"\r\n\r\n" + body)


def _root_part(body: bytes, content_type: str) -> bytes:
    """The payload of the root part of a ``multipart/related`` body."""
    message = _with_headers(content_type, body)
    payload_list = message.get_payload() if message.is_multipart() else []
    parts = [p for p in payload_list if isinstance(p, Message)]
    if not parts:
        raise Mm7RequestError("4004", _NO_SOAP_PART)
    start = email.utils.collapse_rfc2231_value(message.get_param("start") or "")
    start = start.strip().strip("<>")
    named = (p for p in parts if str(p.get("Content-ID", "")).strip("<> ") == start)
    root = next(named, None) if start else None
    payload = (root if root is not None else parts[0]).get_payload(decode=True)
    if not isinstance(payload, bytes) or not payload.strip():
        raise Mm7RequestError("4004", _NO_SOAP_PART)
    return payload


def _parse_xml(data: bytes) -> etree._Element:
    if not data.strip():
        raise Mm7RequestError("4004", "the request body is empty")
    # A fresh parser per request: lxml parsers keep an error log and are not thread-safe.
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError:
        raise Mm7RequestError("4004", "the request is not well-formed XML") from None
    docinfo = root.getroottree().docinfo
    if getattr(docinfo, "doctype", "") or docinfo.internalDTD is not None:
        raise Mm7RequestError("4004", "DTDs and entity declarations are not allowed in SOAP")
    if _local(root).lower() == "html":
        raise Mm7RequestError("4004", "the request body is HTML, not SOAP")
    return root


def parse_request(body: bytes, content_type: str | None) -> Mm7Request:
    """Read a VASP request. Raises ``Mm7RequestError`` (4004, 4003 or 4002)."""
    if _with_headers(content_type or "text/xml", b"").get_content_maintype() == "multipart":
        body = _root_part(body, content_type or "")
    root = _parse_xml(body)
    if _local(root) != "Envelope":
        raise Mm7RequestError("4004", "the root element is not a SOAP Envelope")
    transaction_id = _text(_child(_child(root, "Header"), "TransactionID"))
    req = _first_element(_child(root, "Body"))
    if req is None:
        raise Mm7RequestError("4004", "the SOAP Body is empty", transaction_id)
    kind = _local(req)
    if not kind.endswith("Req"):
        raise Mm7RequestError("4004", f"{kind} is not an MM7 request", transaction_id)
    if kind not in KNOWN_REQUESTS:
        raise Mm7RequestError("4003", f"{kind} is not supported by this relay", transaction_id)
    if transaction_id is None:
        raise Mm7RequestError("4004", "TransactionID is missing from the SOAP Header")
    version = _text(_child(req, "MM7Version"))
    if not version:
        raise Mm7RequestError("4004", "MM7Version is missing", transaction_id)
    if version.split(".", 1)[0] not in ("5", "6"):
        raise Mm7RequestError("4002", f"MM7Version {version} is not supported", transaction_id)
    return Mm7Request(kind, transaction_id, version, _first_recipient(req), _sender(req))


def _address(el: etree._Element) -> Mm7Address | None:
    name, value = _local(el), _text(el)
    return Mm7Address(cast(AddressKind, name), value) if name in _ADDRESS_NAMES and value else None


def _first_recipient(req: etree._Element) -> Mm7Address | None:
    recipients = _child(req, "Recipients")
    if recipients is None:
        return None
    return next(filter(None, map(_address, recipients.iter())), None)


def _sender(req: etree._Element) -> Mm7Address | None:
    holder = _child(_child(req, "SenderIdentification"), "SenderAddress")
    if holder is None:
        return None
    found = next(filter(None, map(_address, holder.iterchildren())), None)
    if found is not None or len(holder):
        return found
    # Older relays' VASPs write the address as the element's own text.
    value = _text(holder)
    if value is None:
        return None
    return Mm7Address("RFC2822Address" if "@" in value else "Number", value)


def answer_status(body: bytes) -> str | None:
    """The StatusCode of a VASP's answer to the relay, or None when it carries none.

    Reads ``Body/<X>Rsp/Status/StatusCode``, or a SOAP Fault's ``detail/<X>/Status/...``
    (by local name, any namespace and SOAP version). Anything unreadable is None; never
    raises.
    """
    try:
        root = _parse_xml(body)
    except Mm7RequestError:
        return None
    first = _first_element(_child(root, "Body"))
    if first is not None and _local(first) == "Fault":
        # SOAP 1.1 ``detail``; SOAP 1.2 ``Detail``.
        detail = _child(first, "detail")
        first = _first_element(detail if detail is not None else _child(first, "Detail"))
    return _text(_child(_child(first, "Status"), "StatusCode"))


def _first_element(el: etree._Element | None) -> etree._Element | None:
    """The first child element of ``el`` (comments and processing instructions skipped)."""
    return None if el is None else next((c for c in el if _local(c)), None)


__all__ = [
    "KNOWN_REQUESTS",
    "AddressKind",
    "Mm7Address",
    "Mm7Request",
    "Mm7RequestError",
    "answer_status",
    "parse_request",
]
