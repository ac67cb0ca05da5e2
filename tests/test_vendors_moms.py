"""Tests for proxy.vendors.moms: the MoMS / CM reply parser (fixtures in fixtures/moms/)."""

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.vendors import parse_reply
from proxy.vendors.moms import MAX_DEPTH, MAX_JSON_BYTES, parse_moms

FIXTURES = Path(__file__).parent / "fixtures" / "moms"
TEXT_XML = "text/xml"  # what the live /moms/* API sends, JSON bodies included
APP_JSON = "application/json; charset=utf-8"  # what /cm/* sends


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


# (fixture, content type, body_kind, code, status, message)
HEADLINE_CASES = [
    ("xml_ping_success.xml", TEXT_XML, "vendor", "1", "success", "pong"),
    ("xml_send_success.xml", TEXT_XML, "vendor", "1", "success", "API Request Accepted"),
    (
        "xml_error_direct_cdata.xml",
        TEXT_XML,
        "vendor",
        "436",
        "error",
        'Invalid "to" parameter: 555-0100 is not a mobile number.',
    ),
    (
        "xml_error_direct_text.xml",
        "application/xml",
        "vendor",
        "439",
        "error",
        "Missing the message parameter.",
    ),
    ("xml_subscribe_optin.xml", TEXT_XML, "vendor", "1", "success", "opt status updated"),
    ("xml_media_upload.xml", None, "vendor", "1", "success", "media correctly uploaded"),
    ("xml_code_children.xml", TEXT_XML, "vendor", "1", "Success", "list created"),
    ("xml_keywords_repeated.xml", TEXT_XML, "vendor", "1", "success", "keywords retrieved"),
    ("xml_namespaced.xml", TEXT_XML, "vendor", "432", "error", "The campaign does not exist."),
    ("json_send_success.json", TEXT_XML, "vendor", "1", "success", "API Request Accepted"),
    ("json_send_success.json", APP_JSON, "vendor", "1", "success", "API Request Accepted"),
    ("json_send_success.json", None, "vendor", "1", "success", "API Request Accepted"),
    ("json_error_forbidden.json", TEXT_XML, "vendor", "0", "error", "Mogreet: 403 Forbidden"),
    (
        "json_error_missing_parameter.json",
        TEXT_XML,
        "vendor",
        "0",
        "error",
        "Mogreet: Required Parameter(s) Missing",
    ),
    ("json_error_invalid_number.json", APP_JSON, "vendor", "0", "error", "invalid number"),
    ("json_numeric_436.json", TEXT_XML, "vendor", "436", "error", 'Invalid "to" parameter.'),
    ("json_list_statistics.json", APP_JSON, "vendor", "1", "success", "request processed"),
    ("json_bom.json", TEXT_XML, "vendor", "1", "success", "pong"),
    ("json_unrelated.json", APP_JSON, "unrecognized", None, None, None),
    ("xml_unrelated.xml", TEXT_XML, "unrecognized", None, None, None),
    ("html_403.html", "text/html", "html", None, None, None),
    ("html_503.html", "text/html; charset=utf-8", "html", None, None, None),
    ("html_502_xhtml.html", TEXT_XML, "html", None, None, None),
    ("xml_xxe.xml", TEXT_XML, "hostile", None, None, None),
    ("xml_billion_laughs.xml", TEXT_XML, "hostile", None, None, None),
    ("json_broken.json", APP_JSON, "malformed", None, None, None),
    ("xml_broken_no_code.xml", TEXT_XML, "malformed", None, None, None),
    (
        "xml_truncated_445.xml",
        TEXT_XML,
        "salvaged",
        "445",
        "error",
        'The request was rejected. The entered "name" parameter is invalid.',
    ),
    ("xml_broken_code_child.xml", TEXT_XML, "salvaged", "606", None, "User opted out."),
    ("json_truncated_436.json", TEXT_XML, "salvaged", "436", "error", 'Invalid "to" parameter.'),
]


def _case_id(case: tuple[Any, ...]) -> str:
    return f"{case[0]}-{case[1]}"


