"""One way to load a data file: read it safely, check it whole, report ``file: key: reason``.

Every YAML file the product reads goes through here: the proxy's config (config.py), the
code catalog (catalog.py) and the simulator's tables and mix (sim/). Errors::

    LoadError        one ``file: key: reason`` line per problem, in ``errors``
    ├── ConfigError  (config.py)
    ├── CatalogError (catalog.py)
    └── SimDataError (sim/datafile.py: the simulator's code tables and mix)

``read_yaml`` refuses what YAML would let slip: bytes that are not UTF-8, duplicate keys
(where the last would silently win), and syntax errors, each named by the file and the
line. A ``Checker`` collects every problem of one file before anything is raised, so a
bad file is reported in full, not one mistake per run; its typed getters never coerce
(``"no"`` is not a boolean, ``"5"`` not a number).
"""

import math
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import yaml

_E = TypeVar("_E", bound="LoadError")
_S = TypeVar("_S", bound=str)


class LoadError(Exception):
    """A data file is invalid; ``errors`` holds one ``file: key: reason`` per problem."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: construct_mapping reports it
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str | Path, error: type[_E]) -> Any:
    """The loaded YAML of ``path``; raises ``error`` with one precise line on failure."""
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        _fail(error, source, f"cannot read: {exc.strerror or exc}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        _fail(error, source, f"not UTF-8 text (byte {exc.start} is 0x{raw[exc.start]:02x})")
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        _fail(error, source, f"not valid YAML: {where}{exc.problem or exc.context}")
    except yaml.YAMLError as exc:
        _fail(error, source, f"not valid YAML: {exc}")


def _fail(error: type[_E], source: str, reason: str) -> NoReturn:
    raise error([_one_line(f"{source}: {reason}")]) from None


def _one_line(text: str) -> str:
    return " ".join(text.replace("\r", "\\r").replace("\n", "\\n").split())


def join_key(parent: str, child: str) -> str:
    """``parent.child``, or ``child`` at the root (``parent`` is "")."""
    return f"{parent}.{child}" if parent else child


class Checker:
    """Collects the problems of one file (``source``); ``raise_if_any`` reports them all.

    Every getter returns the checked value, or None after recording a problem.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.errors: list[str] = []

    def add(self, key: str, reason: str) -> None:
        """Record one problem at ``key`` (``(root)`` for the document itself).

        Each problem is one line: line breaks in a key or reason (YAML allows them in
        keys) are written as ``\\n``.
        """
        line = f"{self.source}: {key or '(root)'}: {reason}"
        self.errors.append(_one_line(line))

    def raise_if_any(self, error: type[LoadError]) -> None:
        """Raise ``error`` with every recorded problem, if there is one."""
        if self.errors:
            raise error(list(self.errors))

    def mapping(
        self,
        key: str,
        value: Any,
        *,
        allowed: Collection[str] | None = None,
        required: Collection[str] = (),
    ) -> Mapping[str, Any] | None:
        """``value`` when it is a mapping with string keys, else None (and a problem).

        Keys outside ``allowed`` (when given) and missing ``required`` keys are reported;
        the mapping is still returned so that its other keys can be checked.
        """
        if not isinstance(value, Mapping):
            self.add(key, f"must be a mapping, got {_kind(value)}")
            return None
        good: dict[str, Any] = {}
        for name, item in value.items():
            if not isinstance(name, str):
                self.add(key, f'key {name!r} must be a string (quote numbers: "{name}")')
            elif allowed is not None and name not in allowed:
                expected = ", ".join(sorted(allowed))
                self.add(join_key(key, name), f"unknown key (expected one of {expected})")
            else:
                good[name] = item
        for name in required:
            if name not in value:
                self.add(join_key(key, name), "is required")
        return good

    def text(self, key: str, value: Any) -> str | None:
        """``value`` when it is a non-empty string."""
        if not isinstance(value, str) or not value.strip():
            self.add(key, f"must be a non-empty string, got {_kind(value)}")
            return None
        return value

    def boolean(self, key: str, value: Any) -> bool | None:
        """``value`` when it is a YAML boolean (``true``/``false``, not ``"no"`` or 0)."""
        if not isinstance(value, bool):
            self.add(key, f"must be true or false, got {value!r}")
            return None
        return value

    def integer(self, key: str, value: Any, low: int, high: int | None = None) -> int | None:
        """``value`` when it is an integer in ``low..high`` (no upper bound: None)."""
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or value < low
            or (high is not None and value > high)
        ):
            bounds = f"{low}..{high}" if high is not None else f">= {low}"
            self.add(key, f"must be an integer {bounds}, got {value!r}")
            return None
        return value

    def number(self, key: str, value: Any, low: float) -> float | None:
        """``value`` when it is a finite number >= ``low`` (integers accepted)."""
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value < low
        ):
            self.add(key, f"must be a number >= {low:g}, got {value!r}")
            return None
        return float(value)

    def choice(self, key: str, value: Any, choices: tuple[_S, ...]) -> _S | None:
        """``value`` when it is one of ``choices`` (typed as their ``Literal``)."""
        for choice in choices:
            if isinstance(value, str) and value == choice:
                return choice
        self.add(key, f"must be one of {', '.join(choices)}, got {value!r}")
        return None

    def strings(self, key: str, value: Any) -> tuple[str, ...] | None:
        """``value`` when it is a list of non-empty strings."""
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.add(key, f"must be a list of non-empty strings, got {value!r}")
            return None
        return tuple(value)


def _kind(value: object) -> str:
    """How a wrong value is named in an error: its YAML type, never its (secret) content."""
    names = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "nothing (null)"
    return names.get(type(value), type(value).__name__)


__all__ = ["Checker", "LoadError", "join_key", "read_yaml"]
