"""Read Mogreet's incoming-message POST (sans-io, never raises).

What Mogreet documents (developer.mogreet.com/docs/messaging/receiving): when a
subscriber texts the keyword on the short code (SMS or MMS), Mogreet POSTs to the
callback URL set in its dashboard, "XML or JSON", an XML document such as::

    <?xml version="1.0"?>
    <mogreet>
      <event>message-in</event>            message-in (a message), stop (opted out), ...
      <campaign_id>xxxxx</campaign_id>
      <msisdn>15555555555</msisdn>          the subscriber
      <carrier><![CDATA[Verizon Wireless]]></carrier>
      <message><![CDATA[user's message]]></message>
      <subject><![CDATA[]]></subject>
      <images><image><![CDATA[http://.../some_image.jpeg]]></image></images>
    </mogreet>

``parse_mogreet(body, content_type, max_bytes)`` returns a ``MogreetCallback`` or a
``MogreetError``. It reads XML with the same hostile-input rules as gateway replies
(``proxy.vendors.safexml``: no DTD or entity is ever expanded), and:

* the root is an unqualified ``mogreet`` element, its fields unqualified children in any
  order; elements in a namespace are someone else's data and ignored;
* every occurrence counts: a field given twice with two values is refused (``ambiguous``,
  which msisdn is meant?), twice with one value is that value; every ``<image>`` of
  every ``<images>`` is kept, in order;
* only ``msisdn`` is required (an event without its subscriber is useless); ``event``
  may be missing (the older documented samples have none: the catalog says what that
  means), every other field too;
* JSON (inferred: the docs say "XML or JSON" and show only XML): an object with the same
  field names, at the top or under ``"mogreet"``; numbers are taken as their digits;
  ``images`` a list of URLs (or of ``{"image": url}``), or ``{"image": url | [urls]}``;
  a key given twice with two values is ``ambiguous`` as in XML.

Refusals (the answer is mogreet_answer.py's)::

    oversize                 over max_bytes: not read at all
    empty, html, hostile,    no body, an HTML page, a DTD or entity declaration, not
    malformed                well-formed XML or JSON
    wrong_root               well-formed, but not a <mogreet> document
    missing_field            no msisdn
    ambiguous                a field with two different values

The result is personal data (the subscriber's number, the message): nothing here logs.
"""

import json
from collections.abc import Iterator
from typing import Any

from lxml import etree

from proxy.inbound.types import ErrorReason, MogreetCallback, MogreetError
from proxy.vendors.safexml import content_type_params, local_name, namespace, parse_xml, text_of

_FIELDS = ("event", "campaign_id", "msisdn", "carrier", "message", "subject")
_CORRUPT: dict[str, tuple[ErrorReason, str]] = {
    "empty": ("empty", "the request body is empty"),
    "html": ("html", "the request body is HTML, not a Mogreet document"),
    "hostile": ("hostile", "DTDs and entity declarations are not allowed"),
    "malformed": ("malformed", "the request is not well-formed XML"),
}
_JSON_START = frozenset(b"{")
_WHITESPACE = b" \t\r\n"
_BOM = b"\xef\xbb\xbf"


def parse_mogreet(
    body: bytes, content_type: str | None, max_bytes: int
) -> MogreetCallback | MogreetError:
    """Read one POST; see the module docstring. Never raises.

    Every known failure is handled inside ``_parse``; this guard only turns a parser bug
    into a refusal, so that one odd body can never crash the inbound route.
    """
    try:
        return _parse(body, content_type, max_bytes)
    except Exception:  # noqa: BLE001 - the single outermost guard; see the docstring
        return MogreetError("malformed", "the request could not be read")


def _parse(body: bytes, content_type: str | None, max_bytes: int) -> MogreetCallback | MogreetError:
    if len(body) > max_bytes:  # before any parsing, to bound all work
        return MogreetError("oversize", f"the request is larger than {max_bytes} bytes")
    if _is_json(body, content_type):
        return _from_json(body)
    xml = parse_xml(body, content_type)
    if xml.root is None:
        return MogreetError(*_CORRUPT.get(xml.kind, _CORRUPT["malformed"]))
    root = xml.root
    if local_name(root) != "mogreet" or namespace(root) is not None:
        return MogreetError("wrong_root", "the document is not a <mogreet> POST")
    fields: dict[str, list[str | None]] = {}
    images: list[str] = []
    for child in _ours(root):
        name = local_name(child)
        if name == "images":
            images.extend(_xml_images(child))
        elif name in _FIELDS:
            fields.setdefault(name, []).append(text_of(child))
    return _callback(fields, images)


