"""Classification: a parsed gateway reply, or a transport failure, becomes an ``Outcome``.

Pure functions over the catalog. **Collect, then decide**: every status signal the reply
carries is judged on its own, then one verdict is taken over all of them.

The signals (each one a success, a failure, or no verdict):

* each vendor **code** of the body (the parser's ``signals``: every ``StatusCode`` at a
  status position, every MoMS ``code``) → its catalog entry, message rules applied. An
  MM7 code is an ``xs:integer`` (``+2002``, ``02002``, `` 2002 `` are 2002); an unknown
  number falls back to its TS 23.140 class; anything else is ``UNKNOWN_CODE`` (an unknown
  MoMS code is ``unknown_success`` only when every ``status`` says success);
* each code in a **status header** (``code_headers``): every field line of every catalog
  name, each comma-separated value;
* each **SOAP Fault** → a failure, named by its faultcode, most specific first
  (``Client.Auth`` before ``Client``, SOAP 1.2 Subcodes before Code/Value; a specific HTTP
  status beats a generic base faultcode); each ``*ErrorRsp`` → a failure;
* each MoMS **status** (body or ``status_headers``): a success only when it is one of the
  catalog's ``success_status`` words, compared as a string. Any other value that is
  present (another word, a number, a boolean, null, an object) is a failure. A status
  *header* saying success is no verdict (gateways send errors with ``Status: OK``);
* the **HTTP status**: not 2xx → a failure (the ``http`` fallbacks name it). A 2xx is no
  verdict;
* a **salvaged** body (broken XML or JSON a code could still be read from) → a failure
  beside that code: it was not read whole, so it cannot vouch for a success.

The verdict:

1. a hostile body (DTD/entities) → ``transport.unparseable``, whatever else;
2. some signals say success and others failure → the catalog's ``conflict`` code: never
   success, never retryable, the signals (and where each came from) in ``detail`` and
   the log line's ``conflict``;
3. only failures → the most specific one: a body code, then a header code, then a Fault,
   then the HTTP status. Between two failures of the same rank the non-retryable one
   wins, so ``retryable`` is never promised while another failure signal of that rank
   does not promise it; then the last in the reply, as a JSON parser keeps the last of a
   duplicate key. Failures that name no code (a status
   word, an ``*ErrorRsp`` alone) fall back to the HTTP status (2xx →
   ``INVALID_UPSTREAM_RESPONSE``);
4. only successes → the first code's entry, else (a MoMS status alone) ``unknown_success``;
5. no signal at all → the HTTP status (``http`` fallbacks; an answer that cannot carry a
   body, to HEAD or with 204/304, is ``no_body``);

and a ``Retry-After`` on a 429 or 503 (``retry_after_statuses``) makes an error retryable.
"""

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from proxy.codes.catalog import CanonicalCode, Catalog, VendorCode, VendorTable
from proxy.vendors.base import Signal, VendorReply, signals_of
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
# How specific a failure signal is: lower wins.
_BODY_CODE, _HEADER_CODE, _FAULT, _WORD, _HTTP = range(5)
_SHOWN = 64  # characters of a value quoted in ``detail``


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
class _Judged:
    """One signal, judged: ``ok`` True (success), False (failure) or None (no verdict).

    ``canonical`` is the code it names, when it names one; ``what`` and ``args`` name the
    signal (``mm7 status 1000``, ``a SOAP Fault``: formatted only when a conflict or a
    detail needs it) and ``signal.where`` says where in the answer it sat.
    """

    ok: bool | None
    rank: int
    what: str
    args: tuple[object, ...]
    canonical: CanonicalCode | None = None
    entry: VendorCode | None = None
    label: str = "none"
    signal: Signal | None = None

    def name(self) -> str:
        return self.what.format(*self.args)

    def placed(self) -> str:
        """The name with the place it came from, when the answer had several places."""
        where = self.signal.where if self.signal is not None else None
        return f"{self.name()} at {where}" if where and where != "body" else self.name()


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
    look-ups must be case-insensitive, as aiohttp's are, and a multidict's repeated field
    lines each count. ``bodiless`` says the answer could not carry a body (a HEAD request,
    1xx, 204, 304): its emptiness is then no fault of the gateway's.
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
    signals = signals_of(reply)
    if reply.body_kind == "vendor" and not _has_status_headers(table, headers):
        agreed = _agreed(catalog, table, signals, http_status)
        if agreed is not None:  # the common answer: one code, every other signal agreeing
            return _coded_outcome(vendor, reply, http_status, headers, catalog, agreed)
    return _by_the_rules(catalog, table, reply, http_status, headers, bodiless)


