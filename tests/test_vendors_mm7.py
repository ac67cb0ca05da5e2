"""Tests for proxy.vendors.mm7: every reply shape the MM7 parser must read."""

import base64
from pathlib import Path

import pytest

from proxy.vendors import mm7
from proxy.vendors.base import VendorReply
from proxy.vendors.mm7 import parse_mm7
from proxy.vendors.safexml import MAX_XML_BYTES

FIXTURES = Path(__file__).parent / "fixtures" / "mm7"
MM7_NS = "http://www.3gpp.org/ftp/Specs/archive/23_series/23.140/schema/REL-6-MM7-1-4"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param(
            "submitrsp-default-ns-rel6.xml",
            VendorReply(
                "vendor",
                code="1000",
                message="Request accepted",
                transaction_id="tx-default-ns",
                data={"message_id": "msg-0001", "mm7_version": "6.5.0"},
                element="SubmitRsp",
            ),
            id="default-namespace-on-envelope-rel6",
        ),
        pytest.param(
            "submitrsp-prefixed-rel5.xml",
            VendorReply(
                "vendor",
                code="1100",
                message="Partial success",
                transaction_id="tx-rel5",
                data={"message_id": "msg-rel5", "mm7_version": "5.6.0"},
                element="SubmitRsp",
            ),
            id="prefixed-rel5",
        ),
        pytest.param(
            "submitrsp-no-namespace.xml",
            VendorReply(
                "vendor",
                code="2002",
                message="Address Error",
                transaction_id="tx-none",
                data={"mm7_version": "6.8.0"},
                element="SubmitRsp",
            ),
            id="no-namespace-at-all",
        ),
        pytest.param(
            "deliverrsp-unqualified-children.xml",
            VendorReply(
                "vendor",
                code="1000",
                message="Delivered",
                transaction_id="tx-unq",
                data={"mm7_version": "6.3.0"},
                element="DeliverRsp",
            ),
            id="unqualified-children-under-prefixed-rsp",
        ),
        pytest.param(
            "fault-detail-rserrorrsp.xml",
            VendorReply(
                "vendor",
                code="2002",
                message="Address Error",
                details="To not an MSISDN",
                transaction_id="tx-fault",
                fault_code="Client",
                data={"mm7_version": "6.8.0"},
                element="RSErrorRsp",
                fault=True,
            ),
            id="fault-detail-with-details-children",
        ),
        pytest.param(
            "fault-outside-body.xml",
            VendorReply(
                "vendor",
                code="4001",
                message="Authentication failed",
                transaction_id="tx-outside",
                fault_code="Server",
                data={"mm7_version": "5.3.0"},
                element="VASPErrorRsp",
                fault=True,
            ),
            id="fault-outside-body",
        ),
        pytest.param(
            "fault-no-detail.xml",
            VendorReply(
                "vendor",
                code=None,
                message="Internal relay failure",
                fault_code="Server",
                fault=True,
            ),
            id="fault-without-mm7-detail",
        ),
        pytest.param(
            "soap12-fault-detail.xml",
            VendorReply(
                "vendor",
                code="3001",
                message="Not possible",
                transaction_id="tx-12",
                fault_code="Sender",
                fault_subcodes=("AddressError",),
                element="SubmitRsp",
                fault=True,
            ),
            id="soap12-fault-with-detail",
        ),
        pytest.param(
            "soap12-fault-no-detail.xml",
            VendorReply("vendor", message="Relay overloaded", fault_code="Receiver", fault=True),
            id="soap12-fault-reason-text",
        ),
        pytest.param(
            "cancelrsp-flat.xml",
            VendorReply(
                "vendor",
                code="2005",
                message="Message ID not found",
                data={"mm7_version": "5.5.0"},
                element="CancelRsp",
            ),
            id="flat-rsp-without-status-wrapper",
        ),
        pytest.param(
            "replacersp-reordered.xml",
            VendorReply(
                "vendor",
                code="2001",
                message="Operation restricted",
                details="replacement refused",
                transaction_id="tx-late-header",
                data={"message_id": "msg-replaced", "mm7_version": "6.8.0"},
                element="ReplaceRsp",
            ),
            id="children-in-any-order",
        ),
        pytest.param(
            "readreplyrsp-no-statustext.xml",
            VendorReply(
                "vendor",
                code="2005",
                transaction_id="tx-rr",
                data={"mm7_version": "6.8.0"},
                element="ReadReplyRsp",
            ),
            id="missing-statustext",
        ),
        pytest.param(
            "deliveryreportrsp-txn-padded.xml",
            VendorReply(
                "vendor",
                code="1000",
                message="Success",
                transaction_id="tx-padded-42",
                data={"mm7_version": "6.8.0"},
                element="DeliveryReportRsp",
            ),
            id="transaction-id-padded",
        ),
        pytest.param(
            "submitrsp-txn-empty.xml",
            VendorReply("vendor", code="1000", element="SubmitRsp"),
            id="transaction-id-empty",
        ),
        pytest.param(
            "submitrsp-nonnumeric-code.xml",
            VendorReply("vendor", code="E-42x", message="Vendor specific", element="SubmitRsp"),
            id="non-numeric-code-kept-as-sent",
        ),
        pytest.param(
            "not-mm7-submitreq.xml",
            VendorReply("unrecognized", transaction_id="tx-req"),
            id="soap-but-no-rsp-or-fault",
        ),
    ],
)
def test_fixture_shapes(name: str, expected: VendorReply) -> None:
    """Each captured reply shape reads to exactly the expected fields."""
    assert parse_mm7(fixture(name), "text/xml; charset=utf-8") == expected


