"""proxy.inbound.mm7: reading DeliveryReportReq, ReadReplyReq and DeliverReq callbacks.

Fixtures live in tests/fixtures/inbound/: ``.xml`` files are plain SOAP bodies (sent as
``text/xml``), ``.http`` files hold a ``Content-Type:`` line, a blank line and the body.
``fixture`` is imported by the other inbound test modules.
"""

import base64
import codecs
from pathlib import Path

import pytest

from proxy.inbound import (
    Address,
    CallbackError,
    Deliver,
    DeliveryReport,
    ReadReply,
    parse_callback,
)
from proxy.inbound import mm7 as inbound_mm7
from proxy.inbound.mime import MAX_DEPTH, MAX_PARTS
from proxy.inbound.types import DEFAULT_NAMESPACE

FIXTURES = Path(__file__).parent / "fixtures" / "inbound"
NS6 = "http://www.3gpp.org/ftp/Specs/archive/23_series/23.140/schema/REL-6-MM7-1-4"
NS5 = "http://www.3gpp.org/ftp/Specs/archive/23_series/23.140/schema/REL-5-MM7-1-0"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
LIMIT = 1 << 20


def fixture(name: str) -> tuple[bytes, str | None]:
    """(body, Content-Type) of one fixture."""
    raw = (FIXTURES / name).read_bytes()
    if not name.endswith(".http"):
        return raw, "text/xml; charset=utf-8"
    crlf, lf = raw.find(b"\r\n\r\n"), raw.find(b"\n\n")
    sep = b"\r\n\r\n" if crlf != -1 and (lf == -1 or crlf < lf) else b"\n\n"
    head, _, body = raw.partition(sep)
    name_, _, value = head.decode("ascii").partition(":")
    assert name_.lower() == "content-type"
    return body, value.strip()


def parse(name: str, max_bytes: int = LIMIT) -> object:
    return parse_callback(*fixture(name), max_bytes)


def dr_body(
    inner: str, *, ns: str = NS6, header: str = "<TransactionID>t-1</TransactionID>"
) -> bytes:
    """A SOAP 1.1 DeliveryReportReq (default MM7 namespace) around ``inner`` children."""
    return (
        f'<env:Envelope xmlns:env="{SOAP11}"><env:Header>{header}</env:Header><env:Body>'
        f'<DeliveryReportReq xmlns="{ns}">{inner}</DeliveryReportReq></env:Body></env:Envelope>'
    ).encode()


REPORT = (
    "<MM7Version>6.8.0</MM7Version><MessageID>m-1</MessageID>"
    "<Recipient><Number>15550100123</Number></Recipient><MMStatus>Retrieved</MMStatus>"
)


# --- delivery reports -----------------------------------------------------------------
def test_delivery_report_rel6_default_namespace() -> None:
    """Every field of a REL-6 report with the MM7 namespace as the default namespace."""
    report = parse("deliveryreport-rel6-default-ns.xml")
    assert isinstance(report, DeliveryReport)
    assert report.echo.namespace == NS6
    assert report.echo.soap == "1.1"
    assert report.echo.mm7_version == "6.8.0"
    assert report.echo.transaction_id == "dr-0001"
    assert report.message_id == "msg-7f3a9c"
    assert report.recipient == Address("number", "15550100123")
    assert report.sender == Address("short_code", "24273")
    assert report.mm_status == "Retrieved"
    assert report.status_text == "Message retrieved by the handset"
    assert report.timestamp == "2024-05-02T14:03:51.749Z"
    assert report.relay_server_id == "relay-east-1"
    assert report.status_extension is None


def test_delivery_report_rel5_prefixed_unqualified_children_any_order() -> None:
    """A prefixed REL-5 request with unqualified children in any order, as VectorCore sends."""
    report = parse("deliveryreport-rel5-prefixed.xml")
    assert isinstance(report, DeliveryReport)
    assert report.echo.namespace == NS5
    assert report.echo.mm7_version == "5.3.0"
    assert report.recipient == Address("email", "user@example.invalid")
    assert report.sender is None
    assert report.timestamp is None
    assert report.mm_status == "Unrecognised"


