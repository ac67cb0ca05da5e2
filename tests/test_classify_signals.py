"""Collect, then decide: every occurrence of a status signal counts, in its own namespace,
and success is an allow-list (README "Codes", rules 1, 2, 5 and 7).

Pure: bytes, a status and headers go in, an ``Outcome`` comes out. Each reply below was
written from TS 23.140 (REL-5/REL-6), SOAP 1.1/1.2 and the MoMS vendor page, in the
shapes relays and clients were seen to send. Taking only the first signal found, or
matching XML by local name alone, makes each of the "not ok" tests fail.
"""

from collections.abc import Mapping

import pytest
from multidict import CIMultiDict

from proxy.codes.catalog import Catalog
from proxy.codes.classify import Outcome, classify_reply
from proxy.codes.envelope import build_envelope
from proxy.vendors import parse_reply
from proxy.vendors.base import VendorReply
from proxy.vendors.mm7 import MM7_NAMESPACES, parse_mm7
from tests.conftest import validate_envelope

NS = "http://www.3gpp.org/ftp/Specs/archive/23_series/23.140/schema/REL-6-MM7-1-4"
NS5 = "http://www.3gpp.org/ftp/Specs/archive/23_series/23.140/schema/REL-5-MM7-1-2"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
VENDOR = "urn:example:relay-extensions"


def soap(body: str, *, ns: str = NS, extra: str = "") -> bytes:
    return (
        f'<env:Envelope xmlns:env="{SOAP11}" xmlns:mm7="{ns}"{extra}>'
        f"<env:Header><mm7:TransactionID>t-1</mm7:TransactionID></env:Header>"
        f"<env:Body>{body}</env:Body></env:Envelope>"
    ).encode()


def status(code: str, prefix: str = "mm7:") -> str:
    return f"<{prefix}Status><{prefix}StatusCode>{code}</{prefix}StatusCode></{prefix}Status>"


def rsp(code: str, name: str = "SubmitRsp", extra: str = "") -> str:
    return (
        f"<mm7:{name}><mm7:MM7Version>6.8.0</mm7:MM7Version>{extra}{status(code)}"
        f"<mm7:MessageID>m-1</mm7:MessageID></mm7:{name}>"
    )


def headers_of(*pairs: tuple[str, str]) -> CIMultiDict[str]:
    return CIMultiDict(pairs)


def classify(
    catalog: Catalog,
    vendor: str,
    body: bytes,
    http: int = 200,
    headers: Mapping[str, str] | None = None,
    *,
    content_type: str | None = "text/xml; charset=utf-8",
) -> Outcome:
    reply = parse_reply(vendor, body, content_type)  # type: ignore[arg-type]
    outcome = classify_reply(catalog, vendor, reply, http, headers=headers or CIMultiDict())
    envelope = build_envelope(outcome, request_id="r", route=vendor)
    validate_envelope(envelope)
    assert envelope["ok"] is outcome.code.ok
    return outcome


def assert_refused(outcome: Outcome) -> None:
    """Not a success; a conflict (a success beside a failure) is also not retryable."""
    assert not outcome.code.ok, outcome
    if outcome.conflict:
        assert outcome.code.name == "INVALID_UPSTREAM_RESPONSE"
        assert not outcome.retryable
        assert "disagree" in (outcome.detail or "")


# --- cause 1: every occurrence counts -------------------------------------------------------


