"""README "Configuration": what a catalog copied before issues 19 to 21 lacks, exactly.

The README lists the keys the catalog loader requires that older copies of
config/codes.yaml do not have, with the value the shipped file gives each. An "old" catalog
is the shipped one without those keys (and without the canonical codes only they name):
the loader must name exactly the README's keys, and the README's values must be the
shipped file's.
"""

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from proxy.codes.catalog import CatalogError, parse_catalog

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SHIPPED: dict[str, Any] = yaml.safe_load((ROOT / "config/codes.yaml").read_text())
_ROW = re.compile(r"^\| `([a-z_.]+)` \| (.*) \|$", re.M)


def readme_rows() -> dict[str, str]:
    """key -> the README's "in config/codes.yaml" cell, from the catalog-upgrade table."""
    text = README.read_text(encoding="utf-8")
    block = re.search(
        r"<!-- catalog-upgrade:start -->\n(.*?)<!-- catalog-upgrade:end -->", text, re.S
    )
    assert block, "README.md lacks the catalog-upgrade table"
    return dict(_ROW.findall(block.group(1)))


def old_catalog(keys: list[str]) -> dict[str, Any]:
    """The shipped catalog without ``keys`` and without the canonical codes only they name."""
    data = copy.deepcopy(SHIPPED)
    named: set[str] = set()
    for key in keys:
        parent, _, leaf = key.rpartition(".")
        value = (data[parent] if parent else data).pop(leaf)
        if isinstance(value, str):
            named.add(value)
        elif isinstance(value, list):
            named.update(value)
    rest = yaml.safe_dump({k: v for k, v in data.items() if k != "canonical"})
    for code in named:
        if not re.search(rf"\b{code}\b", rest):
            del data["canonical"][code]
    return data


def test_the_loader_names_exactly_the_readme_keys() -> None:
    keys = list(readme_rows())
    with pytest.raises(CatalogError) as refused:
        parse_catalog(old_catalog(keys), source="old.yaml")
    missing = {line.split(": ")[1] for line in str(refused.value).splitlines()}
    assert missing == set(keys)


def test_the_readme_gives_the_shipped_values() -> None:
    for key, cell in readme_rows().items():
        parent, _, leaf = key.rpartition(".")
        if parent == "transport":
            assert cell == f"`{SHIPPED['transport'][leaf]}`", key
        elif parent == "inbound":
            spec = SHIPPED["inbound"][leaf]
            assert all(f"`{name}`" in cell for name in spec), key
        else:
            assert cell == f"`[{', '.join(SHIPPED[key])}]`", key


def test_empty_throttling_and_circuit_failures_load() -> None:
    """The README says both may be empty lists."""
    data = copy.deepcopy(SHIPPED)
    data["throttling"], data["circuit_failures"] = [], []
    catalog = parse_catalog(data)
    assert (catalog.throttling, catalog.circuit_failures) == (frozenset(), frozenset())