def _by_the_rules(  # noqa: PLR0917 - classify_reply's own arguments
    catalog: Catalog,
    table: VendorTable,
    reply: VendorReply,
    http_status: int,
    headers: Mapping[str, str],
    bodiless: bool,
) -> Outcome:
    """Every signal judged, then the verdict over all of them (the module docstring)."""
    vendor = table.name
    signals = signals_of(reply)
    judged = _judge(catalog, table, signals, headers, http_status, bodiless)
    if (unread := _unread(reply)) is not None:
        judged.append(unread)
    chosen, canonical, conflicting = _decide(catalog, table, judged, http_status, bodiless)
    conflict = tuple(_verdict_word(j) + j.name() for j in conflicting)
    code_signal = chosen if chosen is not None and chosen.rank <= _HEADER_CODE else None
    if code_signal is None and conflict:
        code_signal = next((j for j in judged if j.rank <= _HEADER_CODE), None)
    code = code_signal.signal.value if code_signal and code_signal.signal else None
    message = _message(reply, code_signal)
    # A 2xx that holds no code and no success is the gateway's failure; an error status
    # with a body we can't read is already explained by the status.
    coded = any(j.rank <= _HEADER_CODE for j in judged)
    unparseable = not coded and 200 <= http_status < 300 and not canonical.ok
    detail = _detail(vendor, reply, code_signal, message, http_status, chosen)
    if conflict:
        listed = "; ".join(_verdict_word(j) + j.placed() for j in conflicting)
        detail += f". The reply's signals disagree ({listed}): not a success."
    elif chosen is not None and chosen.canonical is not None:
        others = _other_failures(judged, chosen)
        if others:
            detail += f". Other failure signals: {'; '.join(others)}"
    return Outcome(
        code=canonical,
        vendor=vendor,
        vendor_code=code,
        vendor_code_label=code_signal.label if code_signal else "none",
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


def _has_status_headers(table: VendorTable, headers: Mapping[str, str]) -> bool:
    for name in table.code_headers:
        if name in headers:
            return True
    return any(name in headers for name in table.status_headers)


def _agreed(
    catalog: Catalog, table: VendorTable, signals: tuple[Signal, ...], http_status: int
) -> tuple[Signal, CanonicalCode, VendorCode | None, str] | None:
    """The verdict when the body holds exactly one code and every other signal agrees
    with it; else None, and the general rules decide (they would give the same verdict
    here: this only skips weighing what cannot disagree).

    Agreeing: a success code with only success status words and a 2xx; a failure code
    with status words, Faults and error responses that all fail (a failure code ranks
    above them: it is the verdict). Status headers are weighed by the caller's check.
    """
    code: Signal | None = None
    for signal in signals:
        if signal.kind == "code":
            if code is not None:
                return None
            code = signal
    if code is None:
        return None
    statuses = [s for s in signals if s.kind == "status"]
    status_success = bool(statuses) and all(_says_success(table, s) for s in statuses)
    canonical, entry, label = _by_vendor_code(catalog, table, code, status_success)
    if canonical.ok:
        if not 200 <= http_status < 300 or len(statuses) != len(signals) - 1:
            return None  # a Fault, an error response or an error status beside it
        if statuses and not status_success:
            return None
    elif any(s.kind == "status" and _says_success(table, s) for s in statuses):
        return None
    return code, canonical, entry, label


def _coded_outcome(  # noqa: PLR0917 - the facts the outcome is made of
    vendor: str,
    reply: VendorReply,
    http_status: int,
    headers: Mapping[str, str],
    catalog: Catalog,
    agreed: tuple[Signal, CanonicalCode, VendorCode | None, str],
) -> Outcome:
    code, canonical, entry, label = agreed
    message = code.message or (entry.text if entry else None)
    text = f"{vendor} status {_shown(code)}"
    text += f": {message}" if message else ""
    return Outcome(
        code=canonical,
        vendor=vendor,
        vendor_code=code.value,
        vendor_code_label=label,
        message=message,
        details=reply.details,
        http_status=http_status,
        transaction_id=reply.transaction_id,
        detail=text + (f" ({reply.details})" if reply.details else ""),
        data=reply.data if canonical.ok else {},
        retry=_retry(catalog, canonical, (), headers, http_status),
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


# --- judging each signal ------------------------------------------------------------------


def _judge(  # noqa: PLR0917 - the facts of one answer
    catalog: Catalog,
    table: VendorTable,
    signals: tuple[Signal, ...],
    headers: Mapping[str, str],
    http_status: int,
    bodiless: bool,
) -> list[_Judged]:
    """Every signal of the answer, judged on its own, in the order they came."""
    judged: list[_Judged] = []
    statuses = [s for s in signals if s.kind == "status"]
    all_say_success = bool(statuses) and all(_says_success(table, s) for s in statuses)
    for signal in signals:
        kind = signal.kind
        if kind == "code":
            judged.append(_code(catalog, table, signal, _BODY_CODE, all_say_success))
        elif kind == "status":
            ok = _says_success(table, signal)
            judged.append(_Judged(ok, _WORD, "status {!r}", (_shown(signal),), signal=signal))
        elif kind == "fault":
            fault = _fault(catalog, table, signal, http_status)
            judged.append(_Judged(False, _FAULT, "a SOAP Fault", (), fault, signal=signal))
        else:  # an *ErrorRsp
            judged.append(_Judged(False, _WORD, "an {}", (signal.value,), signal=signal))
    for signal in _header_signals(table.code_headers, headers, "code"):
        judged.append(_code(catalog, table, signal, _HEADER_CODE, all_say_success))
    for signal in _header_signals(table.status_headers, headers, "status"):
        if not _status_word_ok(table, signal.value or ""):  # success is no verdict here
            named = (signal.where.partition(",")[0].removeprefix("header "), _shown(signal))
            judged.append(_Judged(False, _WORD, "{} header {!r}", named, signal=signal))
    if not 200 <= http_status < 300 and not (bodiless and http_status == 304):
        fallback = catalog.for_http_status(http_status, bodiless=bodiless)
        judged.append(_Judged(False, _HTTP, "HTTP status {}", (http_status,), fallback))
    return judged


def _unread(reply: VendorReply) -> _Judged | None:
    """A body read only in part (salvaged from broken XML or JSON) cannot vouch that every
    signal in it agrees: a failure beside whatever code was salvaged."""
    if reply.body_kind != "salvaged":
        return None
    return _Judged(False, _WORD, "a body that could not be parsed whole", ())


def _code(
    catalog: Catalog, table: VendorTable, signal: Signal, rank: int, status_success: bool
) -> _Judged:
    verdict, entry, label = _by_vendor_code(catalog, table, signal, status_success)
    what: str
    args: tuple[object, ...]
    if rank == _HEADER_CODE:
        what, args = "status header code {}", (_shown(signal),)
    else:
        what, args = "{} status {}", (table.name, _shown(signal))
    return _Judged(verdict.ok, rank, what, args, verdict, entry, label, signal)


def _by_vendor_code(
    catalog: Catalog, table: VendorTable, signal: Signal, status_success: bool
) -> tuple[CanonicalCode, VendorCode | None, str]:
    """(canonical code, catalog entry, metric label) of one code signal."""
    code = signal.value or ""
    if signal.text and code:  # an empty code, or one that is no text, is no code at all
        entry = table.codes.get(code)
        if entry is not None:  # the common case: the code as the catalog spells it
            return entry.resolve(signal.message), entry, entry.code
        number = _integer(code)
        if number is not None:
            entry = table.codes.get(str(number))  # "+2002", "02002" are 2002
        if entry is not None:
            return entry.resolve(signal.message), entry, entry.code
        if table.class_fallbacks and number is not None:
            digit = str(number)[0] if 1000 <= number <= 9999 else "default"
            target = table.class_fallbacks.get(digit) or table.class_fallbacks["default"]
            fallback = table.codes[target]
            return fallback.canonical, fallback, "other"
        if status_success and table.unknown_success is not None:
            return table.unknown_success, None, "other"
    return table.unknown, None, "other"


def _integer(code: str) -> int | None:
    text = code.strip()
    return int(text) if _INTEGER.fullmatch(text) else None


def _header_signals(
    names: tuple[str, ...], headers: Mapping[str, str], kind: str
) -> Iterator[Signal]:
    """Each value of each field line of each header in ``names`` (comma-separated values
    are several: that is how HTTP joins repeated field lines)."""
    for name in names:
        getall = getattr(headers, "getall", None)
        lines: list[str]
        if getall is not None:
            lines = getall(name, [])
        else:
            single = headers.get(name)
            lines = [] if single is None else [single]
        for number, line in enumerate(lines, 1):
            where = f"header {name}" + (f", line {number}" if len(lines) > 1 else "")
            for value in line.split(","):
                yield Signal("code" if kind == "code" else "status", where, value.strip())


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
    catalog: Catalog, table: VendorTable, fault: Signal, http_status: int
) -> CanonicalCode | None:
    """A Fault's canonical code: specific faultcode, else specific HTTP status, else base."""
    candidates = fault_candidates(fault.value, fault.subcodes)
    for candidate in candidates:
        if candidate not in table.generic_faults and candidate in table.fault_codes:
            return table.fault_codes[candidate]
    if http_status in table.specific_http:
        return catalog.for_http_status(http_status)
    return next((table.fault_codes[c] for c in candidates if c in table.fault_codes), None)


def _says_success(table: VendorTable, signal: Signal) -> bool:
    """A status signal is a success only as one of the catalog's words, as a string."""
    return signal.text and (signal.value or "").lower() in table.success_status


def _status_word_ok(table: VendorTable, value: str) -> bool:
    """A status header's value agrees with success: a success word, or a 2xx number."""
    number = _HTTP_NUMBER.match(value)
    if number is not None:
        return number.group(1).startswith("2")
    return value.lower() in table.success_status


def _shown(signal: Signal) -> str:
    value = signal.value or "(empty)"
    return value if len(value) <= _SHOWN else value[:_SHOWN] + "…"


# --- deciding over all of them ------------------------------------------------------------


def _decide(
    catalog: Catalog,
    table: VendorTable,
    judged: list[_Judged],
    http_status: int,
    bodiless: bool,
) -> tuple[_Judged | None, CanonicalCode, list[_Judged]]:
    """(the signal the verdict rests on, the verdict, the signals in conflict or [])."""
    said = {j.ok for j in judged}
    if True in said and False in said:
        return None, catalog.conflict, [j for j in judged if j.ok is not None]
    if False in said:
        named = [(j.rank, j.canonical.retryable, -i, j) for i, j in enumerate(judged)
                 if j.ok is False and j.canonical is not None]  # fmt: skip
        if named:
            chosen = min(named, key=lambda item: item[:3])[3]
            assert chosen.canonical is not None
            return chosen, chosen.canonical, []
        fallback = catalog.for_http_status(http_status, bodiless=bodiless)
        if fallback.ok:  # a bodiless answer with a failure signal: they disagree
            verdict = _Judged(True, _HTTP, "{} from the {} body", (fallback.name, table.name))
            return None, catalog.conflict, [*(j for j in judged if j.ok is False), verdict]
        return None, fallback, []
    if True in said:
        for j in judged:
            if j.ok and j.rank <= _HEADER_CODE and j.canonical is not None:
                return j, j.canonical, []
        if table.unknown_success is not None:  # a success status word, and no code
            return None, table.unknown_success, []
    return None, catalog.for_http_status(http_status, bodiless=bodiless), []


def _verdict_word(judged: _Judged) -> str:
    return "success: " if judged.ok else "failure: "


def _other_failures(judged: list[_Judged], chosen: _Judged) -> list[str]:
    """The other vendor codes that fail with another canonical code, for ``detail`` (a
    Fault around an MM7 error, or its HTTP status, is how the error is sent: not named)."""
    assert chosen.canonical is not None
    return [
        j.placed()
        for j in judged
        if j is not chosen
        and j.ok is False
        and j.rank <= _HEADER_CODE
        and j.canonical is not None
        and j.canonical.name != chosen.canonical.name
    ]


def _message(reply: VendorReply, code: _Judged | None) -> str | None:
    if code is not None and code.signal is not None:
        return code.signal.message or (code.entry.text if code.entry else None)
    return reply.message


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


def _detail(  # noqa: PLR0917 - the facts the sentence is made of
    vendor: str,
    reply: VendorReply,
    code: _Judged | None,
    message: str | None,
    http_status: int,
    chosen: _Judged | None,
) -> str:
    if code is not None and code.signal is not None:
        text = f"{vendor} status {_shown(code.signal)}"
        text += " (from a status header)" if code.rank == _HEADER_CODE else ""
        text += f": {message}" if message else ""
        return text + (f" ({reply.details})" if reply.details else "")
    if chosen is not None and chosen.rank == _FAULT and chosen.signal is not None:
        fault = chosen.signal.value
        return f"{vendor} SOAP fault {fault}" + (f": {message}" if message else "")
    if reply.fault_code is not None:
        return f"{vendor} SOAP fault {reply.fault_code}" + (f": {message}" if message else "")
    what = _BODY_WORDS.get(reply.body_kind, "no status code").format(vendor=vendor)
    return f"The gateway answered HTTP {http_status} with {what}."
