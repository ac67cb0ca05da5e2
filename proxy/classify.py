"""Classification: a parsed gateway reply, or a transport failure, becomes an ``Outcome``.

Pure functions over the catalog. The verdict, highest precedence first:

1. a hostile body (DTD/entities) → ``transport.unparseable``, whatever the status;
2. a vendor code: the body's, else one from a status header (``code_headers``, e.g.
   ``X-MM7-Status-Code``) → its catalog entry (message rules refine it). An MM7 code is an
   ``xs:integer``, so ``+2002``, ``02002`` and `` 2002 `` are 2002; an unknown number
   falls back to its TS 23.140 class (1xxx→1000, ...); a value that is no integer at all
   is ``UNKNOWN_CODE``. An unknown MoMS code → ``unknown`` (``unknown_success`` when the
   body says ``status="success"``);
3. a SOAP Fault without an MM7 status → its faultcode, most specific first (``Client.Auth``
   before ``Client``, SOAP 1.2 Subcodes before Code/Value). A specific HTTP status (401,
   403, ...) beats a generic base faultcode (``Client``, ``Server``, ...);
4. a MoMS body saying ``status="success"`` without a code → ``unknown_success``;
5. the HTTP status (``http`` fallbacks; 2xx without a code → INVALID_UPSTREAM_RESPONSE).

Then two checks on the verdict:

* **never a false success**: when the reply's signals disagree, some saying success and
  others failure (vendor code, MoMS ``status``, HTTP status, a SOAP Fault or an
  ``*ErrorRsp``, status headers), the answer is the catalog's ``conflict`` code: never
  success, never retryable, with the signals spelled out in ``detail`` and the log line;
* a ``Retry-After`` on a 429 or 503 (``retry_after_statuses``) makes an error retryable.
"""

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from proxy.catalog import CanonicalCode, Catalog, VendorCode, VendorTable
from proxy.vendors.base import VendorReply
from proxy.vocab import FailureKind

# xs:integer's lexical form, surrounding whitespace already stripped; ASCII digits only
# (str.isdigit() accepts "²", which int() refuses). Long enough for any real code.
_INTEGER = re.compile(r"[+-]?[0-9]{1,18}")
_HTTP_NUMBER = re.compile(r"([1-5][0-9]{2})\b")
_BODY_WORDS = {
    "empty": "an empty body",
    "html": "an HTML page",
    "malformed": "a body that could not be parsed",
    "unrecognized": "a body that is not a {vendor} answer",
}


