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

Signals: **every** ``code`` and ``status`` counts (``VendorReply.signals``): the
``code``/``status`` attributes of ``<response>`` (unqualified, or in the response's own
namespace) and each ``<code>``/``<status>`` child (unqualified, or in the response's own
namespace; an element in another namespace is data); in JSON each ``"code"``/``"status"``
member of each ``"response"`` object, duplicate keys included. A JSON value that is no
string is a signal too, spelled as JSON (``false``, ``0``, ``null``, ``{}``): a ``status``
is a success only when it is one of the catalog's success words, compared as a string,
and a ``code`` only when it is a success code.

Text: a BOM, UTF-16/32 without a BOM (NULs beside the first character), a ``charset``
label (``utf-16`` without a BOM is big-endian), else UTF-8. JSON that is valid UTF-8 is
read as UTF-8 whatever a legacy label says (RFC 8259 §8.1); XML goes to ``parse_xml``.

Field mapping (both formats), describing the reply:

* ``code``     the first code: the ``code`` attribute of ``<response>``, else a ``<code>``
               child; in JSON the ``"code"`` member. Always a ``str`` (whitespace
               stripped): JSON ``436`` → ``"436"``, ``1.0`` → ``"1"``.
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

import json
import math
import re
from typing import Any

import orjson
from lxml import etree

from proxy.vendors.base import Signal, SignalKind, VendorReply
from proxy.vendors.safexml import (
    MAX_XML_BYTES,
    bom_codec,
    charset_labels,
    label_codecs,
    local_name,
    namespace,
    parse_xml,
    text_of,
)

#: JSON bodies longer than this are not parsed (real replies are a few KiB).
MAX_JSON_BYTES = MAX_XML_BYTES
#: Deepest nesting of objects/arrays (or elements) accepted below the response. Real replies
#: nest 3 deep; the cap keeps hostile nesting away from the envelope's own JSON encoder.
MAX_DEPTH = 32

# UTF-16/32 without a BOM: where the NULs sit around the first character (RFC 4627 §3).
_WIDE = (
    (re.compile(rb"[^\x00]\x00\x00\x00"), "utf-32-le"),
    (re.compile(rb"\x00\x00\x00[^\x00]"), "utf-32-be"),
    (re.compile(rb"[^\x00]\x00"), "utf-16-le"),
    (re.compile(rb"\x00[^\x00]"), "utf-16-be"),
)
_WIDE_LABELS = frozenset({"utf-16-be", "utf-16-le", "utf-32-be", "utf-32-le"})
# A JSONP callback name (optionally behind the "/**/" guard some servers prepend).
_JSONP = re.compile(rb"(?:/\*\*/)?\s{0,16}[A-Za-z_$][\w$.]{0,128}\s{0,16}\(\s{0,64}")
_WS = b" \t\r\n"
_KNOWN = frozenset({"code", "status", "message"})
_SIGNAL_KINDS: dict[str | None, SignalKind] = {"code": "code", "status": "status"}
_JSON_SIGNALS: tuple[SignalKind, ...] = ("code", "status")
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
    """Parse a MoMS/CM reply body. Never raises.

    ``content_type`` gives the charset label(s). See the module docstring for the body
    kinds, the signals and the field mapping. Every known failure is handled inside
    ``_parse``; this guard only turns a parser bug into ``malformed``, so that one odd
    gateway body can never crash a request (the fuzz tests call ``_parse`` directly).
    """
    try:
        return _parse(body, content_type)
    except Exception:  # noqa: BLE001 - the single outermost guard; see the docstring
        return VendorReply(body_kind="malformed")


def _parse(body: bytes, content_type: str | None) -> VendorReply:
    head = _as_utf8(body, content_type)
    if head is None:  # a BOM or label, then bytes its encoding cannot decode
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


