"""proxy.inbound.answer: the MM7 answer to a callback, read back with lxml."""

from typing import Any

import pytest
from lxml import etree

from proxy.inbound import (
    Callback,
    CallbackError,
    Deliver,
    DeliveryReport,
    ReadReply,
    answer_code,
    build_answer,
    parse_callback,
)
from proxy.vendors.mm7 import parse_mm7
from tests.test_inbound_mm7 import NS5, NS6, REPORT, SOAP11, dr_body, fixture

SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
LIMIT = 1 << 20
CALLBACKS = {
    "deliveryreport-rel6-default-ns.xml": ("DeliveryReportRsp", NS6, SOAP11, "dr-0001"),
    "deliveryreport-rel5-prefixed.xml": ("DeliveryReportRsp", NS5, SOAP11, "dr-rel5-42"),
    "deliveryreport-soap12.xml": (
        "DeliveryReportRsp",
        "http://www.3gpp.org/ftp/Specs/archive/23_series/23.140/schema/REL-6-MM7-1-2",
        SOAP12,
        "soap12-dr-7",
    ),
    "deliveryreport-no-namespace.xml": ("DeliveryReportRsp", None, SOAP11, "plain-3"),
    "readreply-rel6.xml": ("ReadReplyRsp", NS6, SOAP11, "rr-55"),
    "deliver-nested-mixed.http": ("DeliverRsp", NS6, SOAP11, "mo-1000001"),
    "deliver-late-soap12.http": ("DeliverRsp", NS6, SOAP12, "mo-late-3"),
}


def parsed(name: str) -> Callback | CallbackError:
    return parse_callback(*fixture(name), LIMIT)


def q(namespace: str | None, name: str) -> str:
    return f"{{{namespace}}}{name}" if namespace else name


def read(body: bytes) -> etree._Element:
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n')
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.fromstring(body, parser)


def status_of(rsp: etree._Element, namespace: str | None) -> dict[str, Any]:
    status = rsp.find(q(namespace, "Status"))
    assert status is not None
    return {
        "version": rsp.findtext(q(namespace, "MM7Version")),
        "code": status.findtext(q(namespace, "StatusCode")),
        "text": status.findtext(q(namespace, "StatusText")),
        "details": status.findtext(q(namespace, "Details")),
    }


def check_header(root: etree._Element, soap: str, namespace: str | None, tid: str | None) -> None:
    header = root.find(f"{{{soap}}}Header")
    if tid is None:
        assert header is None
        return
    assert header is not None
    (element,) = list(header)
    assert element.tag == q(namespace, "TransactionID")
    assert element.text == tid
    assert element.get(f"{{{soap}}}mustUnderstand") == "1"


@pytest.mark.parametrize("name", sorted(CALLBACKS))
def test_success_answers_in_the_requests_own_dialect(name: str) -> None:
    """1000: HTTP 200, the matching *Rsp in the request's namespace, SOAP version, version."""
    callback = parsed(name)
    assert isinstance(callback, DeliveryReport | ReadReply | Deliver)
    element, namespace, soap, tid = CALLBACKS[name]
    answer = build_answer(callback, 1000, status_text="Success")
    assert answer.status == 200
    assert answer.content_type.startswith("text/xml" if soap == SOAP11 else "application/soap+xml")
    root = read(answer.body)
    assert root.tag == f"{{{soap}}}Envelope"
    check_header(root, soap, namespace, tid)
    body = root.find(f"{{{soap}}}Body")
    assert body is not None
    (rsp,) = list(body)
    assert rsp.tag == q(namespace, element)
    assert status_of(rsp, namespace) == {
        "version": callback.echo.mm7_version,
        "code": "1000",
        "text": "Success",
        "details": None,
    }


@pytest.mark.parametrize("name", sorted(CALLBACKS))
def test_a_refusal_is_the_matching_rsp_with_http_200(name: str) -> None:
    """The app refused (3002): a 200 with the error in the matching *Rsp, no Fault."""
    callback = parsed(name)
    assert isinstance(callback, DeliveryReport | ReadReply | Deliver)
    element, namespace, soap, _ = CALLBACKS[name]
    answer = build_answer(callback, 3002, status_text="Message Rejected", details="app said no")
    assert answer.status == 200
    (rsp,) = list(read(answer.body).find(f"{{{soap}}}Body"))  # type: ignore[arg-type]
    assert rsp.tag == q(namespace, element)
    assert status_of(rsp, namespace)["code"] == "3002"
    assert status_of(rsp, namespace)["details"] == "app said no"


