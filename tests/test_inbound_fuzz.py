"""Property tests: the inbound parser takes any bytes and Content-Type without raising.

Whatever arrives is a ``Callback`` whose event validates against docs/event.schema.json,
or a ``CallbackError`` with one of the three refusal codes; either way the answer is XML
our own reply parser reads back. A body declaring entities never yields an event.
"""

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from proxy.inbound import (
    Callback,
    CallbackError,
    answer_code,
    build_answer,
    build_event,
    parse_callback,
)
from proxy.inbound import mm7 as inbound_mm7
from proxy.inbound.types import ERROR_REASONS
from proxy.vendors.mm7 import MM7_NAMESPACES, parse_mm7
from tests.test_inbound_event import TABLES, validate_event
from tests.test_inbound_mm7 import FIXTURES, fixture
from tests.test_vendors_fuzz import FUZZ, boundaries, content_types
from tests.test_vendors_fuzz import bodies as reply_bodies

SEEDS = [fixture(p.name) for p in sorted(FIXTURES.iterdir()) if p.is_file()]
CODES = {2007, 4003, 4004}
NS = "http://www.3gpp.org/ftp/Specs/archive/23_series/23.140/schema/REL-6-MM7-1-4"
FRAGMENTS = [
    b'<?xml version="1.0" encoding="UTF-8"?>',
    b'<?xml version="1.0" encoding="ISO-8859-1"?>',
    b"<!DOCTYPE x [<!ENTITY a 'b'>]>",
    b'<env:Envelope xmlns:env="http://schemas.xmlsoap.org/soap/envelope/">',
    b'<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope">',
    b"</env:Envelope>",
    b"<env:Header>",
    b"</env:Header>",
    b"<TransactionID> t&amp;1 </TransactionID>",
    b"<env:Body>",
    b"</env:Body>",
    f'<DeliveryReportReq xmlns="{NS}">'.encode(),
    b"</DeliveryReportReq>",
    b"<ReadReplyReq>",
    b"</ReadReplyReq>",
    b"<DeliverReq>",
    b"</DeliverReq>",
    b"<SubmitReq/>",
    b"<MM7Version>6.8.0</MM7Version>",
    b"<MessageID>m</MessageID>",
    b"<Recipient><Number>15550100123</Number></Recipient>",
    b"<Recipients><To><ShortCode>1</ShortCode></To><Cc><RFC2822Address>a@b</RFC2822Address></Cc>",
    b"</Recipients>",
    b"<Sender>x@y</Sender>",
    b"<SenderAddress><Number>2</Number></SenderAddress>",
    b"<MMStatus>Retrieved</MMStatus>",
    b"<MMStatus>rEaD</MMStatus>",
    b"<MMStatus>\xc3\xa9</MMStatus>",
    b"<MMStatusExtension>RejectionByOtherRS</MMStatusExtension>",
    b"<Subject>\xe2\x9c\x93</Subject>",
    b'<Content href="cid:c1"/>',
    b'<Content href=""/>',
    b"&amp;",
    b"&a;",
    b"<![CDATA[<x>]]>",
    b"\xff\xfe",
    b"\x00",
    b"\r\n",
]
PART_TYPES = [
    "text/xml",
    "application/soap+xml; charset=utf-8",
    "text/plain; charset=iso-8859-1",
    "text/plain; charset=x-unknown",
    "image/jpeg",
    "multipart/mixed; boundary=inner",
    "",
]


@st.composite
def mutated(draw: st.DrawFn) -> tuple[bytes, str | None]:
    """An inbound fixture with its Content-Type, truncated and with bytes overwritten."""
    body, content_type = draw(st.sampled_from(SEEDS))
    seed = bytearray(body)
    for _ in range(draw(st.integers(0, 4))):
        if seed:
            seed[draw(st.integers(0, len(seed) - 1))] = draw(st.integers(0, 255))
    return bytes(seed[: draw(st.integers(0, len(seed)))]), content_type


markup = st.lists(st.sampled_from(FRAGMENTS), max_size=24).map(b"".join)
bodies = st.one_of(st.binary(max_size=512), markup, reply_bodies)


