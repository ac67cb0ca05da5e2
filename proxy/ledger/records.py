"""What the ledger stores, and its bytes (pure).

Two records::

    StoredAnswer  the answer to replay for a key: HTTP status, the headers to replay (the
                  envelope's Content-Type, Retry-After, ...; for passthrough the gateway's
                  relayed headers) and the body bytes. Kept with the request's
                  fingerprint for ``idempotency_ttl``.
    Correlation   what a message id was sent with: {request_id, client, idempotency_key,
                  callback_data, submitted_at, route}; kept for ``correlation_ttl`` and
                  handed back as the ``submit`` object of the message's events.

Bytes (orjson; versioned, so a newer proxy can read an older record)::

    answer        {"v":1,"fingerprint":...,"status":...,"headers":[[name,value],...]} \\n body
    correlation   {"v":1,"request_id":...,...}

The JSON head of an answer never holds a raw newline (orjson escapes them), so the first
``\\n`` ends it and the body follows as it is (no base64). ``decode_*`` raise
``RecordError`` for bytes they cannot read; the stores turn it into ``LedgerUnavailable``.

Sizes: the body is bounded by the caller (within the route's ``max_response_bytes``), the
callback data by ``MAX_CALLBACK_DATA_BYTES``; a ``Correlation`` refuses more.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from proxy.ledger.key import MAX_CALLBACK_DATA_BYTES

_VERSION = 1
_NEWLINE = b"\n"


class RecordError(ValueError):
    """Stored bytes that are not a record of this version (corrupt, or foreign)."""


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """An answer to replay: status, headers (name, value) in order, body bytes."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


@dataclass(frozen=True, slots=True)
class Correlation:
    """What a message id was sent with; personal data aside, the app's own reference.

    ``submitted_at`` is RFC 3339 in UTC (``utc_now()``); ``idempotency_key`` and
    ``callback_data`` are None when the send had none. Raises ``ValueError`` when
    ``callback_data`` is over ``MAX_CALLBACK_DATA_BYTES``.
    """

    request_id: str
    client: str
    idempotency_key: str | None
    callback_data: str | None
    submitted_at: str
    route: str

    def __post_init__(self) -> None:
        data = self.callback_data
        if data is not None and len(data.encode("utf-8", "surrogateescape")) > (
            MAX_CALLBACK_DATA_BYTES
        ):
            raise ValueError(f"callback_data is over {MAX_CALLBACK_DATA_BYTES} bytes")

    def as_submit(self) -> dict[str, str | None]:
        """The event's ``submit`` object (docs/event.schema.json)."""
        return {
            "request_id": self.request_id,
            "client": self.client,
            "idempotency_key": self.idempotency_key,
            "callback_data": self.callback_data,
            "submitted_at": self.submitted_at,
            "route": self.route,
        }


def utc_now(now: datetime | None = None) -> str:
    """RFC 3339 in UTC with milliseconds: ``2026-12-01T20:11:13.042Z``."""
    moment = now if now is not None else datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    text = moment.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def encode_answer(fingerprint: str, answer: StoredAnswer) -> bytes:
    """The bytes of an answer record (see the module docstring)."""
    head = {
        "v": _VERSION,
        "fingerprint": fingerprint,
        "status": answer.status,
        "headers": [list(pair) for pair in answer.headers],
    }
    return orjson.dumps(head) + _NEWLINE + answer.body


def decode_answer(raw: bytes) -> tuple[str, StoredAnswer]:
    """(fingerprint, answer) from ``encode_answer``'s bytes. Raises ``RecordError``."""
    head_bytes, newline, body = raw.partition(_NEWLINE)
    if not newline:
        raise RecordError("an answer record without its body separator")
    head = _object(head_bytes)
    fingerprint, status, headers = head.get("fingerprint"), head.get("status"), head.get("headers")
    if not isinstance(fingerprint, str) or type(status) is not int or not isinstance(headers, list):
        raise RecordError("an answer record without fingerprint, status or headers")
    pairs: list[tuple[str, str]] = []
    for pair in headers:
        if not (
            isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) for p in pair)
        ):
            raise RecordError("an answer record with a malformed header")
        pairs.append((pair[0], pair[1]))
    return fingerprint, StoredAnswer(status, tuple(pairs), body)


_CORRELATION_FIELDS = ("request_id", "client", "submitted_at", "route")
_OPTIONAL_FIELDS = ("idempotency_key", "callback_data")


def encode_correlation(record: Correlation) -> bytes:
    """The bytes of a correlation record."""
    return orjson.dumps({"v": _VERSION, **record.as_submit()})


def decode_correlation(raw: bytes) -> Correlation:
    """A ``Correlation`` from ``encode_correlation``'s bytes. Raises ``RecordError``."""
    data = _object(raw)
    if not all(isinstance(data.get(name), str) for name in _CORRELATION_FIELDS) or not all(
        data.get(name) is None or isinstance(data.get(name), str) for name in _OPTIONAL_FIELDS
    ):
        raise RecordError("a correlation record with a missing or mistyped field")
    try:
        return Correlation(
            request_id=data["request_id"],
            client=data["client"],
            idempotency_key=data.get("idempotency_key"),
            callback_data=data.get("callback_data"),
            submitted_at=data["submitted_at"],
            route=data["route"],
        )
    except ValueError as exc:
        raise RecordError(str(exc)) from None


def _object(raw: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise RecordError("a record that is not JSON") from None
    if not isinstance(data, dict) or data.get("v") != _VERSION:
        raise RecordError(f"a record that is not version {_VERSION}")
    return data


__all__ = [
    "Correlation",
    "RecordError",
    "StoredAnswer",
    "decode_answer",
    "decode_correlation",
    "encode_answer",
    "encode_correlation",
    "utc_now",
]