def test_delivery_report_soap12_with_status_extension_and_padding() -> None:
    """SOAP 1.2, a REL-6-MM7-1-2 prefix, padded values and the REL-6 MMStatusExtension."""
    report = parse("deliveryreport-soap12.xml")
    assert isinstance(report, DeliveryReport)
    assert report.echo.soap == "1.2"
    assert report.echo.namespace.endswith("REL-6-MM7-1-2")  # type: ignore[union-attr]
    assert report.echo.transaction_id == "soap12-dr-7"
    assert report.message_id == "0A1B2C3D"
    assert report.sender == Address("short_code", "90210")
    assert report.mm_status == "REJECTED"
    assert report.status_extension == "RejectionByMMSRecipient"


def test_delivery_report_without_namespaces_and_bare_addresses() -> None:
    """No namespace anywhere; Recipients holding a Number; a Sender with bare text."""
    report = parse("deliveryreport-no-namespace.xml")
    assert isinstance(report, DeliveryReport)
    assert report.echo.namespace is None
    assert report.recipient == Address("number", "15550100999")
    assert report.sender == Address("number", "24273")
    assert report.mm_status == "deferred"


def test_bare_text_address_with_at_is_email() -> None:
    """A bare-text Sender holding '@' is an e-mail address."""
    body = dr_body(REPORT + "<Sender> vasp@example.invalid </Sender>")
    report = parse_callback(body, "text/xml", LIMIT)
    assert isinstance(report, DeliveryReport)
    assert report.sender == Address("email", "vasp@example.invalid")


def test_recipients_to_in_a_report() -> None:
    """A report whose recipient comes as Recipients/To (a relay's variant) is read."""
    inner = REPORT.replace(
        "<Recipient><Number>15550100123</Number></Recipient>",
        "<Recipients><To><Number>15550100888</Number></To></Recipients>",
    )
    report = parse_callback(dr_body(inner), None, LIMIT)
    assert isinstance(report, DeliveryReport)
    assert report.recipient == Address("number", "15550100888")


def test_bare_request_without_envelope() -> None:
    """A DeliveryReportReq as the document root (no SOAP envelope) is still read."""
    body = f'<DeliveryReportReq xmlns="{NS6}">{REPORT}</DeliveryReportReq>'.encode()
    report = parse_callback(body, "application/xml", LIMIT)
    assert isinstance(report, DeliveryReport)
    assert report.echo.transaction_id is None
    assert report.echo.namespace == NS6


def test_request_kind_matches_case_insensitively() -> None:
    """deliveryReportReq (a relay's casing) is a DeliveryReportReq."""
    body = dr_body(REPORT).replace(b"DeliveryReportReq", b"deliveryReportReq")
    assert isinstance(parse_callback(body, None, LIMIT), DeliveryReport)


def test_missing_transaction_id_and_version_are_tolerated() -> None:
    """No Header, no MM7Version: still a report; the answer will omit or default them."""
    inner = REPORT.replace("<MM7Version>6.8.0</MM7Version>", "")
    report = parse_callback(dr_body(inner, header=""), None, LIMIT)
    assert isinstance(report, DeliveryReport)
    assert report.echo.transaction_id is None
    assert report.echo.mm7_version is None


def test_utf16_body_with_bom() -> None:
    """A UTF-16 body with a BOM is decoded (safexml's RFC 7303 rules)."""
    text = dr_body(REPORT + "<StatusText>Zugestellt – grüße</StatusText>").decode()
    body = codecs.BOM_UTF16_LE + text.encode("utf-16-le")
    report = parse_callback(body, "text/xml", LIMIT)
    assert isinstance(report, DeliveryReport)
    assert report.status_text == "Zugestellt – grüße"


# --- read replies ---------------------------------------------------------------------
def test_read_reply_rel6() -> None:
    """Every field of a ReadReplyReq; its time is TimeStamp."""
    reply = parse("readreply-rel6.xml")
    assert isinstance(reply, ReadReply)
    assert reply.echo.transaction_id == "rr-55"
    assert reply.message_id == "msg-7f3a9c"
    assert reply.recipient == Address("number", "15550100123")
    assert reply.sender == Address("short_code", "24273")
    assert reply.mm_status == "Deleted"
    assert reply.timestamp == "2024-05-02T15:00:00Z"
    assert reply.relay_server_id == "relay-west"


