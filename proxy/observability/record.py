"""The per-request log line: one structured event per request, level by category.

Redaction of MSISDNs and secrets is a processor in ``proxy.observability.logs`` and always on, so
the path, query and vendor text can be logged here as they are.
"""

from dataclasses import dataclass
from typing import Any

from proxy.codes.classify import Outcome
from proxy.observability.logs import LogLevel, emit

# success → info; the app's or recipient's problem → warning; the gateway's → error.
LEVELS: dict[str, LogLevel] = {
    "success": "info",
    "client": "warning",
    "auth": "warning",
    "recipient": "warning",
    "content": "warning",
    "upstream": "error",
    "network": "error",
}


@dataclass(slots=True)  # built per request: frozen=True costs a call per field
class RequestRecord:
    request_id: str
    trace_id: str | None
    route: str
    vendor: str
    method: str
    path: str
    status: int
    outcome: Outcome
    duration_s: float
    upstream_duration_s: float | None
    bytes_in: int
    bytes_out: int
    # The gateway endpoint that answered (or was last tried), host:port; None: none.
    endpoint: str | None = None


def log_request(record: RequestRecord) -> None:
    """Emit the one ``event="request"`` line for a finished request."""
    outcome = record.outcome
    fields: dict[str, Any] = {
        "request_id": record.request_id,
        "route": record.route,
        "vendor": record.vendor,
        "endpoint": record.endpoint,
        "method": record.method,
        "path": record.path,
        "status": record.status,
        "code": outcome.code.name,
        "category": outcome.code.category,
        "retryable": outcome.retryable,
        "vendor_code": outcome.vendor_code,
        "vendor_message": outcome.message,
        "vendor_http_status": outcome.http_status,
        "detail": outcome.detail,
        "duration_s": round(record.duration_s, 6),
        "upstream_duration_s": None
        if record.upstream_duration_s is None
        else round(record.upstream_duration_s, 6),
        "bytes_in": record.bytes_in,
        "bytes_out": record.bytes_out,
    }
    if outcome.conflict:
        fields["conflict"] = list(outcome.conflict)
    if record.trace_id:
        fields["trace_id"] = record.trace_id
    emit(LEVELS.get(outcome.code.category, "error"), "request", fields)
