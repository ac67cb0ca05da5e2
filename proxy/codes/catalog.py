"""The code catalog: canonical codes, vendor codes and fallbacks, loaded from YAML.

The catalog is data (``config/codes.yaml``); this module only loads, validates and
indexes it once at start-up so that classification is a few dict look-ups. It is checked
as strictly as the config (proxy.config.loading): known keys only, real booleans and integers,
every reference resolved, every failure kind mapped, and the codes the proxy falls back
to declared. ``load_catalog`` raises ``CatalogError`` with one ``file: key: reason``
line per problem.
"""

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from proxy.config.loading import Checker, LoadError, read_yaml
from proxy.inbound.tables import InboundTables, read_inbound_tables
from proxy.vocab import CATEGORIES, FAILURE_KINDS, VENDOR_NAMES, Category, FailureKind


class CatalogError(LoadError):
    """The catalog file is invalid; ``errors`` holds one ``file: key: reason`` per problem."""


@dataclass(frozen=True, slots=True)
class CanonicalCode:
    """A vendor-neutral code: what apps switch on."""

    name: str
    status: int
    retryable: bool
    category: Category
    title: str
    type: str

    @property
    def ok(self) -> bool:
        return self.category == "success"


@dataclass(frozen=True, slots=True)
class MessageRule:
    pattern: re.Pattern[str]
    canonical: CanonicalCode


@dataclass(frozen=True, slots=True)
class VendorCode:
    """One gateway code and what it means."""

    code: str
    canonical: CanonicalCode
    text: str
    rules: tuple[MessageRule, ...] = ()

    def resolve(self, message: str | None) -> CanonicalCode:
        """The canonical code, refined by the first message rule that matches."""
        if message:
            for rule in self.rules:
                if rule.pattern.search(message):
                    return rule.canonical
        return self.canonical


@dataclass(frozen=True, slots=True)
class VendorTable:
    name: str
    codes: Mapping[str, VendorCode]
    class_fallbacks: Mapping[str, str]  # mm7: leading digit (or "default") -> code
    fault_codes: Mapping[str, CanonicalCode]  # mm7: lower-cased faultcode -> canonical
    unknown: CanonicalCode  # a code outside the table (and, for MM7, no integer at all)
    unknown_success: CanonicalCode | None  # moms: ... when status="success"
    generic_faults: frozenset[str] = frozenset()  # mm7: lower-cased Client, Server, ...
    specific_http: frozenset[int] = frozenset()  # statuses that beat a generic faultcode
    code_headers: tuple[str, ...] = ()  # headers carrying a vendor status code
    status_headers: tuple[str, ...] = ()  # headers carrying a status word or HTTP status
    success_status: frozenset[str] = frozenset()  # lower-cased status words meaning success
    namespaces: frozenset[str] = frozenset()  # mm7: the namespaces its elements count in


@dataclass(frozen=True, slots=True)
class Catalog:
    type_base: str
    canonical: Mapping[str, CanonicalCode]
    vendors: Mapping[str, VendorTable]
    http: Mapping[str, CanonicalCode]  # "404", "4xx", "default"
    transport: Mapping[FailureKind, CanonicalCode]
    source: str
    # What a reply whose signals disagree on success becomes (never ok, never retryable).
    conflict: CanonicalCode
    # HTTP statuses with which a Retry-After makes an error retryable.
    retry_after_statuses: frozenset[int]
    # Delivery statuses and what relays' MMStatus words mean (inbound callbacks).
    inbound: InboundTables
    # Canonical code names: the gateway's throttling answers (paused and resent on a
    # rate-limited route), and the outcomes that count against an endpoint's circuit.
    throttling: frozenset[str] = frozenset()
    circuit_failures: frozenset[str] = frozenset()

    def __getitem__(self, name: str) -> CanonicalCode:
        return self.canonical[name]

    def for_http_status(self, status: int, *, bodiless: bool = False) -> CanonicalCode:
        """The HTTP fallback: an exact status, else its class, else ``default``.

        ``bodiless`` answers (HEAD, 204, 304) with a 2xx/3xx status use ``no_body``.
        """
        if bodiless and 200 <= status < 400 and "no_body" in self.http:
            return self.http["no_body"]
        return (
            self.http.get(str(status))
            or self.http.get(f"{status // 100}xx")
            or self.http["default"]
        )


def builtin_catalog_path() -> Path:
    """The catalog shipped with the proxy: the wheel's copy, else the source tree's."""
    packaged = resources.files("proxy").joinpath("codes.yaml")
    if packaged.is_file():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "config" / "codes.yaml"


def load_catalog(path: str | os.PathLike[str] | None = None) -> Catalog:
    """Load and validate a catalog file (default: the built-in one)."""
    source = Path(path) if path is not None else builtin_catalog_path()
    return parse_catalog(read_yaml(source, CatalogError), source=str(source))