def _ours(parent: etree._Element) -> Iterator[etree._Element]:
    """``parent``'s unqualified child elements (not comments, PIs or namespaced ones)."""
    for child in parent:
        if local_name(child) and namespace(child) is None:
            yield child


def _xml_images(holder: etree._Element) -> Iterator[str]:
    for image in _ours(holder):
        url = text_of(image) if local_name(image) == "image" else None
        if url:
            yield url


def _callback(
    fields: dict[str, list[str | None]], images: list[str]
) -> MogreetCallback | MogreetError:
    values: dict[str, str | None] = {}
    for name in _FIELDS:
        given = {value for value in fields.get(name, ()) if value}
        if len(given) > 1:
            return MogreetError("ambiguous", f"{name} is given twice with two values")
        values[name] = next(iter(given), None)
    msisdn = values["msisdn"]
    if msisdn is None:
        return MogreetError("missing_field", "the POST has no msisdn")
    return MogreetCallback(
        event=values["event"],
        campaign_id=values["campaign_id"],
        msisdn=msisdn,
        carrier=values["carrier"],
        message=values["message"],
        subject=values["subject"],
        images=tuple(images),
    )


# --- JSON (inferred) --------------------------------------------------------------------


def _is_json(body: bytes, content_type: str | None) -> bool:
    mime, _ = content_type_params(content_type)
    if mime == "application/json" or mime.endswith("+json"):
        return True
    start = body.removeprefix(_BOM).lstrip(_WHITESPACE)[:1]
    return bool(start) and start[0] in _JSON_START


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, list[Any]]:
    """A JSON object with every value of every key (duplicate keys are kept, in order)."""
    found: dict[str, list[Any]] = {}
    for key, value in pairs:
        found.setdefault(key, []).append(value)
    return found


def _from_json(body: bytes) -> MogreetCallback | MogreetError:
    try:
        data = json.loads(body, object_pairs_hook=_pairs)
    except (ValueError, RecursionError):
        return MogreetError("malformed", "the request is not well-formed JSON")
    if not isinstance(data, dict):
        return MogreetError("wrong_root", "the JSON document is not an object")
    wrapped = data.get("mogreet", [])
    if len(data) == 1 and len(wrapped) == 1 and isinstance(wrapped[0], dict):
        data = wrapped[0]
    fields: dict[str, list[str | None]] = {}
    for name in _FIELDS:
        for value in data.get(name, ()):
            text = _scalar(value)
            if isinstance(text, MogreetError):
                return text
            fields.setdefault(name, []).append(text)
    images: list[str] = []
    for value in data.get("images", ()):
        found = _json_images(value)
        if isinstance(found, MogreetError):
            return found
        images.extend(found)
    if not fields and not images:
        return MogreetError("wrong_root", "the JSON document is not a Mogreet POST")
    return _callback(fields, images)


def _scalar(value: Any) -> str | MogreetError | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return MogreetError("malformed", "a field is neither a string nor a number")


def _json_images(value: Any) -> list[str] | MogreetError:
    items: list[Any]
    if isinstance(value, dict):  # {"image": url} or {"image": [urls]}, every "image" key
        items = [
            v
            for found in value.get("image", ())
            for v in (found if isinstance(found, list) else [found])
        ]
    elif isinstance(value, list):
        items = value
    else:
        items = [value]
    urls: list[str] = []
    for item in items:
        if isinstance(item, dict):
            nested = _json_images(item)
            if isinstance(nested, MogreetError):
                return nested
            urls.extend(nested)
            continue
        if not isinstance(item, str):
            return MogreetError("malformed", "an image is not a URL string")
        if item.strip():
            urls.append(item.strip())
    return urls


__all__ = ["parse_mogreet"]
