"""Answer the relay: the MM7 response to one inbound callback (pure).

``build_answer(outcome, status_code)`` renders ``(http_status, content_type, body)`` in
the request's own SOAP version, MM7 namespace and MM7Version, with its TransactionID
echoed in the SOAP Header (``mustUnderstand="1"``, as relays send it)::

    success (1xxx)       200  <DeliveryReportRsp|ReadReplyRsp|DeliverRsp>
                              {MM7Version, Status{StatusCode, StatusText, Details?}}
    not to be retried    200  the same matching *Rsp with the error status, or a
                              VASPErrorRsp in the Body when the request's kind is unknown
    to be retried        500  SOAP Fault (Server / Receiver) whose detail holds a
                              VASPErrorRsp{MM7Version, Status{...}}

``answer_code(webhook_status)`` picks the status from what the app's webhook did: 2xx →
1000; a 4xx → 3002 (refused), except 408/425/429, which ask for later; anything else (no
answer at all, 5xx, an unfollowed redirect) → 4006, so the relay retries and nothing is
lost.

Why the HTTP status carries "retry", and the element "what was understood":

* Relays decide on the HTTP status first. Mbuni's relay (``mmsglobalsender.c``,
  ``mm7soap_send``) requeues a DeliverReq or report on any non-2xx answer, but takes a
  2xx answer whose StatusCode is not 1xxx as a *fatal* failure and drops it. The
  VectorCore MMSC fails on any non-2xx before reading the body. So a 4006 inside a 200
  would lose the event: a retry must be an HTTP error status, and by SOAP 1.1's HTTP
  binding an error answer with a SOAP Fault goes with 500.
* A refusal must not be retried: TS 23.140's 2xxx (client error) and 3xxx (server
  refused an apparently valid request) mean "not again unchanged". A 500 would make those
  relays resend a corrupt or refused message until it expires; a 200 whose Status says
  why ends it. This is what Sinch's MM7 documentation asks of a VASP ("indicate a failure
  in the DeliverRsp status field") and what VASPs do (burstsms answers DeliverRsp 2007
  with 200).
* The matching ``*Rsp`` exists to carry its request's outcome, so it is used whenever the
  kind is known. When it is not (a corrupt body, a wrong root) there is nothing to match:
  the generic ``VASPErrorRsp`` answers. It is ``VASPErrorRsp``, not ``RSErrorRsp``: here
  the proxy is the VASP side of MM7, and RSErrorRsp is the relay's own generic error.
* An app refusal answers 3002 (Message rejected): the relay's request was valid, the
  application would not take it. 2xxx would blame the relay's request.

Texts: ``status_text`` should come from the catalog (``vendors.mm7.codes``); without it
the TS 23.140 class name is used (Success, Client error, Server error, General service
error). A ``CallbackError``'s ``detail`` goes into ``Details``. Every value is escaped by
lxml, and characters XML cannot carry are dropped.
"""

import re
from typing import NamedTuple

from lxml import etree

from proxy.inbound.types import (
    DEFAULT_MM7_VERSION,
    SOAP11_NS,
    SOAP12_NS,
    Callback,
    CallbackError,
    Echo,
)

#: The MM7 statuses answered as "try again later": HTTP 500 with a SOAP Fault.
RETRY_CODES = frozenset({4006})
_CLASS_TEXT = {1: "Success", 2: "Client error", 3: "Server error", 4: "General service error"}
_CONTENT_TYPES = {
    "1.1": 'text/xml; charset="utf-8"',
    "1.2": 'application/soap+xml; charset="utf-8"',
}
_XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
# Characters XML 1.0 cannot carry at all (not even escaped).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class Answer(NamedTuple):
    """What the inbound route sends the relay."""

    status: int
    content_type: str
    body: bytes


def answer_code(webhook_status: int | None) -> int:
    """The MM7 status to answer once the app's webhook answered ``webhook_status``.

    ``None`` means no answer (refused, timed out, reset): the relay should retry.
    """
    if webhook_status is not None and 200 <= webhook_status < 300:
        return 1000
    if webhook_status is not None and 400 <= webhook_status < 500:
        return 4006 if webhook_status in (408, 425, 429) else 3002
    return 4006


