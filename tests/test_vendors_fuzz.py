"""Property tests: the vendor parsers take any bytes and any Content-Type without raising.

The strategies are module-level so other tests (e.g. an envelope-rendering fuzz test) can
reuse them: ``gateway_replies`` yields ``(body, content_type)`` pairs and
``http_statuses`` the statuses a gateway might answer with.
"""

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import get_args

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.codes.catalog import load_catalog
from proxy.codes.classify import classify_reply
from proxy.codes.envelope import build_envelope, render
from proxy.vendors import mm7, moms
from proxy.vendors.base import BodyKind, VendorReply
from proxy.vendors.moms import parse_moms
from tests.conftest import validate_envelope

FIXTURES = sorted((Path(__file__).parent / "fixtures").glob("*/*"))
SEEDS = [p.read_bytes() for p in FIXTURES if p.is_file()]

CHARSETS = [
    "utf-8",
    "UTF-16",
    "utf-16le",
    "utf-32",
    "iso-8859-1",
    "EUC-KR",
    "gb2312",
    "shift_jis",
    "x-unknown",
    "undefined",
    "base64",
    "",
    '"utf-8"',
]
MIME_TYPES = [
    "text/xml",
    "application/xml",
    "application/soap+xml",
    "application/json",
    "text/html",
    "text/plain",
    "multipart/related",
    "multipart/mixed",
    "",
]
XML_FRAGMENTS = [
    b'<?xml version="1.0" encoding="EUC-KR"?>',
    b'<?xml version="1.0" encoding="utf-16"?>',
    b"<!DOCTYPE x [<!ENTITY a 'b'>]>",
    b"<!DOCTYPE html>",
    b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">',
    b"</soap:Envelope>",
    b"<Header>",
    b"</Header>",
    b"<TransactionID> t </TransactionID>",
    b"<Body>",
    b"</Body>",
    b"<Fault><faultcode>s:Client</faultcode><faultstring>x</faultstring>",
    b"</Fault>",
    b"<detail>",
    b"</detail>",
    b"<SubmitRsp>",
    b"</SubmitRsp>",
    b"<Status>",
    b"</Status>",
    b"<StatusCode>2002</StatusCode>",
    b"<StatusCode>",
    b"</StatusCode>",
    b"<StatusText>\xc3\xa9</StatusText>",
    b"<Details><a>1</a></Details>",
    b'<response status="fail" code="0"><message>invalid number</message></response>',
    b'{"response": {"code": 1, "status": "success"}}',
    b"&amp;",
    b"&a;",
    b"<![CDATA[<x>]]>",
    b"\xff\xfe",
    b"\x00",
    b"\r\n",
]

charsets = st.sampled_from(CHARSETS) | st.text(max_size=12)
boundaries = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters='"\\'),
    min_size=1,
    max_size=40,
)


@st.composite
def content_types(draw: st.DrawFn) -> str | None:
    """None, arbitrary text, or a plausible type with charset/boundary/start parameters."""
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return None
    if choice == 1:
        return draw(st.text(max_size=60))
    params = draw(
        st.lists(
            st.tuples(st.sampled_from(["charset", "boundary", "start", "type"]), charsets),
            max_size=3,
        )
    )
    rendered = "".join(f'; {k}="{v}"' if draw(st.booleans()) else f"; {k}={v}" for k, v in params)
    return draw(st.sampled_from(MIME_TYPES)) + rendered


@st.composite
def mutated_seeds(draw: st.DrawFn) -> bytes:
    """A real fixture, truncated and with a few bytes overwritten."""
    seed = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 4))):
        if seed:
            seed[draw(st.integers(0, len(seed) - 1))] = draw(st.integers(0, 255))
    return bytes(seed[: draw(st.integers(0, len(seed)))])


markup = st.lists(st.sampled_from(XML_FRAGMENTS), max_size=24).map(b"".join)
bodies = st.one_of(st.binary(max_size=1024), markup, mutated_seeds(), st.sampled_from(SEEDS))