MM7_BODY_SHAPES = [
    pytest.param(rsp("1000") + rsp("2002"), id="two-responses"),
    pytest.param(rsp("1000") + rsp("3000", "RSErrorRsp"), id="a-sibling-error-response"),
    pytest.param(rsp("1000") + "<mm7:RSErrorRsp/>", id="an-empty-error-response"),
    pytest.param(rsp("1000") + status("2002"), id="a-bare-status-beside"),
    pytest.param(
        "<mm7:SubmitRsp><mm7:Status><mm7:StatusCode>1000</mm7:StatusCode>"
        "<mm7:StatusCode>2002</mm7:StatusCode></mm7:Status></mm7:SubmitRsp>",
        id="two-statuscodes",
    ),
    pytest.param(
        f"<mm7:SubmitRsp>{status('1000')}{status('4006')}</mm7:SubmitRsp>",
        id="two-status-wrappers",
    ),
    pytest.param(
        f"<mm7:SubmitRsp>{status('1000')}<mm7:StatusCode>2001</mm7:StatusCode></mm7:SubmitRsp>",
        id="a-direct-code-beside-the-wrapper",
    ),
    pytest.param(
        rsp("1000") + "<env:Fault><faultcode>env:Server</faultcode><faultstring>x"
        "</faultstring></env:Fault>",
        id="a-fault-after-the-response",
    ),
]


@pytest.mark.parametrize("body", MM7_BODY_SHAPES)
def test_every_response_and_code_in_the_body_counts(catalog: Catalog, body: str) -> None:
    assert_refused(classify(catalog, "mm7", soap(body)))


def test_a_second_body_and_a_fault_beside_it_count(catalog: Catalog) -> None:
    body = (
        f'<env:Envelope xmlns:env="{SOAP11}" xmlns:mm7="{NS}"><env:Body>{rsp("1000")}</env:Body>'
        f"<env:Body>{rsp('2002')}</env:Body></env:Envelope>"
    ).encode()
    assert_refused(classify(catalog, "mm7", body))
    beside = (
        f'<env:Envelope xmlns:env="{SOAP11}" xmlns:mm7="{NS}"><env:Body>{rsp("1000")}</env:Body>'
        f"<env:Fault><faultcode>env:Server</faultcode><detail>{rsp('4006', 'RSErrorRsp')}"
        "</detail></env:Fault></env:Envelope>"
    ).encode()
    assert_refused(classify(catalog, "mm7", beside))


def test_the_parser_returns_every_signal_with_where_it_came_from() -> None:
    reply = parse_mm7(soap(rsp("1000") + rsp("3000", "RSErrorRsp")), "text/xml")
    assert [(s.kind, s.value) for s in reply.signals] == [
        ("code", "1000"),
        ("error", "RSErrorRsp"),
        ("code", "3000"),
    ]
    assert reply.signals[0].where == "Body/SubmitRsp/Status/StatusCode (REL-6-MM7-1-4)"
    assert reply.signals[2].where == "Body/RSErrorRsp/Status/StatusCode (REL-6-MM7-1-4)"


MM7_HEADER_SHAPES = [
    pytest.param([("X-MM7-Status-Code", "1000"), ("X-MM7-Status-Code", "2002")], id="two-lines"),
    pytest.param(
        [("X-MM7-Status-Code", "2002"), ("X-MM7-Status-Code", "1000")], id="failure-first"
    ),
    pytest.param([("X-MM7-Status-Code", "1000, 2002")], id="one-line-joined"),
    pytest.param([("X-MM7-Status-Code", "1000"), ("X-MM7-StatusCode", "2002")], id="two-names"),
    pytest.param([("X-MM7-StatusCode", "1000"), ("X-Mm7-Status", "4006")], id="other-names"),
    pytest.param([("X-MM7-Status-Code", "")], id="an-empty-one"),
]


@pytest.mark.parametrize("lines", MM7_HEADER_SHAPES)
def test_every_status_header_line_and_name_counts(
    catalog: Catalog, lines: list[tuple[str, str]]
) -> None:
    outcome = classify(catalog, "mm7", soap(rsp("1000")), headers=headers_of(*lines))
    assert_refused(outcome)


def test_header_lines_that_agree_keep_the_success(catalog: Catalog) -> None:
    both = headers_of(("X-MM7-Status-Code", "1000"), ("X-MM7-StatusCode", "+1000"))
    outcome = classify(catalog, "mm7", soap(rsp("1000")), headers=both)
    assert (outcome.code.name, outcome.conflict) == ("OK", ())


