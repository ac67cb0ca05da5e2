"""The simulated MM7 relay's answers (sans-io): SubmitRsp/CancelRsp/..., Faults, shapes.

``render_answer`` answers one request in the layout the simulator's table gives its code
(``codes.Mm7Layout``, from ``vendor_codes.yaml``), in REL-6-MM7-1-4 (MM7Version 6.8.0)::

    reply: rsp    Envelope/Header/TransactionID + Body/<Kind>Rsp
                  {MM7Version, Status{StatusCode, StatusText, Details?}, MessageID}
    reply: fault  Body/Fault{faultcode env:Client | env:Server, faultstring,
                  detail/RSErrorRsp{MM7Version, Status{...}}}

with the HTTP status of the table (a Fault's may be overridden: ``X-Sim-Http-Status``).
A reply *shape* (``outcome.Mm7Shape``) lays the same answer out the way some relays do:

    status-header        the status only in the ``X-MM7-Status-Code`` HTTP header, with a
                         bare Fault (faultcode only; an Rsp code gets an empty body)
    status-header-empty  the same header with an empty body
    nested-details       the usual answer, plus ``Status/Details`` holding a vendor element
                         with a nested ``Status/StatusCode`` of a *different* code (4004,
                         or 1000 when the code is 4004): a proxy reading it is caught
    dotted-fault-401     HTTP 401 with a Fault ``env:Client.Auth`` and no MM7 status
    multipart-late-soap  ``multipart/related`` whose first part is text/plain and whose
                         SOAP part comes second, named by ``start=``
    status-header-twice  the usual answer, and ``X-MM7-Status-Code`` on two field lines:
                         ``1000`` (a front end's stale line), then the code
    gzip-members         the usual answer, gzip-coded in three members: an empty one,
                         then each half of the body

``parse_request`` (mm7_request.py, re-exported here) reads the requests. ``submit_request``
builds the minimal SubmitReq the demo guide, the benchmarks and the end-to-end tests send.
``soap_envelope``, ``mm7_element`` and ``serialize`` are the builders every MM7 document
of the simulator is made with (the relay's own DeliveryReportReq too, report.py).
"""

from dataclasses import dataclass
from typing import assert_never
from xml.sax.saxutils import escape

from lxml import etree

from proxy.tools.sim.codes import Mm7Layout, SimCodes, load_sim_codes
from proxy.tools.sim.mm7_request import KNOWN_REQUESTS, Mm7Request, Mm7RequestError, parse_request
from proxy.tools.sim.outcome import Mm7Shape
from proxy.tools.sim.reply import Reply, in_gzip_members

MM7_NS = "http://www.3gpp.org/ftp/Specs/archive/23_series/23.140/schema/REL-6-MM7-1-4"
SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
#: The namespace of the vendor element a ``nested-details`` answer puts in Details.
VENDOR_NS = "urn:gateway-proxy:sim:relay-diagnostics"
MM7_VERSION = "6.8.0"
CONTENT_TYPE = 'text/xml; charset="utf-8"'
STATUS_HEADER = "X-MM7-Status-Code"
_XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
_WITH_MESSAGE_ID = frozenset({"SubmitRsp", "ExtendedReplaceRsp"})
_NSMAP = {"env": SOAP_NS, "mm7": MM7_NS}
_SUCCESS_LAYOUT = Mm7Layout(200, "rsp")
_BOUNDARY = "=_sim-late-soap_0"
_SOAP_PART_ID = "soap-root@sim.invalid"