@st.composite
def multiparts(draw: st.DrawFn) -> tuple[bytes, str | None]:
    """A multipart body (SOAP-ish parts, content parts, nested ones) and its Content-Type."""
    boundary = draw(boundaries)
    out = draw(st.binary(max_size=8))
    parts = draw(
        st.lists(st.tuples(st.sampled_from(PART_TYPES), bodies, st.booleans()), max_size=4)
    )
    for part_type, payload, with_id in parts:
        headers = f"Content-Type: {part_type}\r\n" if part_type else ""
        headers += "Content-ID: <c1>\r\n" if with_id else ""
        if draw(st.booleans()):
            headers += "Content-Transfer-Encoding: base64\r\n"
        out += f"--{boundary}\r\n{headers}\r\n".encode(errors="replace") + payload + b"\r\n"
    if draw(st.booleans()):
        out += f"--{boundary}--\r\n".encode()
    start = draw(st.sampled_from(["", '; start="<c1>"', "; start=nope"]))
    declared = boundary if draw(st.booleans()) else draw(boundaries)
    return out, f'multipart/related; type="text/xml"; boundary="{declared}"{start}'


requests = st.one_of(
    st.tuples(bodies, content_types()), mutated(), multiparts(), st.sampled_from(SEEDS)
)
limits = st.sampled_from([1 << 20, 4096, 64, 0]) | st.integers(0, 1 << 16)


def check(outcome: Callback | CallbackError, max_bytes: int, body: bytes) -> None:
    """A well-formed outcome: a valid event, or a refusal with a known code; both answerable."""
    if isinstance(outcome, CallbackError):
        assert outcome.code in CODES
        assert outcome.reason in ERROR_REASONS
        assert (outcome.reason == "oversize") == (len(body) > max_bytes)
        codes = [outcome.code]
    else:
        event = build_event(
            outcome, route="r", event_id="e", received_at="2024-01-01T00:00:00Z", statuses=TABLES
        )
        validate_event(event)
        codes = [1000, answer_code(404), answer_code(None)]
    # The answer is in the request's own MM7 namespace, whatever it is (a relay reads its
    # own): our reader is told it, as the catalog would name a relay's namespace.
    namespaces = MM7_NAMESPACES | {outcome.echo.namespace or NS}
    for code in codes:
        answer = build_answer(outcome, code)
        etree.fromstring(answer.body, etree.XMLParser(resolve_entities=False, no_network=True))
        assert parse_mm7(answer.body, answer.content_type, namespaces).code == str(code)


@FUZZ
@given(request=requests, max_bytes=limits)
def test_any_request_gives_a_callback_or_a_refusal(
    request: tuple[bytes, str | None], max_bytes: int
) -> None:
    """Any bytes, Content-Type and limit: never an exception, always answerable."""
    body, content_type = request
    # _parse is the unguarded core: fuzzing it proves the catch-all is never needed.
    check(inbound_mm7._parse(body, content_type, max_bytes), max_bytes, body)
    check(parse_callback(body, content_type, max_bytes), max_bytes, body)


@FUZZ
@given(request=requests)
def test_a_body_declaring_entities_never_yields_an_event(request: tuple[bytes, str | None]) -> None:
    """Whatever follows a DOCTYPE with entities, the answer is a 2007, never an event."""
    body, _ = request
    doc = b'<!DOCTYPE r [<!ENTITY leak "LEAKED-SECRET">]>' + body
    outcome = inbound_mm7._parse(doc, "text/xml", 1 << 20)
    assert isinstance(outcome, CallbackError)
    assert outcome.code == 2007
    assert "LEAKED-SECRET" not in repr(outcome)


@FUZZ
@given(request=requests, text=st.text(max_size=40), details=st.none() | st.text(max_size=40))
def test_any_text_makes_a_well_formed_answer(
    request: tuple[bytes, str | None], text: str, details: str | None
) -> None:
    """Any StatusText or Details (markup, control characters, surrogates) is escaped."""
    outcome = parse_callback(*request, 1 << 20)
    for code in (1000, 3002, 4006):
        answer = build_answer(outcome, code, status_text=text or None, details=details)
        etree.fromstring(answer.body, etree.XMLParser(resolve_entities=False, no_network=True))


def test_seeds_are_the_inbound_fixtures() -> None:
    """The fuzz seeds are every inbound fixture (so new fixtures are fuzzed too)."""
    assert len(SEEDS) == len([p for p in Path(FIXTURES).iterdir() if p.is_file()]) >= 15
