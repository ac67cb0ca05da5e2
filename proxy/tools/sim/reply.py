"""``Reply``: one complete simulated answer (status, content type, body, headers), sans-io.

The vendor modules (``mm7.py``, ``moms.py``) build these without knowing aiohttp;
``faults.reply_response`` turns one into an aiohttp response at the edge.
"""

import dataclasses
import gzip
from dataclasses import dataclass

from multidict import CIMultiDict


@dataclass(frozen=True, slots=True)
class Reply:
    """A finished answer. Vendor modules build these; ``faults`` may distort them.

    ``headers`` are extra response headers beside ``Content-Type`` (name, value), e.g. the
    ``X-MM7-Status-Code`` of a ``status-header`` shape; a name given twice is sent as two
    field lines.
    """

    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()

    def all_headers(self) -> CIMultiDict[str]:
        """``headers`` and the ``Content-Type``, every field line kept, for the response."""
        out = CIMultiDict(self.headers)
        out["Content-Type"] = self.content_type
        return out


def in_gzip_members(reply: Reply) -> Reply:
    """``reply`` with ``Content-Encoding: gzip`` whose body is three gzip members: an
    empty one, then the first and the second half of the body (RFC 1952 §2.2 allows any
    number; a reader that stops at the first member's end sees nothing)."""
    half = len(reply.body) // 2
    parts = (b"", reply.body[:half], reply.body[half:])
    body = b"".join(gzip.compress(part, mtime=0) for part in parts)
    headers = (*reply.headers, ("Content-Encoding", "gzip"))
    return dataclasses.replace(reply, body=body, headers=headers)


__all__ = ["Reply", "in_gzip_members"]