@pytest.mark.parametrize("ct", [None, "text/xml", "application/xml", "application/soap+xml"])
def test_content_types_do_not_change_result(ct: str | None) -> None:
    """The XML content types (or none) all parse the same way."""
    reply = parse_mm7(fixture("fault-detail-rserrorrsp.xml"), ct)
    assert (reply.body_kind, reply.code, reply.fault_code) == ("vendor", "2002", "Client")


def test_bare_rsp_without_envelope() -> None:
    """A gateway that drops the SOAP envelope still yields its status."""
    body = f'<SubmitRsp xmlns="{MM7_NS}"><StatusCode>2004</StatusCode></SubmitRsp>'.encode()
    assert parse_mm7(body, "text/xml") == VendorReply("vendor", code="2004", element="SubmitRsp")


def test_first_rsp_with_a_status_wins() -> None:
    """An Rsp without a StatusCode is passed over for one that has it."""
    body = (
        b"<Envelope><Body><DeliverRsp><MessageID>m1</MessageID></DeliverRsp>"
        b"<SubmitRsp><StatusCode>3002</StatusCode></SubmitRsp></Body></Envelope>"
    )
    assert parse_mm7(body, None) == VendorReply("vendor", code="3002", element="SubmitRsp")


def test_rsp_without_status_has_no_code() -> None:
    """An Rsp with no StatusCode anywhere is still a vendor reply, with code None."""
    body = b"<Envelope><Body><SubmitRsp><MessageID>m1</MessageID></SubmitRsp></Body></Envelope>"
    assert parse_mm7(body, None) == VendorReply(
        "vendor", data={"message_id": "m1"}, element="SubmitRsp"
    )


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (
            b"<Fault><faultstring>only text</faultstring></Fault>",
            VendorReply("vendor", message="only text", fault=True),
        ),
        (
            b"<Fault><Reason>bare reason</Reason></Fault>",
            VendorReply("vendor", message="bare reason", fault=True),
        ),
        (
            b"<Fault><faultcode>Client.Auth</faultcode><detail>no MM7 here</detail></Fault>",
            VendorReply("vendor", details="no MM7 here", fault_code="Client.Auth", fault=True),
        ),
        (
            b"<Fault><Code><Value>{urn:x}Receiver</Value></Code></Fault>",
            VendorReply("vendor", fault_code="Receiver", fault=True),
        ),
    ],
)
def test_fault_fallbacks(fault: bytes, expected: VendorReply) -> None:
    """Bare Faults fall back to faultstring / Reason, detail text and the faultcode name."""
    assert parse_mm7(b"<Envelope><Body>" + fault + b"</Body></Envelope>", None) == expected


def test_unrelated_xml_is_unrecognized() -> None:
    """Well-formed XML that is neither SOAP nor MM7 is reported as such."""
    assert parse_mm7(b"<config><item>1</item></config>", "application/xml") == VendorReply(
        "unrecognized"
    )


# ---------------------------------------------------------------- encodings

TEMPLATE = (
    '<?xml version="1.0" encoding="{enc}"?>\n'
    '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
    "<soapenv:Header><TransactionID>tx-{enc}</TransactionID></soapenv:Header>"
    "<soapenv:Body><SubmitRsp><Status><StatusCode>2002</StatusCode>"
    "<StatusText>{text}</StatusText></Status></SubmitRsp></soapenv:Body></soapenv:Envelope>"
)


