"""The classification rules of README "Codes", each on the parsers and the classifier alone.

No sockets: bytes, a status and headers go in, an ``Outcome`` comes out. Every reply is
written here from TS 23.140 (REL-6-MM7-1-4), SOAP 1.1/1.2 and the MoMS vendor page.
"""

from collections.abc import Mapping

import pytest
from multidict import CIMultiDict

from proxy.codes.catalog import Catalog
from proxy.codes.classify import Outcome, classify_reply, fault_candidates
from proxy.codes.envelope import build_envelope
from proxy.vendors.mm7 import parse_mm7
from proxy.vendors.moms import parse_moms

NS = "http://www.3gpp.org/ftp/Specs/archive/23_series/23.140/schema/REL-6-MM7-1-4"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"


def envelope(body: str, header: str = "<mm7:TransactionID>t-1</mm7:TransactionID>") -> bytes:
    return (
        f'<?xml version="1.0"?><env:Envelope xmlns:env="{SOAP11}" xmlns:mm7="{NS}">'
        f"<env:Header>{header}</env:Header><env:Body>{body}</env:Body></env:Envelope>"
    ).encode()


def submit_rsp(inner: str) -> bytes:
    return envelope(f"<mm7:SubmitRsp><mm7:MM7Version>6.8.0</mm7:MM7Version>{inner}</mm7:SubmitRsp>")


def status(code: str, text: str = "", extra: str = "") -> str:
    text_el = f"<mm7:StatusText>{text}</mm7:StatusText>" if text else ""
    return f"<mm7:Status><mm7:StatusCode>{code}</mm7:StatusCode>{text_el}{extra}</mm7:Status>"


def mm7(
    catalog: Catalog, body: bytes, http: int = 200, headers: Mapping[str, str] | None = None
) -> Outcome:
    reply = parse_mm7(body, "text/xml; charset=utf-8")
    return classify_reply(catalog, "mm7", reply, http, headers=CIMultiDict(headers or {}))


def moms(
    catalog: Catalog, body: bytes, http: int = 200, headers: Mapping[str, str] | None = None
) -> Outcome:
    reply = parse_moms(body, "text/xml")
    return classify_reply(catalog, "moms", reply, http, headers=CIMultiDict(headers or {}))


def assert_no_false_success(outcome: Outcome) -> None:
    """Rule 1's answer to disagreeing signals: not ok, not retryable, the conflict told."""
    assert not outcome.code.ok
    assert not outcome.retryable
    assert outcome.conflict
    assert outcome.detail is not None
    assert "disagree" in outcome.detail
    envelope_ = build_envelope(outcome, request_id="r", route="x")
    assert envelope_["ok"] is False
    assert envelope_["retryable"] is False
    assert envelope_["data"] == {}


# --- rule 1: never a false success --------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0"?><response status="error" code="1">Sent</response>',
        b'<response code="1"><status>error</status><message>x</message></response>',
        b'{"response": {"code": "1", "status": "error", "message": "x"}}',
        b'{"response": {"code": 1, "status": "fail"}}',
        b'{"response": {"status": "error", "message_id": "7"}}',  # no code, status error
    ],
)
def test_moms_success_code_with_an_error_status_is_no_success(
    catalog: Catalog, body: bytes
) -> None:
    outcome = moms(catalog, body)
    if b'"code"' in body or b"code=" in body or b"<code>" in body:
        assert_no_false_success(outcome)
        assert outcome.vendor_code == "1"
    else:
        assert not outcome.code.ok


@pytest.mark.parametrize("http", [301, 400, 403, 500, 503])
def test_mm7_success_with_an_error_http_status_is_no_success(catalog: Catalog, http: int) -> None:
    outcome = mm7(catalog, submit_rsp(status("1000", "Success")), http)
    assert_no_false_success(outcome)
    assert f"failure: HTTP status {http}" in outcome.conflict


def test_mm7_success_inside_a_fault_is_no_success(catalog: Catalog) -> None:
    body = envelope(
        "<env:Fault><faultcode>env:Server</faultcode><faultstring>x</faultstring>"
        f"<detail><mm7:RSErrorRsp>{status('1000')}</mm7:RSErrorRsp></detail></env:Fault>"
    )
    outcome = mm7(catalog, body, 200)
    assert_no_false_success(outcome)
    assert "failure: a SOAP Fault" in outcome.conflict
    assert "failure: an RSErrorRsp" in outcome.conflict


