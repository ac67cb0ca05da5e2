"""The code catalog: canonical codes, vendor codes and fallbacks, loaded from YAML.

The catalog is data (``config/codes.yaml``); this module only loads, validates and
indexes it once at start-up so that classification is a few dict look-ups.
``load_catalog`` raises ``CatalogError`` with ``file: key: reason`` lines.
"""

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal, cast, get_args

import yaml

from proxy.vendors.base import VENDOR_NAMES

Category = Literal["success", "client", "auth", "recipient", "content", "upstream", "network"]
CATEGORIES: tuple[Category, ...] = get_args(Category)
TransportKind = Literal[
    "connect", "timeout", "connection_lost", "too_large", "unparseable",
    "request_too_large", "route_not_found", "bad_request", "internal", "client_closed",
]  # fmt: skip
TRANSPORT_KINDS: tuple[TransportKind, ...] = get_args(TransportKind)


class CatalogError(Exception):
    """The catalog file is invalid; ``errors`` holds one ``file: key: reason`` per problem."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


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
    unknown: CanonicalCode | None  # moms: a code outside the table
    unknown_success: CanonicalCode | None  # moms: ... when status="success"
    generic_faults: frozenset[str] = frozenset()  # mm7: lower-cased Client, Server, ...
    specific_http: frozenset[int] = frozenset()  # statuses that beat a generic faultcode
    code_headers: tuple[str, ...] = ()  # headers carrying a vendor status code
    status_headers: tuple[str, ...] = ()  # headers carrying a status word or HTTP status
    success_status: frozenset[str] = frozenset()  # lower-cased status words meaning success


@dataclass(frozen=True, slots=True)
class Catalog:
    type_base: str
    canonical: Mapping[str, CanonicalCode]
    vendors: Mapping[str, VendorTable]
    http: Mapping[str, CanonicalCode]  # "404", "4xx", "default"
    transport: Mapping[TransportKind, CanonicalCode]
    source: str
    # What a reply whose signals disagree on success becomes (never ok, never retryable).
    conflict: CanonicalCode
    # HTTP statuses with which a Retry-After makes an error retryable.
    retry_after_statuses: frozenset[int]

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
    return Path(__file__).resolve().parent.parent / "config" / "codes.yaml"


def load_catalog(path: str | os.PathLike[str] | None = None) -> Catalog:
    """Load and validate a catalog file (default: the built-in one)."""
    source = Path(path) if path is not None else builtin_catalog_path()
    try:
        data = yaml.safe_load(source.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogError([f"{source}: cannot load: {exc}"]) from None
    return parse_catalog(data, source=str(source))


def parse_catalog(data: Any, *, source: str = "<catalog>") -> Catalog:
    """Build a ``Catalog`` from loaded YAML. Raises ``CatalogError`` listing every problem."""
    errors: list[str] = []

    def err(key: str, reason: str) -> None:
        errors.append(f"{source}: {key}: {reason}")

    if not isinstance(data, dict):
        raise CatalogError([f"{source}: (root): must be a mapping"])
    type_base = str(data.get("type_base", "urn:gateway-proxy:problem:"))
    canonical: dict[str, CanonicalCode] = {}
    for name, spec in (data.get("canonical") or {}).items():
        try:
            category = spec["category"]
            if category not in CATEGORIES:
                err(f"canonical.{name}.category", f"must be one of {', '.join(CATEGORIES)}")
            canonical[name] = CanonicalCode(
                name=name,
                status=int(spec["status"]),
                retryable=bool(spec["retryable"]),
                category=cast(Category, category),
                title=str(spec["title"]),
                type=str(spec.get("type") or f"{type_base}{name}"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            err(f"canonical.{name}", f"needs status, retryable, category and title ({exc})")

    def ref(key: str, name: object) -> CanonicalCode:
        if name not in canonical:
            err(key, f"unknown canonical code {name!r}")
            return CanonicalCode("UNKNOWN_CODE", 502, False, "upstream", "Unknown", "")
        return canonical[name]

    vendors: dict[str, VendorTable] = {}
    for vendor in VENDOR_NAMES:
        spec = (data.get("vendors") or {}).get(vendor)
        if not isinstance(spec, dict):
            err(f"vendors.{vendor}", "is required")
            continue
        codes: dict[str, VendorCode] = {}
        for code, entry in (spec.get("codes") or {}).items():
            key = f"vendors.{vendor}.codes.{code}"
            rules = []
            for i, rule in enumerate(entry.get("rules") or ()):
                try:
                    pattern = re.compile(str(rule["match"]), re.IGNORECASE)
                except (KeyError, re.error) as exc:
                    err(f"{key}.rules[{i}]", f"needs a valid regex in 'match' ({exc})")
                    continue
                rules.append(MessageRule(pattern, ref(f"{key}.rules[{i}]", rule.get("canonical"))))
            codes[str(code)] = VendorCode(
                code=str(code),
                canonical=ref(f"{key}.canonical", entry.get("canonical")),
                text=str(entry.get("text", "")),
                rules=tuple(rules),
            )
        fallbacks = {str(k): str(v) for k, v in (spec.get("class_fallbacks") or {}).items()}
        for digit, target in fallbacks.items():
            if target not in codes:
                err(f"vendors.{vendor}.class_fallbacks.{digit}", f"unknown code {target!r}")
        faults = {
            str(k).lower(): ref(f"vendors.{vendor}.fault_codes.{k}", v)
            for k, v in (spec.get("fault_codes") or {}).items()
        }
        generic = _strings(err, spec, f"vendors.{vendor}", "generic_fault_codes")
        for name in generic:
            if name.lower() not in faults:
                err(f"vendors.{vendor}.generic_fault_codes", f"{name!r} is not in fault_codes")
        vendors[vendor] = VendorTable(
            name=vendor,
            codes=codes,
            class_fallbacks=fallbacks,
            fault_codes=faults,
            generic_faults=frozenset(name.lower() for name in generic),
            specific_http=_statuses(err, spec, f"vendors.{vendor}", "specific_http_statuses"),
            code_headers=_strings(err, spec, f"vendors.{vendor}", "code_headers"),
            status_headers=_strings(err, spec, f"vendors.{vendor}", "status_headers"),
            success_status=frozenset(
                w.lower() for w in _strings(err, spec, f"vendors.{vendor}", "success_status")
            ),
            unknown=ref(f"vendors.{vendor}.unknown", spec["unknown"])
            if "unknown" in spec
            else None,
            unknown_success=ref(f"vendors.{vendor}.unknown_success", spec["unknown_success"])
            if "unknown_success" in spec
            else None,
        )

    http = {str(k): ref(f"http.{k}", v) for k, v in (data.get("http") or {}).items()}
    if "default" not in http:
        err("http.default", "is required")
    raw_transport = data.get("transport") or {}
    transport: dict[TransportKind, CanonicalCode] = {}
    for kind in TRANSPORT_KINDS:
        if kind not in raw_transport:
            err(f"transport.{kind}", "is required")
        else:
            transport[kind] = ref(f"transport.{kind}", raw_transport[kind])
    conflict = ref("conflict", data.get("conflict"))
    if conflict.ok or conflict.retryable:
        err("conflict", f"{conflict.name} must be a code that is neither success nor retryable")
    retry_after = _statuses(err, data, "", "retry_after_statuses")
    if errors:
        raise CatalogError(errors)
    return Catalog(
        type_base=type_base,
        canonical=canonical,
        vendors=vendors,
        http=http,
        transport=transport,
        source=source,
        conflict=conflict,
        retry_after_statuses=retry_after,
    )


def _strings(
    err: Callable[[str, str], None], spec: Mapping[str, Any], where: str, key: str
) -> tuple[str, ...]:
    """An optional list of non-empty strings at ``spec[key]``."""
    value = spec.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        err(f"{where}.{key}".lstrip("."), "must be a list of non-empty strings")
        return ()
    return tuple(value)


def _statuses(
    err: Callable[[str, str], None], spec: Mapping[str, Any], where: str, key: str
) -> frozenset[int]:
    """An optional list of HTTP statuses (100-599) at ``spec[key]``."""
    value = spec.get(key, [])
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) and 100 <= v <= 599 for v in value
    ):
        err(f"{where}.{key}".lstrip("."), "must be a list of HTTP statuses (100-599)")
        return frozenset()
    return frozenset(value)