def _as_utf8(body: bytes, content_type: str | None) -> bytes | None:
    """The body as UTF-8 bytes, without a BOM (None if its encoding cannot decode it).

    A BOM settles the encoding; else NULs around the first character (UTF-16/32 without a
    BOM); else a label of the UTF-16/32 family; else bytes that are valid UTF-8 are kept
    as they are (JSON is UTF-8, RFC 8259 §8.1, whatever a legacy label says); else the
    label's codec. Most bodies (UTF-8, no BOM) come back as the very same bytes.
    """
    bom = bom_codec(body)
    if bom is not None:
        codec, skip = bom
        if codec == "utf-8":
            return body[skip:]
        return _transcode(body[skip:], codec)
    if b"\x00" in body[:4]:
        stripped = body.lstrip(b" \t\r\n")[:4]
        for pattern, codec in _WIDE:
            if pattern.match(body) or pattern.match(stripped):
                return _transcode(body, codec)
    labels = label_codecs(charset_labels(content_type)) if content_type else ()
    wide = [codec for codec in labels if codec in _WIDE_LABELS]
    if wide:
        return _transcode(body, wide[0])
    if not labels or body.isascii():
        return body
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return _transcode(body, labels[0])
    return body


def _transcode(data: bytes, codec: str) -> bytes | None:
    try:
        return data.decode(codec).encode("utf-8", "surrogatepass")
    except (UnicodeError, LookupError):
        return None


# --- JSON -------------------------------------------------------------------------------


class _Pairs(dict[str, Any]):
    """A JSON object that keeps every member, duplicate keys included (``pairs``)."""

    __slots__ = ("pairs",)

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__(pairs)
        self.pairs = pairs


_ALL_PAIRS = json.JSONDecoder(object_pairs_hook=_Pairs)
# A key that can repeat is spelled at least twice, or escaped (``"\u0063ode"``).
_KEYS = (b'"response"', b'"code"', b'"status"')


def _parse_json(body: bytes) -> VendorReply:
    """A JSON body (``body`` starts at its first value), trailing text allowed."""
    if len(body) > MAX_JSON_BYTES:
        return VendorReply(body_kind="malformed")  # never scanned, not even for salvage
    doc: Any
    if (
        b"\\u" in body
        or body.count(b'"code"') > 1
        or body.count(b'"status"') > 1
        or body.count(b'"response"') > 1
    ):
        doc = _first_value(body)  # every member kept: a repeated code or status counts
        if doc is None:
            return _salvage_json(body[:_SALVAGE_WINDOW].decode("utf-8", "replace"))
        return _json_reply([v for v in _members(doc, "response") if isinstance(v, dict)])
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:  # also invalid UTF-8
        if "depth" in exc.msg:  # orjson's own nesting limit: hostile, nothing to salvage
            return VendorReply(body_kind="malformed")
        doc = _first_value(body)
        if doc is None:
            return _salvage_json(body[:_SALVAGE_WINDOW].decode("utf-8", "replace"))
        stdlib = True
    else:
        stdlib = False
    response = doc.get("response") if isinstance(doc, dict) else None
    if not isinstance(response, dict):
        return VendorReply(body_kind="unrecognized")
    return _json_response(response, stdlib=stdlib)


def _json_response(response: dict[str, Any], *, stdlib: bool = False) -> VendorReply:
    """The reply of one ``response`` object (the common case: no duplicate keys);
    ``stdlib``: read by ``_first_value`` (its data may hold integers orjson cannot write)."""
    if _json_depth(response) > MAX_DEPTH:
        return VendorReply(body_kind="malformed")
    message = _json_text(response.get("message"))
    signals: list[Signal] = []
    code = status = None
    if "code" in response:
        signals.append(_json_signal("code", response["code"], "response.code", message))
        code = signals[-1].value if signals[-1].text else None
    if "status" in response:
        signals.append(_json_signal("status", response["status"], "response.status", message))
        status = signals[-1].value if signals[-1].text else None
    return VendorReply(
        body_kind="vendor",
        code=code or None,
        status=status or None,
        message=message,
        data=_data(response) if stdlib else {k: v for k, v in response.items() if k not in _KNOWN},
        signals=tuple(signals),
    )