def test_mm7_success_in_an_error_rsp_is_no_success(catalog: Catalog) -> None:
    body = envelope(f"<mm7:VASPErrorRsp>{status('1000')}</mm7:VASPErrorRsp>")
    assert_no_false_success(mm7(catalog, body))


@pytest.mark.parametrize(
    ("header", "agrees"),
    [("BAD_REQUEST", False), ("500 Internal Server Error", False), ("OK", True), ("200", True)],
)
def test_moms_status_header_is_a_signal(catalog: Catalog, header: str, agrees: bool) -> None:
    body = b'{"response": {"code": "1", "status": "success", "message": "ok"}}'
    outcome = moms(catalog, body, headers={"Status": header})
    if agrees:
        assert outcome.code.name == "OK"
    else:
        assert_no_false_success(outcome)


def test_moms_error_with_status_ok_header_stays_the_error(catalog: Catalog) -> None:
    """The live API says ``Status: OK`` on its code-0 errors: that is no success signal."""
    body = b'{"response": {"code": "0", "status": "error", "message": "Mogreet: 403 Forbidden"}}'
    outcome = moms(catalog, body, headers={"Status": "OK"})
    assert outcome.code.name == "PERMISSION_DENIED"
    assert outcome.conflict == ()


def test_an_error_code_with_a_success_word_is_a_conflict(catalog: Catalog) -> None:
    outcome = moms(catalog, b'{"response": {"code": "606", "status": "success"}}')
    assert_no_false_success(outcome)
    assert outcome.vendor_code == "606"


def test_agreeing_signals_are_a_success(catalog: Catalog) -> None:
    ok = moms(catalog, b'<response status="success" code="1"><message>ok</message></response>')
    assert (ok.code.name, ok.conflict) == ("OK", ())
    unknown = moms(catalog, b'{"response": {"code": "77", "status": "success"}}')
    assert unknown.code.name == "OK"  # an unknown code with status="success": as documented
    assert mm7(catalog, submit_rsp(status("1000"))).code.name == "OK"


def test_a_conflict_is_never_retryable_even_with_retry_after(catalog: Catalog) -> None:
    outcome = mm7(catalog, submit_rsp(status("1000")), 503, {"Retry-After": "5"})
    assert_no_false_success(outcome)


def test_the_conflict_code_must_be_no_success(catalog: Catalog) -> None:
    assert not catalog.conflict.ok
    assert not catalog.conflict.retryable


# --- rule 2: the status only where it belongs ---------------------------------------------


@pytest.mark.parametrize(
    ("body", "code"),
    [
        # A vendor element inside Details holds its own StatusCode: data.
        (
            submit_rsp(
                status(
                    "2002",
                    "Address Error",
                    "<mm7:Details><v:Info xmlns:v='urn:v'><v:StatusCode>1000</v:StatusCode>"
                    "</v:Info></mm7:Details>",
                )
            ),
            "2002",
        ),
        # The Status wrapper missing: the Rsp's own StatusCode, not the one in Details.
        (
            submit_rsp(
                "<mm7:StatusCode>2002</mm7:StatusCode><mm7:Details><mm7:Status>"
                "<mm7:StatusCode>1000</mm7:StatusCode></mm7:Status></mm7:Details>"
            ),
            "2002",
        ),
        # An extension element before the real Status.
        (
            submit_rsp(
                "<mm7:Extension><x:Status xmlns:x='urn:x'><x:StatusCode>1000</x:StatusCode>"
                f"</x:Status></mm7:Extension>{status('3002')}"
            ),
            "3002",
        ),
        # A nested Rsp inside an extension is data too.
        (
            submit_rsp(
                "<mm7:Extension><mm7:SubmitRsp>"
                f"{status('1000')}</mm7:SubmitRsp></mm7:Extension>{status('4004')}"
            ),
            "4004",
        ),
        # Status directly in the Body, with no Rsp around it.
        (envelope(status("2003")), "2003"),
        # Status directly in a Fault's detail.
        (
            envelope(
                "<env:Fault><faultcode>env:Client</faultcode><faultstring>x</faultstring>"
                f"<detail>{status('2004')}</detail></env:Fault>"
            ),
            "2004",
        ),
    ],
)
def test_status_is_read_only_where_it_belongs(catalog: Catalog, body: bytes, code: str) -> None:
    reply = parse_mm7(body, "text/xml")
    assert reply.code == code
    assert mm7(catalog, body).vendor_code == code