def test_read_reply_latin1_declared_in_xml() -> None:
    """An ISO-8859-1 body (declared in the XML declaration) is decoded."""
    reply = parse_callback((FIXTURES / "readreply-latin1.xml").read_bytes(), "text/xml", LIMIT)
    assert isinstance(reply, ReadReply)
    assert reply.status_text == "Lu à 10h, déjà"
    assert reply.echo.namespace is None


# --- deliver requests -----------------------------------------------------------------
def test_deliver_nested_multipart_mixed_content() -> None:
    """start= names the SOAP part; the href names a nested multipart/mixed (Sinch's shape)."""
    message = parse("deliver-nested-mixed.http")
    assert isinstance(message, Deliver)
    assert message.echo.transaction_id == "mo-1000001"
    assert message.sender == Address("number", "15550100400")
    assert message.recipients.to == (Address("number", "24273"),)
    assert message.linked_id == "mo-link-1"
    assert message.priority == "Normal"
    assert message.subject == "Look at this"
    assert message.timestamp == "2024-05-06T16:15:23.414Z"
    assert message.relay_server_id == "relay-east-1"
    image, text = message.parts
    assert (image.content_type, image.content_id) == ("image/jpeg", "image_0.jpg")
    assert isinstance(image.body, bytes)
    # Binary bytes survive exactly, including CRLFs and a boundary-like line inside.
    assert image.body.startswith(bytes.fromhex("ffd8ffe0"))
    assert image.body.endswith(b"\xff\xd9")
    assert b"\r\n--not-a-boundary\r\n" in image.body
    assert bytes(range(0x80, 0xA0)) in image.body
    assert (text.content_type, text.content_id, text.body) == (
        "text/plain",
        "text_0.txt",
        "Test MO message! ✓",
    )


def test_deliver_related_smil_encodings_and_url_encoded_href() -> None:
    """An RFC 2392 URL-encoded href; SMIL, quoted-printable Latin-1 text, base64 GIF."""
    message = parse("deliver-related-smil.http")
    assert isinstance(message, Deliver)
    assert message.sender == Address("email", "someone@example.invalid")
    assert message.recipients.to == (Address("short_code", "24273"),)
    smil, text, gif = message.parts
    assert smil.content_type == "application/smil"
    assert isinstance(smil.body, bytes)
    assert smil.body.startswith(b"<smil>")
    assert (text.body, text.content_location) == ("Voilà la photo, à bientôt", "note.txt")
    assert gif.content_type == "image/gif"
    assert gif.content_location == "pic.gif"
    assert gif.body == base64.b64decode(
        "R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw=="
    )


def test_deliver_soap12_soap_part_second_single_part_content() -> None:
    """SOAP 1.2 root named by start= after the content; a Content-ID matched ignoring case."""
    message = parse("deliver-late-soap12.http")
    assert isinstance(message, Deliver)
    assert message.echo.soap == "1.2"
    assert message.sender == Address("number", "+15550100500")
    assert message.recipients.first is None
    (image,) = message.parts
    assert image.content_type == "image/png"
    assert image.body == b"\x89PNG\r\n\x1a\n" + bytes(16)


def test_deliver_plain_soap_recipients_lists_and_sender_address() -> None:
    """To/Cc/Bcc lists in order, a SenderAddress, entities in the Subject, no content."""
    message = parse("deliver-plain-recipients.xml")
    assert isinstance(message, Deliver)
    assert message.sender == Address("number", "15550100300")
    assert message.recipients.to == (
        Address("short_code", "24273"),
        Address("number", "15550100200"),
    )
    assert message.recipients.cc == (Address("email", "cc@example.invalid"),)
    assert message.recipients.bcc == (Address("number", "15550100201"),)
    assert message.subject == "Café & pictures <soon>"
    assert message.priority == "High"
    assert message.parts == ()


def _deliver_multipart(href: str | None, *, cid: str = "<c1>") -> tuple[bytes, str]:
    content = f' <Content href="{href}"/>' if href is not None else ""
    soap = (
        f"<Envelope><Body><DeliverReq><MM7Version>6.8.0</MM7Version><Sender><Number>1555</Number>"
        f"</Sender>{content}</DeliverReq></Body></Envelope>"
    )
    body = (
        f"--b\r\nContent-Type: text/xml\r\n\r\n{soap}\r\n"
        f"--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-ID: {cid}\r\n\r\nfirst\r\n"
        "--b\r\nContent-Type: text/plain\r\nContent-Location: second.txt\r\n\r\nsecond\r\n--b--\r\n"
    )
    return body.encode(), "multipart/related; boundary=b"