@pytest.mark.parametrize("case", HEADLINE_CASES, ids=_case_id)
def test_fixture_headline_fields(case: tuple[Any, ...]) -> None:
    """Each fixture yields the expected kind, code, status and message; MoMS has no details."""
    name, content_type, kind, code, status, message = case
    reply = parse_moms(fixture(name), content_type)
    assert (reply.body_kind, reply.code, reply.status, reply.message) == (
        kind,
        code,
        status,
        message,
    )
    assert reply.details is None
    assert reply.transaction_id is None
    assert reply.fault_code is None


@pytest.mark.parametrize("case", HEADLINE_CASES, ids=_case_id)
def test_data_is_json_serialisable(case: tuple[Any, ...]) -> None:
    """Whatever comes out as data can be put into the envelope as-is."""
    reply = parse_moms(fixture(case[0]), case[1])
    assert orjson.loads(orjson.dumps(reply.data)) == reply.data


# --- success data -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("xml_ping_success.xml", {}),
        ("xml_send_success.xml", {"message_id": "7300218841", "hash": "q2w8xk41"}),
        ("json_send_success.json", {"message_id": "390112847", "hash": "k7p2mzq0"}),
        (
            "xml_media_upload.xml",
            {
                "media": {
                    "name": "spring_sale.png",
                    "content_id": "880213",
                    "smart_url": "http://m.example.com/oc/zz81kq",
                }
            },
        ),
        (
            "json_media_upload.json",
            {
                "media": {
                    "name": "menu.jpg",
                    "content_id": "771045",
                    "smart_url": "http://m.example.com/oc/p0q9r8",
                }
            },
        ),
        (
            "json_keyword_list.json",
            {
                "keywords": [
                    {"name": "DEALS", "master": "true"},
                    {"name": "INFO", "master": "false"},
                ]
            },
        ),
        (
            "json_list_statistics.json",
            {
                "list_id": 20931,
                "statistics": {"created": "12", "duplicate": "1", "rejected": "0"},
                "recipients": [],
            },
        ),
        (
            "json_user_info.json",
            {
                "number": "13235550142",
                "carrier_id": "4",
                "carrier_name": "Example Wireless",
                "handset_id": "30211",
                "handset_name": "Example Phone 7",
            },
        ),
        ("xml_code_children.xml", {"list_id": "20931"}),
    ],
)
def test_success_data(name: str, data: dict[str, Any]) -> None:
    """Every field other than code/status/message lands in data, nested shapes included."""
    assert parse_moms(fixture(name), TEXT_XML).data == data


def test_transaction_history_kept_in_order() -> None:
    """A transaction with a history list is passed through unchanged."""
    reply = parse_moms(fixture("json_transaction_lookup.json"), TEXT_XML)
    assert reply.message == "transaction found"
    transaction = reply.data["transaction"]
    assert transaction["status"] == "COMPLETE"
    assert transaction["content_id"] == ""
    assert [h["event"] for h in transaction["history"]] == [
        "Transaction Created",
        "MMS Sent",
        "Transaction Complete",
    ]


def test_xml_attributes_on_nested_elements() -> None:
    """Attributes become keys and the element's own text goes under "value"."""
    reply = parse_moms(fixture("xml_subscribe_optin.xml"), TEXT_XML)
    assert reply.data == {
        "number": "13235550142",
        "campaign": {"id": "40417", "status": {"code": "1", "value": "OPTEDIN"}},
    }


def test_xml_repeated_siblings_become_a_list() -> None:
    """Repeated names turn into lists; empty leaves are ""; extra root attributes are data."""
    reply = parse_moms(fixture("xml_keywords_repeated.xml"), TEXT_XML)
    assert reply.data == {
        "version": "2",
        "keywords": {
            "keyword": [
                {"master": "true", "value": "SALE"},
                {"master": "false", "value": "STOP2"},
                "HELP",
            ]
        },
        "carrier": "",
    }


def test_xml_namespaces_are_dropped_from_names() -> None:
    """Elements and attributes are keyed by local name, whatever their namespace."""
    reply = parse_moms(fixture("xml_namespaced.xml"), TEXT_XML)
    assert reply.data == {"version": "3", "campaign": {"id": "1234"}}


def test_xml_message_child_wins_over_direct_text() -> None:
    """With a <message> child, stray direct text of <response> is not the message."""
    body = b'<response code="1" status="success">stray<message> real </message></response>'
    assert parse_moms(body, TEXT_XML).message == "real"


