"""Choosing what the simulator answers: a vendor code (in some reply shape) or a fault.

Precedence, highest first (``Chooser.choose``):

1. header ``X-Sim-Fault: <fault>``  → that transport fault (read once by ``header_fault``);
2. header ``X-Sim-Code: <number>``  → that code (any number: codes outside the table
   exercise the proxy's fallbacks);
3. the recipient: its last four digits, read as a number, when that number is a code of
   the vendor in the simulator's table (``+15550002002`` → MM7 2002, ``…0436`` → MoMS 436,
   ``…0000`` → 0);
4. the weighted ``--mix`` (seeded by ``--seed``): a code (maybe with a shape), a shape,
   or a fault;
5. success (MM7 1000, MoMS 1).

The reply shape (``SHAPES``: how the answer is laid out, e.g. the status in an HTTP header)
comes from header ``X-Sim-Shape`` (read once by ``header_shape``), else from the mix entry
drawn; a fault has none. ``load_mix`` reads ``config/sim-mix.yaml`` and raises
``MixError`` with ``file: key: reason`` lines; a bad header raises ``DirectiveError``.
"""

import itertools
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, assert_never, cast, get_args

from proxy.tools.sim.codes import SIM_VENDORS, SimCodes, SimVendor
from proxy.tools.sim.datafile import Checker, SimDataError, read_yaml
from proxy.vocab import FAULT_NAMES, FaultName

FAULTS = FAULT_NAMES
Mm7Shape = Literal[
    "status-header", "status-header-empty", "status-header-twice", "nested-details",
    "dotted-fault-401", "multipart-late-soap", "gzip-members",
]  # fmt: skip
MomsShape = Literal["jsonp", "gzip-members"]
ShapeName = Mm7Shape | MomsShape
SHAPES: Mapping[SimVendor, tuple[str, ...]] = {
    "mm7": get_args(Mm7Shape),
    "moms": get_args(MomsShape),
}
Source = Literal["header", "recipient", "mix", "default"]

CODE_HEADER = "X-Sim-Code"
FAULT_HEADER = "X-Sim-Fault"
SHAPE_HEADER = "X-Sim-Shape"
SUCCESS: Mapping[SimVendor, str] = {"mm7": "1000", "moms": "1"}
_NUMBER = re.compile(r"^\s*(\d{1,9})\s*$")
_NOT_DIGIT = re.compile(r"\D")


class MixError(SimDataError):
    """The mix file is invalid; ``errors`` holds one ``file: key: reason`` per problem."""


class DirectiveError(ValueError):
    """An ``X-Sim-*`` header the simulator cannot follow (the answer is an HTTP 400)."""


@dataclass(frozen=True, slots=True)
class Choice:
    """What to answer: a vendor ``code`` or a transport ``fault`` (exactly one is set),
    and the reply ``shape`` of a code (None: the vendor's usual layout)."""

    code: str | None
    fault: FaultName | None
    source: Source
    shape: ShapeName | None = None


@dataclass(frozen=True, slots=True)
class MixEntry:
    """One weighted outcome of a mix: a vendor ``code`` (maybe ``shape``d) or a ``fault``."""

    weight: float
    code: str | None = None
    fault: FaultName | None = None
    shape: ShapeName | None = None


@dataclass(frozen=True, slots=True)
class Mix:
    """Per vendor, the weighted entries; an empty tuple means "always success"."""

    mm7: tuple[MixEntry, ...] = ()
    moms: tuple[MixEntry, ...] = ()

    def entries(self, vendor: SimVendor) -> tuple[MixEntry, ...]:
        """The entries of ``vendor``. Any other name fails loudly (``AssertionError``)."""
        match vendor:
            case "mm7":
                return self.mm7
            case "moms":
                return self.moms
            case _:
                assert_never(vendor)


def recipient_suffix(recipient: str | None) -> str | None:
    """A recipient's last four digits read as a number (``+15550002002`` → ``"2002"``,
    ``…0000`` → ``"0"``), or None when it has no digits. What recipients choose by."""
    if not recipient:
        return None
    # An RFC 2822 address ("+15550002002/TYPE=PLMN", "user2002@host"): digits of the user part.
    user = recipient.split("/", 1)[0].split("@", 1)[0]
    digits = _NOT_DIGIT.sub("", user)
    return str(int(digits[-4:])) if digits else None


def recipient_code(codes: SimCodes, vendor: SimVendor, recipient: str | None) -> str | None:
    """The table code a recipient asks for (``recipient_suffix``), or None."""
    code = recipient_suffix(recipient)
    return code if code is not None and code in codes.table(vendor) else None


def header_fault(headers: Mapping[str, str]) -> FaultName | None:
    """The fault named by ``X-Sim-Fault``, if any. Raises ``DirectiveError`` if unknown."""
    value = headers.get(FAULT_HEADER)
    if value is None or not value.strip():
        return None
    name = value.strip().lower()
    if name not in FAULTS:
        raise DirectiveError(f"{FAULT_HEADER}: unknown fault {value!r}; one of {', '.join(FAULTS)}")
    return name


def header_shape(headers: Mapping[str, str], vendor: SimVendor) -> ShapeName | None:
    """The shape named by ``X-Sim-Shape``, if any. Raises ``DirectiveError`` when it is
    not one of ``vendor``'s shapes."""
    value = headers.get(SHAPE_HEADER)
    if value is None or not value.strip():
        return None
    name = value.strip().lower()
    if name not in SHAPES[vendor]:
        known = ", ".join(SHAPES[vendor])
        raise DirectiveError(f"{SHAPE_HEADER}: {value!r} is no {vendor} shape; one of {known}")
    return cast(ShapeName, name)