@dataclass(slots=True)  # built per request: frozen=True costs a call per field
class Outcome:
    """Everything the envelope, the metrics and the log line need about one answer.

    ``vendor_code`` is the code exactly as the gateway sent it; ``vendor_code_label``
    is its bounded metric label: the catalog code, ``other`` or ``none``.
    ``failure`` is set when the proxy itself observed a failure (metric reason).
    ``conflict`` lists the signals that disagreed with a success verdict (then ``code``
    is the catalog's conflict code). ``retry`` overrides the code's ``retryable`` when
    the gateway asked for a retry (``Retry-After``).
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
    failure: FailureKind | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    conflict: tuple[str, ...] = ()
    retry: bool | None = None

    @property
    def retryable(self) -> bool:
        return self.code.retryable if self.retry is None else self.retry


@dataclass(slots=True)  # built per request: frozen=True costs a call per field
class _Answer:
    """The facts of one gateway answer that classification weighs."""

    table: VendorTable
    reply: VendorReply
    http_status: int
    headers: Mapping[str, str]
    bodiless: bool
    header_code: str | None  # a vendor code from a status header

    @property
    def code(self) -> str | None:
        """The vendor code: the body's, else the status header's."""
        return self.reply.code if self.reply.code is not None else self.header_code


@dataclass(slots=True)  # built per request: frozen=True costs a call per field
class _Verdict:
    canonical: CanonicalCode
    entry: VendorCode | None = None
    label: str = "none"


def classify_reply(
    catalog: Catalog,
    vendor: str,
    reply: VendorReply,
    http_status: int,
    *,
    headers: Mapping[str, str] | None = None,
    bodiless: bool = False,
) -> Outcome:
    """Classify a gateway answer (``reply`` parsed from its body, with its HTTP status).

    ``headers`` are the answer's response headers (status headers, ``Retry-After``);
    look-ups must be case-insensitive, as aiohttp's are. ``bodiless`` says the answer
    could not carry a body (a HEAD request, 1xx, 204, 304): its emptiness is then no
    fault of the gateway's.
    """
    table = catalog.vendors[vendor]
    headers = headers or {}
    if reply.body_kind == "hostile":
        return Outcome(
            code=catalog.transport["unparseable"],
            vendor=vendor,
            http_status=http_status,
            detail="The gateway's reply declared a DTD or entities; it was not parsed.",
            failure="unparseable",
        )
    answer = _Answer(table, reply, http_status, headers, bodiless, _header_code(table, headers))
    code = answer.code
    verdict = _verdict(catalog, answer)
    message = reply.message or (verdict.entry.text if verdict.entry else None)
    conflict = _conflict(catalog, answer, verdict)
    canonical = catalog.conflict if conflict else verdict.canonical
    # A 2xx that says nothing usable is the gateway's failure; an error status with a
    # body we can't read is already explained by the status.
    unparseable = code is None and 200 <= http_status < 300 and not canonical.ok
    detail = _detail(vendor, reply, code, message, http_status)
    if conflict:
        detail += f". The reply's signals disagree ({'; '.join(conflict)}): not a success."
    return Outcome(
        code=canonical,
        vendor=vendor,
        vendor_code=code,
        vendor_code_label=verdict.label,
        message=message,
        details=reply.details,
        http_status=http_status,
        transaction_id=reply.transaction_id,
        detail=detail,
        failure="unparseable" if unparseable else None,
        data=reply.data if canonical.ok else {},
        conflict=conflict,
        retry=_retry(catalog, canonical, conflict, headers, http_status),
    )


def classify_failure(
    catalog: Catalog,
    kind: FailureKind,
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


def _verdict(catalog: Catalog, answer: _Answer) -> _Verdict:
    """The code the reply's strongest signal gives, before the agreement check."""
    table, reply = answer.table, answer.reply
    if answer.code is not None:
        return _by_vendor_code(catalog, table, answer.code, reply)
    if reply.fault and (fault := _fault(catalog, table, reply, answer.http_status)) is not None:
        return _Verdict(fault)
    if _says_success(table, reply.status) and table.unknown_success is not None:
        return _Verdict(table.unknown_success)
    return _Verdict(catalog.for_http_status(answer.http_status, bodiless=answer.bodiless))


def _by_vendor_code(
    catalog: Catalog, table: VendorTable, code: str, reply: VendorReply
) -> _Verdict:
    entry = table.codes.get(code)
    if entry is not None:  # the common case: the code as the catalog spells it
        return _Verdict(entry.resolve(reply.message), entry, entry.code)
    number = _integer(code)
    if number is not None:
        entry = table.codes.get(str(number))  # "+2002", "02002" are 2002
    if entry is not None:
        return _Verdict(entry.resolve(reply.message), entry, entry.code)
    if table.class_fallbacks and number is not None:
        digit = str(number)[0] if 1000 <= number <= 9999 else "default"
        target = table.class_fallbacks.get(digit) or table.class_fallbacks["default"]
        fallback = table.codes[target]
        return _Verdict(fallback.canonical, fallback, "other")
    if _says_success(table, reply.status) and table.unknown_success is not None:
        return _Verdict(table.unknown_success, None, "other")
    return _Verdict(table.unknown, None, "other")


def _integer(code: str) -> int | None:
    text = code.strip()
    return int(text) if _INTEGER.fullmatch(text) else None


def fault_candidates(fault_code: str | None, subcodes: tuple[str, ...] = ()) -> list[str]:
    """Faultcodes to look up, most specific first, generic base last; lower-cased.

    SOAP 1.2 Subcodes come deepest first, then Code/Value. A SOAP 1.1 dotted code is tried
    whole, then ever shorter: each prefix also without its base, so ``Client.Auth`` is
    tried as ``client.auth``, ``auth``, ``client``.
    """
    out: list[str] = []
    for value in (*reversed(subcodes), *([fault_code] if fault_code else [])):
        for candidate in _dotted(value.lower()):
            if candidate not in out:
                out.append(candidate)
    return out


def _dotted(value: str) -> Iterator[str]:
    parts = [p for p in value.split(".") if p]
    for end in range(len(parts), 0, -1):
        yield ".".join(parts[:end])
        if end > 1:
            yield ".".join(parts[1:end])


