"""The simulated MM7 relay: read a VASP request, render the relay's answer (sans-io).

``parse_request(body, content_type)`` reads a SOAP envelope, or a ``multipart/related``
body whose root part (``start=``, else the first part) is the envelope, and returns an
``Mm7Request``. It raises ``Mm7RequestError`` carrying the MM7 code a relay would answer:
4004 (validation error) for anything unparseable or incomplete, 4003 for an unknown
``*Req``, 4002 for an unsupported MM7Version. The XML parser never resolves entities, never
loads a DTD, never touches the network, and a body declaring a DOCTYPE is refused.

``submit_request`` builds the minimal SubmitReq the demo guide, the benchmarks and the
end-to-end tests send. ``render_reply`` answers in the shape of REL-6-MM7-1-4 (MM7Version 6.8.0)::

    1xxx       HTTP 200  Envelope/Header/TransactionID + Body/<Kind>Rsp
                         {MM7Version, Status{StatusCode, StatusText, Details?}, MessageID}
    any other  HTTP 500  Body/Fault{faultcode Client (2xxx) | Server, faultstring,
                         detail/RSErrorRsp{MM7Version, Status{...}}}
"""

from dataclasses import dataclass
from xml.sax.saxutils import escape

from lxml import etree

from proxy.sim.reply import Reply
from proxy.vendors.multipart import select_part
from proxy.vendors.safexml import child_local, content_type_params, local_name, parse_xml, text_of

MM7_NS = "http://www.3gpp.org/ftp/Specs/archive/23_series/23.140/schema/REL-6-MM7-1-4"
SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
MM7_VERSION = "6.8.0"
CONTENT_TYPE = 'text/xml; charset="utf-8"'
_XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
#: What the relay accepts from VASPs: any other ``*Req`` is answered with 4003.
KNOWN_REQUESTS = frozenset(
    {
        "SubmitReq", "CancelReq", "ReplaceReq", "ExtendedCancelReq", "ExtendedReplaceReq",
        "DeliverReq", "DeliveryReportReq", "ReadReplyReq",
    }
)  # fmt: skip
_WITH_MESSAGE_ID = frozenset({"SubmitRsp", "ExtendedReplaceRsp"})
_ADDRESS_NAMES = ("Number", "RFC2822Address", "ShortCode")
_NSMAP = {"env": SOAP_NS, "mm7": MM7_NS}


class Mm7RequestError(Exception):
    """The request cannot be served; ``code`` is the MM7 status the relay answers with."""

    def __init__(self, code: str, details: str, transaction_id: str | None = None) -> None:
        super().__init__(details)
        self.code = code
        self.details = details
        self.transaction_id = transaction_id


@dataclass(frozen=True, slots=True)
class Mm7Request:
    """What the relay needs from a request: its kind, TransactionID and first recipient."""

    kind: str  # "SubmitReq", "CancelReq", ...
    transaction_id: str
    mm7_version: str
    recipient: str | None = None

    @property
    def response_kind(self) -> str:
        """The answer's element name: ``SubmitReq`` → ``SubmitRsp``."""
        return self.kind[: -len("Req")] + "Rsp"


_REFUSED = {
    "empty": "the request body is empty",
    "html": "the request body is HTML, not SOAP",
    "hostile": "DTDs and entity declarations are not allowed in SOAP",
    "malformed": "the request is not well-formed XML",
}


def _soap_root(body: bytes, content_type: str | None) -> etree._Element:
    """The SOAP Envelope element, read with the proxy's own hostile-XML-safe parser."""
    if content_type_params(content_type)[0].startswith("multipart/"):
        part = select_part(body, content_type)
        if part is None or not part.body.strip():
            raise Mm7RequestError("4004", "multipart/related body without a SOAP part")
        body, content_type = part.body, part.content_type
    result = parse_xml(body, content_type)
    if result.root is None:
        raise Mm7RequestError("4004", _REFUSED.get(result.kind, "unreadable request"))
    return result.root


def parse_request(body: bytes, content_type: str | None) -> Mm7Request:
    """Read a VASP request. Raises ``Mm7RequestError`` (4004, 4003 or 4002)."""
    root = _soap_root(body, content_type)
    if local_name(root) != "Envelope":
        raise Mm7RequestError("4004", "the root element is not a SOAP Envelope")
    header = child_local(root, "Header")
    transaction_id = text_of(child_local(header, "TransactionID")) if header is not None else None
    body_el = child_local(root, "Body")
    children = [c for c in body_el if isinstance(c.tag, str)] if body_el is not None else []
    req = children[0] if children else None
    if req is None:
        raise Mm7RequestError("4004", "the SOAP Body is empty", transaction_id)
    kind = local_name(req)
    if not kind.endswith("Req"):
        raise Mm7RequestError("4004", f"{kind} is not an MM7 request", transaction_id)
    if kind not in KNOWN_REQUESTS:
        raise Mm7RequestError("4003", f"{kind} is not supported by this relay", transaction_id)
    if transaction_id is None:
        raise Mm7RequestError("4004", "TransactionID is missing from the SOAP Header")
    version = text_of(child_local(req, "MM7Version"))
    if not version:
        raise Mm7RequestError("4004", "MM7Version is missing", transaction_id)
    if version.split(".", 1)[0] not in ("5", "6"):
        raise Mm7RequestError("4002", f"MM7Version {version} is not supported", transaction_id)
    return Mm7Request(kind, transaction_id, version, _first_recipient(req))