def build_answer(
    outcome: Callback | CallbackError,
    status_code: int,
    *,
    status_text: str | None = None,
    details: str | None = None,
    retry: bool | None = None,
) -> Answer:
    """The answer to ``outcome`` with MM7 ``status_code``; see the module docstring.

    ``retry`` None means "if ``status_code`` is in ``RETRY_CODES``". A success code
    (1xxx) is always a 200 ``*Rsp``. ``details`` defaults to a ``CallbackError``'s detail.
    """
    echo = outcome.echo
    kind = outcome.kind if isinstance(outcome, CallbackError) else outcome.KIND
    if details is None and isinstance(outcome, CallbackError):
        details = outcome.detail
    success = 1000 <= status_code < 2000
    retry = (status_code in RETRY_CODES if retry is None else retry) and not success
    text = status_text or _CLASS_TEXT.get(status_code // 1000, "Error")
    envelope, body = _envelope(echo)
    if retry:
        detail = _fault(body, echo.soap, status_code, text)
        _response(detail, echo, "VASPErrorRsp", status_code, text=text, details=details)
        return Answer(500, _CONTENT_TYPES[echo.soap], _serialize(envelope))
    element = f"{kind[: -len('Req')]}Rsp" if kind is not None else "VASPErrorRsp"
    _response(body, echo, element, status_code, text=text, details=details)
    return Answer(200, _CONTENT_TYPES[echo.soap], _serialize(envelope))


def _clean(text: str) -> str:
    return _NOT_XML.sub("", text)


def _mm7(parent: etree._Element, echo: Echo, name: str, text: str | None = None) -> etree._Element:
    tag = f"{{{echo.namespace}}}{name}" if echo.namespace else name
    el = etree.SubElement(parent, tag)
    if text is not None:
        el.text = _clean(text)
    return el


def _envelope(echo: Echo) -> tuple[etree._Element, etree._Element]:
    soap_ns = SOAP12_NS if echo.soap == "1.2" else SOAP11_NS
    nsmap = {"env": soap_ns, **({"mm7": echo.namespace} if echo.namespace else {})}
    envelope = etree.Element(f"{{{soap_ns}}}Envelope", nsmap=nsmap)
    if echo.transaction_id is not None:
        header = etree.SubElement(envelope, f"{{{soap_ns}}}Header")
        tid = _mm7(header, echo, "TransactionID", echo.transaction_id)
        tid.set(f"{{{soap_ns}}}mustUnderstand", "1")
    return envelope, etree.SubElement(envelope, f"{{{soap_ns}}}Body")


def _fault(body: etree._Element, soap: str, code: int, text: str) -> etree._Element:
    """A SOAP Fault in ``body``; returns its detail element (for the VASPErrorRsp)."""
    side = "Client" if code // 1000 == 2 else "Server"
    if soap == "1.1":
        fault = etree.SubElement(body, f"{{{SOAP11_NS}}}Fault")
        etree.SubElement(fault, "faultcode").text = f"env:{side}"
        etree.SubElement(fault, "faultstring").text = _clean(text)
        return etree.SubElement(fault, "detail")
    fault = etree.SubElement(body, f"{{{SOAP12_NS}}}Fault")
    value = etree.SubElement(
        etree.SubElement(fault, f"{{{SOAP12_NS}}}Code"), f"{{{SOAP12_NS}}}Value"
    )
    value.text = "env:Sender" if side == "Client" else "env:Receiver"
    reason = etree.SubElement(
        etree.SubElement(fault, f"{{{SOAP12_NS}}}Reason"), f"{{{SOAP12_NS}}}Text"
    )
    reason.set(_XML_LANG, "en")
    reason.text = _clean(text)
    return etree.SubElement(fault, f"{{{SOAP12_NS}}}Detail")


def _response(
    parent: etree._Element,
    echo: Echo,
    element: str,
    code: int,
    *,
    text: str,
    details: str | None,
) -> None:
    rsp = _mm7(parent, echo, element)
    _mm7(rsp, echo, "MM7Version", echo.mm7_version or DEFAULT_MM7_VERSION)
    status = _mm7(rsp, echo, "Status")
    _mm7(status, echo, "StatusCode", str(code))
    _mm7(status, echo, "StatusText", text)
    if details:
        _mm7(status, echo, "Details", details)


def _serialize(envelope: etree._Element) -> bytes:
    # The declaration by hand: lxml's uses single quotes, which no relay sends.
    return _XML_DECLARATION + etree.tostring(envelope, encoding="UTF-8")


__all__ = ["RETRY_CODES", "Answer", "answer_code", "build_answer"]
