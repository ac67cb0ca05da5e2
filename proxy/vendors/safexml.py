"""Hostile-XML-safe helpers shared by the vendor parsers (sans-io, never raise).

``parse_xml`` turns gateway bytes into an lxml root element, or says why it could not:

* ``"vendor"``    parsed; ``root`` is set (whether it is the vendor's shape is the caller's call)
* ``"empty"``     no body, or only whitespace
* ``"html"``      an HTML page (``<!DOCTYPE html``, ``<html``, or ``text/html`` that is not XML)
* ``"hostile"``   a DOCTYPE / internal DTD / ENTITY declaration: SOAP forbids DTDs, so such a
                  body is refused outright and nothing in it is ever expanded or trusted
* ``"malformed"`` not well-formed XML, or longer than ``MAX_XML_BYTES`` (an over-cap body is
                  not parsed at all, and callers must not salvage from it either: we never
                  scan more than the cap)

Encodings: what the body itself declares wins over the header when they disagree. In
order: a BOM; UTF-16 or UTF-32 without a BOM, told by where the NULs sit around the first
``<`` (XML 1.0 appendix F); the XML declaration's ``encoding``; the HTTP ``charset=``
labels (every one, when a repeated Content-Type gives several); UTF-8. A ``utf-16`` or
``utf-32`` label on a body without a BOM means big-endian (RFC 2781 §4.3). The chosen
codec is applied by Python (so legacy charsets such as EUC-KR or GB2312 work whatever
libxml2/iconv was built with), the text is re-encoded as UTF-8 and parsed with an
encoding-override parser. If the chosen codec cannot decode the bytes strictly, the other
labels and then UTF-8 are tried, and finally the chosen codec with U+FFFD replacements.
libxml2 never sees the raw bytes: the DTD scan and the parser must read the same text, or
a body could show the scan one thing (say, UTF-16 garbage) and libxml2 a DOCTYPE.

Namespaces are part of a name: ``namespace(el)`` gives an element's namespace URI (None
when unqualified), and callers match ``(namespace, local name)``, never the local name
alone.
"""

import codecs
import functools
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from lxml import etree

#: Bodies longer than this are not parsed (gateway replies are a few KiB).
MAX_XML_BYTES = 4 * 1024 * 1024

XmlKind = Literal["vendor", "empty", "html", "hostile", "malformed"]

_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16 LE: it starts with the same bytes
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_BOM_STARTS = frozenset(bom[:1] for bom, _ in _BOMS)
# Declared legacy charsets are decoded with their supersets: gateways that say GB2312 or
# EUC-KR routinely send GBK / CP949 characters, and the supersets agree on the common part.
_SUPERSETS = {"gb2312": "gb18030", "gbk": "gb18030", "euc_kr": "cp949"}

_XML_DECL_ENCODING = re.compile(
    rb"""^\s*<\?xml[^>]{0,200}?encoding\s*=\s*["']([A-Za-z0-9._:-]{1,40})["']"""
)
_UTF16LE_START = re.compile(rb"(?:[ \t\r\n]\x00){0,64}<\x00[^\x00]\x00")
_UTF16BE_START = re.compile(rb"(?:\x00[ \t\r\n]){0,64}\x00<\x00[^\x00]")
_UTF32LE_START = re.compile(rb"(?:[ \t\r\n]\x00\x00\x00){0,64}<\x00\x00\x00")
_UTF32BE_START = re.compile(rb"(?:\x00\x00\x00[ \t\r\n]){0,64}\x00\x00\x00<")
# Without a BOM, a bare "utf-16"/"utf-32" label means big-endian (RFC 2781 §4.3);
# Python's own codecs would take the machine's byte order.
_BIG_ENDIAN_DEFAULT = {"utf-16": "utf-16-be", "utf-32": "utf-32-be"}
# After the prolog (comments, PIs), what the first markup says. Anchored with .match at a
# known offset and free of nested repetition, so matching is linear in the input.
_DOCTYPE = re.compile(r"<!DOCTYPE\s+([^\s>\[]*)[^>\[]{0,1024}(\[?)", re.I)
_HTML_START = re.compile(r"<html[\s>/]", re.I)
_PROLOG_SKIPS = (("<?", "?>"), ("<!--", "-->"))
_WHITESPACE = re.compile(r"[ \t\r\n\ufeff]*")
_ENTITY_DECL = re.compile(r"<!ENTITY", re.I)
_TCHARS = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_CT_PARAM = re.compile(rf'\s*;\s*({_TCHARS})\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')