def test_a_header_failure_beside_a_bare_fault_keeps_its_code(catalog: Catalog) -> None:
    fault = "<env:Fault><faultcode>env:Client</faultcode><faultstring>x</faultstring></env:Fault>"
    lines = headers_of(("X-MM7-Status-Code", "2002"), ("X-MM7-Status-Code", "2002"))
    outcome = classify(catalog, "mm7", soap(fault), 500, lines)
    assert (outcome.code.name, outcome.vendor_code) == ("INVALID_ADDRESS", "2002")


@pytest.mark.parametrize(
    "lines",
    [
        [("Status", "OK"), ("Status", "BAD_REQUEST")],
        [("Status", "200"), ("Status", "403 Forbidden")],
        [("Status", "OK, FAILED")],
        [("Status", "")],
    ],
)
def test_every_moms_status_header_line_counts(
    catalog: Catalog, lines: list[tuple[str, str]]
) -> None:
    body = b'{"response": {"code": "1", "status": "success", "message_id": "9"}}'
    assert_refused(classify(catalog, "moms", body, headers=headers_of(*lines)))


def test_moms_status_headers_that_say_success_are_no_verdict(catalog: Catalog) -> None:
    body = b'{"response": {"code": "606", "status": "error"}}'
    lines = headers_of(("Status", "OK"), ("Status", "200 OK"))
    outcome = classify(catalog, "moms", body, headers=lines)
    assert (outcome.code.name, outcome.conflict) == ("RECIPIENT_OPTED_OUT", ())


MOMS_SHAPES = [
    pytest.param(
        b'<response code="1" status="success"><code>606</code></response>',
        id="attr-then-element",
    ),
    pytest.param(
        b'<response code="606" status="success"><code>1</code></response>', id="element-success"
    ),
    pytest.param(
        b'<response status="success"><code>1</code><code>436</code></response>',
        id="two-elements",
    ),
    pytest.param(
        b'<response code="1" status="success"><status>error</status></response>',
        id="status-twin",
    ),
    pytest.param(
        b'<response code="1"><status>success</status><status>error</status></response>',
        id="two-statuses",
    ),
    pytest.param(
        b'{"response": {"code": "1", "code": "606", "status": "success"}}',
        id="json-duplicate-code",
    ),
    pytest.param(
        b'{"response": {"code": "606", "status": "success", "code": "1"}}',
        id="json-failure-first",
    ),
    pytest.param(
        b'{"response": {"code": 1, "status": "success", "status": "error"}}',
        id="json-duplicate-status",
    ),
    pytest.param(
        b'{"response": {"code": 1, "status": "success"}, "response": {"code": 606}}',
        id="json-two-responses",
    ),
    pytest.param(
        b'{"response": {"\\u0063ode": "606", "code": "1", "status": "success"}}',
        id="json-escaped-key",
    ),
    pytest.param(b'cb({"response": {"code": "1", "code": "436"}});', id="jsonp-duplicate"),
]


@pytest.mark.parametrize("body", MOMS_SHAPES)
def test_every_moms_code_and_status_counts(catalog: Catalog, body: bytes) -> None:
    assert_refused(classify(catalog, "moms", body))


