"""``Reply``: one complete simulated answer (status, content type, body), sans-io.

The vendor modules (``mm7.py``, ``moms.py``) build these without knowing aiohttp;
``faults.reply_response`` turns one into an aiohttp response at the edge.
"""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Reply:
    """A finished answer. Vendor modules build these; ``faults`` may distort them."""

    status: int
    content_type: str
    body: bytes


__all__ = ["Reply"]