def test_retry_is_a_soap11_fault_with_http_500() -> None:
    """4006 (webhook down): HTTP 500, Fault env:Server, detail/VASPErrorRsp with 4006."""
    callback = parsed("deliveryreport-rel6-default-ns.xml")
    answer = build_answer(callback, 4006, status_text="Service unavailable")
    assert answer.status == 500
    root = read(answer.body)
    check_header(root, SOAP11, NS6, "dr-0001")
    fault = root.find(f"{{{SOAP11}}}Body/{{{SOAP11}}}Fault")
    assert fault is not None
    assert fault.findtext("faultcode") == "env:Server"
    assert fault.findtext("faultstring") == "Service unavailable"
    (error,) = list(fault.find("detail"))  # type: ignore[arg-type]
    assert error.tag == q(NS6, "VASPErrorRsp")
    assert status_of(error, NS6)["code"] == "4006"


def test_retry_is_a_soap12_fault_for_a_soap12_request() -> None:
    """SOAP 1.2: Code/Value env:Receiver, Reason/Text xml:lang=en, Detail/VASPErrorRsp."""
    callback = parsed("deliveryreport-soap12.xml")
    assert isinstance(callback, DeliveryReport)
    answer = build_answer(callback, 4006)
    assert (answer.status, answer.content_type) == (500, 'application/soap+xml; charset="utf-8"')
    fault = read(answer.body).find(f"{{{SOAP12}}}Body/{{{SOAP12}}}Fault")
    assert fault is not None
    assert fault.findtext(f"{{{SOAP12}}}Code/{{{SOAP12}}}Value") == "env:Receiver"
    text = fault.find(f"{{{SOAP12}}}Reason/{{{SOAP12}}}Text")
    assert text is not None
    assert text.get("{http://www.w3.org/XML/1998/namespace}lang") == "en"
    (error,) = list(fault.find(f"{{{SOAP12}}}Detail"))  # type: ignore[arg-type]
    assert error.tag == q(callback.echo.namespace, "VASPErrorRsp")
    assert status_of(error, callback.echo.namespace)["code"] == "4006"


def test_corrupt_request_gets_vasperrorrsp_2007_in_the_default_dialect() -> None:
    """Nothing readable: 200, a VASPErrorRsp in the Body, REL-6-MM7-1-4, no Header."""
    error = parse_callback(b"<<<", "text/xml", LIMIT)
    assert isinstance(error, CallbackError)
    answer = build_answer(error, error.code)
    assert answer.status == 200
    root = read(answer.body)
    check_header(root, SOAP11, NS6, None)
    (rsp,) = list(root.find(f"{{{SOAP11}}}Body"))  # type: ignore[arg-type]
    assert rsp.tag == q(NS6, "VASPErrorRsp")
    assert status_of(rsp, NS6) == {
        "version": "6.8.0",
        "code": "2007",
        "text": "Client error",
        "details": "the request is not well-formed XML",
    }


def test_validation_error_for_a_known_kind_uses_its_rsp() -> None:
    """A report missing MMStatus: its own DeliveryReportRsp with 4004, TransactionID echoed."""
    error = parsed("deliveryreport-missing-mmstatus.xml")
    assert isinstance(error, CallbackError)
    answer = build_answer(error, error.code, status_text="Validation error")
    root = read(answer.body)
    namespace = error.echo.namespace
    check_header(root, SOAP11, namespace, "dr-broken")
    (rsp,) = list(root.find(f"{{{SOAP11}}}Body"))  # type: ignore[arg-type]
    assert rsp.tag == q(namespace, "DeliveryReportRsp")
    assert status_of(rsp, namespace) == {
        "version": "6.7.0",
        "code": "4004",
        "text": "Validation error",
        "details": "DeliveryReportReq without MMStatus",
    }


