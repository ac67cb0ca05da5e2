"""Parse a Mogreet MoMS / CM API reply into a ``VendorReply`` (sans-io, never raises).

In: the raw body bytes and the Content-Type header (or ``None``). Out: a ``VendorReply``
whose ``body_kind`` says what was found. Nothing here raises for any input.

Which parser runs is decided by the **body**, not the Content-Type: the live ``/moms/*``
API labels its JSON as ``text/xml``. After a BOM (UTF-8, -16 or -32) and whitespace are
stripped, a body starting with ``{`` or ``[`` is JSON, and so is a JSONP callback
(``cb({...});``, optionally behind ``/**/``); anything else goes to the shared
hostile-XML-safe parser (``safexml.parse_xml``: no DTDs, no entity expansion, no network,
size cap). The response object is found inside its wrappers, never evaluated: a JSONP
callback's argument, or the first JSON value of a body that trailing text follows (a
server comment, a newline and junk). Duplicate keys keep the last value.

Body kinds:

* ``vendor``        ``{"response": {...}}`` or an XML document whose root is ``<response>``
* ``empty``         nothing but whitespace (and a BOM)
* ``html``          an HTML page (load balancer, WAF, 403/5xx pages): the classifier then
                    goes by the HTTP status
* ``hostile``       XML with a DOCTYPE / DTD / ENTITY declaration: never expanded, never
                    salvaged
* ``unrecognized``  valid JSON or XML that is not a MoMS answer (``{"error": "x"}``,
                    a SOAP envelope, ``"response"`` that is not an object)
* ``malformed``     broken JSON or XML, a body over ``MAX_JSON_BYTES`` / ``MAX_XML_BYTES``,
                    or a reply nested deeper than ``MAX_DEPTH``
* ``salvaged``      broken JSON or XML from which a clear response code could still be read
                    (``<response ... code="445"`` or ``"response": {... "code": "436"``), by
                    bounded regexes over the first ``_SALVAGE_WINDOW`` characters only

Field mapping (both formats):

* ``code``     the ``code`` attribute of ``<response>``, else a ``<code>`` child; in JSON the
               ``"code"`` member. Always a ``str`` (whitespace stripped): JSON ``436`` →
               ``"436"``, ``1.0`` → ``"1"``; booleans, ``null``, objects, arrays and empty
               strings → ``None``.
* ``status``   likewise from ``status``; kept **as sent** (only stripped), so ``"Success"``
               stays ``"Success"``: the classifier compares case-insensitively.
* ``message``  the ``<message>`` child, else the direct (usually CDATA) text of
               ``<response>``; in JSON the ``"message"`` member. Stripped; empty → ``None``.
* ``details``, ``transaction_id``, ``fault_code``: MoMS has none; always ``None``.
* ``data``     every other field of the response.
  JSON: every member other than code/status/message, **unchanged** (numbers stay numbers).
  XML: every child element other than code/status/message, plus any attribute of
  ``<response>`` other than code/status, converted as follows:

  - names are local names (any namespace prefix dropped);
  - a leaf element without attributes → its text (``""`` when empty);
  - an element with attributes or child elements → a dict: each attribute becomes a key,
    each child element a key (recursively), and its own non-blank text goes under
    ``"value"``;
  - a name that repeats among siblings (or collides with an attribute) → a list of the
    values, in document order.

  Example: ``<campaign id="199278"><status code="1">OPTEDIN</status></campaign>`` →
  ``{"campaign": {"id": "199278", "status": {"code": "1", "value": "OPTEDIN"}}}``.
"""

import codecs
import json
import re
from typing import Any

import orjson
from lxml import etree

from proxy.vendors.base import VendorReply
from proxy.vendors.safexml import MAX_XML_BYTES, child_local, local_name, parse_xml, text_of

#: JSON bodies longer than this are not parsed (real replies are a few KiB).
MAX_JSON_BYTES = MAX_XML_BYTES
#: Deepest nesting of objects/arrays (or elements) accepted below the response. Real replies
#: nest 3 deep; the cap keeps hostile nesting away from the envelope's own JSON encoder.
MAX_DEPTH = 32

_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16 LE: it starts with the same bytes
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# A JSONP callback name (optionally behind the "/**/" guard some servers prepend).
_JSONP = re.compile(rb"(?:/\*\*/)?\s{0,16}[A-Za-z_$][\w$.]{0,128}\s{0,16}\(\s{0,64}")
_FIRST_VALUE = json.JSONDecoder()
_WS = b" \t\r\n"
_KNOWN = frozenset({"code", "status", "message"})
# Salvage reads only the start of a broken body: a code sits at the top of every reply.
_SALVAGE_WINDOW = 4096

