"""The ``Idempotency-Key`` and ``X-Callback-Data`` headers, and a key's scope (pure).

``parse_idempotency_key(values)`` reads the header's field lines as a request carries
them (``request.headers.getall("Idempotency-Key", [])``)::

    no line                  None: the request has no key (the ledger is not read)
    "8e03978e-40d5-43e8"     the key as a bare token, the way Stripe's clients send it
    '"8e03978e-40d5-43e8"'   the same key as an sf-string (RFC 8941 §3.3.3), the form of
                             draft-ietf-httpapi-idempotency-key-header; \\" and \\\\
                             unescaped
    anything else            HeaderProblem(reason): 1 to 255 visible ASCII characters
                             (%x21-7E) only, one field line, no sf parameters

Both forms name the same key: ``"abc"`` and ``abc`` are one key. A ``HeaderProblem``'s
reason is fixed text; it never quotes the value (a key is the app's data).

``parse_callback_data(values)`` reads ``X-Callback-Data``: the app's opaque reference,
handed back with every event for the message. At most ``MAX_CALLBACK_DATA_BYTES`` (1 KiB)
of UTF-8, one field line, no control characters. The integration removes the header
before forwarding and never logs it.

``Scope`` is what a key is unique within: the client (``anonymous`` without ``clients``)
and the route. ``Scope.storage_id`` is the SHA-256 of the three, so the stores never hold
the key itself and every store key has one fixed length.
"""

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

MAX_KEY_LENGTH = 255
MAX_CALLBACK_DATA_BYTES = 1024
#: The client of a request when the config names no ``clients``.
ANONYMOUS = "anonymous"

_TOKEN = re.compile(r"[\x21-\x7e]{1,255}")
# RFC 8941 sf-string: DQUOTE *( unescaped / "\" ( DQUOTE / "\" ) ) DQUOTE, where unescaped
# is %x20-21 / %x23-5B / %x5D-7E. Spaces are legal there but not in a key (visible only).
_SF_STRING = re.compile(r'"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*)"')
_SF_ESCAPE = re.compile(r'\\(["\\])')
_OWS = " \t"
# Field content of a header value: visible characters, SP and HTAB, obs-text beyond ASCII.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class HeaderProblem:
    """Why a header cannot be used; ``reason`` is fixed text, never the header's value."""

    reason: str


@dataclass(frozen=True, slots=True)
class Scope:
    """Where an idempotency key is unique: one client's requests on one route."""

    client: str
    route: str
    key: str

    @property
    def storage_id(self) -> str:
        """A fixed-length id for the stores (hex SHA-256; the key itself is not kept)."""
        digest = hashlib.sha256()
        for part in (self.client, self.route, self.key):
            raw = part.encode("utf-8", "surrogateescape")
            digest.update(len(raw).to_bytes(4, "big"))  # length-prefixed: no ambiguity
            digest.update(raw)
        return digest.hexdigest()


def _lines(values: Sequence[str] | str | None) -> list[str]:
    if values is None:
        return []
    return [values] if isinstance(values, str) else list(values)


def parse_idempotency_key(values: Sequence[str] | str | None) -> str | HeaderProblem | None:
    """The key the request carries, None without one, or why it is unusable."""
    lines = _lines(values)
    if not lines:
        return None
    if len(lines) > 1:
        return HeaderProblem("Idempotency-Key was sent more than once")
    value = lines[0].strip(_OWS)
    if not value:
        return HeaderProblem("Idempotency-Key is empty")
    if value.startswith('"'):
        return _sf_string(value)
    if not _TOKEN.fullmatch(value):
        return _refusal(value)
    return value


def _sf_string(value: str) -> str | HeaderProblem:
    match = _SF_STRING.match(value)
    if match is None:
        return HeaderProblem("Idempotency-Key is not a valid quoted string (RFC 8941 sf-string)")
    if match.end() != len(value):
        return HeaderProblem("Idempotency-Key must be a string alone, without parameters")
    key = _SF_ESCAPE.sub(r"\1", match.group(1))
    if not key:
        return HeaderProblem("Idempotency-Key is empty")
    return key if _TOKEN.fullmatch(key) else _refusal(key)


def _refusal(key: str) -> HeaderProblem:
    if len(key) > MAX_KEY_LENGTH:
        return HeaderProblem(f"Idempotency-Key is longer than {MAX_KEY_LENGTH} characters")
    return HeaderProblem("Idempotency-Key must be visible ASCII characters only (no spaces)")


def parse_callback_data(values: Sequence[str] | str | None) -> str | HeaderProblem | None:
    """The app's ``X-Callback-Data``, None without one, or why it is unusable."""
    lines = _lines(values)
    if not lines:
        return None
    if len(lines) > 1:
        return HeaderProblem("X-Callback-Data was sent more than once")
    value = lines[0].strip(_OWS)
    if not value:
        return None
    if _CONTROL.search(value):
        return HeaderProblem("X-Callback-Data must not contain control characters")
    if len(value.encode("utf-8", "surrogateescape")) > MAX_CALLBACK_DATA_BYTES:
        return HeaderProblem(f"X-Callback-Data is longer than {MAX_CALLBACK_DATA_BYTES} bytes")
    return value


__all__ = [
    "ANONYMOUS",
    "MAX_CALLBACK_DATA_BYTES",
    "MAX_KEY_LENGTH",
    "HeaderProblem",
    "Scope",
    "parse_callback_data",
    "parse_idempotency_key",
]