def mm7_element(parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
    """A child ``mm7:<name>`` (REL-6-MM7-1-4) of ``parent``, with ``text`` if given."""
    el = etree.SubElement(parent, f"{{{MM7_NS}}}{name}")
    if text is not None:
        el.text = text
    return el


def soap_envelope(transaction_id: str | None) -> tuple[etree._Element, etree._Element]:
    """A SOAP 1.1 Envelope and its Body; the Header holds ``TransactionID`` (mustUnderstand)."""
    env = etree.Element(f"{{{SOAP_NS}}}Envelope", nsmap=_NSMAP)
    if transaction_id is not None:
        header = etree.SubElement(env, f"{{{SOAP_NS}}}Header")
        tid = mm7_element(header, "TransactionID", transaction_id)
        tid.set(f"{{{SOAP_NS}}}mustUnderstand", "1")
    return env, etree.SubElement(env, f"{{{SOAP_NS}}}Body")


def _status(
    parent: etree._Element,
    code: str,
    text: str,
    details: str | None,
    nested: tuple[str, str] | None = None,
) -> None:
    mm7_element(parent, "MM7Version", MM7_VERSION)
    status = mm7_element(parent, "Status")
    mm7_element(status, "StatusCode", code)
    mm7_element(status, "StatusText", text)
    if details or nested:
        holder = mm7_element(status, "Details", details)
    if nested:
        # A vendor's diagnostics in Details, with a Status of its own (in the MM7 namespace,
        # so only its place in the tree tells it from the real one).
        vendor = etree.SubElement(
            holder, f"{{{VENDOR_NS}}}RelayDiagnostics", nsmap={"vnd": VENDOR_NS}
        )
        inner = mm7_element(vendor, "Status")
        mm7_element(inner, "StatusCode", nested[0])
        mm7_element(inner, "StatusText", nested[1])


def serialize(env: etree._Element) -> bytes:
    """The document as UTF-8 bytes, with a double-quoted XML declaration."""
    # Written by hand: lxml's own declaration uses single quotes, which no relay sends.
    return _XML_DECLARATION + etree.tostring(env, encoding="UTF-8", pretty_print=True)


@dataclass(frozen=True, slots=True)
class Mm7Answer:
    """What the relay says to one request, before it is laid out."""

    response_kind: str  # "SubmitRsp", ... (an Rsp layout's element; a Fault ignores it)
    transaction_id: str | None
    code: str
    text: str
    message_id: str | None = None
    details: str | None = None


def _standard(answer: Mm7Answer, layout: Mm7Layout, nested: tuple[str, str] | None = None) -> bytes:
    env, body = soap_envelope(answer.transaction_id)
    if layout.reply == "rsp":
        rsp = mm7_element(body, answer.response_kind)
        _status(rsp, answer.code, answer.text, answer.details, nested)
        if answer.message_id is not None and answer.response_kind in _WITH_MESSAGE_ID:
            mm7_element(rsp, "MessageID", answer.message_id)
        return serialize(env)
    fault = etree.SubElement(body, f"{{{SOAP_NS}}}Fault")
    etree.SubElement(fault, "faultcode").text = f"env:{layout.faultcode}"
    etree.SubElement(fault, "faultstring").text = answer.text
    detail = etree.SubElement(fault, "detail")
    _status(mm7_element(detail, "RSErrorRsp"), answer.code, answer.text, answer.details, nested)
    return serialize(env)


def _bare_fault(faultcode: str, faultstring: str) -> bytes:
    """A SOAP 1.1 Fault with no Header and no detail: no MM7 status anywhere."""
    env = etree.Element(f"{{{SOAP_NS}}}Envelope", nsmap={"env": SOAP_NS})
    fault = etree.SubElement(etree.SubElement(env, f"{{{SOAP_NS}}}Body"), f"{{{SOAP_NS}}}Fault")
    etree.SubElement(fault, "faultcode").text = faultcode
    etree.SubElement(fault, "faultstring").text = faultstring
    return serialize(env)


def _late_soap(status: int, soap: bytes) -> Reply:
    """``multipart/related`` with a text/plain part first and the SOAP part second."""
    notice = b"Relay notice: the SOAP answer is the part named by start=.\r\n"
    body = b"".join(
        [
            f"--{_BOUNDARY}\r\nContent-Type: text/plain; charset=utf-8\r\n".encode(),
            b"Content-ID: <notice@sim.invalid>\r\n\r\n", notice,
            f"\r\n--{_BOUNDARY}\r\nContent-Type: {CONTENT_TYPE}\r\n".encode(),
            f"Content-ID: <{_SOAP_PART_ID}>\r\n\r\n".encode(), soap,
            f"\r\n--{_BOUNDARY}--\r\n".encode(),
        ]
    )  # fmt: skip
    ctype = f'multipart/related; boundary="{_BOUNDARY}"; type="text/xml"; start="<{_SOAP_PART_ID}>"'
    return Reply(status, ctype, body)


def render(
    answer: Mm7Answer,
    layout: Mm7Layout,
    *,
    shape: Mm7Shape | None = None,
    fault_status: int | None = None,
    decoy: tuple[str, str] = ("4004", "Validation error"),
) -> Reply:
    """The relay's answer in ``layout`` and ``shape`` (see the module docstring).

    ``fault_status`` overrides the HTTP status of a Fault layout; ``decoy`` is the
    (code, text) a ``nested-details`` answer nests in Details (it must differ from the code).
    """
    status = fault_status if layout.reply == "fault" and fault_status else layout.http
    code_header = ((STATUS_HEADER, answer.code),)
    match shape:
        case None:
            return Reply(status, CONTENT_TYPE, _standard(answer, layout))
        case "nested-details":
            return Reply(status, CONTENT_TYPE, _standard(answer, layout, decoy))
        case "status-header":
            bare = layout.reply == "fault"
            body = _bare_fault(f"env:{layout.faultcode}", answer.text) if bare else b""
            return Reply(status, CONTENT_TYPE, body, code_header)
        case "status-header-empty":
            return Reply(status, CONTENT_TYPE, b"", code_header)
        case "status-header-twice":
            # A front end's stale line first, then the relay's own: two field lines.
            twice = ((STATUS_HEADER, "1000"), (STATUS_HEADER, answer.code))
            return Reply(status, CONTENT_TYPE, _standard(answer, layout), twice)
        case "gzip-members":
            return in_gzip_members(Reply(status, CONTENT_TYPE, _standard(answer, layout)))
        case "dotted-fault-401":
            auth = (("WWW-Authenticate", 'Basic realm="MM7 relay"'),)
            return Reply(
                401, CONTENT_TYPE, _bare_fault("env:Client.Auth", "Authentication failed"), auth
            )
        case "multipart-late-soap":
            return _late_soap(status, _standard(answer, layout))
        case _:
            assert_never(shape)


def decoy_code(code: str) -> str:
    """The code a ``nested-details`` answer nests: 4004, or 1000 when ``code`` is 4004."""
    return "1000" if code == "4004" else "4004"


def render_answer(
    codes: SimCodes,
    answer: Mm7Answer,
    *,
    shape: Mm7Shape | None = None,
    fault_status: int | None = None,
) -> Reply:
    """``render`` with the layout and the decoy's text taken from the simulator's table."""
    decoy = decoy_code(answer.code)
    return render(
        answer,
        codes.layout(answer.code),
        shape=shape,
        fault_status=fault_status,
        decoy=(decoy, codes.text("mm7", decoy)),
    )


def render_reply(
    *,
    response_kind: str,
    transaction_id: str | None,
    code: str,
    text: str,
    message_id: str | None = None,
    details: str | None = None,
    fault_status: int | None = None,
    layout: Mm7Layout | None = None,
) -> Reply:
    """One answer with an explicit ``text``, in the usual shape (for hand-made gateways).

    ``layout`` None: the built-in table's layout for ``code`` (that reads the table each
    call; a loop should pass ``layout`` or use ``render_answer``).
    """
    answer = Mm7Answer(response_kind, transaction_id, code, text, message_id, details)
    chosen = layout if layout is not None else load_sim_codes().layout(code)
    return render(answer, chosen, fault_status=fault_status)


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
    answer = Mm7Answer("SubmitRsp", transaction_id, "1000", "Success", message_id, "x" * size)
    return render(answer, _SUCCESS_LAYOUT).body


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
    "STATUS_HEADER",
    "VENDOR_NS",
    "Mm7Answer",
    "Mm7Request",
    "Mm7RequestError",
    "decoy_code",
    "malformed_body",
    "mm7_element",
    "oversize_body",
    "parse_request",
    "render",
    "render_answer",
    "render_reply",
    "serialize",
    "soap_envelope",
    "submit_request",
]
