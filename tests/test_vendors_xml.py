"""Tests for proxy.vendors.safexml and proxy.vendors.multipart: the safe XML layer."""

from pathlib import Path

import pytest
from lxml import etree

from proxy.vendors import safexml
from proxy.vendors.multipart import Part, select_part
from proxy.vendors.safexml import (
    MAX_XML_BYTES,
    child_local,
    content_type_params,
    find_local,
    iter_local,
    local_name,
    parse_xml,
    text_of,
)


@pytest.mark.parametrize(
    ("ct", "expected"),
    [
        (None, ("", {})),
        ("", ("", {})),
        ("Text/XML", ("text/xml", {})),
        ("text/xml; Charset=UTF-8", ("text/xml", {"charset": "UTF-8"})),
        (
            'multipart/related; boundary="a;b \\"c\\""; type="text/xml"; start=<x@y>',
            ("multipart/related", {"boundary": 'a;b "c"', "type": "text/xml", "start": "<x@y>"}),
        ),
        ("text/xml;;charset=latin1;garbage", ("text/xml", {"charset": "latin1"})),
        ("text/xml; charset=a; charset=b", ("text/xml", {"charset": "a"})),
    ],
)
def test_content_type_params(ct: str | None, expected: tuple[str, dict[str, str]]) -> None:
    """Mime types are lowercased, quoted values unquoted, junk skipped, first value wins."""
    assert content_type_params(ct) == expected


@pytest.mark.parametrize(
    ("body", "ct", "kind"),
    [
        (b"", None, "empty"),
        (b" \r\n\t", "text/xml", "empty"),
        (b"<!doctype HTML><title>x</title>", None, "html"),
        (
            b'<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01//EN" '
            b'"http://www.w3.org/TR/html4/strict.dtd"><HTML></HTML>',
            None,
            "html",
        ),
        (b'<?xml version="1.0"?>\n<!-- lb --><html xmlns="x"><body/></html>', None, "html"),
        (b"<p>Bad gateway", "text/html", "html"),
        (b"<r><a>1</a></r>", "text/html", "vendor"),  # well-formed non-HTML XML wins
        (b"<!DOCTYPE html [<!ENTITY x 'y'>]><html>&x;</html>", None, "hostile"),
        (b'<!DOCTYPE r SYSTEM "http://127.0.0.1:9/x.dtd"><r/>', None, "hostile"),
        (b'<!DOCTYPE html SYSTEM "about:legacy-compat"><html/>', None, "html"),
        (b'<x:html xmlns:x="http://www.w3.org/1999/xhtml"><x:p/></x:html>', None, "html"),
        (b"<r><!ENTITY in the body></r>", None, "hostile"),
        (b"<r>", None, "malformed"),
        (b"not xml", "text/xml", "malformed"),
        (b"<r/>", None, "vendor"),
    ],
)
def test_parse_xml_kinds(body: bytes, ct: str | None, kind: str) -> None:
    """Each body lands in the right kind, and ``root`` is set exactly for vendor."""
    result = parse_xml(body, ct)
    assert result.kind == kind
    assert (result.root is not None) == (kind == "vendor")