def test_xml_code_attribute_wins_over_child() -> None:
    """The code attribute is used; a <code> child then is neither code nor data."""
    body = b'<response code="1"><code>2</code><status>ok</status></response>'
    reply = parse_moms(body, TEXT_XML)
    assert (reply.code, reply.status, reply.data) == ("1", "ok", {})


def test_xml_without_message_or_code() -> None:
    """A bare <response/> is still the vendor's shape, with nothing in it."""
    reply = parse_moms(b"<response/>", TEXT_XML)
    assert (reply.body_kind, reply.code, reply.status, reply.message) == (
        "vendor",
        None,
        None,
        None,
    )
    assert reply.data == {}


# --- JSON codes and fields ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ('"436"', "436"),
        ('" 1 "', "1"),
        ("436", "436"),
        ("0", "0"),
        ("1.0", "1"),
        ("-3", "-3"),
        ("4.5", "4.5"),
        ("1e300", "1e+300"),
        ("true", None),
        ("false", None),
        ("null", None),
        ('""', None),
        ("[1]", None),
        ('{"v": 1}', None),
    ],
)
def test_json_code_is_always_a_string(raw: str, code: str | None) -> None:
    """Codes sent as strings or numbers become strings; non-codes become None."""
    body = f'{{"response": {{"code": {raw}, "status": "error"}}}}'.encode()
    reply = parse_moms(body, TEXT_XML)
    assert reply.body_kind == "vendor"
    assert reply.code == code
    assert "code" not in reply.data


def test_json_status_kept_as_sent() -> None:
    """status is only stripped, not lowercased; a numeric message is spelled out."""
    body = b'{"response": {"code": "1", "status": " Success ", "message": 42}}'
    reply = parse_moms(body, APP_JSON)
    assert (reply.status, reply.message) == ("Success", "42")


def test_json_non_text_status_and_message_are_dropped() -> None:
    """A status or message that is not text is not invented, nor moved into data."""
    body = b'{"response": {"code": "1", "status": null, "message": {"a": 1}}}'
    reply = parse_moms(body, APP_JSON)
    assert (reply.status, reply.message, reply.data) == (None, None, {})


@pytest.mark.parametrize(
    "body",
    [
        b'{"error": "x"}',
        b'{"response": "ok"}',
        b'{"response": ["code", "1"]}',
        b'[{"response": {"code": "1"}}]',
        b"[]",
        b'{"Response": {"code": "1"}}',
    ],
)
def test_json_without_response_object_is_unrecognized(body: bytes) -> None:
    """Valid JSON that is not {"response": {...}} is not a MoMS answer."""
    reply = parse_moms(body, APP_JSON)
    assert reply.body_kind == "unrecognized"
    assert reply.code is None


@pytest.mark.parametrize(
    "body",
    [
        b'{"response": {"status": "error", "mess',  # truncated before any code
        b'{"code": "436", "status":',  # a code, but no "response" object around it
        b"{\xff\xfe}",  # not UTF-8
        b"[1, 2,]",
        b"{'response': {'code': '1'}}",  # not JSON quoting
    ],
)
def test_broken_json_is_malformed(body: bytes) -> None:
    """Broken JSON without a clear response code is malformed, with no code."""
    reply = parse_moms(body, TEXT_XML)
    assert (reply.body_kind, reply.code) == ("malformed", None)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b'{"response": {"code": "1"', "1"),
        (b'{"response":{"code":7', "7"),
        (b"<response code='1'", "1"),
        (b'<?xml version="1.0"?><response  status="x" code = " 604 "><message>', "604"),
    ],
)
def test_cut_off_replies_are_salvaged(body: bytes, code: str) -> None:
    """A reply cut off right after a clear code still yields that code."""
    reply = parse_moms(body, TEXT_XML)
    assert (reply.body_kind, reply.code) == ("salvaged", code)


@pytest.mark.parametrize(
    "body",
    [
        b'{"response": {"code": "abc"',
        b'{"response": {"code": 1.5',
        b"<response code='x1'",
        b"<response><code>one</code",
        "<response code='\u0661\u0662'".encode(),  # Arabic-Indic digits
        "<response code='\u00b2'".encode(),  # superscript two: str.isdigit() says yes
        '{"response": {"code": "\u0661"'.encode(),
        "<response><code>\u0661</code>".encode(),
    ],
)
def test_non_numeric_codes_are_not_salvaged(body: bytes) -> None:
    """Salvage only trusts a numeric code."""
    assert parse_moms(body, TEXT_XML).body_kind == "malformed"