# Broken XML: the <response ...> start tag (possibly cut off) and what follows it.
_XML_RESPONSE_TAG = re.compile(r"<(?:[A-Za-z_][\w.-]{0,31}:)?response\b([^<>]{0,1024})")
_XML_ATTR = {
    name: re.compile(rf"""\s{name}\s*=\s*["']\s*([^"'<>]{{0,64}}?)\s*["']""")
    for name in ("code", "status")
}
_XML_CODE_CHILD = re.compile(r"<(?:[\w.-]{1,32}:)?code>\s*(-?[0-9]{1,9})\s*</")
_XML_MESSAGE_CHILD = re.compile(r"<(?:[\w.-]{1,32}:)?message>\s*(?:<!\[CDATA\[)?([^<\]]{1,512})")
# Direct text right after the start tag's ">", with or without CDATA.
_XML_DIRECT_TEXT = re.compile(r">\s*(?:<!\[CDATA\[)?([^<\]]{1,512})")
# Salvage trusts only ASCII numbers (str.isdigit and \d would take "²" or Arabic digits).
_NUMERIC = re.compile(r"-?[0-9]{1,9}")
# Broken JSON: a "response" object, then its members.
_JSON_RESPONSE = re.compile(r'"response"\s*:\s*\{')
_JSON_CODE = re.compile(r'"code"\s*:\s*(?:"\s*(-?[0-9]{1,9})\s*"|(-?[0-9]{1,9})(?![\w.]))')
_JSON_STRING = {
    name: re.compile(rf'"{name}"\s*:\s*"((?:[^"\\]|\\.){{0,512}})"')
    for name in ("status", "message")
}


class _TooDeep(Exception):
    """An XML reply nests deeper than ``MAX_DEPTH`` (internal; mapped to "malformed")."""


def parse_moms(body: bytes, content_type: str | None) -> VendorReply:
    """Parse a MoMS/CM reply body; ``content_type`` only guides XML decoding. Never raises.

    See the module docstring for the body kinds and the field mapping.
    """
    head = _without_bom(body)
    if head is None:  # a BOM, then bytes its encoding cannot decode
        return VendorReply(body_kind="malformed")
    head = head.lstrip(_WS)
    if not head:
        return VendorReply(body_kind="empty")
    if head[:1] in (b"{", b"["):
        return _parse_json(head)
    jsonp = _JSONP.match(head)
    if jsonp is not None and head[jsonp.end() : jsonp.end() + 1] == b"{":
        return _parse_json(head[jsonp.end() :])
    return _parse_xml_reply(body, content_type)


def _without_bom(body: bytes) -> bytes | None:
    """The body without a leading BOM, as UTF-8 (None if it does not decode)."""
    for bom, codec in _BOMS:
        if body.startswith(bom):
            if codec == "utf-8":
                return body[len(bom) :]
            try:
                return body[len(bom) :].decode(codec).encode("utf-8", "surrogatepass")
            except UnicodeError:
                return None
    return body


# --- JSON -------------------------------------------------------------------------------


def _parse_json(body: bytes) -> VendorReply:
    """A JSON body (``body`` starts at its first value), trailing text allowed."""
    if len(body) > MAX_JSON_BYTES:
        return VendorReply(body_kind="malformed")  # never scanned, not even for salvage
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:  # also invalid UTF-8
        if "depth" in exc.msg:  # orjson's own nesting limit: hostile, nothing to salvage
            return VendorReply(body_kind="malformed")
        doc = _first_value(body)
        if doc is None:
            return _salvage_json(body[:_SALVAGE_WINDOW].decode("utf-8", "replace"))
    response = doc.get("response") if isinstance(doc, dict) else None
    if not isinstance(response, dict):
        return VendorReply(body_kind="unrecognized")
    if _json_depth(response) > MAX_DEPTH:
        return VendorReply(body_kind="malformed")
    return VendorReply(
        body_kind="vendor",
        code=_json_code(response.get("code")),
        status=_json_text(response.get("status")),
        message=_json_text(response.get("message")),
        data={k: v for k, v in response.items() if k not in _KNOWN},
    )


def _first_value(body: bytes) -> dict[str, Any] | None:
    """The JSON object a body starts with, when only trailing text broke the whole.

    Used after a strict parse failed: a JSONP callback's ``);``, a server comment or a
    newline and junk after the document. Only an object counts (anything else is not a
    MoMS answer); bad JSON, or nesting too deep to read, gives None. Invalid UTF-8 (in
    trailing junk, typically) is replaced, as the salvage would.
    """
    try:
        value, _ = _FIRST_VALUE.raw_decode(body.decode("utf-8", "replace"))
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError included
        return None
    return value if isinstance(value, dict) else None


