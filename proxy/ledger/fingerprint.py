"""A request's fingerprint, hashed as its body streams (pure).

Two requests with one idempotency key are "the same request" when their fingerprints are
equal: the method, the path and query as the app sent them (``request.raw_path``), and the
SHA-256 of the body. The body is fed chunk by chunk as it streams to the gateway, so
nothing is buffered::

    fingerprinter = Fingerprinter(request.method, request.raw_path)
    for chunk in body: fingerprinter.update(chunk)      # while forwarding it
    fingerprint = fingerprinter.digest()                # "sha256:<64 hex>"

The fingerprint is itself a SHA-256 over the three (length-prefixed), so the ledger keeps
no path, query or body: a MoMS query carries the recipient's number.
"""

import hashlib

_PREFIX = "sha256:"


class Fingerprinter:
    """The fingerprint of one request: ``update`` with each body chunk, then ``digest``."""

    __slots__ = ("_body", "_head")

    def __init__(self, method: str, target: str) -> None:
        head = hashlib.sha256()
        for part in (method.upper(), target):
            raw = part.encode("utf-8", "surrogateescape")
            head.update(len(raw).to_bytes(4, "big"))
            head.update(raw)
        self._head = head
        self._body = hashlib.sha256()

    def update(self, chunk: bytes | bytearray | memoryview) -> None:
        """Add the next chunk of the body."""
        self._body.update(chunk)

    def digest(self) -> str:
        """``sha256:`` and 64 hex digits; the body so far (no chunk: the empty body)."""
        whole = self._head.copy()
        whole.update(self._body.digest())
        return _PREFIX + whole.hexdigest()


def fingerprint_of(method: str, target: str, body: bytes = b"") -> str:
    """The fingerprint of a whole request at once (tests, small bodies)."""
    fingerprinter = Fingerprinter(method, target)
    fingerprinter.update(body)
    return fingerprinter.digest()


__all__ = ["Fingerprinter", "fingerprint_of"]