def _json_reply(responses: list[dict[str, Any]]) -> VendorReply:
    """The reply of the ``response`` objects found (several only with a duplicate key)."""
    if not responses:
        return VendorReply(body_kind="unrecognized")
    for response in responses:
        if _json_depth(response) > MAX_DEPTH:
            return VendorReply(body_kind="malformed")
    signals: list[Signal] = []
    for index, response in enumerate(responses):
        where = "response" if len(responses) == 1 else f"response[{index + 1}]"
        message = _json_text(response.get("message"))
        for name in _JSON_SIGNALS:
            if name in response:
                for value in _members(response, name):
                    signals.append(_json_signal(name, value, f"{where}.{name}", message))
    last = responses[-1]  # as a JSON parser keeps the last of a duplicate key
    return VendorReply(
        body_kind="vendor",
        code=_described(signals, "code", last=True),
        status=_described(signals, "status", last=True),
        message=_json_text(last.get("message")),
        data=_data(last),
        signals=tuple(signals),
    )


def _described(signals: list[Signal], kind: SignalKind, *, last: bool = False) -> str | None:
    """The ``code`` or ``status`` field: the first (JSON: the last) text value given;
    None when there is none (the signals still hold every value, text or not)."""
    values = [s.value for s in signals if s.kind == kind and s.text and s.value]
    if not values:
        return None
    return values[-1] if last else values[0]


def _members(obj: object, key: str) -> list[Any]:
    """Every value of ``key`` in a JSON object, duplicates included, in order."""
    if type(obj) is _Pairs:
        return [value for name, value in obj.pairs if name == key]
    if isinstance(obj, dict) and key in obj:
        return [obj[key]]
    return []


def _json_signal(kind: SignalKind, value: object, where: str, message: str | None) -> Signal:
    """A ``code`` or ``status`` member as a signal: a string as sent (stripped), a number
    as the code it spells; anything else spelled as JSON, and never a success."""
    if type(value) is str:
        return Signal(kind, where, value.strip(), message=message)
    if kind == "code" and isinstance(value, int | float) and not isinstance(value, bool):
        return Signal(kind, where, _json_code(value), message=message)
    return Signal(
        kind, f"{where} ({_json_type(value)})", _spelled(value), text=False, message=message
    )