def _first_recipient(req: etree._Element) -> str | None:
    recipients = child_local(req, "Recipients")
    if recipients is None:
        return None
    for el in recipients.iter():
        if isinstance(el.tag, str) and local_name(el) in _ADDRESS_NAMES and text_of(el):
            return text_of(el)
    return None


def _mm7(parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
    el = etree.SubElement(parent, f"{{{MM7_NS}}}{name}")
    if text is not None:
        el.text = text
    return el


def _envelope(transaction_id: str | None) -> tuple[etree._Element, etree._Element]:
    env = etree.Element(f"{{{SOAP_NS}}}Envelope", nsmap=_NSMAP)
    if transaction_id is not None:
        header = etree.SubElement(env, f"{{{SOAP_NS}}}Header")
        tid = _mm7(header, "TransactionID", transaction_id)
        tid.set(f"{{{SOAP_NS}}}mustUnderstand", "1")
    return env, etree.SubElement(env, f"{{{SOAP_NS}}}Body")


def _status(parent: etree._Element, code: str, text: str, details: str | None) -> None:
    _mm7(parent, "MM7Version", MM7_VERSION)
    status = _mm7(parent, "Status")
    _mm7(status, "StatusCode", code)
    _mm7(status, "StatusText", text)
    if details:
        _mm7(status, "Details", details)


def _serialize(env: etree._Element) -> bytes:
    # Written by hand: lxml's own declaration uses single quotes, which no relay sends.
    return _XML_DECLARATION + etree.tostring(env, encoding="UTF-8", pretty_print=True)


def is_success(code: str) -> bool:
    """1xxx codes are answered with the Rsp; everything else is a SOAP Fault."""
    return len(code) == 4 and code.startswith("1")


def render_reply(
    *,
    response_kind: str,
    transaction_id: str | None,
    code: str,
    text: str,
    message_id: str | None = None,
    details: str | None = None,
    fault_status: int = 500,
) -> Reply:
    """The relay's answer to one request (see the module docstring for the shapes)."""
    env, body = _envelope(transaction_id)
    if is_success(code):
        rsp = _mm7(body, response_kind)
        _status(rsp, code, text, details)
        if message_id is not None and response_kind in _WITH_MESSAGE_ID:
            _mm7(rsp, "MessageID", message_id)
        return Reply(200, CONTENT_TYPE, _serialize(env))
    fault = etree.SubElement(body, f"{{{SOAP_NS}}}Fault")
    side = "Client" if len(code) == 4 and code.startswith("2") else "Server"
    etree.SubElement(fault, "faultcode").text = f"env:{side}"
    etree.SubElement(fault, "faultstring").text = text
    detail = etree.SubElement(fault, "detail")
    _status(_mm7(detail, "RSErrorRsp"), code, text, details)
    return Reply(fault_status, CONTENT_TYPE, _serialize(env))


def submit_request(number: str, transaction_id: str = "demo-1") -> str:
    """A minimal SOAP SubmitReq to one ``number`` (no media), on one line.

    This is the body the demo guide prints in its curl commands, so it stays short and
    free of single quotes (it is shell-quoted with them). ``number`` and
    ``transaction_id`` are XML-escaped.
    """
    return (
        f'<env:Envelope xmlns:env="{SOAP_NS}">'
        f'<env:Header><TransactionID xmlns="{MM7_NS}">{escape(transaction_id)}</TransactionID>'
        f'</env:Header><env:Body><SubmitReq xmlns="{MM7_NS}"><MM7Version>{MM7_VERSION}'
        f"</MM7Version><Recipients><To><Number>{escape(number)}</Number></To></Recipients>"
        "<Subject>hello</Subject></SubmitReq></env:Body></env:Envelope>"
    )


def oversize_body(transaction_id: str, message_id: str, size: int) -> bytes:
    """A valid-looking SubmitRsp of at least ``size`` bytes (the bulk is in Details)."""
    reply = render_reply(
        response_kind="SubmitRsp",
        transaction_id=transaction_id,
        code="1000",
        text="Success",
        message_id=message_id,
        details="x" * size,
    )
    return reply.body


def malformed_body(transaction_id: str) -> bytes:
    """Broken XML: a truncated SubmitRsp with mismatched tags and no status code in it."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<env:Envelope xmlns:env="{SOAP_NS}" xmlns:mm7="{MM7_NS}">\n'
        f"  <env:Header><mm7:TransactionID>{escape(transaction_id)}</mm7:TransactionID>"
        "</env:Heder>\n"
        "  <env:Body>\n    <mm7:SubmitRsp>\n      <mm7:MM7Version>6.8.0</mm7:MM7Vers"
    ).encode()


__all__ = [
    "CONTENT_TYPE",
    "KNOWN_REQUESTS",
    "MM7_NS",
    "MM7_VERSION",
    "SOAP_NS",
    "Mm7Request",
    "Mm7RequestError",
    "is_success",
    "malformed_body",
    "oversize_body",
    "parse_request",
    "render_reply",
    "submit_request",
]