def test_two_failures_keep_the_most_specific_and_never_promise_a_retry(catalog: Catalog) -> None:
    # Same rank: the non-retryable wins over the retryable, whatever the order.
    for body in (soap(rsp("4006") + rsp("2002")), soap(rsp("2002") + rsp("4006"))):
        outcome = classify(catalog, "mm7", body, 500)
        assert (outcome.code.name, outcome.retryable) == ("INVALID_ADDRESS", False)
        assert "Other failure signals: mm7 status 4006" in (outcome.detail or "")
    # A body code beats a header code, which beats a Fault, which beats the HTTP status.
    fault = (
        "<env:Fault><faultcode>env:Server.Busy</faultcode><detail>"
        f"{rsp('2003', 'RSErrorRsp')}</detail></env:Fault>"
    )
    header = headers_of(("X-MM7-Status-Code", "3001"))
    assert classify(catalog, "mm7", soap(fault), 503, header).code.name == "UNKNOWN_RECIPIENT"
    bare = "<env:Fault><faultcode>env:Server.Busy</faultcode></env:Fault>"
    assert classify(catalog, "mm7", soap(bare), 500, header).code.name == "NOT_POSSIBLE"
    assert classify(catalog, "mm7", soap(bare), 500).code.name == "UPSTREAM_UNAVAILABLE"


def test_json_duplicate_failures_keep_the_last_as_json_does(catalog: Catalog) -> None:
    body = b'{"response": {"code": "0", "code": "436", "status": "error"}}'
    assert classify(catalog, "moms", body).code.name == "INVALID_ADDRESS"


# --- cause 2: names are namespace and local name ----------------------------------------------


@pytest.mark.parametrize(
    "decoy",
    [
        pytest.param(
            f'<mm7:Status xmlns:mm7="{VENDOR}"><mm7:StatusCode>{{c}}</mm7:StatusCode></mm7:Status>',
            id="mm7-prefix-rebound",
        ),
        pytest.param(
            f'<v:StatusCode xmlns:v="{VENDOR}">{{c}}</v:StatusCode>', id="foreign-statuscode"
        ),
        pytest.param(
            f'<Status xmlns="{VENDOR}"><StatusCode>{{c}}</StatusCode></Status>',
            id="foreign-default-ns",
        ),
        pytest.param(
            f'<mm7:Status><v:StatusCode xmlns:v="{VENDOR}">{{c}}</v:StatusCode></mm7:Status>',
            id="foreign-code-in-wrapper",
        ),
    ],
)
@pytest.mark.parametrize(
    ("real", "decoy_code", "expected"),
    [("1000", "2002", "OK"), ("2002", "1000", "INVALID_ADDRESS")],
)
def test_a_status_in_another_namespace_is_data_even_first(
    catalog: Catalog, decoy: str, real: str, decoy_code: str, expected: str
) -> None:
    """A vendor element named Status or StatusCode never sets the status, placed first."""
    inner = decoy.format(c=decoy_code) + status(real)
    body = soap(f"<mm7:SubmitRsp><mm7:MM7Version>6.8.0</mm7:MM7Version>{inner}</mm7:SubmitRsp>")
    outcome = classify(catalog, "mm7", body, 200 if real == "1000" else 500)
    assert (outcome.code.name, outcome.vendor_code, outcome.conflict) == (expected, real, ())


@pytest.mark.parametrize(
    "foreign",
    [
        f'<v:SubmitRsp xmlns:v="{VENDOR}"><v:Status><v:StatusCode>2002</v:StatusCode></v:Status></v:SubmitRsp>',
        f'<mm7:RSErrorRsp xmlns:mm7="{VENDOR}"><mm7:Status><mm7:StatusCode>3000</mm7:StatusCode></mm7:Status></mm7:RSErrorRsp>',
        f'<v:Fault xmlns:v="{VENDOR}"><faultcode>Server</faultcode></v:Fault>',
        f'<env:Fault xmlns:env="{VENDOR}"><faultcode>Server</faultcode></env:Fault>',
        f'<Status xmlns="{VENDOR}"><StatusCode>4006</StatusCode></Status>',
    ],
)
def test_foreign_elements_beside_the_response_are_data(catalog: Catalog, foreign: str) -> None:
    outcome = classify(catalog, "mm7", soap(foreign + rsp("1000")))
    assert (outcome.code.name, outcome.conflict) == ("OK", ())
    assert outcome.data == {"message_id": "m-1", "mm7_version": "6.8.0"}