@pytest.mark.parametrize(
    ("href", "texts"),
    [
        ("cid:c1", ["first"]),  # the named part only
        ("c1", ["first"]),  # no cid: scheme (Mbuni tolerates it)
        ("second.txt", ["second"]),  # matched by Content-Location
        ("cid:nowhere", ["first", "second"]),  # dangling: every non-root part
        ("cid:%3C%3E", ["first", "second"]),  # names nothing: every non-root part
        (None, ["first", "second"]),  # no Content element: every non-root part
    ],
)
def test_content_href_resolution(href: str | None, texts: list[str]) -> None:
    """Which parts are the content, for each href shape real relays send."""
    message = parse_callback(*_deliver_multipart(href), LIMIT)
    assert isinstance(message, Deliver)
    assert [p.body for p in message.parts] == texts


def test_text_part_charsets() -> None:
    """Text parts decode by their charset; an unknown or non-text codec falls back to UTF-8."""
    body, ct = _deliver_multipart(None)
    for charset, raw, text in [
        ("x-unknown", "grüße".encode(), "grüße"),
        ("base64", b"abc", "abc"),
        ("utf-16-le", "hé".encode("utf-16-le"), "hé"),
        ("utf-8", b"bad \xff byte", "bad \ufffd byte"),
    ]:
        part = f"Content-Type: text/plain; charset={charset}\r\n\r\n".encode() + raw
        patched = body.replace(
            b"Content-Type: text/plain\r\nContent-Location: second.txt\r\n\r\nsecond", part
        )
        message = parse_callback(patched, ct, LIMIT)
        assert isinstance(message, Deliver)
        assert message.parts[-1].body == text


def test_multipart_label_without_boundary_is_plain_soap() -> None:
    """multipart/related with no boundary (Sinch's delivery reports): the body is the SOAP."""
    body, _ = fixture("deliveryreport-rel6-default-ns.xml")
    report = parse_callback(body, 'multipart/related; type="text/xml";', LIMIT)
    assert isinstance(report, DeliveryReport)


# --- refusals -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "code", "reason"),
    [
        ("xxe-deliveryreport.xml", 2007, "hostile"),
        ("billion-laughs-readreply.xml", 2007, "hostile"),
        ("deliver-multipart-xxe.http", 2007, "hostile"),
        ("submitreq-unsupported.xml", 4003, "unsupported"),
        ("wrong-root-submitrsp.xml", 4004, "wrong_root"),
        ("deliveryreport-missing-mmstatus.xml", 4004, "missing_field"),
    ],
)
def test_refused_fixtures(name: str, code: int, reason: str) -> None:
    """Hostile, unsupported, wrong-root and incomplete requests get their MM7 status."""
    error = parse(name)
    assert isinstance(error, CallbackError)
    assert (error.code, error.reason) == (code, reason)


def test_hostile_text_never_reaches_the_result() -> None:
    """An entity's replacement text is never expanded into anything returned."""
    doc = b'<!DOCTYPE r [<!ENTITY leak "LEAKED-SECRET">]>' + dr_body(
        REPORT.replace("m-1", "&leak;")
    )
    error = parse_callback(doc, "text/xml", LIMIT)
    assert isinstance(error, CallbackError)
    assert error.reason == "hostile"
    assert "LEAKED-SECRET" not in repr(error)


def test_missing_field_keeps_what_the_answer_needs() -> None:
    """A 4004 for a known kind keeps its kind, namespace, version and TransactionID."""
    error = parse("deliveryreport-missing-mmstatus.xml")
    assert isinstance(error, CallbackError)
    assert error.kind == "DeliveryReportReq"
    assert error.echo.transaction_id == "dr-broken"
    assert error.echo.mm7_version == "6.7.0"
    assert error.echo.namespace.endswith("REL-6-MM7-1-3")  # type: ignore[union-attr]
    assert error.detail == "DeliveryReportReq without MMStatus"