def header_code(headers: Mapping[str, str]) -> str | None:
    """The code named by ``X-Sim-Code``, if any. Raises ``DirectiveError`` if not a number."""
    value = headers.get(CODE_HEADER)
    if value is None or not value.strip():
        return None
    match = _NUMBER.match(value)
    if match is None:
        raise DirectiveError(f"{CODE_HEADER}: expected a number, got {value!r}")
    return str(int(match.group(1)))


class Chooser:
    """Chooses each answer. Holds the one seeded random generator of the app."""

    def __init__(self, codes: SimCodes, mix: Mix, seed: int | None = None) -> None:
        self.codes = codes
        self.mix = mix
        # Not for security: a repeatable stream of draws for demos and load tests. Ids come
        # from their own stream so that which methods were called never shifts the mix.
        self._rng = random.Random(seed)
        self._id_rng = random.Random(None if seed is None else seed + 1)
        self._ids = itertools.count(self._id_rng.randrange(100_000_000, 900_000_000))

    def choose(
        self,
        vendor: SimVendor,
        headers: Mapping[str, str],
        recipient: str | None,
        *,
        fault: FaultName | None,
        shape: ShapeName | None = None,
    ) -> Choice:
        """Apply the precedence of the module docstring. Raises ``DirectiveError``.

        ``fault`` and ``shape`` are the request's ``X-Sim-Fault`` and ``X-Sim-Shape``,
        already read by ``header_fault`` and ``header_shape`` (the handler needs them before
        it reads the request, and reads each header only once).
        """
        if fault is not None:
            return Choice(None, fault, "header")
        code = header_code(headers)
        if code is not None:
            return Choice(code, None, "header", shape)
        code = recipient_code(self.codes, vendor, recipient)
        if code is not None:
            return Choice(code, None, "recipient", shape)
        entries = self.mix.entries(vendor)
        if entries:
            entry = self._rng.choices(entries, weights=[e.weight for e in entries])[0]
            if entry.fault is not None:
                return Choice(None, entry.fault, "mix")
            return Choice(entry.code, None, "mix", shape or entry.shape)
        return Choice(SUCCESS[vendor], None, "default", shape)

    def token(self, length: int = 8) -> str:
        """A short random lowercase token (MoMS ``hash``, smart URLs), from the seeded stream."""
        alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
        return "".join(self._id_rng.choice(alphabet) for _ in range(length))

    def next_id(self) -> int:
        """The next message / content / list id (ascending, like the live API's)."""
        return next(self._ids)


def load_mix(path: Path, codes: SimCodes) -> Mix:
    """Read and validate a mix file. Raises ``MixError``."""
    return parse_mix(read_yaml(path, MixError), codes, source=str(path))


def parse_mix(data: Any, codes: SimCodes, *, source: str = "<mix>") -> Mix:
    """Build a ``Mix`` from loaded YAML (``{mm7: [...], moms: [...]}``). Raises ``MixError``."""
    check = Checker(source)
    root = check.mapping("", data, allowed=SIM_VENDORS)
    if root is None:
        raise MixError([f"{source}: (root): must be a mapping with mm7 and/or moms lists"])
    mm7 = _entries(check, root.get("mm7"), "mm7", codes)
    moms = _entries(check, root.get("moms"), "moms", codes)
    check.raise_if_any(MixError)
    return Mix(mm7=mm7, moms=moms)


def _entries(check: Checker, raw: Any, vendor: SimVendor, codes: SimCodes) -> tuple[MixEntry, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        check.add(vendor, "must be a list of {code|fault|shape, weight}")
        return ()
    entries = [_entry(check, f"{vendor}[{i}]", item, vendor, codes) for i, item in enumerate(raw)]
    return tuple(e for e in entries if e is not None)


def _entry(
    check: Checker, key: str, raw: Any, vendor: SimVendor, codes: SimCodes
) -> MixEntry | None:
    item = check.mapping(key, raw, allowed=("code", "fault", "shape", "weight"))
    if item is None:
        return None
    weight = item.get("weight", 1)
    if isinstance(weight, bool) or not isinstance(weight, int | float) or weight <= 0:
        check.add(f"{key}.weight", "must be a positive number")
        return None
    if "fault" in item:
        if "code" in item or "shape" in item:
            check.add(key, "a fault goes alone: no code or shape with it")
            return None
        fault = check.choice(f"{key}.fault", str(item["fault"]).strip().lower(), FAULTS)
        return None if fault is None else MixEntry(float(weight), fault=fault)
    if "code" not in item and "shape" not in item:
        check.add(key, "needs one of code, fault, shape")
        return None
    code = SUCCESS[vendor]
    if "code" in item:
        code = str(item["code"]).strip()
        if code not in codes.table(vendor):
            check.add(f"{key}.code", f"{code!r} is not a {vendor} code of the simulator")
            return None
    shape: ShapeName | None = None
    if "shape" in item:
        named = check.choice(f"{key}.shape", str(item["shape"]).strip().lower(), SHAPES[vendor])
        if named is None:
            return None
        shape = cast(ShapeName, named)
    return MixEntry(float(weight), code=code, shape=shape)


__all__ = [
    "CODE_HEADER",
    "FAULTS",
    "FAULT_HEADER",
    "SHAPES",
    "SHAPE_HEADER",
    "SUCCESS",
    "Choice",
    "Chooser",
    "DirectiveError",
    "FaultName",
    "Mix",
    "MixEntry",
    "MixError",
    "Mm7Shape",
    "MomsShape",
    "ShapeName",
    "Source",
    "header_code",
    "header_fault",
    "header_shape",
    "load_mix",
    "parse_mix",
    "recipient_code",
    "recipient_suffix",
]
