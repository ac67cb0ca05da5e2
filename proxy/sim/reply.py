"""``Reply``: one complete simulated answer (status, content type, body, headers), sans-io.

The vendor modules (``mm7.py``, ``moms.py``) build these without knowing aiohttp;
``faults.reply_response`` turns one into an aiohttp response at the edge.
"""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Reply:
    """A finished answer. Vendor modules build these; ``faults`` may distort them.

    ``headers`` are extra response headers beside ``Content-Type`` (name, value), e.g. the
    ``X-MM7-Status-Code`` of a ``status-header`` shape.
    """

    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()

    def all_headers(self) -> dict[str, str]:
        """``headers`` and the ``Content-Type``, as one mapping for the response."""
        return {**dict(self.headers), "Content-Type": self.content_type}


__all__ = ["Reply"]