def test_a_response_only_in_a_foreign_namespace_is_no_mm7_answer(catalog: Catalog) -> None:
    body = soap(
        rsp("1000"),
        ns="http://www.3gpp.org/ftp/Specs/archive/23_series/23.140/schema/REL-9-MM7-9-9",
    )
    outcome = classify(catalog, "mm7", body)
    assert outcome.code.name == "INVALID_UPSTREAM_RESPONSE"
    assert parse_mm7(body, None).body_kind == "unrecognized"


def test_every_rel5_and_rel6_version_and_unqualified_children_count(catalog: Catalog) -> None:
    for ns in sorted(MM7_NAMESPACES):
        assert (
            classify(catalog, "mm7", soap(rsp("2002"), ns=ns), 500).code.name == "INVALID_ADDRESS"
        )
    unqualified = "<mm7:SubmitRsp><Status><StatusCode>1000</StatusCode></Status></mm7:SubmitRsp>"
    assert classify(catalog, "mm7", soap(unqualified + status("2002", ""))).code.name != "OK"


def test_the_catalog_names_the_namespaces_and_the_parser_defaults_to_them(catalog: Catalog) -> None:
    assert catalog.vendors["mm7"].namespaces == MM7_NAMESPACES
    odd = "urn:example:relay-mm7"
    body = soap(rsp("2002"), ns=odd)
    assert parse_reply("mm7", body, None).body_kind == "unrecognized"
    assert parse_reply("mm7", body, None, MM7_NAMESPACES | {odd}).code == "2002"


def test_soap_structure_counts_only_in_a_soap_namespace(catalog: Catalog) -> None:
    fake_body = (
        f'<env:Envelope xmlns:env="{SOAP11}" xmlns:mm7="{NS}" xmlns:v="{VENDOR}"><env:Body>'
        f"{rsp('1000')}</env:Body><v:Body>{rsp('2002')}</v:Body></env:Envelope>"
    ).encode()
    assert classify(catalog, "mm7", fake_body).code.name == "OK"
    soap12 = (
        f'<e:Envelope xmlns:e="{SOAP12}" xmlns:mm7="{NS5}"><e:Body>{rsp("2003")}</e:Body></e:Envelope>'
    ).encode()
    assert classify(catalog, "mm7", soap12, 500).code.name == "UNKNOWN_RECIPIENT"


def test_moms_elements_in_another_namespace_are_data(catalog: Catalog) -> None:
    body = (
        b'<response code="1" status="success" xmlns:v="urn:v"><v:code>606</v:code>'
        b"<v:status>error</v:status><message_id>9</message_id></response>"
    )
    outcome = classify(catalog, "moms", body)
    assert (outcome.code.name, outcome.conflict) == ("OK", ())
    owned = b'<m:response xmlns:m="urn:moms" m:code="1" status="success"><m:code>606</m:code></m:response>'
    assert_refused(classify(catalog, "moms", owned))


# --- cause 3: success is an allow-list ---------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "false",
        "true",
        "0",
        "1",
        "null",
        '""',
        '"failed"',
        '"successful"',
        '"success!"',
        "[]",
        '["success"]',
        "{}",
        '{"value": "success"}',
        "-9223372036854775809",  # beyond 64 bits: the stdlib reads it, orjson cannot spell it
        "1e400",
    ],
)
def test_any_moms_status_that_is_no_success_word_is_a_failure(catalog: Catalog, value: str) -> None:
    body = b'{"response": {"code": "1", "status": %b, "message_id": "9"}}' % value.encode()
    assert_refused(classify(catalog, "moms", body))


@pytest.mark.parametrize("value", ['"success"', '"Success"', '" OK "', '"ok"'])
def test_the_success_words_are_compared_as_strings(catalog: Catalog, value: str) -> None:
    body = b'{"response": {"code": "1", "status": %b}}' % value.encode()
    assert classify(catalog, "moms", body).code.name == "OK"