def _fault(
    catalog: Catalog, table: VendorTable, reply: VendorReply, http_status: int
) -> CanonicalCode | None:
    """A Fault's canonical code: specific faultcode, else specific HTTP status, else base."""
    candidates = fault_candidates(reply.fault_code, reply.fault_subcodes)
    for candidate in candidates:
        if candidate not in table.generic_faults and candidate in table.fault_codes:
            return table.fault_codes[candidate]
    if http_status in table.specific_http:
        return catalog.for_http_status(http_status)
    return next((table.fault_codes[c] for c in candidates if c in table.fault_codes), None)


def _says_success(table: VendorTable, status: str | None) -> bool:
    return status is not None and status.strip().lower() in table.success_status


def _header_code(table: VendorTable, headers: Mapping[str, str]) -> str | None:
    for name in table.code_headers:
        value = headers.get(name)
        if value is not None and value.strip():
            return value.strip()
    return None


def _conflict(catalog: Catalog, answer: _Answer, verdict: _Verdict) -> tuple[str, ...]:
    """The signals, when some say success and others failure; () when they agree.

    Success signals are explicit: a vendor code (in the body or a status header) whose
    canonical code is a success, and a MoMS ``status`` success word. A 2xx status and a
    ``Status: OK`` header are no verdict (MoMS and MM7 send errors with them too), but an
    error status, a SOAP Fault, an ``*ErrorRsp``, any other ``status`` word and a status
    header that says otherwise are failure signals.
    """
    table, reply, header_code = answer.table, answer.reply, answer.header_code
    http_status, headers = answer.http_status, answer.headers
    # (says success?, how to name the signal): the names are only written out when the
    # signals disagree, which is rare.
    said: list[tuple[bool, str, tuple[object, ...]]] = []
    if reply.code is not None:
        said.append((verdict.canonical.ok, "{} status {}", (table.name, reply.code)))
    if header_code is not None:
        header = _by_vendor_code(catalog, table, header_code, VendorReply("vendor"))
        said.append((header.canonical.ok, "status header code {}", (header_code,)))
    if reply.status is not None:
        said.append((_says_success(table, reply.status), "status {!r}", (reply.status,)))
    if reply.code is None and header_code is None and verdict.canonical.ok:
        said.append((True, "{} from the {} body", (verdict.canonical.name, table.name)))
    if not 200 <= http_status < 300 and not (answer.bodiless and http_status == 304):
        said.append((False, "HTTP status {}", (http_status,)))
    if reply.fault:
        said.append((False, "a SOAP Fault", ()))
    if reply.element and reply.element.endswith("ErrorRsp"):
        said.append((False, "an {}", (reply.element,)))
    for name in table.status_headers:
        value = headers.get(name)
        if value is not None and not _status_word_ok(table, value):
            said.append((False, "{} header {!r}", (name, value.strip()[:40])))
    verdicts = {ok for ok, _, _ in said}
    if len(verdicts) < 2:
        return ()
    return tuple(
        f"{'success' if ok else 'failure'}: {what.format(*args)}" for ok, what, args in said
    )


def _status_word_ok(table: VendorTable, value: str) -> bool:
    """A status header's verdict: a success word, or an HTTP status number that is 2xx."""
    number = _HTTP_NUMBER.match(value.strip())
    if number is not None:
        return number.group(1).startswith("2")
    return _says_success(table, value)


def _retry(
    catalog: Catalog,
    canonical: CanonicalCode,
    conflict: tuple[str, ...],
    headers: Mapping[str, str],
    http_status: int,
) -> bool | None:
    """True when the gateway asked for a retry of an error; None keeps the code's own."""
    if canonical.ok or conflict or http_status not in catalog.retry_after_statuses:
        return None
    return True if (headers.get("Retry-After") or "").strip() else None


def _detail(
    vendor: str, reply: VendorReply, code: str | None, message: str | None, http_status: int
) -> str:
    if code is not None:
        text = f"{vendor} status {code}"
        text += " (from a status header)" if reply.code is None else ""
        text += f": {message}" if message else ""
        return text + (f" ({reply.details})" if reply.details else "")
    if reply.fault_code is not None:
        return f"{vendor} SOAP fault {reply.fault_code}" + (f": {message}" if message else "")
    what = _BODY_WORDS.get(reply.body_kind, "no status code").format(vendor=vendor)
    return f"The gateway answered HTTP {http_status} with {what}."
