"""Render an ``Outcome`` as the uniform envelope (RFC 9457 problem details on errors).

The envelope is the product's API; its JSON Schema is ``docs/envelope.schema.json``.
``build_envelope`` is pure; ``render`` serialises it with the right status and
content type. Passthrough mode returns the gateway's own answer with ``X-Gateway-*``
headers instead (``passthrough_headers``).
"""

import re
from typing import Any

import orjson

from proxy.codes.classify import Outcome

PROBLEM_JSON = "application/problem+json"
JSON = "application/json"
# A vendor code goes into a header only if it is a short, printable token.
_HEADER_SAFE = re.compile(r"^[\x21-\x7e]{1,64}$")


def build_envelope(
    outcome: Outcome, *, request_id: str, route: str | None, endpoint: str | None = None
) -> dict[str, Any]:
    """The envelope as a dict. ``ok`` is true exactly when the category is ``success``.

    ``endpoint`` is the gateway endpoint that answered (or was last tried), host:port.
    """
    code = outcome.code
    return {
        "ok": code.ok,
        "status": code.status,
        "code": code.name,
        "category": code.category,
        "retryable": outcome.retryable,
        "type": code.type,
        "title": code.title,
        "detail": outcome.detail,
        "instance": f"urn:request:{request_id}",
        "request_id": request_id,
        "route": route,
        "vendor": {
            "name": outcome.vendor,
            "code": outcome.vendor_code,
            "message": outcome.message,
            "details": outcome.details,
            "http_status": outcome.http_status,
            "transaction_id": outcome.transaction_id,
            "endpoint": endpoint,
        },
        "data": dict(outcome.data),
    }


def render(envelope: dict[str, Any]) -> tuple[int, str, bytes]:
    """``(status, content_type, body)`` for an envelope built by ``build_envelope``."""
    content_type = JSON if envelope["ok"] else PROBLEM_JSON
    return envelope["status"], content_type, orjson.dumps(envelope, default=str)


def passthrough_headers(outcome: Outcome, request_id: str) -> dict[str, str]:
    """The ``X-Gateway-*`` headers added to a gateway answer returned unchanged: the same
    verdict as the envelope's. A header with no value to carry is left out, never empty:
    ``X-Gateway-Vendor-Code`` when the gateway sent no code."""
    headers = {
        "X-Gateway-Code": outcome.code.name,
        "X-Gateway-Category": outcome.code.category,
        "X-Gateway-Retryable": "true" if outcome.retryable else "false",
        "X-Request-ID": request_id,
    }
    if outcome.vendor_code:
        code = outcome.vendor_code
        headers["X-Gateway-Vendor-Code"] = (
            code if _HEADER_SAFE.match(code) else outcome.vendor_code_label
        )
    return headers