@pytest.mark.parametrize(
    ("enc", "codec", "text"),
    [
        ("UTF-8", "utf-8", "Adresse erronée ✓"),
        ("ISO-8859-1", "iso-8859-1", "Adresse erronée, ½ ÿ"),
        ("EUC-KR", "euc-kr", "주소 오류입니다"),
        ("GB2312", "gb2312", "地址错误"),
        ("Shift_JIS", "shift_jis", "宛先エラー"),
    ],
)
def test_declared_encodings(enc: str, codec: str, text: str) -> None:
    """The XML declaration's encoding is honoured, legacy multi-byte charsets included."""
    body = TEMPLATE.format(enc=enc, text=text).encode(codec)
    reply = parse_mm7(body, "text/xml")
    assert (reply.body_kind, reply.code, reply.message) == ("vendor", "2002", text)
    assert reply.transaction_id == f"tx-{enc}"


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_with_bom(codec: str) -> None:
    """UTF-16 bodies with a BOM parse, even when the HTTP charset claims otherwise."""
    text = "주소 오류 — erronée"
    raw = TEMPLATE.format(enc="UTF-16", text=text).encode(codec)
    body = raw if codec == "utf-16" else ("\ufeff".encode(codec) + raw)
    for ct in ("text/xml", "text/xml; charset=iso-8859-1"):
        reply = parse_mm7(body, ct)
        assert (reply.body_kind, reply.code, reply.message) == ("vendor", "2002", text)


def test_http_charset_overrides_wrong_declaration() -> None:
    """With no BOM, the HTTP charset wins over a wrong XML declaration (RFC 7303)."""
    body = TEMPLATE.format(enc="UTF-8", text="Adresse erronée").encode("iso-8859-1")
    reply = parse_mm7(body, 'text/xml; charset="ISO-8859-1"')
    assert reply.message == "Adresse erronée"


def test_http_charset_without_declaration() -> None:
    """EUC-KR bytes with no XML declaration decode by the HTTP charset alone."""
    body = TEMPLATE.format(enc="x", text="주소 오류").split("\n", 1)[1].encode("euc-kr")
    reply = parse_mm7(body, "text/xml; charset=EUC-KR")
    assert (reply.code, reply.message) == ("2002", "주소 오류")


def test_unknown_http_charset_falls_back_to_declaration() -> None:
    """A charset label Python does not know is ignored rather than failing the parse."""
    body = TEMPLATE.format(enc="GB2312", text="地址错误").encode("gb2312")
    reply = parse_mm7(body, "text/xml; charset=x-no-such-charset")
    assert (reply.code, reply.message) == ("2002", "地址错误")


# ---------------------------------------------------------------- multipart/related

SOAP_PART = TEMPLATE.format(enc="EUC-KR", text="주소 오류").encode("euc-kr")
OTHER_PART = fixture("submitrsp-default-ns-rel6.xml")  # a decoy: code 1000


def multipart(parts: list[tuple[str, bytes]], boundary: str = "MIME_boundary_42") -> bytes:
    """A multipart body from (headers, payload) pairs with CRLF line endings."""
    out = b"preamble to ignore\r\n"
    for headers, payload in parts:
        out += f"--{boundary}\r\n{headers}\r\n\r\n".encode() + payload + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


@pytest.mark.parametrize("start", ['"<soap-part@gw>"', "soap-part@gw", '"soap-part@gw"'])
def test_multipart_start_names_the_root(start: str) -> None:
    """The part whose Content-ID is named by start= is parsed, with or without <>."""
    body = multipart(
        [
            ("Content-Type: text/xml\r\nContent-ID: <decoy@gw>", OTHER_PART),
            ("Content-Type: text/xml; charset=EUC-KR\r\nContent-ID: <soap-part@gw>", SOAP_PART),
        ]
    )
    ct = f'multipart/related; type="text/xml"; boundary="MIME_boundary_42"; start={start}'
    reply = parse_mm7(body, ct)
    assert (reply.code, reply.message, reply.transaction_id) == ("2002", "주소 오류", "tx-EUC-KR")


def test_multipart_without_start_takes_first_xml_part() -> None:
    """Without start=, non-XML parts are skipped and the first XML part is read."""
    body = multipart(
        [
            ("Content-Type: text/plain", b"not the SOAP part"),
            ("Content-Type: text/xml; charset=EUC-KR", SOAP_PART),
            ("Content-Type: text/xml", OTHER_PART),
        ],
        boundary="b1",
    )
    reply = parse_mm7(body, "multipart/related; boundary=b1")
    assert (reply.code, reply.message) == ("2002", "주소 오류")


def test_multipart_base64_part_and_dangling_start() -> None:
    """A base64 part is decoded; a start= naming no part falls back to the first XML part."""
    encoded = base64.encodebytes(fixture("cancelrsp-flat.xml"))
    body = multipart(
        [("Content-Type: application/soap+xml\r\nContent-Transfer-Encoding: base64", encoded)],
        boundary="=_b64",
    )
    reply = parse_mm7(body, 'multipart/related; boundary="=_b64"; start="<missing>"')
    assert (reply.code, reply.message) == ("2005", "Message ID not found")