@dataclass(slots=True)  # built per request: frozen=True costs a call per field
class XmlResult:
    """The outcome of ``parse_xml``.

    ``root`` is set exactly when ``kind == "vendor"``. ``text`` is the body decoded
    best-effort (invalid bytes replaced), for callers that salvage from malformed bodies;
    it is empty for over-cap bodies. ``encoding`` is the Python codec used, if any.
    """

    kind: XmlKind
    root: etree._Element | None = None
    text: str = ""
    encoding: str | None = None


def content_type_params(ct: str | None) -> tuple[str, dict[str, str]]:
    """Split a Content-Type header into (lowercase mime type, {lowercase param: value}).

    Quoted values are unquoted; malformed parameters are skipped. ``None`` or garbage gives
    ``("", {})``-like results, never an exception. A value holding several media types
    (a repeated Content-Type, its field lines joined with ``,``) gives the first one's.
    """
    if not ct:
        return "", {}
    # A gateway sends the same few Content-Types on every answer: split each once.
    mime, params = _split_content_type(_media_types(ct)[0])
    return mime, dict(params)


def charset_labels(ct: str | None) -> tuple[str, ...]:
    """Every ``charset`` label in a Content-Type value, in order, duplicates removed.

    Several appear when a gateway repeats the header (its field lines joined with ``,``,
    as HTTP combines them: a comma never occurs in one media type outside quotes).
    """
    return _charset_labels(ct) if ct else ()


@functools.lru_cache(maxsize=256)
def _charset_labels(ct: str) -> tuple[str, ...]:
    labels = (dict(_split_content_type(media)[1]).get("charset") for media in _media_types(ct))
    return tuple(dict.fromkeys(label.strip() for label in labels if label and label.strip()))


@functools.lru_cache(maxsize=256)
def _media_types(ct: str) -> tuple[str, ...]:
    """The media types of a Content-Type value: split at commas outside quoted strings."""
    if "," not in ct:
        return (ct,)
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in ct:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return tuple(part for part in parts if part.strip()) or ("",)


