"""Split an inbound MM7 body into its SOAP root and its content parts (sans-io).

A callback is plain SOAP, or ``multipart/related`` (RFC 2387) whose root part is the SOAP
envelope: the part whose Content-ID the ``start`` parameter names, else the first XML part,
else the first part that starts like XML (the rule ``proxy.vendors.multipart`` applies to
replies). A body labelled multipart that has no parts at all (no ``boundary``, or none in
the body: Sinch documents delivery reports sent that way) is read as plain SOAP.

The other parts are a DeliverReq's content. Its ``<Content href="cid:...">`` names one of
them (RFC 2392: ``cid:`` plus the URL-encoded Content-ID), which is often itself a
``multipart/related`` or ``multipart/mixed`` holding the SMIL, text and media: the content
is the leaves of the named part. An href without ``cid:``, a Content-ID matched only
case-insensitively or by Content-Location, and a missing or dangling href (all seen from
real relays) are tolerated; the last two take every non-root part.

Hostile shapes are bounded: nesting deeper than ``MAX_DEPTH``, more than ``MAX_PARTS``
parts, or a structure the stdlib parser cannot walk (``RecursionError``) make the body
unusable (``None``), and the caller answers 2007. The stdlib ``email`` parser runs with
the lenient ``compat32`` policy, which keeps 8-bit bytes intact and removes base64 and
quoted-printable transfer encodings.
"""

import codecs
import email.parser
import email.policy
import email.utils
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from urllib.parse import unquote

from proxy.inbound.types import ContentPart
from proxy.vendors.safexml import content_type_params

#: Multipart nesting deeper than this makes a body unusable (real content nests 2 deep).
MAX_DEPTH = 8
#: More parts than this, at all depths together, make a body unusable.
MAX_PARTS = 256
_XML_TYPES = frozenset({"text/xml", "application/xml", "application/soap+xml"})


@dataclass(frozen=True, slots=True)
class Entity:
    """One MIME entity, read once from the email parser's objects.

    ``content_type`` is the lower-case MIME type ("" for a plain body without a
    Content-Type), ``header`` the raw Content-Type value (it carries the charset).
    Multipart entities have ``children`` and an empty ``payload``.
    """

    content_type: str
    header: str | None
    content_id: str | None
    content_location: str | None
    payload: bytes
    children: tuple["Entity", ...] = ()
    start: str | None = None


def split_body(body: bytes, content_type: str | None) -> tuple[Entity, tuple[Entity, ...]] | None:
    """(the SOAP root, the other top-level parts) of a callback body; see the module doc.

    None when a multipart body is unusable: too deep, too many parts, or no part that
    could be the SOAP envelope.
    """
    mime, params = content_type_params(content_type)
    plain = Entity(mime, content_type, None, None, body)
    if not mime.startswith("multipart/") or not params.get("boundary") or content_type is None:
        return plain, ()
    top = _parse(body, content_type)
    if top is None:
        return None
    if not top.children:
        return plain, ()
    return _root(top.children, _clean_id(params.get("start")))


def content_parts(others: tuple[Entity, ...], href: str | None) -> tuple[ContentPart, ...]:
    """The content a DeliverReq's ``Content href`` names among ``others``, as leaf parts."""
    target = _find(others, href) if href else None
    scope = (target,) if target is not None else others
    return tuple(_content_part(leaf) for entity in scope for leaf in _leaves(entity))


def _parse(body: bytes, content_type: str) -> Entity | None:
    # Headers must be ASCII for the email parser; a header is never legitimately otherwise.
    header = content_type.encode("ascii", "replace").replace(b"\r", b" ").replace(b"\n", b" ")
    try:
        message = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(
            b"Content-Type: " + header + b"\r\n\r\n" + body
        )
        return _Reader().entity(message, 0)
    except RecursionError:  # a hostile nesting the stdlib parser cannot walk
        return None