def test_multipart_unlabelled_xml_part() -> None:
    """A part with no Content-Type that starts like XML is still found."""
    body = multipart([("X-Note: none", OTHER_PART)], boundary="plain")
    assert parse_mm7(body, "multipart/related; boundary=plain").code == "1000"


def test_multipart_label_on_plain_xml_body() -> None:
    """A body labelled multipart but holding plain XML is parsed as a whole."""
    assert parse_mm7(OTHER_PART, "multipart/related; boundary=nowhere").code == "1000"


# ---------------------------------------------------------------- hostile and broken


def test_xxe_is_hostile_and_never_resolved() -> None:
    """An external SYSTEM entity is refused without reading the file."""
    reply = parse_mm7(fixture("xxe-file.xml"), "text/xml")
    assert reply == VendorReply("hostile")
    assert "root:" not in repr(reply)


def test_billion_laughs_is_hostile_and_never_expanded() -> None:
    """Nested entity declarations are refused, not expanded and not salvaged."""
    reply = parse_mm7(fixture("billion-laughs.xml"), "text/xml")
    assert reply == VendorReply("hostile")
    assert "lol" not in repr(reply)


def test_internal_entity_in_broken_xml_is_not_salvaged() -> None:
    """Hostile beats salvage: a DTD in a broken body still yields no code."""
    body = b'<!DOCTYPE r [<!ENTITY c "1000">]><SubmitRsp><StatusCode>2002</StatusCode>'
    assert parse_mm7(body, "text/xml") == VendorReply("hostile")


@pytest.mark.parametrize(
    ("body", "ct"),
    [
        (fixture("html-502.html"), "text/html"),
        (fixture("html-502.html"), "text/xml"),
        (b"<html><body>Service Unavailable</body></html>", None),
        (b"<HTML><BODY>Forbidden<BR></BODY></HTML>", "text/html; charset=iso-8859-1"),
        (b"Service temporarily unavailable", "text/html"),
    ],
)
def test_html_pages(body: bytes, ct: str | None) -> None:
    """Load-balancer HTML pages carry no vendor code."""
    assert parse_mm7(body, ct) == VendorReply("html")


@pytest.mark.parametrize("body", [b"", b"   \r\n\t ", " \r\n".encode("utf-16")])
def test_empty_bodies(body: bytes) -> None:
    """No body, or only whitespace, is empty."""
    assert parse_mm7(body, "text/xml") == VendorReply("empty")


def test_malformed_with_salvage() -> None:
    """A truncated reply that clearly holds one StatusCode is salvaged."""
    reply = parse_mm7(fixture("malformed-salvageable.xml"), "text/xml")
    assert reply == VendorReply(
        "salvaged", code="4006", message="Service unavailable", transaction_id="tx-broken"
    )


@pytest.mark.parametrize(
    "body",
    [
        fixture("malformed-unsalvageable.xml"),
        b"<a><StatusCode>1000</StatusCode><StatusCode>2002</StatusCode>",  # ambiguous
        b"<a><StatusCode>&amp;</StatusCode>",  # not a number
        b"plain text, no markup",
    ],
)
def test_malformed_without_salvage(body: bytes) -> None:
    """Broken bodies with no single clear StatusCode are malformed."""
    assert parse_mm7(body, "text/xml") == VendorReply("malformed")


def test_oversized_body_is_not_parsed_or_salvaged() -> None:
    """A body over the cap is malformed even though it holds a valid reply."""
    body = fixture("submitrsp-default-ns-rel6.xml") + b" " * MAX_XML_BYTES
    assert parse_mm7(body, "text/xml") == VendorReply("malformed")


def test_oversized_multipart_is_not_split() -> None:
    """The cap applies to the whole multipart body, before any part is picked."""
    body = multipart([("Content-Type: text/xml", OTHER_PART + b" " * MAX_XML_BYTES)])
    assert parse_mm7(body, "multipart/related; boundary=MIME_boundary_42") == VendorReply(
        "malformed"
    )


def test_body_at_cap_is_parsed() -> None:
    """The cap is inclusive: a padded reply of exactly MAX_XML_BYTES still parses."""
    base = fixture("submitrsp-default-ns-rel6.xml")
    body = base + b" " * (MAX_XML_BYTES - len(base))
    assert parse_mm7(body, "text/xml").code == "1000"


def test_parser_bug_becomes_malformed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The outermost guard turns an unexpected parser error into a malformed reply."""

    def broken(body: bytes, content_type: str | None) -> VendorReply:
        raise RuntimeError(body.decode())

    monkeypatch.setattr(mm7, "_parse", broken)
    assert parse_mm7(b"boom", "text/xml") == VendorReply("malformed")