@pytest.mark.parametrize("charset", ["unicode_escape", "raw_unicode_escape", "utf-7"])
def test_salvaged_text_never_holds_lone_surrogates(charset: str) -> None:
    """A hostile charset label cannot smuggle unencodable text into the reply."""
    body = b'<response code="1"><message>\\ud800 +2AA- hi'
    reply = parse_moms(body, f"text/xml; charset={charset}")
    assert (reply.body_kind, reply.code) == ("salvaged", "1")
    assert reply.message is not None
    orjson.dumps(reply.message)


def test_broken_json_salvage_numeric_code() -> None:
    """A numeric code is salvaged from truncated JSON too; bad escapes keep the raw text."""
    body = b'{"response": {"code": 604, "message": "bad \\q escape", "carrier": "Ex'
    reply = parse_moms(body, TEXT_XML)
    assert (reply.body_kind, reply.code, reply.message) == ("salvaged", "604", "bad \\q escape")
    assert reply.data == {}


# --- empty, HTML, hostile and oversized bodies -------------------------------------------


@pytest.mark.parametrize("body", [b"", b"   \r\n\t", b"\xef\xbb\xbf", b"\xef\xbb\xbf \n"])
@pytest.mark.parametrize("content_type", [None, TEXT_XML, APP_JSON, "text/html"])
def test_empty_body(body: bytes, content_type: str | None) -> None:
    """No body at all (or just whitespace/BOM) is "empty": the HTTP status decides."""
    assert parse_moms(body, content_type).body_kind == "empty"


@pytest.mark.parametrize("name", ["html_403.html", "html_503.html", "html_502_xhtml.html"])
@pytest.mark.parametrize("content_type", ["text/html", TEXT_XML, None])
def test_html_pages_whatever_the_label(name: str, content_type: str | None) -> None:
    """Load balancer and error pages are reported as html, never as a vendor answer."""
    reply = parse_moms(fixture(name), content_type)
    assert (reply.body_kind, reply.code, reply.data) == ("html", None, {})


def test_hostile_xml_is_never_expanded_nor_salvaged() -> None:
    """An XXE body carries a code attribute, yet nothing is read from it."""
    for name in ("xml_xxe.xml", "xml_billion_laughs.xml"):
        reply = parse_moms(fixture(name), TEXT_XML)
        assert reply.body_kind == "hostile"
        assert (reply.code, reply.status, reply.message, reply.data) == (None, None, None, {})


def test_oversized_json_is_not_parsed() -> None:
    """A JSON body over the cap is malformed even though it starts like a valid reply."""
    filler = b" " * MAX_JSON_BYTES
    body = b'{"response": {"code": "1", "status": "success"}' + filler + b"}"
    reply = parse_moms(body, APP_JSON)
    assert (reply.body_kind, reply.code) == ("malformed", None)


def test_oversized_xml_is_not_salvaged() -> None:
    """An over-cap broken XML body is malformed, not scanned for a code."""
    body = b'<response code="1" status="success"><message>' + b"x" * (MAX_JSON_BYTES + 1)
    reply = parse_moms(body, TEXT_XML)
    assert (reply.body_kind, reply.code) == ("malformed", None)


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 200, 1023, 5000])
def test_deeply_nested_json_is_malformed(depth: int) -> None:
    """Hostile nesting, inside or beyond orjson's own limit, is refused without raising."""
    body = b'{"response": {"code": "1", "x": ' + b"[" * depth + b"]" * depth + b"}}"
    reply = parse_moms(body, TEXT_XML)
    assert (reply.body_kind, reply.code, reply.data) == ("malformed", None, {})


def test_nesting_up_to_the_limit_is_kept() -> None:
    """Nesting below MAX_DEPTH is ordinary data."""
    depth = MAX_DEPTH - 1
    body = b'{"response": {"code": "1", "x": ' + b"[" * depth + b"]" * depth + b"}}"
    reply = parse_moms(body, TEXT_XML)
    assert reply.body_kind == "vendor"
    assert "x" in reply.data


