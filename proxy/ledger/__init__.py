"""The message ledger: idempotency keys that make every retry safe, and message ids
remembered so that delivery reports can be matched to the send that caused them.

Pure parts (no I/O), then the interface and its two stores::

    key.py            Idempotency-Key (bare token or RFC 8941 sf-string) and X-Callback-Data
                      parsed, HeaderProblem; Scope (client, route, key) → storage_id
    fingerprint.py    Fingerprinter: method, path and query, SHA-256 of the body fed chunk
                      by chunk as it streams
    records.py        StoredAnswer (status, headers, body), Correlation (the event's
                      ``submit``), their bytes (orjson), RecordError
    base.py           Ledger: begin → Started | InFlight | Done, finish, release, remember,
                      recall, ping, close; LedgerUnavailable, the one error; in_flight_ttl
    sqlite_ledger.py  SqliteLedger: the embedded default, one WAL file shared by --workers
    redis_ledger.py   RedisLedger: the shared store, SET NX PX and two Lua scripts

Nothing here logs a key, a fingerprint's input, callback data or a record: they are the
app's data, and a MoMS request's query carries the recipient's number.
"""

from proxy.ledger.base import (
    IN_FLIGHT_MARGIN,
    Begin,
    Done,
    InFlight,
    Ledger,
    LedgerUnavailable,
    Started,
    in_flight_ttl,
)
from proxy.ledger.fingerprint import Fingerprinter, fingerprint_of
from proxy.ledger.key import (
    ANONYMOUS,
    MAX_CALLBACK_DATA_BYTES,
    MAX_KEY_LENGTH,
    HeaderProblem,
    Scope,
    parse_callback_data,
    parse_idempotency_key,
)
from proxy.ledger.records import Correlation, RecordError, StoredAnswer, utc_now

__all__ = [
    "ANONYMOUS",
    "IN_FLIGHT_MARGIN",
    "MAX_CALLBACK_DATA_BYTES",
    "MAX_KEY_LENGTH",
    "Begin",
    "Correlation",
    "Done",
    "Fingerprinter",
    "HeaderProblem",
    "InFlight",
    "Ledger",
    "LedgerUnavailable",
    "RecordError",
    "Scope",
    "Started",
    "StoredAnswer",
    "fingerprint_of",
    "in_flight_ttl",
    "parse_callback_data",
    "parse_idempotency_key",
    "utc_now",
]