class _Reader:
    """Turns the parser's ``Message`` tree into ``Entity`` values, counting parts."""

    def __init__(self) -> None:
        self.parts = 0

    def entity(self, message: Message, depth: int) -> Entity | None:
        self.parts += 1
        if depth > MAX_DEPTH or self.parts > MAX_PARTS:
            return None
        header = _header(message, "Content-Type")
        cid = _clean_id(_header(message, "Content-ID"))
        location = _header(message, "Content-Location")
        if not message.is_multipart():
            payload = message.get_payload(decode=True)
            data = payload if isinstance(payload, bytes) else b""
            return Entity(message.get_content_type(), header, cid, location, data)
        children: list[Entity] = []
        for sub in [s for s in message.get_payload() if isinstance(s, Message)]:
            child = self.entity(sub, depth + 1)
            if child is None:
                return None
            children.append(child)
        start = message.get_param("start")
        start_text = email.utils.collapse_rfc2231_value(start) if start else None
        kind = message.get_content_type()
        return Entity(kind, header, cid, location, b"", tuple(children), start_text)


def _header(message: Message, name: str) -> str | None:
    value = message.get(name)
    text = str(value).strip() if value is not None else ""
    return text or None


def _clean_id(value: str | None) -> str | None:
    """A Content-ID or ``start`` value without angle brackets and padding."""
    text = (value or "").strip().strip("<>").strip()
    return text or None


def _is_xml(entity: Entity) -> bool:
    kind = entity.content_type
    return not entity.children and (kind in _XML_TYPES or kind.endswith("+xml"))


def _looks_like_xml(entity: Entity) -> bool:
    head = entity.payload.lstrip(b" \t\r\n")
    return head.startswith((b"<", b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff"))


def _root(parts: tuple[Entity, ...], start: str | None) -> tuple[Entity, tuple[Entity, ...]] | None:
    """The root part by ``start``, else the first XML part, else the first XML-looking one."""
    named = [i for i, p in enumerate(parts) if start is not None and p.content_id == start]
    typed = [i for i, p in enumerate(parts) if _is_xml(p)]
    sniffed = [i for i, p in enumerate(parts) if not p.children and _looks_like_xml(p)]
    for candidates in (named, typed, sniffed):
        if candidates:
            i = candidates[0]
            return parts[i], parts[:i] + parts[i + 1 :]
    return None


def _walk(entities: tuple[Entity, ...]) -> Iterator[Entity]:
    for entity in entities:
        yield entity
        yield from _walk(entity.children)


def _find(entities: tuple[Entity, ...], href: str) -> Entity | None:
    """The entity an href names: by Content-ID, then case-insensitively, then by location."""
    raw = href.strip()
    cid = _clean_id(unquote(raw[4:]) if raw[:4].lower() == "cid:" else raw)
    if cid is None:
        return None
    tests = (
        lambda e: e.content_id == cid,
        lambda e: e.content_id is not None and e.content_id.casefold() == cid.casefold(),
        lambda e: e.content_location in (raw, cid),
    )
    for test in tests:
        found = next((e for e in _walk(entities) if test(e)), None)
        if found is not None:
            return found
    return None


def _leaves(entity: Entity) -> Iterator[Entity]:
    if not entity.children:
        yield entity
    for child in entity.children:
        yield from _leaves(child)


def _content_part(leaf: Entity) -> ContentPart:
    body: str | bytes = leaf.payload
    if leaf.content_type.startswith("text/"):
        _, params = content_type_params(leaf.header)
        body = leaf.payload.decode(_text_codec(params.get("charset")), "replace")
    return ContentPart(leaf.content_type, leaf.content_id, leaf.content_location, body)


def _text_codec(label: str | None) -> str:
    """The Python codec for a charset label; UTF-8 for none, unknown or non-text codecs."""
    if label:
        try:
            name = codecs.lookup(label.strip().strip("'\"")).name
            b"\x00\x00\x00\x00".decode(name)  # refuses "base64", "rot13", "undefined"
        except (LookupError, ValueError):
            return "utf-8"
        return name
    return "utf-8"


__all__ = ["MAX_DEPTH", "MAX_PARTS", "Entity", "content_parts", "split_body"]