@st.composite
def multipart_replies(draw: st.DrawFn) -> tuple[bytes, str | None]:
    """A multipart body whose boundary matches (or nearly matches) its Content-Type."""
    boundary = draw(boundaries)
    parts = draw(st.lists(st.tuples(content_types(), bodies, st.booleans()), max_size=3))
    out = draw(st.binary(max_size=16))
    for part_ct, payload, with_id in parts:
        headers = f"Content-Type: {part_ct}\r\n" if part_ct else ""
        headers += "Content-ID: <root@x>\r\n" if with_id else ""
        out += f"--{boundary}\r\n{headers}\r\n".encode(errors="replace") + payload + b"\r\n"
    if draw(st.booleans()):
        out += f"--{boundary}--\r\n".encode()
    start = draw(st.sampled_from(["", '; start="<root@x>"', "; start=root@x", "; start=<nope>"]))
    declared = boundary if draw(st.booleans()) else draw(boundaries)
    charset = draw(st.sampled_from(["", "; charset=utf-8"]) | charsets.map("; charset={}".format))
    return out, f'multipart/related; type="text/xml"; boundary="{declared}"{start}{charset}'


_CATALOG = load_catalog()
gateway_replies = st.tuples(bodies, content_types()) | multipart_replies()
http_statuses = st.sampled_from([200, 400, 401, 403, 404, 408, 413, 429, 500, 502, 503, 504]) | (
    st.integers(100, 599)
)

BODY_KINDS = frozenset(get_args(BodyKind))
FUZZ = settings(
    # Kept small for the suite; set GATEWAY_PROXY_FUZZ_EXAMPLES=5000 for a deeper local run.
    max_examples=int(os.environ.get("GATEWAY_PROXY_FUZZ_EXAMPLES", "300")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def check_reply(reply: object) -> None:
    """A reply is a VendorReply of a known kind with string-or-None fields."""
    assert isinstance(reply, VendorReply)
    assert reply.body_kind in BODY_KINDS
    for value in (reply.code, reply.message, reply.details, reply.status, reply.fault_code):
        assert value is None or isinstance(value, str)
    assert reply.transaction_id is None or isinstance(reply.transaction_id, str)
    assert isinstance(reply.data, Mapping)
    if reply.body_kind in ("empty", "html", "hostile", "malformed"):
        assert reply.code is None


PARSERS: dict[str, Callable[[bytes, str | None], VendorReply]] = {
    # _parse is each parser's unguarded core: fuzzing it proves the catch-all is never needed.
    "mm7": mm7.parse_mm7,
    "mm7-unguarded": mm7._parse,
    "moms": parse_moms,
    "moms-unguarded": moms._parse,
}


@FUZZ
@given(reply=gateway_replies)
def test_mm7_never_raises(reply: tuple[bytes, str | None]) -> None:
    """Any bytes and Content-Type give a well-formed MM7 VendorReply."""
    check_reply(PARSERS["mm7-unguarded"](*reply))
    check_reply(PARSERS["mm7"](*reply))


@FUZZ
@given(reply=gateway_replies)
def test_moms_never_raises(reply: tuple[bytes, str | None]) -> None:
    """Any bytes and Content-Type give a well-formed MoMS VendorReply."""
    check_reply(PARSERS["moms-unguarded"](*reply))
    check_reply(PARSERS["moms"](*reply))


@FUZZ
@given(body=bodies, charset=charsets)
def test_hostile_text_never_leaks(body: bytes, charset: str) -> None:
    """Whatever surrounds it, a declared entity's replacement text never reaches a reply."""
    doc = b'<!DOCTYPE r [<!ENTITY leak "LEAKED-SECRET">]><r><StatusCode>&leak;</StatusCode>'
    reply = mm7._parse(doc + body, f"text/xml; charset={charset}")
    assert reply.code is None
    assert "LEAKED-SECRET" not in repr(reply)


@FUZZ
@given(reply=gateway_replies, status=http_statuses, vendor=st.sampled_from(["mm7", "moms"]))
def test_any_reply_yields_a_valid_envelope(
    reply: tuple[bytes, str | None], status: int, vendor: str
) -> None:
    """Any bytes, status and Content-Type end in an envelope that validates and serialises."""
    parsed = PARSERS[vendor](*reply)
    outcome = classify_reply(_CATALOG, vendor, parsed, status)
    envelope = build_envelope(outcome, request_id="fuzz", route=vendor)
    validate_envelope(envelope)
    http_status, _, body = render(envelope)
    assert http_status == envelope["status"]
    assert orjson.loads(body)["code"] == outcome.code.name
