"""Classification: a parsed gateway reply, or a transport failure, becomes an ``Outcome``.

Pure functions over the catalog. Precedence, highest first:

1. a hostile body (DTD/entities) → ``transport.unparseable``, whatever the status;
2. a vendor code in the body → its catalog entry (message rules refine it);
   an unknown MM7 code → its TS 23.140 class (1xxx→1000, ...); an unknown MoMS code →
   ``unknown`` (or ``unknown_success`` when the body says ``status="success"``);
3. an MM7 SOAP Fault without an MM7 status → its ``faultcode``;
4. a MoMS body saying ``status="success"`` without a code → ``unknown_success``;
5. the HTTP status (``http`` fallbacks; 2xx without a code → INVALID_UPSTREAM_RESPONSE).
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from proxy.catalog import CanonicalCode, Catalog, TransportKind, VendorCode, VendorTable
from proxy.vendors.base import VendorReply

# ASCII digits only: str.isdigit() accepts "²", which int() refuses.
_INTEGER = re.compile(r"-?[0-9]{1,18}")
_BODY_WORDS = {
    "empty": "an empty body",
    "html": "an HTML page",
    "malformed": "a body that could not be parsed",
    "unrecognized": "a body that is not a {vendor} answer",
}


@dataclass(frozen=True, slots=True)
class Outcome:
    """Everything the envelope, the metrics and the log line need about one answer.

    ``vendor_code`` is the code exactly as the gateway sent it; ``vendor_code_label``
    is its bounded metric label: the catalog code, ``other`` or ``none``.
    ``failure`` is set when the proxy itself observed a failure (metric reason).
    """

    code: CanonicalCode
    vendor: str
    vendor_code: str | None = None
    vendor_code_label: str = "none"
    message: str | None = None
    details: str | None = None
    http_status: int | None = None
    transaction_id: str | None = None
    detail: str | None = None
    failure: TransportKind | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


def classify_reply(
    catalog: Catalog, vendor: str, reply: VendorReply, http_status: int, *, bodiless: bool = False
) -> Outcome:
    """Classify a gateway answer (``reply`` parsed from its body, with its HTTP status).

    ``bodiless`` says the answer could not carry a body (a HEAD request, 1xx, 204, 304):
    its emptiness is then no fault of the gateway's.
    """
    table = catalog.vendors[vendor]
    if reply.body_kind == "hostile":
        return Outcome(
            code=catalog.transport["unparseable"],
            vendor=vendor,
            http_status=http_status,
            detail="The gateway's reply declared a DTD or entities; it was not parsed.",
            failure="unparseable",
        )
    entry: VendorCode | None = None
    label = "none"
    if reply.code is not None:
        canonical, entry, label = _by_vendor_code(catalog, table, reply)
    elif (fault := _fault(table, reply.fault_code)) is not None:
        canonical = fault
    elif _says_success(reply) and table.unknown_success is not None:
        canonical = table.unknown_success
    else:
        canonical = catalog.for_http_status(http_status, bodiless=bodiless)
    message = reply.message or (entry.text if entry else None)
    # A 2xx that says nothing usable is the gateway's failure; an error status with a
    # body we can't read is already explained by the status.
    unparseable = reply.code is None and 200 <= http_status < 300 and not canonical.ok
    return Outcome(
        code=canonical,
        vendor=vendor,
        vendor_code=reply.code,
        vendor_code_label=label,
        message=message,
        details=reply.details,
        http_status=http_status,
        transaction_id=reply.transaction_id,
        detail=_detail(vendor, reply, message, http_status),
        failure="unparseable" if unparseable else None,
        data=reply.data if canonical.ok else {},
    )


def classify_failure(
    catalog: Catalog,
    kind: TransportKind,
    detail: str,
    *,
    vendor: str = "proxy",
    http_status: int | None = None,
) -> Outcome:
    """Classify a failure the proxy observed itself (no complete gateway answer)."""
    return Outcome(
        code=catalog.transport[kind],
        vendor=vendor,
        http_status=http_status,
        detail=detail,
        failure=kind,
    )


def _by_vendor_code(
    catalog: Catalog, table: VendorTable, reply: VendorReply
) -> tuple[CanonicalCode, VendorCode | None, str]:
    code = reply.code or ""
    entry = table.codes.get(code)
    number = _INTEGER.fullmatch(code)
    if entry is None and number:
        # Normalise "02002" style codes before declaring them unknown.
        entry = table.codes.get(str(int(code)))
    if entry is not None:
        return entry.resolve(reply.message), entry, entry.code
    if table.class_fallbacks and number:
        digit = code[0] if len(code) == 4 and not code.startswith("-") else "default"
        target = table.class_fallbacks.get(digit) or table.class_fallbacks["default"]
        fallback = table.codes[target]
        return fallback.canonical, fallback, "other"
    if _says_success(reply) and table.unknown_success is not None:
        return table.unknown_success, None, "other"
    return table.unknown or catalog["UNKNOWN_CODE"], None, "other"


def _fault(table: VendorTable, fault_code: str | None) -> CanonicalCode | None:
    """A faultcode's canonical code; ``Client.Auth`` falls back to ``Client``."""
    if fault_code is None:
        return None
    return table.fault_codes.get(fault_code) or table.fault_codes.get(fault_code.split(".")[0])


def _says_success(reply: VendorReply) -> bool:
    return (reply.status or "").strip().lower() == "success"


def _detail(vendor: str, reply: VendorReply, message: str | None, http_status: int) -> str:
    if reply.code is not None:
        text = f"{vendor} status {reply.code}"
        text += f": {message}" if message else ""
        return text + (f" ({reply.details})" if reply.details else "")
    if reply.fault_code is not None:
        return f"{vendor} SOAP fault {reply.fault_code}" + (f": {message}" if message else "")
    what = _BODY_WORDS.get(reply.body_kind, "no status code").format(vendor=vendor)
    return f"The gateway answered HTTP {http_status} with {what}."