def parse_catalog(data: Any, *, source: str = "<catalog>") -> Catalog:
    """Build a ``Catalog`` from loaded YAML. Raises ``CatalogError`` listing every problem."""
    catalog = _Parser(source).catalog(data)
    if catalog is None:  # only when the parser recorded why
        raise CatalogError([f"{source}: (root): not a catalog"])
    return catalog


_TOP = {
    "version", "type_base", "canonical", "vendors", "http", "transport", "conflict",
    "retry_after_statuses", "delivery_statuses", "inbound", "throttling", "circuit_failures",
}  # fmt: skip
_VENDOR = {
    "codes", "class_fallbacks", "fault_codes", "unknown", "unknown_success",
    "generic_fault_codes", "specific_http_statuses", "code_headers", "status_headers",
    "success_status", "namespaces",
}  # fmt: skip
_HTTP_KEY = re.compile(r"[1-5](?:[0-9]{2}|xx)|default|no_body")
# Stands in for a reference that did not resolve, so that checking can go on.
_MISSING = CanonicalCode("(missing)", 502, False, "upstream", "(missing)", "")


class _Parser(Checker):
    """Walks the raw YAML, building the typed catalog and collecting every problem."""

    def catalog(self, data: Any) -> Catalog | None:
        top = self.mapping("", data, allowed=_TOP, required=("canonical", "vendors", "http"))
        if top is None:
            self.raise_if_any(CatalogError)
            return None
        type_base = self.text("type_base", top.get("type_base", "urn:gateway-proxy:problem:"))
        self.canonical = self.canonical_codes(top.get("canonical"), type_base or "")
        vendors = self.mapping("vendors", top.get("vendors"), allowed=VENDOR_NAMES) or {}
        tables: dict[str, VendorTable] = {n: self.vendor(n, vendors.get(n)) for n in VENDOR_NAMES}
        http = self.http(top.get("http"))
        transport = self.transport(top.get("transport"))
        conflict = self.ref("conflict", top.get("conflict"))
        if conflict.ok or conflict.retryable:
            self.add("conflict", f"{conflict.name} must be neither a success nor retryable")
        retry_after = self.statuses("retry_after_statuses", top.get("retry_after_statuses", []))
        throttling = self.code_names("throttling", top.get("throttling"))
        circuit_failures = self.code_names("circuit_failures", top.get("circuit_failures"))
        for name in sorted(throttling & circuit_failures):
            self.add("circuit_failures", f"{name} is throttling, which never counts")
        for name in sorted(throttling):
            if self.canonical[name].ok:
                self.add("throttling", f"{name} is a success, not throttling")
        inbound = read_inbound_tables(self, top)
        self.raise_if_any(CatalogError)
        if inbound is None:  # pragma: no cover - None comes only with a recorded problem
            raise CatalogError([f"{self.source}: inbound: cannot be read"])
        return Catalog(
            type_base=type_base or "",
            canonical=self.canonical,
            vendors=tables,
            http=http,
            transport=transport,
            source=self.source,
            conflict=conflict,
            retry_after_statuses=retry_after,
            inbound=inbound,
            throttling=throttling,
            circuit_failures=circuit_failures,
        )

    def canonical_codes(self, value: Any, type_base: str) -> dict[str, CanonicalCode]:
        codes: dict[str, CanonicalCode] = {}
        required = ("status", "retryable", "category", "title")
        allowed = {*required, "type"}
        for name, spec in (self.mapping("canonical", value) or {}).items():
            key = f"canonical.{name}"
            raw = self.mapping(key, spec, allowed=allowed, required=required) or {}
            status = self.integer(f"{key}.status", raw.get("status"), 100, 599)
            retryable = self.boolean(f"{key}.retryable", raw.get("retryable"))
            category = self.choice(f"{key}.category", raw.get("category"), CATEGORIES)
            title = self.text(f"{key}.title", raw.get("title"))
            kind = self.text(f"{key}.type", raw["type"]) if "type" in raw else None
            # An invalid entry still resolves references (its own error is enough).
            codes[name] = CanonicalCode(
                name,
                status or 502,
                bool(retryable),
                category or "upstream",
                title or name,
                kind or f"{type_base}{name}",
            )
        return codes

    def ref(self, key: str, name: Any) -> CanonicalCode:
        """The canonical code named ``name``; a problem (and a stand-in) if there is none."""
        if not isinstance(name, str) or name not in self.canonical:
            self.add(key, f"unknown canonical code {name!r}")
            return _MISSING
        return self.canonical[name]

    def vendor(self, vendor: str, value: Any) -> VendorTable:
        where = f"vendors.{vendor}"
        spec = self.mapping(where, value, allowed=_VENDOR, required=("codes", "unknown")) or {}
        codes = self.vendor_codes(where, spec.get("codes"))
        fallbacks = self.mapping(f"{where}.class_fallbacks", spec.get("class_fallbacks", {}))
        for digit, target in (fallbacks or {}).items():
            if not isinstance(target, str) or target not in codes:
                self.add(f"{where}.class_fallbacks.{digit}", f"unknown code {target!r}")
        if fallbacks and "default" not in fallbacks:
            self.add(f"{where}.class_fallbacks.default", "is required with class fallbacks")
        faults = {
            str(k).lower(): self.ref(f"{where}.fault_codes.{k}", v)
            for k, v in (
                self.mapping(f"{where}.fault_codes", spec.get("fault_codes", {})) or {}
            ).items()
        }
        generic = self.strings(f"{where}.generic_fault_codes", spec.get("generic_fault_codes", []))
        for name in generic or ():
            if name.lower() not in faults:
                self.add(f"{where}.generic_fault_codes", f"{name!r} is not in fault_codes")
        words = self.strings(f"{where}.success_status", spec.get("success_status", [])) or ()
        namespaces = self.strings(f"{where}.namespaces", spec.get("namespaces", [])) or ()
        for uri in namespaces:
            if ":" not in uri or uri != uri.strip():
                self.add(f"{where}.namespaces", f"{uri!r} is not a namespace URI")
        return VendorTable(
            name=vendor,
            codes=codes,
            class_fallbacks={str(k): str(v) for k, v in (fallbacks or {}).items()},
            fault_codes=faults,
            unknown=self.ref(f"{where}.unknown", spec.get("unknown")),
            unknown_success=self.ref(f"{where}.unknown_success", spec["unknown_success"])
            if "unknown_success" in spec
            else None,
            generic_faults=frozenset(name.lower() for name in generic or ()),
            specific_http=self.statuses(
                f"{where}.specific_http_statuses", spec.get("specific_http_statuses", [])
            ),
            code_headers=self.strings(f"{where}.code_headers", spec.get("code_headers", [])) or (),
            status_headers=self.strings(f"{where}.status_headers", spec.get("status_headers", []))
            or (),
            success_status=frozenset(word.lower() for word in words),
            namespaces=frozenset(namespaces),
        )

    def vendor_codes(self, where: str, value: Any) -> dict[str, VendorCode]:
        codes: dict[str, VendorCode] = {}
        for code, entry in (self.mapping(f"{where}.codes", value) or {}).items():
            key = f"{where}.codes.{code}"
            raw = (
                self.mapping(
                    key,
                    entry,
                    allowed={"canonical", "text", "rules"},
                    required=("canonical", "text"),
                )
                or {}
            )
            text = self.text(f"{key}.text", raw.get("text"))
            rules = [
                self.rule(f"{key}.rules[{i}]", r)
                for i, r in enumerate(self.items(f"{key}.rules", raw.get("rules", [])))
            ]
            codes[code] = VendorCode(
                code=code,
                canonical=self.ref(f"{key}.canonical", raw.get("canonical")),
                text=text or "",
                rules=tuple(r for r in rules if r is not None),
            )
        return codes

    def items(self, key: str, value: Any) -> list[Any]:
        if not isinstance(value, list):
            self.add(key, "must be a list")
            return []
        return value

    def rule(self, key: str, value: Any) -> MessageRule | None:
        raw = self.mapping(
            key, value, allowed={"match", "canonical"}, required=("match", "canonical")
        )
        match = self.text(f"{key}.match", (raw or {}).get("match"))
        if raw is None or match is None:
            return None
        try:
            pattern = re.compile(match, re.IGNORECASE)
        except re.error as exc:
            self.add(f"{key}.match", f"not a valid regular expression ({exc})")
            return None
        return MessageRule(pattern, self.ref(f"{key}.canonical", raw.get("canonical")))

    def http(self, value: Any) -> dict[str, CanonicalCode]:
        raw = self.mapping("http", value, required=("default",)) or {}
        http: dict[str, CanonicalCode] = {}
        for key, name in raw.items():
            if not _HTTP_KEY.fullmatch(key):
                self.add(f"http.{key}", "must be a status (404), a class (4xx), default or no_body")
            http[key] = self.ref(f"http.{key}", name)
        return http

    def transport(self, value: Any) -> dict[FailureKind, CanonicalCode]:
        raw = self.mapping("transport", value, allowed=FAILURE_KINDS, required=FAILURE_KINDS)
        return {
            kind: self.ref(f"transport.{kind}", (raw or {}).get(kind))
            for kind in FAILURE_KINDS
            if kind in (raw or {})
        }

    def code_names(self, key: str, value: Any) -> frozenset[str]:
        """A required list of canonical code names (each must exist)."""
        if value is None:
            self.add(key, "is required (a list of canonical codes)")
            return frozenset()
        names = [self.ref(f"{key}[{i}]", v).name for i, v in enumerate(self.items(key, value))]
        return frozenset(n for n in names if n in self.canonical)

    def statuses(self, key: str, value: Any) -> frozenset[int]:
        items = self.items(key, value)
        good = [self.integer(f"{key}[{i}]", v, 100, 599) for i, v in enumerate(items)]
        return frozenset(v for v in good if v is not None)