def test_a_nested_success_never_makes_a_reply_succeed(catalog: Catalog) -> None:
    """The false success of old: a Details block that holds a 1000."""
    body = submit_rsp(
        "<mm7:Details><mm7:Status><mm7:StatusCode>1000</mm7:StatusCode></mm7:Status></mm7:Details>"
    )
    reply = parse_mm7(body, "text/xml")
    assert reply.code is None
    outcome = mm7(catalog, body, 200)
    assert not outcome.code.ok


def test_status_outside_the_body_is_not_the_reply(catalog: Catalog) -> None:
    body = envelope("<mm7:Unrelated/>", header=status("1000"))
    assert parse_mm7(body, "text/xml").code is None
    assert not mm7(catalog, body).code.ok


def test_soap12_status_in_fault_detail(catalog: Catalog) -> None:
    body = (
        f'<e:Envelope xmlns:e="{SOAP12}" xmlns:mm7="{NS}"><e:Body><e:Fault>'
        "<e:Code><e:Value>e:Sender</e:Value></e:Code><e:Reason><e:Text>x</e:Text></e:Reason>"
        f"<e:Detail>{status('2002')}</e:Detail></e:Fault></e:Body></e:Envelope>"
    ).encode()
    outcome = mm7(catalog, body, 500)
    assert (outcome.code.name, outcome.vendor_code) == ("INVALID_ADDRESS", "2002")


# --- rule 3: codes in their lexical forms -------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected", "label"),
    [
        ("+2002", "INVALID_ADDRESS", "2002"),
        ("02002", "INVALID_ADDRESS", "2002"),
        (" 2002 ", "INVALID_ADDRESS", "2002"),
        ("\n\t2002\r\n", "INVALID_ADDRESS", "2002"),
        ("+1000", "OK", "1000"),
        ("0001000", "OK", "1000"),
        ("+2099", "INVALID_REQUEST", "other"),  # class fallback on the number
        ("04999", "UPSTREAM_ERROR", "other"),
        ("-2002", "UPSTREAM_ERROR", "other"),  # a number, but no 4-digit class: default
        ("2002.0", "UNKNOWN_CODE", "other"),
        ("2,002", "UNKNOWN_CODE", "other"),
        ("0x7D2", "UNKNOWN_CODE", "other"),
        ("+ 2002", "UNKNOWN_CODE", "other"),
        ("２００２", "UNKNOWN_CODE", "other"),  # fullwidth digits are not xs:integer
    ],
)
def test_mm7_status_code_lexical_forms(
    catalog: Catalog, raw: str, expected: str, label: str
) -> None:
    outcome = mm7(
        catalog, submit_rsp(f"<mm7:Status><mm7:StatusCode>{raw}</mm7:StatusCode></mm7:Status>")
    )
    assert outcome.code.name == expected
    assert outcome.vendor_code_label == label
    assert outcome.vendor_code == raw.strip()
    if expected == "UNKNOWN_CODE":
        assert raw.strip() in (outcome.detail or "")  # logged with its value


def test_salvage_reads_a_signed_code(catalog: Catalog) -> None:
    broken = b"<SubmitRsp><Status><StatusCode> +2002 </StatusCode><StatusText>bad</StatusText>"
    reply = parse_mm7(broken, "text/xml")
    assert (reply.body_kind, reply.code) == ("salvaged", "+2002")
    assert classify_reply(catalog, "mm7", reply, 500).code.name == "INVALID_ADDRESS"


# --- rule 4: faults, from the most specific signal ----------------------------------------


def fault11(code: str) -> bytes:
    return envelope(
        f"<env:Fault><faultcode>{code}</faultcode><faultstring>refused</faultstring></env:Fault>"
    )