@functools.lru_cache(maxsize=256)
def _split_content_type(ct: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    mime, _, rest = ct.partition(";")
    params: dict[str, str] = {}
    for m in _CT_PARAM.finditer(";" + rest):
        value = m.group(2).strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params.setdefault(m.group(1).lower(), value)
    return mime.strip().lower(), tuple(params.items())


def _codec(name: str | None) -> str | None:
    """Python text codec name for a charset label, or None if unknown or not a charset."""
    if not name:
        return None
    return _codec_of_label(name)


@functools.lru_cache(maxsize=256)
def _codec_of_label(name: str) -> str | None:
    try:
        canonical = codecs.lookup(name.strip().strip("'\"")).name
        # Rejects codecs that are not bytes-to-text ("base64", "rot13") and "undefined".
        # (Empty input would not do: CPython decodes b"" without asking the codec.)
        b"\x00\x00\x00\x00".decode(canonical)
    except (LookupError, ValueError):  # unknown label, NUL or unencodable characters in it
        return None
    return _SUPERSETS.get(canonical.replace("-", "_"), canonical)


def bom_codec(body: bytes) -> tuple[str, int] | None:
    """(codec, BOM length) when ``body`` starts with a Unicode BOM, else None."""
    if body[:1] in _BOM_STARTS:  # the byte every BOM starts with; most bodies start "<"
        for bom, name in _BOMS:
            if body.startswith(bom):
                return name, len(bom)
    return None


@functools.lru_cache(maxsize=256)
def label_codecs(labels: tuple[str, ...]) -> tuple[str, ...]:
    """The Python codecs of charset labels, in order, unknown ones dropped; a bare
    ``utf-16``/``utf-32`` (no BOM here: callers look for one first) is big-endian."""
    codecs_: list[str] = []
    for label in labels:
        codec = _codec(label)
        if codec is not None:
            codec = _BIG_ENDIAN_DEFAULT.get(codec, codec)
            if codec not in codecs_:
                codecs_.append(codec)
    return tuple(codecs_)


def _sniff_wide(body: bytes) -> str | None:
    """UTF-16 or UTF-32 without a BOM: a NUL beside the first ``<`` (XML appendix F)."""
    if b"\x00" not in body[:4]:
        return None
    for pattern, codec in (
        (_UTF32LE_START, "utf-32-le"),
        (_UTF32BE_START, "utf-32-be"),
        (_UTF16LE_START, "utf-16-le"),
        (_UTF16BE_START, "utf-16-be"),
    ):
        if pattern.match(body):
            return codec
    return None


def _choose_encodings(body: bytes, http_charsets: tuple[str, ...]) -> tuple[tuple[str, ...], int]:
    """(codecs to try in order, bytes to skip): what the body declares before the header.

    A BOM settles it. Else the byte pattern of UTF-16/32 without a BOM, then the XML
    declaration, then the HTTP labels (a repeated Content-Type can give several), then
    UTF-8. Labels that disagree with the chosen one stay on the list as fallbacks.
    """
    bom = bom_codec(body)
    if bom is not None:
        return (bom[0],), bom[1]
    from_http = label_codecs(http_charsets)
    wide = _sniff_wide(body)
    if wide is not None:
        return (wide, *from_http), 0
    declared = _declared(body) if body[:5] == b"<?xml" or body[:1].isspace() else None
    if declared is not None:
        return tuple(dict.fromkeys((declared, *from_http))), 0
    return from_http or ("utf-8",), 0


def _declared(body: bytes) -> str | None:
    """The codec an XML declaration read as ASCII names (never UTF-16/32: then it could
    not be read as ASCII)."""
    m = _XML_DECL_ENCODING.match(body, 0, 512)
    declared = _codec(m.group(1).decode("ascii")) if m else None
    return None if declared in ("utf-16", "utf-32") else declared


def _skip_whitespace(text: str, pos: int) -> int:
    match = _WHITESPACE.match(text, pos)
    return match.end() if match else pos  # "*" always matches; the test is for mypy


def _after_prolog(text: str) -> int:
    """Offset of the first markup after the XML declaration, comments and PIs.

    A plain linear scan rather than a regex: ``(<!--.*?-->)*`` backtracks exponentially on
    hostile input full of comment markers.
    """
    pos = _skip_whitespace(text, 0)
    while True:
        for opener, closer in _PROLOG_SKIPS:
            if text.startswith(opener, pos):
                end = text.find(closer, pos + len(opener))
                if end < 0:
                    return pos
                pos = _skip_whitespace(text, end + len(closer))
                break
        else:
            return pos


def _decode(body: bytes, http_charsets: tuple[str, ...]) -> tuple[str, str, bytes | None]:
    """(codec used, text, its UTF-8 bytes when they are ``body``'s own): the chosen codecs
    in order (``_choose_encodings``), then UTF-8, then the first choice with U+FFFD."""
    encodings, skip = _choose_encodings(body, http_charsets)
    data = body[skip:] if skip else body
    for candidate in dict.fromkeys((*encodings, "utf-8")):
        try:
            text = data.decode(candidate)
        except ValueError:  # UnicodeDecodeError, or UnicodeError from an odd codec
            continue
        # Strict UTF-8 round-trips exactly: these bytes are the text, no re-encoding needed.
        return candidate, text, data if candidate == "utf-8" else None
    return encodings[0], data.decode(encodings[0], "replace"), None


def _classify_prolog(text: str) -> XmlKind | None:
    """ "hostile" or "html" from the text alone, or None to go on and parse."""
    bang = "<!" in text  # the finds are C-fast; most bodies have no "<!" and no "<h"
    if bang and _ENTITY_DECL.search(text):
        return "hostile"
    if not bang and "<h" not in text and "<H" not in text:
        return None  # no DOCTYPE and no <html start can be there
    start = _after_prolog(text)
    doctype = _DOCTYPE.match(text, start)
    if doctype is not None:
        name, subset = doctype.groups()
        # <!DOCTYPE html ...> without an internal subset is an HTML page (its external DTD
        # is never loaded). Any internal subset, or a DOCTYPE naming anything else, is a
        # DTD, which SOAP forbids.
        if name.lower() == "html" and not subset:
            return "html"
        return "hostile"
    if _HTML_START.match(text, start):
        return "html"
    return None


def _parser(encoding: str | None) -> etree.XMLParser:
    # collect_ids=False is deliberately absent: in lxml 6 it makes libxml2 read the external
    # DTD subset from disk (file:///etc/passwd) despite load_dtd=False.
    return etree.XMLParser(
        encoding=encoding,
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


class _Parsers(threading.local):
    """One UTF-8 parser per thread: parsers carry an error log and are not thread-safe,
    but one is reset by every parse, so a thread can reuse its own."""

    def __init__(self) -> None:
        self.utf8 = _parser("utf-8")


_PARSERS = _Parsers()


def _has_dtd_or_entities(root: etree._Element) -> bool:
    docinfo = root.getroottree().docinfo
    doctype: object = getattr(docinfo, "doctype", "")  # not in lxml-stubs
    internal_dtd: object = docinfo.internalDTD  # None without a DOCTYPE (stubs say otherwise)
    # Entity declarations need a DOCTYPE, so this also covers every entity reference.
    return bool(doctype) or internal_dtd is not None


def parse_xml(body: bytes, content_type: str | None) -> XmlResult:
    """Parse a gateway body safely; see the module docstring for the kinds. Never raises."""
    if len(body) > MAX_XML_BYTES:
        return XmlResult("malformed")
    mime, _ = content_type_params(content_type)
    encoding, text, utf8 = _decode(body, charset_labels(content_type))
    if not text or text.isspace():
        return XmlResult("empty", text=text, encoding=encoding)
    early = _classify_prolog(text)
    if early is not None:
        return XmlResult(early, text=text, encoding=encoding)
    if utf8 is None:
        utf8 = text.encode("utf-8", "replace")
    try:
        root: etree._Element | None = etree.fromstring(utf8, _PARSERS.utf8)
    except etree.XMLSyntaxError:
        root = None
    if root is None:
        kind: XmlKind = "html" if mime == "text/html" else "malformed"
        return XmlResult(kind, text=text, encoding=encoding)
    # A DOCTYPE (and so any DTD or entity) needs "<!" in the very text libxml2 parsed.
    if "<!" in text and _has_dtd_or_entities(root):
        return XmlResult("hostile", text=text, encoding=encoding)
    if local_name(root).lower() == "html":
        return XmlResult("html", text=text, encoding=encoding)
    return XmlResult("vendor", root=root, text=text, encoding=encoding)


def local_name(el: etree._Element) -> str:
    """The element's tag without ``{namespace}``; "" for comments/PIs/entities."""
    tag: object = el.tag  # a factory function, not a str, for comments/PIs/entities
    if not isinstance(tag, str):
        return ""
    return tag.rpartition("}")[2]


def namespace(el: etree._Element) -> str | None:
    """The element's namespace URI, or None when it is unqualified (or not an element)."""
    tag: object = el.tag
    if not isinstance(tag, str) or not tag.startswith("{"):
        return None
    return tag[1 : tag.index("}")]


def iter_local(el: etree._Element, name: str) -> Iterator[etree._Element]:
    """Descendants of ``el`` (not ``el`` itself) named ``name`` in any namespace, in order."""
    # lxml's "{*}name" matches the local name in any namespace or none, in C.
    return el.iterdescendants("{*}" + name)


def find_local(el: etree._Element, name: str) -> etree._Element | None:
    """The first descendant named ``name`` in any namespace, or None."""
    return next(iter_local(el, name), None)


def child_local(el: etree._Element, name: str) -> etree._Element | None:
    """The first direct child named ``name`` in any namespace, or None."""
    for node in el:
        if local_name(node) == name:
            return node
    return None


def children_by_local(el: etree._Element) -> dict[str, etree._Element]:
    """``el``'s direct children by local name, the first of each name: one pass over the
    children for many ``child_local`` look-ups (``children_by_local(el).get(name)``)."""
    found: dict[str, etree._Element] = {}
    for node in el:
        tag: object = node.tag
        if isinstance(tag, str):
            found.setdefault(tag.rpartition("}")[2], node)
    return found


def text_of(el: etree._Element | None) -> str | None:
    """All text inside ``el``, stripped; None if there is none.

    A leaf keeps its text exactly (minus surrounding whitespace). When ``el`` has child
    elements, each text fragment is stripped and the non-empty ones are joined with one
    space, so ``<Details><Field>To</Field><Reason>bad</Reason></Details>`` reads "To bad".
    """
    if el is None:
        return None
    if len(el) == 0:
        return (el.text or "").strip() or None
    fragments = (t.strip() for t in el.itertext() if isinstance(t, str))
    return " ".join(f for f in fragments if f) or None


__all__ = [
    "MAX_XML_BYTES",
    "XmlKind",
    "XmlResult",
    "bom_codec",
    "charset_labels",
    "child_local",
    "children_by_local",
    "content_type_params",
    "find_local",
    "iter_local",
    "label_codecs",
    "local_name",
    "namespace",
    "parse_xml",
    "text_of",
]