def test_unsupported_request_gets_vasperrorrsp_4003_with_its_transaction_id() -> None:
    """A SubmitReq on the inbound route: 4003 in a VASPErrorRsp, TransactionID echoed."""
    error = parsed("submitreq-unsupported.xml")
    assert isinstance(error, CallbackError)
    root = read(build_answer(error, error.code).body)
    check_header(root, SOAP11, NS6, "sub-1")
    (rsp,) = list(root.find(f"{{{SOAP11}}}Body"))  # type: ignore[arg-type]
    assert rsp.tag == q(NS6, "VASPErrorRsp")
    assert status_of(rsp, NS6)["code"] == "4003"


def test_everything_is_escaped() -> None:
    """Markup in texts and the TransactionID is escaped; characters XML cannot hold dropped."""
    body = dr_body(REPORT, header="<TransactionID>a&amp;b&lt;c&gt;\"'</TransactionID>")
    callback = parse_callback(body, None, LIMIT)
    assert isinstance(callback, DeliveryReport)
    answer = build_answer(
        callback, 3002, status_text='<b>no</b> & "yes"\x00\x1f', details="]]><x>&amp;\ufffe"
    )
    root = read(answer.body)
    check_header(root, SOAP11, NS6, "a&b<c>\"'")
    (rsp,) = list(root.find(f"{{{SOAP11}}}Body"))  # type: ignore[arg-type]
    status = status_of(rsp, NS6)
    assert (status["text"], status["details"]) == ('<b>no</b> & "yes"', "]]><x>&amp;")


def test_a_success_is_never_a_fault() -> None:
    """retry=True cannot turn a 1xxx answer into a Fault."""
    callback = parsed("readreply-rel6.xml")
    answer = build_answer(callback, 1000, retry=True)
    assert answer.status == 200
    assert b"Fault" not in answer.body


def test_retry_can_be_forced_either_way() -> None:
    """retry overrides RETRY_CODES; a retried 2xxx is a Client fault."""
    callback = parsed("readreply-rel6.xml")
    assert build_answer(callback, 4006, retry=False).status == 200
    forced = build_answer(callback, 2000, retry=True)
    assert forced.status == 500
    fault = read(forced.body).find(f"{{{SOAP11}}}Body/{{{SOAP11}}}Fault")
    assert fault is not None
    assert fault.findtext("faultcode") == "env:Client"


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (1000, "Success"),
        (2007, "Client error"),
        (3002, "Server error"),
        (4006, "General service error"),
        (9999, "Error"),
    ],
)
def test_default_status_text_is_the_class_name(code: int, text: str) -> None:
    """Without status_text, the TS 23.140 class name is the StatusText."""
    callback = parsed("deliveryreport-no-namespace.xml")
    root = read(build_answer(callback, code, retry=False).body)
    (rsp,) = list(root.find(f"{{{SOAP11}}}Body"))  # type: ignore[arg-type]
    assert status_of(rsp, None)["text"] == text


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("deliveryreport-rel6-default-ns.xml", 1000),
        ("deliveryreport-soap12.xml", 3002),
        ("readreply-rel6.xml", 4006),
        ("deliver-nested-mixed.http", 4006),
        ("deliveryreport-no-namespace.xml", 4004),
        ("xxe-deliveryreport.xml", 2007),
    ],
)
def test_the_proxys_own_reply_parser_reads_the_answer(name: str, code: int) -> None:
    """Our reply parser (proxy.vendors.mm7) reads the code, and a Fault exactly on retry."""
    outcome = parsed(name)
    answer = build_answer(outcome, code)
    reply = parse_mm7(answer.body, answer.content_type)
    assert reply.code == str(code)
    assert reply.fault == (answer.status == 500)
    assert reply.transaction_id == outcome.echo.transaction_id


@pytest.mark.parametrize(
    ("webhook", "code"),
    [
        (200, 1000),
        (202, 1000),
        (204, 1000),
        (None, 4006),
        (500, 4006),
        (502, 4006),
        (503, 4006),
        (408, 4006),
        (425, 4006),
        (429, 4006),
        (400, 3002),
        (401, 3002),
        (403, 3002),
        (404, 3002),
        (409, 3002),
        (422, 3002),
        (301, 4006),
        (100, 4006),
    ],
)
def test_answer_code_from_the_webhook(webhook: int | None, code: int) -> None:
    """2xx accepts, 4xx refuses (3002) unless it says "later", anything else retries."""
    assert answer_code(webhook) == code
