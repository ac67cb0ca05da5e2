"""Choosing what the simulator answers: a vendor code or a transport fault.

Precedence, highest first (``Chooser.choose``):

1. header ``X-Sim-Fault: <fault>``  → that transport fault (read once by ``header_fault``);
2. header ``X-Sim-Code: <number>``  → that code (any number: codes outside the catalog
   exercise the proxy's fallbacks);
3. the recipient: its last four digits, read as a number, when that number is a catalog
   code of the vendor (``+15550002002`` → MM7 2002, ``…0436`` → MoMS 436, ``…0000`` → 0);
4. the weighted ``--mix`` (seeded by ``--seed``): a code or a fault;
5. success (MM7 1000, MoMS 1).

``load_mix`` reads ``config/sim-mix.yaml`` and raises ``MixError`` with
``file: key: reason`` lines; a bad header raises ``DirectiveError``.
"""

import itertools
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, assert_never

import yaml

from proxy.sim.codes import SimCodes
from proxy.vendors.base import VENDOR_NAMES, VendorName

FaultName = Literal["refuse", "hang", "drip", "reset", "oversize", "html502", "empty", "malformed"]
FAULTS: tuple[FaultName, ...] = (
    "refuse", "hang", "drip", "reset", "oversize", "html502", "empty", "malformed",
)  # fmt: skip
Source = Literal["header", "recipient", "mix", "default"]

CODE_HEADER = "X-Sim-Code"
FAULT_HEADER = "X-Sim-Fault"
SUCCESS: Mapping[VendorName, str] = {"mm7": "1000", "moms": "1"}
_NUMBER = re.compile(r"^\s*(\d{1,9})\s*$")
_NOT_DIGIT = re.compile(r"\D")