@pytest.mark.parametrize(
    ("drop", "field"),
    [
        ("<MessageID>m-1</MessageID>", "MessageID"),
        ("<Recipient><Number>15550100123</Number></Recipient>", "Recipient"),
        ("<MMStatus>Retrieved</MMStatus>", "MMStatus"),
    ],
)
@pytest.mark.parametrize("kind", ["DeliveryReportReq", "ReadReplyReq"])
def test_reports_require_message_id_recipient_and_status(drop: str, field: str, kind: str) -> None:
    """Without MessageID, Recipient or MMStatus a report cannot be acted on: 4004."""
    body = dr_body(REPORT.replace(drop, "")).replace(b"DeliveryReportReq", kind.encode())
    error = parse_callback(body, None, LIMIT)
    assert isinstance(error, CallbackError)
    assert (error.code, error.kind, error.detail) == (4004, kind, f"{kind} without {field}")


def test_deliver_requires_a_sender() -> None:
    """A DeliverReq without a sender address is refused with 4004."""
    body = b"<Envelope><Body><DeliverReq><Sender/></DeliverReq></Body></Envelope>"
    error = parse_callback(body, None, LIMIT)
    assert isinstance(error, CallbackError)
    assert (error.code, error.kind) == (4004, "DeliverReq")


@pytest.mark.parametrize(
    ("body", "content_type", "code", "reason"),
    [
        (b"", "text/xml", 2007, "empty"),
        (b"  \r\n ", "text/xml", 2007, "empty"),
        (b"<html><body>502 Bad Gateway</body></html>", "text/html", 2007, "html"),
        (b"\x00\xff garbage \x80", None, 2007, "malformed"),
        (b"<Envelope><Body><DeliveryReportReq>", "text/xml", 2007, "malformed"),
        (b'{"event": "delivery"}', "application/json", 2007, "malformed"),
        (b"<Envelope><Body/></Envelope>", "text/xml", 4004, "wrong_root"),
        (b"<Envelope><Header/></Envelope>", "text/xml", 4004, "wrong_root"),
        (b"<Status><StatusCode>1000</StatusCode></Status>", "text/xml", 4004, "wrong_root"),
        (b"<Envelope><Body><Fault/></Body></Envelope>", "text/xml", 4004, "wrong_root"),
        (b"<Envelope><Body><CancelReq/></Body></Envelope>", "text/xml", 4003, "unsupported"),
    ],
)
def test_garbage_and_wrong_roots(
    body: bytes, content_type: str | None, code: int, reason: str
) -> None:
    """Unparseable bodies get 2007; well-formed non-callbacks 4004, other MM7 requests 4003."""
    error = parse_callback(body, content_type, LIMIT)
    assert isinstance(error, CallbackError)
    assert (error.code, error.reason) == (code, reason)


def test_oversize_body_is_not_read() -> None:
    """A body over max_bytes is refused (2007) before any parsing, at the exact limit."""
    body, ct = fixture("deliveryreport-rel6-default-ns.xml")
    assert isinstance(parse_callback(body, ct, len(body)), DeliveryReport)
    error = parse_callback(body, ct, len(body) - 1)
    assert isinstance(error, CallbackError)
    assert (error.code, error.reason) == (2007, "oversize")


def test_deep_xml_nesting_is_refused() -> None:
    """Ten thousand nested elements are malformed (libxml2's depth limit), not a crash."""
    body = dr_body(REPORT + "<x>" * 10_000 + "</x>" * 10_000)
    error = parse_callback(body, "text/xml", LIMIT)
    assert isinstance(error, CallbackError)
    assert error.code == 2007


def _nested_multipart(depth: int) -> tuple[bytes, str]:
    soap = f'<Envelope><Body><DeliverReq xmlns="{NS6}"><Sender><Number>1</Number></Sender>'
    soap += "</DeliverReq></Body></Envelope>"
    inner = b"leaf"
    for level in range(depth, 0, -1):
        inner = (
            (
                f"--n{level}\r\nContent-Type: text/plain\r\n\r\nx\r\n"
                f'--n{level}\r\nContent-Type: multipart/mixed; boundary="n{level + 1}"\r\n\r\n'
            ).encode()
            + inner
            + f"\r\n--n{level}--\r\n".encode()
        )
    body = (
        (
            f"--top\r\nContent-Type: text/xml\r\n\r\n{soap}\r\n"
            '--top\r\nContent-Type: multipart/mixed; boundary="n1"\r\n\r\n'
        ).encode()
        + inner
        + b"\r\n--top--\r\n"
    )
    return body, "multipart/related; boundary=top"


