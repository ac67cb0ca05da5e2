"""Content codings, undone whole or not at all (README "Codes", rule 9)."""

import zlib

from proxy.upstream.errors import ExchangeFailure

_GZIP_WBITS = 16 + zlib.MAX_WBITS
_GZIP_MAGIC = b"\x1f\x8b"


def decode_content(body: bytes, coding: str | None, limit: int) -> bytes:
    """Undo every Content-Encoding completely, never inflating past ``limit`` bytes.

    ``coding`` lists the codings in the order they were applied (RFC 9110 §8.4), one
    header or several joined with ``,``; they are undone in reverse. ``gzip`` (and
    ``x-gzip``) is read member after member to the end (RFC 1952 allows any number, empty
    ones too; zero padding after the last is ignored); ``deflate`` with or without its
    zlib wrapper. The proxy asks for ``identity``; this is for gateways that compress
    anyway. Raises ``ExchangeFailure``: ``unparseable`` when a body cannot be decoded
    completely (an unknown coding, corrupt or truncated data, bytes after the end), with
    the reason; ``too_large`` when it would inflate past ``limit`` (a zip bomb is never
    read whole). A body that decodes in part is never used in part.
    """
    if not coding or not body:
        return body
    for name in reversed([c.strip().lower() for c in coding.split(",") if c.strip()]):
        if name == "identity":
            continue
        if name in ("gzip", "x-gzip"):
            body = _gunzip(body, limit)
        elif name == "deflate":
            body = _inflate(body, limit)
        else:
            raise _undecodable(f"content coding {name[:32]!r} is not one the proxy decodes")
    return body


def _gunzip(body: bytes, limit: int) -> bytes:
    """Every gzip member of ``body``, concatenated."""
    out = bytearray()
    rest = body
    while True:
        inflater = zlib.decompressobj(_GZIP_WBITS)
        out += _inflated(inflater, rest, limit - len(out), "gzip")
        rest = inflater.unused_data
        if not rest.strip(b"\x00"):  # the end, or the zero padding gzip(1) also allows
            return bytes(out)
        if not rest.startswith(_GZIP_MAGIC):
            raise _undecodable("gzip data is followed by bytes that are not a gzip member")


def _inflate(body: bytes, limit: int) -> bytes:
    """A ``deflate`` body: zlib-wrapped as RFC 9110 says, or raw as many servers send it."""
    wrapped = len(body) >= 2 and body[0] & 0x0F == 8 and (body[0] << 8 | body[1]) % 31 == 0
    inflater = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
    content = _inflated(inflater, body, limit, "deflate")
    if inflater.unused_data.strip(b"\x00"):
        raise _undecodable("deflate data is followed by more bytes")
    return content


def _inflated(inflater: "zlib._Decompress", data: bytes, room: int, name: str) -> bytes:
    """One stream inflated to its end, in at most ``room`` bytes."""
    try:
        content = inflater.decompress(data, room + 1)
    except zlib.error as exc:
        raise _undecodable(f"{name} data is corrupt ({exc})") from None
    if len(content) > room or inflater.unconsumed_tail:
        raise ExchangeFailure("too_large", "gateway answer inflates to over the route's limit")
    if not inflater.eof:
        raise _undecodable(f"{name} data ends before its end (truncated)")
    return content


def _undecodable(reason: str) -> ExchangeFailure:
    return ExchangeFailure("unparseable", f"the gateway's answer could not be decoded: {reason}")


__all__ = ["decode_content"]
