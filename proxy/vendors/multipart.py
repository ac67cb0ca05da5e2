"""Pick the SOAP part out of a ``multipart/related`` body (sans-io, never raises).

MM7 relays may wrap their SOAP reply in ``multipart/related`` (RFC 2387). The root part is
the one whose Content-ID is named by the ``start=`` parameter; when ``start`` is absent or
names no part, the first XML part is used. Parsing uses the stdlib ``email`` package with
the lenient ``compat32`` policy, which keeps 8-bit part bytes intact (they round-trip via
surrogateescape) and decodes base64 / quoted-printable transfer encodings.
"""

import email.parser
import email.policy
from dataclasses import dataclass
from email.message import Message

from proxy.vendors.safexml import content_type_params

_XML_TYPES = frozenset({"text/xml", "application/xml", "application/soap+xml"})


@dataclass(frozen=True, slots=True)
class Part:
    """One selected body part: its decoded payload bytes and its own Content-Type."""

    body: bytes
    content_type: str | None


def _is_xml_type(mime: str) -> bool:
    return mime in _XML_TYPES or mime.endswith("+xml")


def _content_id(part: Message) -> str:
    return str(part.get("Content-ID", "")).strip().strip("<>").strip()


def _part_type(part: Message) -> str | None:
    value = part.get("Content-Type")
    return None if value is None else str(value)


def _payload(part: Message) -> bytes | None:
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else None


def _looks_like_xml(payload: bytes) -> bool:
    head = payload.lstrip(b" \t\r\n")
    return head.startswith((b"<", b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff"))


def select_part(body: bytes, content_type: str | None) -> Part | None:
    """The root XML part of a multipart ``body``, or None if it has no usable part.

    ``content_type`` is the outer header (it carries ``boundary`` and ``start``). Returns
    None when the content type is not multipart, the boundary is missing, or no part
    looks like XML; the caller then treats the body as a whole.
    """
    mime, params = content_type_params(content_type)
    if not mime.startswith("multipart/") or not params.get("boundary") or content_type is None:
        return None
    # Headers must be ASCII for the email parser; a header is never legitimately otherwise.
    header = content_type.encode("ascii", "replace").replace(b"\r", b" ").replace(b"\n", b" ")
    message = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(
        b"Content-Type: " + header + b"\r\n\r\n" + body
    )
    if not message.is_multipart():
        return None
    parts = [p for p in message.walk() if not p.is_multipart()]
    start = params.get("start", "").strip().strip("<>").strip()
    if start:
        for part in parts:
            payload = _payload(part)
            if _content_id(part) == start and payload is not None:
                return Part(payload, _part_type(part))
    for part in parts:
        payload = _payload(part)
        if payload is not None and _is_xml_type(part.get_content_type()):
            return Part(payload, _part_type(part))
    for part in parts:  # unlabelled parts: take the first that starts like XML
        payload = _payload(part)
        if payload is not None and _looks_like_xml(payload):
            return Part(payload, _part_type(part))
    return None


__all__ = ["Part", "select_part"]