def test_mime_nesting_up_to_the_limit_is_read() -> None:
    """Content nested MAX_DEPTH - 1 levels below the top is still read."""
    message = parse_callback(*_nested_multipart(MAX_DEPTH - 1), LIMIT)
    assert isinstance(message, Deliver)
    assert len(message.parts) == MAX_DEPTH - 1 + 1


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 2000])
def test_deep_mime_nesting_is_refused(depth: int) -> None:
    """Multipart nesting past MAX_DEPTH (or deep enough to exhaust the stack) is 2007."""
    error = parse_callback(*_nested_multipart(depth), 1 << 24)
    assert isinstance(error, CallbackError)
    assert (error.code, error.reason) == (2007, "malformed")


def test_too_many_parts_is_refused() -> None:
    """More than MAX_PARTS parts is 2007."""
    soap = b"<Envelope><Body><DeliverReq><Sender><Number>1</Number></Sender></DeliverReq></Body></Envelope>"
    parts = b"".join(b"--p\r\nContent-Type: text/plain\r\n\r\nx\r\n" for _ in range(MAX_PARTS))
    body = b"--p\r\nContent-Type: text/xml\r\n\r\n" + soap + b"\r\n" + parts + b"--p--\r\n"
    error = parse_callback(body, "multipart/related; boundary=p", LIMIT)
    assert isinstance(error, CallbackError)
    assert error.reason == "malformed"


def test_multipart_without_a_soap_part_is_refused() -> None:
    """A multipart body none of whose parts can be XML is 2007."""
    body = b"--p\r\nContent-Type: image/png\r\n\r\n\x89PNG\r\n--p--\r\n"
    error = parse_callback(body, "multipart/related; boundary=p", LIMIT)
    assert isinstance(error, CallbackError)
    assert (error.code, error.reason) == (2007, "malformed")


def test_corrupt_refusals_answer_in_the_default_dialect() -> None:
    """When nothing could be read, the echo is the REL-6-MM7-1-4 default with SOAP 1.1."""
    error = parse_callback(b"nope", None, LIMIT)
    assert isinstance(error, CallbackError)
    assert error.echo.namespace == DEFAULT_NAMESPACE
    assert error.echo.soap == "1.1"
    assert error.kind is None


def test_the_guard_turns_a_bug_into_2007(monkeypatch: pytest.MonkeyPatch) -> None:
    """parse_callback never raises: an unexpected error inside becomes a 2007 refusal."""

    def broken(*_: object) -> object:
        raise RuntimeError("a bug")

    monkeypatch.setattr(inbound_mm7, "_parse", broken)
    error = parse_callback(b"<x/>", None, LIMIT)
    assert isinstance(error, CallbackError)
    assert error.code == 2007


def test_parsing_does_not_log(log_lines: object) -> None:
    """Callbacks are PII: reading every fixture writes no log line."""
    for path in sorted(FIXTURES.iterdir()):
        parse(path.name)
    assert log_lines() == []  # type: ignore[operator]


def test_a_body_that_is_no_mm7_request_is_answered_in_the_default_namespace() -> None:
    """Hypothesis found it: a Fault in an envelope of a made-up namespace is no MM7 request;
    echoing that namespace gave a VASPErrorRsp no MM7 reader (ours included) recognises."""
    from proxy.inbound import build_answer
    from proxy.inbound.mm7 import parse_callback
    from proxy.inbound.types import DEFAULT_NAMESPACE
    from proxy.vendors.mm7 import parse_mm7

    body = (
        b'<?xml version="1.0"?><e:Envelope xmlns:e="h"><e:Body><e:Fault><detail>'
        b'<m:RSErrorRsp xmlns:m="h"><m:Status><m:StatusCode/></m:Status></m:RSErrorRsp>'
        b"</detail></e:Fault></e:Body></e:Envelope>"
    )
    refused = parse_callback(body, "text/xml", 65536)
    assert isinstance(refused, CallbackError)
    assert (refused.reason, refused.echo.namespace) == ("wrong_root", DEFAULT_NAMESPACE)
    answer = build_answer(refused, refused.code)
    assert parse_mm7(answer.body, answer.content_type).code == "4004"