@pytest.mark.parametrize(
    "body",
    [
        b'<!DOCTYPE r [<!ENTITY a "b">]><r>&a;</r>',
        b'<!DOCTYPE r SYSTEM "http://127.0.0.1:9/x.dtd"><r/>',
        b"<!DOCTYPE r><r/>",
    ],
)
def test_parsed_tree_check_backs_up_the_text_scan(
    body: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even if the text scan missed a DTD, the parsed tree's DOCTYPE makes it hostile."""
    monkeypatch.setattr(safexml, "_classify_prolog", lambda text: None)
    result = parse_xml(body, None)
    assert (result.kind, result.root) == ("hostile", None)


def test_comments_and_processing_instructions_are_dropped() -> None:
    """Comments and PIs never reach callers."""
    root = parse_xml(b"<r><!-- c --><?pi x?><a>1</a></r>", None).root
    assert root is not None
    assert [local_name(el) for el in root] == ["a"]


def test_over_cap_is_malformed_with_no_text() -> None:
    """Over-cap bodies are neither parsed nor decoded, so nothing can be salvaged."""
    result = parse_xml(b"<r>" + b"a" * MAX_XML_BYTES + b"</r>", "text/xml")
    assert (result.kind, result.root, result.text) == ("malformed", None, "")


@pytest.mark.parametrize(
    ("body", "ct", "encoding"),
    [
        (b"<r>\xc3\xa9</r>", None, "utf-8"),
        (b"\xef\xbb\xbf<r>\xc3\xa9</r>", "text/xml; charset=latin1", "utf-8"),
        ('<?xml version="1.0" encoding="latin1"?><r>é</r>'.encode("latin1"), None, "iso8859-1"),
        ("<r>é</r>".encode("utf-16-le"), None, "utf-16-le"),  # no BOM, sniffed from "<?"…
        ('<?xml version="1.0"?><r>é</r>'.encode("utf-16-be"), None, "utf-16-be"),
        ("<r>中</r>".encode("gb2312"), "text/xml; charset=GB2312", "gb18030"),
        ("<r>한</r>".encode("euc-kr"), "text/xml; charset=euc-kr", "cp949"),
        ("\ufeff<r>é</r>".encode("utf-32-le"), None, "utf-32-le"),
    ],
)
def test_encoding_choice(body: bytes, ct: str | None, encoding: str) -> None:
    """BOM, then HTTP charset, then declaration, then UTF-8; legacy sets use supersets."""
    result = parse_xml(body, ct)
    assert result.encoding == encoding
    if result.root is not None:
        assert text_of(result.root) in ("é", "中", "한")


@pytest.mark.parametrize("charset", ["undefined", "base64", "rot13", "zlib", "hex", "nul\x00"])
def test_non_text_codecs_are_ignored(charset: str) -> None:
    """Python codecs that are not charsets are ignored like unknown labels."""
    result = parse_xml("<r>é</r>".encode(), f"text/xml; charset={charset}")
    assert (result.encoding, text_of(result.root)) == ("utf-8", "é")


def test_gbk_characters_under_a_gb2312_label() -> None:
    """Characters outside GB2312 but inside GBK still decode (gateways mislabel)."""
    body = '<?xml version="1.0" encoding="GB2312"?><r>镕</r>'.encode("gbk")
    assert text_of(parse_xml(body, None).root) == "镕"


@pytest.mark.parametrize(
    ("body", "ct", "encoding", "text"),
    [
        (b"<r>caf\xe9</r>", "text/xml; charset=utf-8", "utf-8", "caf\ufffd"),
        ("<r>é</r>".encode(), "text/xml; charset=utf-16", "utf-8", "é"),  # odd length
        (b"<r>\x81</r>", "text/xml; charset=shift_jis", "shift_jis", "\ufffd"),
    ],
)
def test_undecodable_bytes(body: bytes, ct: str, encoding: str, text: str) -> None:
    """Bytes the chosen codec rejects fall back to UTF-8, then to U+FFFD replacements."""
    result = parse_xml(body, ct)
    assert (result.kind, result.encoding, text_of(result.root)) == ("vendor", encoding, text)


def test_name_helpers_ignore_namespaces_and_prefixes() -> None:
    """Lookups match by local name whatever the namespace."""
    root = etree.fromstring(
        b'<a:Env xmlns:a="urn:a" xmlns="urn:d"><Body><x:Rsp xmlns:x="urn:x">'
        b"<Code>1</Code></x:Rsp><Code>2</Code></Body></a:Env>"
    )
    assert local_name(root) == "Env"
    assert [text_of(el) for el in iter_local(root, "Code")] == ["1", "2"]
    found = find_local(root, "Rsp")
    assert found is not None
    assert local_name(found) == "Rsp"
    assert child_local(root, "Code") is None
    body = find_local(root, "Body")
    assert body is not None
    assert text_of(child_local(body, "Code")) == "2"
    assert local_name(etree.Comment("c")) == ""
    assert find_local(root, "Missing") is None


@pytest.mark.parametrize(
    ("xml", "expected"),
    [
        (b"<t>  padded  </t>", "padded"),
        (b"<t>   </t>", None),
        (b"<t/>", None),
        (b"<t>\n  <f>To</f>\n  <r>bad  address</r>\n</t>", "To bad  address"),
        (b"<t>lead <b>bold</b> tail</t>", "lead bold tail"),
    ],
)
def test_text_of(xml: bytes, expected: str | None) -> None:
    """Leaf text is stripped; child text fragments are joined with one space."""
    assert text_of(etree.fromstring(xml)) == expected


def test_text_of_none() -> None:
    """A missing element has no text."""
    assert text_of(None) is None


def test_select_part_rejects_non_multipart() -> None:
    """Only multipart types with a boundary are split."""
    assert select_part(b"<r/>", "text/xml") is None
    assert select_part(b"<r/>", "multipart/related") is None
    assert select_part(b"<r/>", None) is None


def test_select_part_keeps_8bit_bytes() -> None:
    """Binary part bytes (UTF-16 with NULs, high bytes) round-trip exactly."""
    payload = "\ufeff<r>é한</r>".encode("utf-16-le")
    body = (
        b"--B\r\nContent-Type: text/xml; charset=utf-16\r\n"
        b"Content-Transfer-Encoding: binary\r\n\r\n" + payload + b"\r\n--B--\r\n"
    )
    assert select_part(body, "multipart/related; boundary=B") == Part(
        payload, "text/xml; charset=utf-16"
    )


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (b"<?x ?><!-- a -->" * 20_000, "malformed"),  # exponential for a naive prolog regex
        (b"<!---->" * 20_000 + b"<!DOCTYPE r><r/>", "hostile"),
        (b"<!---->" * 20_000 + b"<HTML><p>down", "html"),
        (b"<!-- never closed <!DOCTYPE r><r/>", "malformed"),
    ],
)
def test_long_prologs(body: bytes, kind: str) -> None:
    """Prologs stacked with comments and PIs are scanned once, whatever their length."""
    assert parse_xml(body, None).kind == kind


def test_parser_never_reads_an_external_dtd(tmp_path: Path) -> None:
    """The lxml parser options leave a SYSTEM DTD on disk unread (libxml2 would reject it)."""
    dtd = tmp_path / "evil.dtd"
    dtd.write_text("this is not a DTD, so reading it would be a syntax error")
    body = f'<!DOCTYPE r SYSTEM "{dtd.as_uri()}"><r>&x;</r>'.encode()
    root = etree.fromstring(body, safexml._parser("utf-8"))
    assert etree.tostring(root) == b"<r>&x;</r>"  # not read, not expanded


def test_undecodable_utf16_is_scanned_as_parsed() -> None:
    """A DOCTYPE in bytes that fail to decode as the HTTP charset is still refused."""
    body = b'<!DOCTYPE r SYSTEM "file:///etc/passwd"><r/>!'  # odd length: not UTF-16
    assert parse_xml(body, "text/xml; charset=utf-16").kind == "hostile"
