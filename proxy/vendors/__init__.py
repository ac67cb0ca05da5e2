"""Vendor reply parsers: pure functions from gateway bytes to a ``VendorReply``.

Each parser takes the raw body, the HTTP status and the Content-Type header and
never raises: whatever the gateway sent, it returns a ``VendorReply`` whose
``body_kind`` says what it found. They know nothing about aiohttp, so they are
tested with plain inputs and fuzzed with Hypothesis.
"""

from collections.abc import Callable, Collection

from proxy.vendors.base import BodyKind, Signal, VendorName, VendorReply
from proxy.vendors.mm7 import MM7_NAMESPACES, parse_mm7
from proxy.vendors.moms import parse_moms

Parser = Callable[[bytes, str | None], VendorReply]

PARSERS: dict[VendorName, Parser] = {"mm7": parse_mm7, "moms": parse_moms}


def parse_reply(
    vendor: VendorName,
    body: bytes,
    content_type: str | None,
    namespaces: Collection[str] = (),
) -> VendorReply:
    """Parse ``body`` with ``vendor``'s parser. Never raises.

    ``namespaces``: the MM7 namespaces the catalog knows (``VendorTable.namespaces``);
    empty, the parser's own list (``MM7_NAMESPACES``).
    """
    if vendor == "mm7":
        return parse_mm7(body, content_type, namespaces or MM7_NAMESPACES)
    return PARSERS[vendor](body, content_type)


__all__ = ["PARSERS", "BodyKind", "Signal", "VendorName", "VendorReply", "parse_reply"]