def fault12(value: str, *subcodes: str) -> bytes:
    chain = "".join(f"<e:Subcode><e:Value>{s}</e:Value>" for s in subcodes)
    chain += "</e:Subcode>" * len(subcodes)
    return (
        f'<e:Envelope xmlns:e="{SOAP12}" xmlns:v="urn:vendor"><e:Body><e:Fault>'
        f"<e:Code><e:Value>{value}</e:Value>{chain}</e:Code>"
        "<e:Reason><e:Text>refused</e:Text></e:Reason></e:Fault></e:Body></e:Envelope>"
    ).encode()


@pytest.mark.parametrize(
    ("body", "http", "expected"),
    [
        (fault11("env:Client.Auth"), 401, "UNAUTHENTICATED"),
        (fault11("env:Client.Auth"), 500, "UNAUTHENTICATED"),  # specific faultcode wins
        (fault11("env:Client.Authentication.Expired"), 500, "UNAUTHENTICATED"),
        (fault11("env:Server.Busy"), 500, "UPSTREAM_UNAVAILABLE"),
        (fault11("v:Throttled"), 500, "RATE_LIMITED"),
        (fault11("env:Client"), 401, "UNAUTHENTICATED"),  # specific HTTP beats the base
        (fault11("env:Client"), 403, "PERMISSION_DENIED"),
        (fault11("env:Client"), 413, "CONTENT_TOO_LARGE"),
        (fault11("env:Server"), 503, "UPSTREAM_UNAVAILABLE"),
        (fault11("env:Server"), 504, "TIMEOUT"),
        (fault11("env:Client"), 400, "INVALID_REQUEST"),  # not a specific status: the base
        (fault11("env:Server"), 500, "UPSTREAM_ERROR"),
        (fault11("env:Client.Unheard"), 500, "INVALID_REQUEST"),  # unknown detail: its base
        (fault11("env:Server.Unheard"), 429, "RATE_LIMITED"),
        (fault11("env:VersionMismatch"), 401, "UNSUPPORTED_OPERATION"),  # specific base
        (fault12("e:Sender", "v:Throttled"), 500, "RATE_LIMITED"),
        (fault12("e:Sender", "v:Nope", "v:Auth"), 500, "UNAUTHENTICATED"),  # deepest first
        (fault12("e:Sender", "v:Unheard"), 401, "UNAUTHENTICATED"),
        (fault12("e:Receiver"), 500, "UPSTREAM_ERROR"),
        (fault12("e:Receiver", "v:Busy"), 500, "UPSTREAM_UNAVAILABLE"),
    ],
)
def test_fault_classification(catalog: Catalog, body: bytes, http: int, expected: str) -> None:
    outcome = mm7(catalog, body, http)
    assert outcome.code.name == expected
    assert outcome.vendor_code is None


def test_fault_candidates_most_specific_first() -> None:
    assert fault_candidates("Client.Auth") == ["client.auth", "auth", "client"]
    assert fault_candidates("Sender", ("A", "B")) == ["b", "a", "sender"]
    assert fault_candidates(None) == []


def test_soap12_subcode_chain_is_parsed() -> None:
    reply = parse_mm7(fault12("e:Sender", "v:One", "v:Two"), "application/soap+xml")
    assert (reply.fault_code, reply.fault_subcodes, reply.fault) == ("Sender", ("One", "Two"), True)


@pytest.mark.parametrize("http", [429, 503])
def test_retry_after_makes_an_error_retryable(catalog: Catalog, http: int) -> None:
    body = submit_rsp(status("4000", "General service error"))
    plain = mm7(catalog, body, http)
    assert plain.code.name == "UPSTREAM_ERROR"
    assert not plain.retryable
    asked = mm7(catalog, body, http, {"Retry-After": "30"})
    assert asked.code.name == "UPSTREAM_ERROR"
    assert asked.retryable
    assert build_envelope(asked, request_id="r", route="m")["retryable"] is True
    moms_asked = moms(catalog, b'{"response": {"code": "500"}}', http, {"retry-after": "1"})
    assert moms_asked.retryable


def test_retry_after_on_other_statuses_changes_nothing(catalog: Catalog) -> None:
    outcome = mm7(catalog, submit_rsp(status("4000")), 500, {"Retry-After": "30"})
    assert not outcome.retryable


