"""The vendor codes the simulator can produce: its own table, ``vendor_codes.yaml``.

The simulator is the end-to-end tests' oracle, so it shares nothing with the proxy: this
table is written from the vendors' pages, not read from the proxy's catalog, and the
vendor names are the simulator's own ``SimVendor``. ``load_sim_codes`` reads and checks
the table strictly (unknown keys refused) and raises ``CodesError`` with one
``file: key: reason`` line per problem. Per vendor it keeps code → status text; for MM7
also the answer's layout (``Mm7Layout``: HTTP status, Rsp or Fault, the faultcode), and a
layout by class for codes outside the table.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, assert_never, cast, get_args

from proxy.tools.sim.datafile import Checker, SimDataError, join_key, read_yaml
from proxy.vocab import VENDOR_NAMES, VendorName

SimVendor = VendorName  # the shared vocabulary (proxy.vocab), never retyped
SIM_VENDORS: tuple[SimVendor, ...] = VENDOR_NAMES
ReplyLayout = Literal["rsp", "fault"]
FaultSide = Literal["Client", "Server"]

_LAYOUT_KEYS = ("http", "reply", "faultcode")
_UNLISTED_KEYS = (*"123456789", "default")


class CodesError(SimDataError):
    """The simulator's code table is invalid (one ``file: key: reason`` per problem)."""


@dataclass(frozen=True, slots=True)
class Mm7Layout:
    """How the relay answers one MM7 code: HTTP status, Rsp or Fault, and its faultcode.

    ``faultcode`` is set exactly when ``reply`` is ``"fault"``.
    """

    http: int
    reply: ReplyLayout
    faultcode: FaultSide | None = None


@dataclass(frozen=True, slots=True)
class SimCodes:
    """Code → the vendor's status text per vendor, and the MM7 answers' layouts."""

    mm7: Mapping[str, str]
    moms: Mapping[str, str]
    mm7_layouts: Mapping[str, Mm7Layout]  # the same codes as ``mm7``
    mm7_unlisted: Mapping[str, Mm7Layout]  # "1".."9" (a code's class) and "default"

    def table(self, vendor: SimVendor) -> Mapping[str, str]:
        """The codes of ``vendor``. Any other name fails loudly (``AssertionError``)."""
        match vendor:
            case "mm7":
                return self.mm7
            case "moms":
                return self.moms
            case _:
                assert_never(vendor)

    def text(self, vendor: SimVendor, code: str) -> str:
        """The status text for ``code``; a code outside the table gets a neutral text."""
        return self.table(vendor).get(code) or "Simulated status"

    def layout(self, code: str) -> Mm7Layout:
        """The MM7 layout of ``code``: its own, else its class's, else the default."""
        if code in self.mm7_layouts:
            return self.mm7_layouts[code]
        digit = code[0] if len(code) == 4 else "default"
        return self.mm7_unlisted.get(digit) or self.mm7_unlisted["default"]


def builtin_path() -> Path:
    """Where the built-in table is (``proxy/tools/sim/vendor_codes.yaml``, shipped in the wheel)."""
    return Path(str(resources.files("proxy.tools.sim").joinpath("vendor_codes.yaml")))


def load_sim_codes(path: str | os.PathLike[str] | None = None) -> SimCodes:
    """Load and check the table at ``path`` (default: the built-in one). Raises ``CodesError``."""
    file = builtin_path() if path is None else Path(path)
    return parse_sim_codes(read_yaml(file, CodesError), source=str(file))


