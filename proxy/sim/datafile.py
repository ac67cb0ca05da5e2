"""The simulator's one toolkit for its YAML files: read, check, report ``file: key: reason``.

Both of the simulator's data files go through it: its own code tables
(``vendor_codes.yaml``, codes.py) and an outcome mix (``--mix``, outcome.py). Errors::

    SimDataError          one ``file: key: reason`` line per problem, in ``errors``
    ├── CodesError        the code tables are invalid (codes.py)
    └── MixError          the mix file is invalid (outcome.py)

A ``Checker`` collects every problem of one file before anything is raised, so a bad file
is reported in full, not one mistake per run.
"""

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import yaml


class SimDataError(Exception):
    """A simulator data file is invalid; ``errors`` holds one ``file: key: reason`` each."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


def read_yaml(path: Path, error: type[SimDataError]) -> Any:
    """The loaded YAML of ``path``. Raises ``error`` (``file: cannot load: ...``)."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise error([f"{path}: cannot load: {exc}"]) from None


def join_key(parent: str, child: str) -> str:
    """``parent.child``, or ``child`` at the root (``parent`` is "")."""
    return f"{parent}.{child}" if parent else child


class Checker:
    """Collects the problems of one file (``source``); ``raise_if_any`` reports them all."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.errors: list[str] = []

    def add(self, key: str, reason: str) -> None:
        """Record one problem at ``key`` (``(root)`` for the document itself)."""
        self.errors.append(f"{self.source}: {key or '(root)'}: {reason}")

    def raise_if_any(self, error: type[SimDataError]) -> None:
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
            self.add(key, "must be a mapping")
            return None
        good: dict[str, Any] = {}
        for name, item in value.items():
            if not isinstance(name, str):
                self.add(key, f'key {name!r} must be a string (quote numbers: "{name}")')
            elif allowed is not None and name not in allowed:
                expected = ", ".join(sorted(allowed))
                self.add(join_key(key, name), f"unknown key (expected {expected})")
            else:
                good[name] = item
        for name in required:
            if name not in value:
                self.add(join_key(key, name), "is required")
        return good

    def text(self, key: str, value: Any) -> str | None:
        """``value`` when it is a non-empty string, else None (and a problem)."""
        if not isinstance(value, str) or not value.strip():
            self.add(key, "must be a non-empty string")
            return None
        return value

    def integer(self, key: str, value: Any, low: int, high: int) -> int | None:
        """``value`` when it is an integer in ``low..high``, else None (and a problem)."""
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.add(key, f"must be an integer {low}..{high}")
            return None
        return value

    def choice(self, key: str, value: Any, choices: Collection[str]) -> str | None:
        """``value`` when it is one of ``choices``, else None (and a problem)."""
        if not isinstance(value, str) or value not in choices:
            self.add(key, f"{value!r}: one of {', '.join(choices)}")
            return None
        return value


__all__ = ["Checker", "SimDataError", "join_key", "read_yaml"]