# --- rule 5: status headers ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["X-MM7-Status-Code", "x-mm7-status-code", "X-MM7-StatusCode"])
def test_status_only_in_a_header(catalog: Catalog, name: str) -> None:
    bare = fault11("env:Server")
    outcome = mm7(catalog, bare, 500, {name: " 2002 "})
    assert (outcome.code.name, outcome.vendor_code, outcome.vendor_code_label) == (
        "INVALID_ADDRESS",
        "2002",
        "2002",
    )
    empty = mm7(catalog, b"", 403, {name: "4001"})
    assert empty.code.name == "UNAUTHENTICATED"
    assert empty.message == "Improper identification"


def test_body_status_wins_when_header_agrees(catalog: Catalog) -> None:
    outcome = mm7(catalog, submit_rsp(status("2003")), 500, {"X-MM7-Status-Code": "2003"})
    assert (outcome.code.name, outcome.conflict) == ("UNKNOWN_RECIPIENT", ())


@pytest.mark.parametrize(("body_code", "header_code"), [("1000", "2002"), ("2002", "1000")])
def test_body_and_header_disagreeing_is_a_conflict(
    catalog: Catalog, body_code: str, header_code: str
) -> None:
    outcome = mm7(catalog, submit_rsp(status(body_code)), 200, {"X-MM7-Status-Code": header_code})
    assert_no_false_success(outcome)


def test_a_success_header_with_a_fault_is_a_conflict(catalog: Catalog) -> None:
    assert_no_false_success(mm7(catalog, fault11("env:Server"), 500, {"X-MM7-Status-Code": "1000"}))


def test_header_names_are_catalog_data(catalog: Catalog) -> None:
    assert "X-MM7-Status-Code" in catalog.vendors["mm7"].code_headers
    assert "Status" in catalog.vendors["moms"].status_headers


# --- rule 6: wrappers around a MoMS document ----------------------------------------------

DOC = b'{"response": {"code": "436", "status": "error", "message": "Invalid to"}}'


@pytest.mark.parametrize(
    "body",
    [
        b"callback(" + DOC + b");",
        b"jQuery1234_5678(" + DOC + b")",
        b"/**/ cb (" + DOC + b");\n",
        b"window.handlers.moms(\n" + DOC + b"\n);",
        DOC + b"\n<!-- served by api-7 -->",
        DOC + b"\n\x00\xffjunk",
        DOC + b"}",
        b"\xef\xbb\xbf" + DOC,
        "\ufeff".encode("utf-16-le") + DOC.decode().encode("utf-16-le"),
        "\ufeff".encode("utf-16-be") + DOC.decode().encode("utf-16-be"),
        b"\xef\xbb\xbfcallback(" + DOC + b");",
    ],
)
def test_moms_response_found_inside_wrappers(catalog: Catalog, body: bytes) -> None:
    reply = parse_moms(body, "text/xml")
    assert (reply.body_kind, reply.code, reply.status) == ("vendor", "436", "error")
    assert moms(catalog, body).code.name == "INVALID_ADDRESS"


@pytest.mark.parametrize(
    "body",
    [
        b"callback(",
        b"alert(document.cookie)",
        b'callback("response");',
        b"callback([1, 2]);",
        b"eval(" + b"x" * 40 + b")",
    ],
)
def test_wrappers_without_a_response_keep_the_http_fallback(catalog: Catalog, body: bytes) -> None:
    reply = parse_moms(body, "text/xml")
    assert reply.code is None
    assert moms(catalog, body, 503).code.name == "UPSTREAM_UNAVAILABLE"
    assert not moms(catalog, body, 200).code.ok


def test_jsonp_success_is_a_success(catalog: Catalog) -> None:
    body = b'cb({"response": {"code": "1", "status": "success", "message_id": "9"}});'
    outcome = moms(catalog, body)
    assert (outcome.code.name, dict(outcome.data)) == ("OK", {"message_id": "9"})


# --- rule 7: what stays -------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b'{"response": {"code": "0", "code": "436", "status": "error"}}',
        b'{"response": {"code": "0", "code": "436", "status": "error"}} trailing',
    ],
)
def test_duplicate_json_keys_keep_the_last_value(body: bytes) -> None:
    assert parse_moms(body, "text/xml").code == "436"
