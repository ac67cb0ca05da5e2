"""Vendor reply parsers: pure functions from gateway bytes to a ``VendorReply``.

Each parser takes the raw body, the HTTP status and the Content-Type header and
never raises: whatever the gateway sent, it returns a ``VendorReply`` whose
``body_kind`` says what it found. They know nothing about aiohttp, so they are
tested with plain inputs and fuzzed with Hypothesis.
"""

from collections.abc import Callable

from proxy.vendors.base import BodyKind, VendorName, VendorReply
from proxy.vendors.mm7 import parse_mm7
from proxy.vendors.moms import parse_moms

Parser = Callable[[bytes, str | None], VendorReply]

PARSERS: dict[VendorName, Parser] = {"mm7": parse_mm7, "moms": parse_moms}


def parse_reply(vendor: VendorName, body: bytes, content_type: str | None) -> VendorReply:
    """Parse ``body`` with ``vendor``'s parser. Never raises."""
    return PARSERS[vendor](body, content_type)


__all__ = ["PARSERS", "BodyKind", "VendorName", "VendorReply", "parse_reply"]
