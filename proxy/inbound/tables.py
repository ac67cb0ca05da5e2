"""The inbound status tables: ``delivery_statuses`` and ``inbound`` of ``config/codes.yaml``.

Data, not code: maintainers change what a relay's MMStatus means in the YAML alone. This
module reads the two sections from the **already-parsed** catalog document (the catalog
loader reads the file once) and validates them strictly with the shared ``Checker``:
unknown keys are refused, every reference must name a status, and two words that differ
only in case are refused (words are matched case-insensitively). Problems are
``key: reason`` lines, prefixed by the file.

Two vendors, two shapes: ``inbound.mm7`` maps each report's MMStatus words to a status
(``delivery_report``, ``read_reply``); ``inbound.moms`` maps the ``event`` words of
Mogreet's incoming-message POST to the event the app gets (``events``: ``message``,
``opt_out`` or ``opt_in``), with what a POST without an ``event`` (``missing``) and with a
word outside the table (``unknown``) become.

``read_inbound_tables(checker, data)`` records problems into a caller's ``Checker`` (the
catalog's own, so one ``CatalogError`` lists them all); ``parse_inbound_tables(data)``
is the same on its own, raising ``InboundTablesError``.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from proxy.config.loading import Checker, LoadError
from proxy.vocab import MOMS_EVENTS, VENDOR_NAMES, MomsEvent

#: The two reports whose words map to a status (``inbound.<vendor>.<report>``).
ReportKind = Literal["delivery_report", "read_reply"]
REPORT_KINDS: tuple[ReportKind, ...] = get_args(ReportKind)


class InboundTablesError(LoadError):
    """The inbound sections are invalid; ``errors`` holds one ``file: key: reason`` each."""


@dataclass(frozen=True, slots=True)
class DeliveryStatus:
    """A canonical status of a delivery report or read reply."""

    name: str
    final: bool
    title: str


@dataclass(frozen=True, slots=True)
class Resolution:
    """What one vendor word means: its canonical status, whether final, whether known."""

    status: DeliveryStatus
    final: bool
    known: bool


@dataclass(frozen=True, slots=True)
class StatusMap:
    """One report's words (case-folded) → statuses, and what any other word becomes."""

    words: Mapping[str, DeliveryStatus]
    unknown: DeliveryStatus
    unknown_final: bool

    def resolve(self, word: str) -> Resolution:
        """The status of ``word``, matched case-insensitively and without padding."""
        status = self.words.get(word.strip().casefold())
        if status is None:
            return Resolution(self.unknown, self.unknown_final, known=False)
        return Resolution(status, status.final, known=True)


@dataclass(frozen=True, slots=True)
class EventResolution:
    """What a Mogreet ``event`` word means: the event, and whether the word is known."""

    event: MomsEvent
    known: bool


@dataclass(frozen=True, slots=True)
class EventMap:
    """Mogreet's ``event`` words (case-folded) → events; a missing and an unknown word."""

    words: Mapping[str, MomsEvent]
    missing: MomsEvent
    unknown: MomsEvent

    def resolve(self, word: str | None) -> EventResolution:
        """The event of ``word`` (None: the POST carried no ``event``), ignoring case."""
        if word is None or not word.strip():
            return EventResolution(self.missing, known=True)
        event = self.words.get(word.strip().casefold())
        return (
            EventResolution(self.unknown, False) if event is None else EventResolution(event, True)
        )


@dataclass(frozen=True, slots=True)
class InboundTables:
    """``delivery_statuses`` by name, MM7's maps by report kind, Mogreet's event words."""

    statuses: Mapping[str, DeliveryStatus]
    vendors: Mapping[str, Mapping[ReportKind, StatusMap]]
    moms: EventMap

    def resolve(self, vendor: str, report: ReportKind, word: str) -> Resolution:
        """What ``vendor``'s ``word`` means in a ``report``."""
        return self.vendors[vendor][report].resolve(word)


def parse_inbound_tables(data: Any, *, source: str = "<catalog>") -> InboundTables:
    """The inbound tables of a parsed catalog document; raises ``InboundTablesError``."""
    checker = Checker(source)
    tables = read_inbound_tables(checker, data)
    checker.raise_if_any(InboundTablesError)
    if tables is None:  # pragma: no cover - None comes only with a recorded problem
        raise InboundTablesError([f"{source}: inbound: cannot be read"])
    return tables


def read_inbound_tables(checker: Checker, data: Any) -> InboundTables | None:
    """The inbound tables, or None with every problem recorded in ``checker``.

    ``data`` is the whole catalog document; only its ``delivery_statuses`` and
    ``inbound`` keys are read (the rest is the catalog's business).
    """
    top = checker.mapping("", data) or {}
    for key in ("delivery_statuses", "inbound"):
        if key not in top:
            checker.add(key, "is required")
    errors = len(checker.errors)
    statuses = _statuses(checker, top.get("delivery_statuses", {}))
    inbound = checker.mapping("inbound", top.get("inbound", {}), allowed=VENDOR_NAMES) or {}
    for vendor in VENDOR_NAMES:
        if vendor not in inbound:
            checker.add(f"inbound.{vendor}", "is required")
    vendors = (
        {"mm7": _vendor(checker, "inbound.mm7", inbound["mm7"], statuses)}
        if ("mm7" in inbound)
        else {}
    )
    moms = _events(checker, "inbound.moms", inbound["moms"]) if "moms" in inbound else None
    if len(checker.errors) > errors or "mm7" not in vendors or moms is None:
        return None
    return InboundTables(statuses, vendors, moms)