def test_deeply_nested_xml_is_malformed() -> None:
    """Element nesting beyond MAX_DEPTH is refused rather than copied into data."""
    depth = MAX_DEPTH + 5
    body = b'<response code="1">' + b"<a>" * depth + b"x" + b"</a>" * depth + b"</response>"
    reply = parse_moms(body, TEXT_XML)
    assert (reply.body_kind, reply.code) == ("malformed", None)


@pytest.mark.parametrize(
    "body",
    [
        b"Service Unavailable",
        b"<response status='error'>",
        b"<notresponse code='1'>",
        b"<?xml version='1.0'?><response>",
    ],
)
def test_broken_non_json_without_code(body: bytes) -> None:
    """Plain text or broken XML without a clear response code is malformed."""
    reply = parse_moms(body, TEXT_XML)
    assert (reply.body_kind, reply.code) == ("malformed", None)


def test_xml_charset_from_content_type() -> None:
    """The HTTP charset decodes a non-UTF-8 XML body (Latin-1 here)."""
    body = '<response code="1" status="success"><message>reçu</message></response>'
    reply = parse_moms(body.encode("latin-1"), "text/xml; charset=ISO-8859-1")
    assert (reply.body_kind, reply.message) == ("vendor", "reçu")


def test_package_dispatch_uses_this_parser() -> None:
    """parse_reply("moms", ...) is this parser."""
    reply = parse_reply("moms", fixture("json_error_forbidden.json"), TEXT_XML)
    assert (reply.body_kind, reply.code, reply.message) == ("vendor", "0", "Mogreet: 403 Forbidden")


# --- fuzzing -----------------------------------------------------------------------------

_SEEDS = [p.read_bytes() for p in sorted(FIXTURES.iterdir())]


@given(
    body=st.one_of(
        st.binary(max_size=512),
        st.sampled_from(_SEEDS).flatmap(
            lambda seed: st.integers(0, len(seed)).map(lambda cut: seed[:cut])
        ),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.sampled_from(["code", "status", "message", "x"]), inner)
            ),
            max_leaves=12,
        ).map(lambda doc: json.dumps({"response": doc}).encode()),
    ),
    content_type=st.sampled_from(
        [None, TEXT_XML, APP_JSON, "text/html", "text/xml; charset=x", "text/xml; charset=utf-7"]
    ),
)
def test_never_raises(body: bytes, content_type: str | None) -> None:
    """Any bytes give a reply with a str-or-None code and JSON-serialisable data."""
    reply = parse_moms(body, content_type)
    assert reply.body_kind in {
        "vendor",
        "salvaged",
        "empty",
        "html",
        "hostile",
        "malformed",
        "unrecognized",
    }
    for value in (reply.code, reply.status, reply.message):
        assert value is None or (isinstance(value, str) and value == value.strip() and value)
    orjson.dumps(reply.data)


def test_a_json_integer_beyond_64_bits_serialises_again() -> None:
    """Hypothesis found it: the all-pairs decoder (escapes, repeated keys) read a number
    orjson cannot write back, and the envelope's data could not be rendered."""
    body = b'{"response":{"":null,"status":-9223372036854775809,"":"\\u001f"}}'
    reply = parse_moms(body, None)
    orjson.dumps(reply.data)


def test_json_integers_beyond_64_bits_in_data_render_as_orjson_reads_them() -> None:
    """The stdlib's reader (a repeated key) keeps integers of any size; in the data they
    become the floats orjson's own reader gives (past a double's range: null), while the
    signal still spells the exact number."""
    huge = "1" + "0" * 400
    body = (
        '{"response":{"code":"1","code":"1","status":-9223372036854775809,'
        f'"id":-9223372036854775809,"ids":[18446744073709551616,{{"n":-{huge}}}],"big":{huge}}}}}'
    ).encode()
    reply = parse_moms(body, None)
    assert orjson.loads(orjson.dumps(reply.data)) == {
        "id": -9223372036854775809.0,
        "ids": [18446744073709551616.0, {"n": None}],
        "big": None,
    }
    assert [s.value for s in reply.signals if s.kind == "status"] == ["-9223372036854775809"]