def _spelled(value: object) -> str:
    """A JSON value that is no string, as JSON spells it (bounded): ``false``, ``null``,
    ``0``; a container by its brackets (it may be large); a number of any size."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, dict | list):
        return "{…}" if isinstance(value, dict) else "[…]"
    text = repr(value) if isinstance(value, float) else str(value)  # ints beyond 64 bits too
    return text if len(text) <= 64 else text[:64] + "…"


def _data(response: dict[str, Any]) -> dict[str, Any]:
    """The data of a ``response`` read by ``_first_value``, as orjson writes it.

    The stdlib's reader keeps an integer of any size, which orjson cannot write: the
    envelope's data would not render. Such an integer becomes the float orjson itself reads
    it as (±inf past a double's range, written as null). The signals are built from the
    exact value first (``_spelled``). ``response`` is within ``MAX_DEPTH``.
    """
    return {k: _writable(v) for k, v in response.items() if k not in _KNOWN}


def _writable(value: Any) -> Any:
    if type(value) is int and not -(2**63) <= value < 2**64:
        try:
            return float(value)
        except OverflowError:
            return math.inf if value > 0 else -math.inf
    if isinstance(value, list):
        return [_writable(item) for item in value]
    if isinstance(value, dict):
        return {k: _writable(v) for k, v in value.items()}
    return value


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "an array" if isinstance(value, list) else "an object"


def _first_value(body: bytes) -> dict[str, Any] | None:
    """The JSON object a body starts with, every member kept (duplicates in ``pairs``).

    Used when a key may repeat, and after a strict parse failed: a JSONP callback's
    ``);``, a server comment or a newline and junk after the document. Only an object
    counts (anything else is not a MoMS answer); bad JSON, or nesting too deep to read,
    gives None. Invalid UTF-8 (in trailing junk, typically) is replaced, as the salvage
    would.
    """
    try:
        value, _ = _ALL_PAIRS.raw_decode(body.decode("utf-8", "replace"))
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
    """A JSON code as a string: 436 → "436", 1.0 → "1", "  1 " → "1"; others → None.

    (The reply's signals spell every other value; this is for the fields that describe
    it.)"""
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
    value = code.group(1) or code.group(2)
    signals = [Signal("code", "salvaged response.code", value, message=fields["message"])]
    if fields["status"] is not None:
        signals.append(Signal("status", "salvaged response.status", fields["status"]))
    return VendorReply(
        body_kind="salvaged",
        code=value,
        status=fields["status"],
        message=fields["message"],
        signals=tuple(signals),
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
        return _xml_reply(root)
    except _TooDeep:
        return VendorReply(body_kind="malformed")


def _xml_reply(root: etree._Element) -> VendorReply:
    """One pass over ``<response>``: its ``code``/``status`` attributes and children (the
    signals, when unqualified or in the response's own namespace), its ``message``, and
    everything else as data."""
    own = namespace(root)
    found: list[tuple[SignalKind, str, str]] = []  # (kind, where, value)
    items: list[tuple[str, object]] = []
    for key, value in root.attrib.items():
        name = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
        ns, local = _split(name)
        if local in _SIGNAL_KINDS and (ns is None or ns == own):
            found.append((_SIGNAL_KINDS[local], f"response@{local}", str(value).strip()))
        else:
            items.append((local, value))
    message: str | None = None
    counts = {"code": 0, "status": 0}
    for child in root:
        tag: object = child.tag
        if not isinstance(tag, str):  # comments and PIs are removed; be safe anyway
            continue
        ns, local = _split(tag)
        mine = ns is None or ns == own
        if mine and local in counts:
            counts[local] += 1
            where = f"response/{local}" + (f"[{counts[local]}]" if counts[local] > 1 else "")
            found.append((_SIGNAL_KINDS[local], where, text_of(child) or ""))
        elif mine and local == "message":
            message = message or text_of(child)
        else:
            items.append((local, _element_value(child, 1)))
    # A <message> child wins; the error form carries the text directly (as CDATA).
    message = message or _own_text(root) or None
    signals = [
        Signal(kind, where, value, message=message if kind == "code" else None)
        for kind, where, value in found
    ]
    return VendorReply(
        body_kind="vendor",
        code=_described(signals, "code"),
        status=_described(signals, "status"),
        message=message,
        data=_group(items),
        signals=tuple(signals),
    )


def _split(name: str) -> tuple[str | None, str]:
    """(namespace or None, local name) of a Clark-notation tag or attribute name."""
    if name[:1] == "{":
        ns, _, local = name[1:].partition("}")
        return ns, local
    return None, name


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
    status_match = _XML_ATTR["status"].search(attrs)
    status = (status_match.group(1).strip() or None) if status_match else None
    found = _XML_MESSAGE_CHILD.search(after) or _XML_DIRECT_TEXT.match(after)
    message = (found.group(1).strip() or None) if found else None
    signals = [Signal("code", "salvaged response code", code, message=message)]
    if status_match is not None:
        signals.append(Signal("status", "salvaged response@status", status or ""))
    return VendorReply(
        body_kind="salvaged",
        code=code,
        status=status,
        message=message,
        signals=tuple(signals),
    )


__all__ = ["MAX_DEPTH", "MAX_JSON_BYTES", "parse_moms"]