def _events(checker: Checker, where: str, value: Any) -> EventMap:
    keys = ("events", "missing", "unknown")
    spec = checker.mapping(where, value, allowed=keys, required=keys) or {}
    words: dict[str, MomsEvent] = {}
    spellings: dict[str, str] = {}
    for word, target in (checker.mapping(f"{where}.events", spec.get("events")) or {}).items():
        key = f"{where}.events.{word}"
        folded = word.strip().casefold()
        if not folded:
            checker.add(key, "an event word must not be empty")
        elif folded in spellings:
            checker.add(key, f"the same word as {spellings[folded]!r} (words ignore case)")
        spellings.setdefault(folded, word)
        words[folded] = _event(checker, key, target)
    missing = _event(checker, f"{where}.missing", spec.get("missing"))
    return EventMap(words, missing, _event(checker, f"{where}.unknown", spec.get("unknown")))


def _event(checker: Checker, key: str, value: Any) -> MomsEvent:
    # An absent key is reported once, as required; a stand-in lets checking go on.
    return (checker.choice(key, value, MOMS_EVENTS) if value is not None else None) or "message"


def _statuses(checker: Checker, value: Any) -> dict[str, DeliveryStatus]:
    statuses: dict[str, DeliveryStatus] = {}
    for name, spec in (checker.mapping("delivery_statuses", value) or {}).items():
        key = f"delivery_statuses.{name}"
        if not name.isupper() or not name.replace("_", "").isalpha():
            checker.add(key, "a status name is UPPER_CASE letters and underscores")
        raw = checker.mapping(key, spec, allowed={"final", "title"}, required=("final", "title"))
        raw = raw or {}
        final = checker.boolean(f"{key}.final", raw.get("final"))
        title = checker.text(f"{key}.title", raw.get("title"))
        statuses[name] = DeliveryStatus(name, bool(final), title or name)
    if not statuses:
        checker.add("delivery_statuses", "must name at least one status")
    return statuses


def _vendor(
    checker: Checker, where: str, value: Any, statuses: Mapping[str, DeliveryStatus]
) -> dict[ReportKind, StatusMap]:
    spec = checker.mapping(where, value, allowed=REPORT_KINDS, required=REPORT_KINDS) or {}
    maps: dict[ReportKind, StatusMap] = {}
    for report in REPORT_KINDS:
        if report in spec:
            maps[report] = _status_map(checker, f"{where}.{report}", spec[report], statuses)
    return maps


def _status_map(
    checker: Checker, where: str, value: Any, statuses: Mapping[str, DeliveryStatus]
) -> StatusMap:
    spec = checker.mapping(
        where, value, allowed={"statuses", "unknown"}, required=("statuses", "unknown")
    )
    spec = spec or {}
    words: dict[str, DeliveryStatus] = {}
    spellings: dict[str, str] = {}
    for word, target in (checker.mapping(f"{where}.statuses", spec.get("statuses")) or {}).items():
        key = f"{where}.statuses.{word}"
        folded = word.strip().casefold()
        if not folded:
            checker.add(key, "a vendor word must not be empty")
        elif folded in spellings:
            checker.add(key, f"the same word as {spellings[folded]!r} (words ignore case)")
        spellings.setdefault(folded, word)
        words[folded] = _ref(checker, key, target, statuses)
    unknown = checker.mapping(
        f"{where}.unknown",
        spec.get("unknown"),
        allowed={"status", "final"},
        required=("status", "final"),
    )
    unknown = unknown or {}
    fallback = _ref(checker, f"{where}.unknown.status", unknown.get("status"), statuses)
    final = checker.boolean(f"{where}.unknown.final", unknown.get("final"))
    return StatusMap(words, fallback, bool(final))


def _ref(
    checker: Checker, key: str, name: Any, statuses: Mapping[str, DeliveryStatus]
) -> DeliveryStatus:
    if isinstance(name, str) and name in statuses:
        return statuses[name]
    checker.add(key, f"unknown status {name!r} (not in delivery_statuses)")
    return DeliveryStatus("INDETERMINATE", False, "(missing)")


__all__ = [
    "REPORT_KINDS",
    "DeliveryStatus",
    "EventMap",
    "EventResolution",
    "InboundTables",
    "InboundTablesError",
    "ReportKind",
    "Resolution",
    "StatusMap",
    "parse_inbound_tables",
    "read_inbound_tables",
]