class MixError(Exception):
    """The mix file is invalid; ``errors`` holds one ``file: key: reason`` per problem."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


class DirectiveError(ValueError):
    """An ``X-Sim-*`` header the simulator cannot follow (the answer is an HTTP 400)."""


@dataclass(frozen=True, slots=True)
class Choice:
    """What to answer: a vendor ``code`` or a transport ``fault`` (exactly one is set)."""

    code: str | None
    fault: FaultName | None
    source: Source


@dataclass(frozen=True, slots=True)
class MixEntry:
    """One weighted outcome of a mix: a vendor ``code`` or a transport ``fault``."""

    weight: float
    code: str | None = None
    fault: FaultName | None = None


@dataclass(frozen=True, slots=True)
class Mix:
    """Per vendor, the weighted entries; an empty tuple means "always success"."""

    mm7: tuple[MixEntry, ...] = ()
    moms: tuple[MixEntry, ...] = ()

    def entries(self, vendor: VendorName) -> tuple[MixEntry, ...]:
        """The entries of ``vendor``. Any other name fails loudly (``AssertionError``)."""
        match vendor:
            case "mm7":
                return self.mm7
            case "moms":
                return self.moms
            case _:
                assert_never(vendor)


def recipient_code(codes: SimCodes, vendor: VendorName, recipient: str | None) -> str | None:
    """The catalog code a recipient asks for (its last four digits as a number), or None."""
    if not recipient:
        return None
    # An RFC 2822 address ("+15550002002/TYPE=PLMN", "user2002@host"): digits of the user part.
    user = recipient.split("/", 1)[0].split("@", 1)[0]
    digits = _NOT_DIGIT.sub("", user)
    if not digits:
        return None
    code = str(int(digits[-4:]))
    return code if code in codes.table(vendor) else None


def header_fault(headers: Mapping[str, str]) -> FaultName | None:
    """The fault named by ``X-Sim-Fault``, if any. Raises ``DirectiveError`` if unknown."""
    value = headers.get(FAULT_HEADER)
    if value is None or not value.strip():
        return None
    name = value.strip().lower()
    if name not in FAULTS:
        raise DirectiveError(f"{FAULT_HEADER}: unknown fault {value!r}; one of {', '.join(FAULTS)}")
    return name


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
        vendor: VendorName,
        headers: Mapping[str, str],
        recipient: str | None,
        *,
        fault: FaultName | None,
    ) -> Choice:
        """Apply the precedence of the module docstring. Raises ``DirectiveError``.

        ``fault`` is the request's ``X-Sim-Fault``, already read by ``header_fault`` (the
        handler needs it before it reads the request, and reads the header only once).
        """
        if fault is not None:
            return Choice(None, fault, "header")
        code = header_code(headers)
        if code is not None:
            return Choice(code, None, "header")
        code = recipient_code(self.codes, vendor, recipient)
        if code is not None:
            return Choice(code, None, "recipient")
        entries = self.mix.entries(vendor)
        if entries:
            entry = self._rng.choices(entries, weights=[e.weight for e in entries])[0]
            return Choice(entry.code, entry.fault, "mix")
        return Choice(SUCCESS[vendor], None, "default")

    def token(self, length: int = 8) -> str:
        """A short random lowercase token (MoMS ``hash``, smart URLs), from the seeded stream."""
        alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
        return "".join(self._id_rng.choice(alphabet) for _ in range(length))

    def next_id(self) -> int:
        """The next message / content / list id (ascending, like the live API's)."""
        return next(self._ids)


def load_mix(path: Path, codes: SimCodes) -> Mix:
    """Read and validate a mix file. Raises ``MixError``."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise MixError([f"{path}: cannot load: {exc}"]) from None
    return parse_mix(data, codes, source=str(path))


def parse_mix(data: Any, codes: SimCodes, *, source: str = "<mix>") -> Mix:
    """Build a ``Mix`` from loaded YAML (``{mm7: [...], moms: [...]}``). Raises ``MixError``."""
    errors: list[str] = []
    if not isinstance(data, dict):
        raise MixError([f"{source}: (root): must be a mapping with mm7 and/or moms lists"])
    for key in data:
        if key not in VENDOR_NAMES:
            errors.append(f"{source}: {key}: unknown key (expected mm7, moms)")
    mm7 = _entries(data.get("mm7"), "mm7", codes, source, errors)
    moms = _entries(data.get("moms"), "moms", codes, source, errors)
    if errors:
        raise MixError(errors)
    return Mix(mm7=mm7, moms=moms)


def _entries(
    raw: Any, vendor: VendorName, codes: SimCodes, source: str, errors: list[str]
) -> tuple[MixEntry, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        errors.append(f"{source}: {vendor}: must be a list of {{code|fault, weight}}")
        return ()
    entries: list[MixEntry] = []
    for i, item in enumerate(raw):
        key = f"{vendor}[{i}]"
        if not isinstance(item, dict):
            errors.append(f"{source}: {key}: must be a mapping")
            continue
        unknown = set(item) - {"code", "fault", "weight"}
        if unknown:
            errors.append(f"{source}: {key}: unknown keys {sorted(unknown)}")
        weight = item.get("weight", 1)
        if isinstance(weight, bool) or not isinstance(weight, int | float) or weight <= 0:
            errors.append(f"{source}: {key}.weight: must be a positive number")
            continue
        if ("code" in item) == ("fault" in item):
            errors.append(f"{source}: {key}: needs exactly one of code, fault")
            continue
        if "code" in item:
            code = str(item["code"]).strip()
            if code not in codes.table(vendor):
                errors.append(f"{source}: {key}.code: {code!r} is not a {vendor} catalog code")
                continue
            entries.append(MixEntry(float(weight), code=code))
        else:
            fault = str(item["fault"]).strip().lower()
            if fault not in FAULTS:
                errors.append(f"{source}: {key}.fault: {fault!r}: one of {', '.join(FAULTS)}")
                continue
            entries.append(MixEntry(float(weight), fault=fault))
    return tuple(entries)


__all__ = [
    "CODE_HEADER",
    "FAULTS",
    "FAULT_HEADER",
    "SUCCESS",
    "Choice",
    "Chooser",
    "DirectiveError",
    "FaultName",
    "Mix",
    "MixEntry",
    "MixError",
    "Source",
    "header_code",
    "header_fault",
    "load_mix",
    "parse_mix",
    "recipient_code",
]