@pytest.mark.parametrize("value", ["true", "false", "null", '""', "{}", "[1]"])
def test_a_moms_code_that_is_no_code_is_never_a_success(catalog: Catalog, value: str) -> None:
    body = b'{"response": {"code": %b, "status": "success"}}' % value.encode()
    outcome = classify(catalog, "moms", body)
    assert_refused(outcome)


def test_a_reply_built_by_hand_is_read_from_its_fields(catalog: Catalog) -> None:
    reply = VendorReply("vendor", code="1", status="error")
    outcome = classify_reply(catalog, "moms", reply, 200)
    assert outcome.conflict == ("success: moms status 1", "failure: status 'error'")


def test_a_bodiless_answer_with_a_failing_status_header_is_no_success(catalog: Catalog) -> None:
    outcome = classify_reply(
        catalog, "moms", VendorReply("empty"), 200, headers=headers_of(("Status", "BAD_REQUEST")),
        bodiless=True,
    )  # fmt: skip
    assert_refused(outcome)
    assert outcome.conflict == (
        "failure: Status header 'BAD_REQUEST'",
        "success: OK from the moms body",
    )


# --- charsets: what the body declares wins --------------------------------------------------


def test_utf16_without_a_bom_is_big_endian(catalog: Catalog) -> None:
    xml = soap(rsp("2002")).decode().encode("utf-16-be")
    outcome = classify(catalog, "mm7", xml, 500, content_type="text/xml; charset=utf-16")
    assert outcome.code.name == "INVALID_ADDRESS"
    json_body = '{"response": {"code": "606", "status": "error"}}'.encode("utf-16-be")
    moms = classify(catalog, "moms", json_body, content_type="application/json; charset=UTF-16")
    assert moms.code.name == "RECIPIENT_OPTED_OUT"


def test_the_xml_declaration_wins_over_a_header_that_disagrees(catalog: Catalog) -> None:
    refused = "<mm7:Status><mm7:StatusCode>2002</mm7:StatusCode><mm7:StatusText>Numéro refusé</mm7:StatusText></mm7:Status>"
    text = (
        '<?xml version="1.0" encoding="ISO-8859-1"?>'
        + soap(f"<mm7:SubmitRsp>{refused}</mm7:SubmitRsp>").decode()
    )
    body = text.encode("iso-8859-1")
    outcome = classify(catalog, "mm7", body, 500, content_type="text/xml; charset=utf-8")
    assert (outcome.code.name, outcome.message) == ("INVALID_ADDRESS", "Numéro refusé")


def test_a_repeated_content_type_gives_every_label(catalog: Catalog) -> None:
    body = '{"response": {"code": "606", "status": "error", "message": "désinscrit"}}'.encode(
        "utf-16-le"
    )
    joined = "text/plain; charset=iso-8859-1, application/json; charset=utf-16le"
    outcome = classify(catalog, "moms", body, content_type=joined)
    assert (outcome.code.name, outcome.message) == ("RECIPIENT_OPTED_OUT", "désinscrit")
    xml = ('<?xml version="1.0"?>' + soap(rsp("2002"))[0:].decode()).encode("utf-16-le")
    labels = 'text/xml; charset="utf-8", text/xml; charset=utf-16le'
    assert classify(catalog, "mm7", xml, 500, content_type=labels).code.name == "INVALID_ADDRESS"


def test_a_huge_integer_status_beside_a_repeated_key_is_a_failure_not_a_crash(
    catalog: Catalog,
) -> None:
    """A repeated key sends the body through the stdlib's reader, which keeps an integer of
    any size; spelling it for the signal must not fail (orjson cannot write it)."""
    body = b'{"response": {"code": "1", "status": "success", "status": -9223372036854775809}}'
    outcome = classify(catalog, "moms", body)
    assert_refused(outcome)
    assert "-9223372036854775809" in (outcome.detail or "")