def _json_depth(value: object) -> int:
    """Nesting depth of containers in ``value`` (a scalar is 0), without recursion."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: list[object] = list(item.values())
        elif isinstance(item, list):
            children = item
        else:
            continue
        depth += 1
        if depth > MAX_DEPTH:
            return depth  # no need to walk the rest of a hostile body
        deepest = max(deepest, depth)
        stack.extend((child, depth) for child in children)
    return deepest


def _json_code(value: object) -> str | None:
    """A JSON code as a string: 436 → "436", 1.0 → "1", "  1 " → "1"; others → None."""
    if isinstance(value, bool):  # bool is an int subclass: true is not code "1"
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        # Whole floats read as the integer code they stand for; huge ones stay floats
        # rather than turning into hundreds of digits.
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    if isinstance(value, str):
        return value.strip() or None
    return None


def _json_text(value: object) -> str | None:
    """A JSON status/message as stripped text; numbers are spelled out; others → None."""
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _json_code(value)
    return None


def _salvage_json(text: str) -> VendorReply:
    start = _JSON_RESPONSE.search(text)
    code = _JSON_CODE.search(text, start.end()) if start else None
    if start is None or code is None:
        return VendorReply(body_kind="malformed")
    fields = {
        name: _json_unescape(m.group(1)) if (m := rx.search(text, start.end())) else None
        for name, rx in _JSON_STRING.items()
    }
    return VendorReply(
        body_kind="salvaged",
        code=code.group(1) or code.group(2),
        status=fields["status"],
        message=fields["message"],
    )


def _json_unescape(raw: str) -> str | None:
    try:
        value = orjson.loads('"' + raw + '"')
    except orjson.JSONDecodeError:  # a bad escape sequence: keep the raw text
        value = raw
    return _json_text(value)


# --- XML --------------------------------------------------------------------------------


def _parse_xml_reply(body: bytes, content_type: str | None) -> VendorReply:
    result = parse_xml(body, content_type)
    if result.kind == "malformed":
        # parse_xml leaves ``text`` empty for over-cap bodies, so those are never scanned.
        # Odd declared charsets (unicode_escape, utf-7) can decode to lone surrogates,
        # which no JSON encoder accepts: replace them before anything is read out.
        window = result.text[:_SALVAGE_WINDOW].encode("utf-8", "replace").decode("utf-8")
        return _salvage_xml(window)
    if result.kind != "vendor" or result.root is None:
        return VendorReply(body_kind=result.kind)
    root = result.root
    if local_name(root) != "response":
        return VendorReply(body_kind="unrecognized")
    try:
        data = _xml_data(root)
    except _TooDeep:
        return VendorReply(body_kind="malformed")
    # A <message> child wins; the error form carries the text directly (as CDATA).
    message = text_of(child_local(root, "message")) or _own_text(root) or None
    return VendorReply(
        body_kind="vendor",
        code=_xml_field(root, "code"),
        status=_xml_field(root, "status"),
        message=message,
        data=data,
    )


def _xml_field(root: etree._Element, name: str) -> str | None:
    """``name`` as an attribute of ``root``, else as a child element; stripped."""
    attr = root.get(name)
    if attr is not None and attr.strip():
        return attr.strip()
    return text_of(child_local(root, name))


def _xml_data(root: etree._Element) -> dict[str, Any]:
    items: list[tuple[str, object]] = []
    for key, value in root.attrib.items():
        name = _attr_name(key)
        if name not in ("code", "status"):
            items.append((name, value))
    for child in _elements(root):
        name = local_name(child)
        if name not in _KNOWN:
            items.append((name, _element_value(child, 1)))
    return _group(items)


def _element_value(el: etree._Element, depth: int) -> str | dict[str, Any]:
    if depth > MAX_DEPTH:
        raise _TooDeep
    children = _elements(el)
    text = _own_text(el)
    if not children and not el.attrib:
        return text
    items: list[tuple[str, object]] = [(_attr_name(k), v) for k, v in el.attrib.items()]
    items.extend((local_name(child), _element_value(child, depth + 1)) for child in children)
    if text:
        items.append(("value", text))
    return _group(items)


def _group(items: list[tuple[str, object]]) -> dict[str, Any]:
    """Pairs in document order → dict; a name seen more than once maps to a list."""
    grouped: dict[str, list[object]] = {}
    for name, value in items:
        grouped.setdefault(name, []).append(value)
    return {name: values[0] if len(values) == 1 else values for name, values in grouped.items()}


def _elements(el: etree._Element) -> list[etree._Element]:
    # Comments and PIs are removed by the parser; this also skips any stray non-element.
    return [child for child in el if isinstance(child.tag, str)]


def _own_text(el: etree._Element) -> str:
    """The element's direct text (CDATA included), not its children's; stripped."""
    parts = [el.text or ""]
    parts.extend(child.tail or "" for child in el)
    return "".join(parts).strip()


def _attr_name(key: str | bytes) -> str:
    name = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
    return name.rpartition("}")[2]


def _salvage_xml(text: str) -> VendorReply:
    tag = _XML_RESPONSE_TAG.search(text)
    if tag is None:
        return VendorReply(body_kind="malformed")
    attrs = " " + tag.group(1)
    after = text[tag.end() :]
    code_attr = _XML_ATTR["code"].search(attrs)
    code = code_attr.group(1) if code_attr and _NUMERIC.fullmatch(code_attr.group(1)) else None
    if code is None and (child := _XML_CODE_CHILD.search(after)) is not None:
        code = child.group(1)
    if code is None:
        return VendorReply(body_kind="malformed")
    status = _XML_ATTR["status"].search(attrs)
    message = _XML_MESSAGE_CHILD.search(after) or _XML_DIRECT_TEXT.match(after)
    return VendorReply(
        body_kind="salvaged",
        code=code,
        status=(status.group(1).strip() or None) if status else None,
        message=(message.group(1).strip() or None) if message else None,
    )


__all__ = ["MAX_DEPTH", "MAX_JSON_BYTES", "parse_moms"]