def parse_sim_codes(data: Any, *, source: str = "<codes>") -> SimCodes:
    """Build ``SimCodes`` from loaded YAML (see ``vendor_codes.yaml``). Raises ``CodesError``."""
    check = Checker(source)
    root = check.mapping(
        "", data, allowed=("version", *SIM_VENDORS), required=("version", *SIM_VENDORS)
    )
    root = root or {}
    if "version" in root and root["version"] != 1:
        check.add("version", f"{root['version']!r}: only version 1 is known")
    mm7 = _section(check, root, "mm7", ("codes", "unlisted"))
    moms = _section(check, root, "moms", ("codes",))
    texts: dict[str, str] = {}
    layouts: dict[str, Mm7Layout] = {}
    mm7_entries = _code_entries(check, "mm7.codes", mm7["codes"], _LAYOUT_KEYS) if mm7 else []
    for key, code, entry in mm7_entries:
        text = check.text(join_key(key, "text"), entry.get("text"))
        layout = _layout(check, key, entry)
        if text is not None and layout is not None:
            texts[code], layouts[code] = text, layout
    moms_texts: dict[str, str] = {}
    moms_entries = _code_entries(check, "moms.codes", moms["codes"], ()) if moms else []
    for key, code, entry in moms_entries:
        text = check.text(join_key(key, "text"), entry.get("text"))
        if text is not None:
            moms_texts[code] = text
    unlisted = _unlisted(check, mm7["unlisted"]) if mm7 else {}
    check.raise_if_any(CodesError)
    return SimCodes(
        mm7=MappingProxyType(texts),
        moms=MappingProxyType(moms_texts),
        mm7_layouts=MappingProxyType(layouts),
        mm7_unlisted=MappingProxyType(unlisted),
    )


def _section(
    check: Checker, root: Mapping[str, Any], vendor: SimVendor, keys: tuple[str, ...]
) -> Mapping[str, Any]:
    """The ``vendor`` section when it has all ``keys``, else {} (the problem is reported)."""
    if vendor not in root:
        return {}
    section = check.mapping(vendor, root[vendor], allowed=keys, required=keys)
    return section if section is not None and all(k in section for k in keys) else {}


def _code_entries(
    check: Checker, key: str, raw: Any, extra: tuple[str, ...]
) -> list[tuple[str, str, Mapping[str, Any]]]:
    """(key, code, entry) for each well-formed ``"<code>": {text, ...}`` of a codes table."""
    table = check.mapping(key, raw)
    if not table:
        if table is not None:
            check.add(key, "must list at least one code")
        return []
    entries = []
    for code, value in table.items():
        code_key = f'{key}."{code}"'
        if not code.isdigit() or str(int(code)) != code:
            check.add(code_key, "a code is a number without leading zeros")
            continue
        entry = check.mapping(code_key, value, allowed=("text", *extra), required=("text",))
        if entry is not None:
            entries.append((code_key, code, entry))
    return entries


def _layout(check: Checker, key: str, entry: Mapping[str, Any]) -> Mm7Layout | None:
    http = check.integer(join_key(key, "http"), entry.get("http"), 200, 599)
    reply = check.choice(join_key(key, "reply"), entry.get("reply"), get_args(ReplyLayout))
    side = entry.get("faultcode")
    if reply == "rsp" and side is not None:
        check.add(join_key(key, "faultcode"), "only a fault has a faultcode")
        return None
    if reply == "fault":
        side = check.choice(join_key(key, "faultcode"), side, get_args(FaultSide))
        if side is None:
            return None
    if http is None or reply is None:
        return None
    return Mm7Layout(http, cast(ReplyLayout, reply), cast(FaultSide | None, side))


def _unlisted(check: Checker, raw: Any) -> dict[str, Mm7Layout]:
    table = check.mapping("mm7.unlisted", raw, allowed=_UNLISTED_KEYS, required=("default",))
    layouts: dict[str, Mm7Layout] = {}
    for name, value in (table or {}).items():
        key = f'mm7.unlisted."{name}"'
        entry = check.mapping(key, value, allowed=_LAYOUT_KEYS)
        layout = _layout(check, key, entry) if entry is not None else None
        if layout is not None:
            layouts[name] = layout
    return layouts


__all__ = [
    "SIM_VENDORS",
    "CodesError",
    "FaultSide",
    "Mm7Layout",
    "ReplyLayout",
    "SimCodes",
    "SimVendor",
    "builtin_path",
    "load_sim_codes",
    "parse_sim_codes",
]
