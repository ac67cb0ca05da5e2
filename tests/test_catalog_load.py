"""The catalog is validated as strictly as the config: precise errors, never a traceback."""

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from proxy.codes.catalog import CatalogError, builtin_catalog_path, load_catalog, parse_catalog
from tests.test_vendors_fuzz import FUZZ

BUILTIN: dict[str, Any] = yaml.safe_load(builtin_catalog_path().read_text(encoding="utf-8"))


def broken(edit: Any) -> list[str]:
    data = copy.deepcopy(BUILTIN)
    edit(data)
    with pytest.raises(CatalogError) as info:
        parse_catalog(data, source="codes.yaml")
    return info.value.errors


def test_the_builtin_catalog_loads() -> None:
    catalog = load_catalog()
    assert catalog.conflict.name == "INVALID_UPSTREAM_RESPONSE"
    assert catalog.vendors["mm7"].unknown.name == "UNKNOWN_CODE"


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda d: d["canonical"]["OK"].update(retryable="no"),
            "codes.yaml: canonical.OK.retryable: must be true or false, got 'no'",
        ),
        (
            lambda d: d["canonical"]["OK"].update(status="200"),
            "codes.yaml: canonical.OK.status: must be an integer 100..599, got '200'",
        ),
        (
            lambda d: d["canonical"]["OK"].update(colour="red"),
            "codes.yaml: canonical.OK.colour: unknown key",
        ),
        (
            lambda d: d["canonical"].update(OK="success"),
            "codes.yaml: canonical.OK: must be a mapping, got a string",
        ),
        (
            lambda d: d["canonical"]["OK"].pop("title"),
            "codes.yaml: canonical.OK.title: is required",
        ),
        (
            lambda d: d["canonical"]["TIMEOUT"].update(category="slow"),
            "codes.yaml: canonical.TIMEOUT.category: must be one of",
        ),
        (
            # Renaming a code the proxy falls back to fails at load, not on a request.
            lambda d: d["canonical"].update(UNKNOWN=d["canonical"].pop("UNKNOWN_CODE")),
            "codes.yaml: vendors.mm7.unknown: unknown canonical code 'UNKNOWN_CODE'",
        ),
        (
            lambda d: d["transport"].pop("internal"),
            "codes.yaml: transport.internal: is required",
        ),
        (
            lambda d: d["transport"].update(teleport="OK"),
            "codes.yaml: transport.teleport: unknown key",
        ),
        (lambda d: d["http"].pop("default"), "codes.yaml: http.default: is required"),
        (lambda d: d["http"].update(abc="OK"), "codes.yaml: http.abc: must be a status"),
        (lambda d: d.update(vendors=[]), "codes.yaml: vendors: must be a mapping, got a list"),
        (lambda d: d["vendors"].update(sms={}), "codes.yaml: vendors.sms: unknown key"),
        (
            lambda d: d["vendors"]["moms"]["codes"]["1"].update(canonical="YES"),
            "codes.yaml: vendors.moms.codes.1.canonical: unknown canonical code 'YES'",
        ),
        (
            lambda d: d["vendors"]["moms"]["codes"]["0"]["rules"].append({"match": "("}),
            "codes.yaml: vendors.moms.codes.0.rules[3].canonical: is required",
        ),
        (
            lambda d: d["vendors"]["moms"]["codes"]["0"]["rules"].append(
                {"match": "(", "canonical": "OK"}
            ),
            "codes.yaml: vendors.moms.codes.0.rules[3].match: not a valid regular expression",
        ),
        (
            lambda d: d["vendors"]["mm7"]["class_fallbacks"].update({"5": "5000"}),
            "codes.yaml: vendors.mm7.class_fallbacks.5: unknown code '5000'",
        ),
        (
            lambda d: d["vendors"]["mm7"].update(generic_fault_codes=["Nobody"]),
            "codes.yaml: vendors.mm7.generic_fault_codes: 'Nobody' is not in fault_codes",
        ),
        (
            lambda d: d["vendors"]["mm7"].update(specific_http_statuses=[401, "403"]),
            "codes.yaml: vendors.mm7.specific_http_statuses[1]: must be an integer",
        ),
        (
            lambda d: d.update(conflict="OK"),
            "codes.yaml: conflict: OK must be neither a success nor retryable",
        ),
        (
            lambda d: d.update(conflict="RATE_LIMITED"),
            "codes.yaml: conflict: RATE_LIMITED must be neither a success nor retryable",
        ),
        (lambda d: d.update(extra=1), "codes.yaml: extra: unknown key"),
    ],
)
def test_a_broken_catalog_gets_a_precise_error(edit: Any, expected: str) -> None:
    errors = broken(edit)
    assert any(e.startswith(expected) for e in errors), errors


def test_every_problem_is_reported_at_once() -> None:
    def edit(d: dict[str, Any]) -> None:
        d["canonical"]["OK"]["retryable"] = "no"
        d["transport"].pop("timeout")
        d["http"].pop("default")

    assert len(broken(edit)) == 3


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"canonical: {}\ncanonical: {}\n", "not valid YAML: line 2, column 1: duplicate key"),
        (b"\xff\xfe\x00", "not UTF-8 text"),
        (b"canonical: [\n", "not valid YAML: line 2"),
        (b"- a\n- b\n", "(root): must be a mapping, got a list"),
        (b"", "(root): must be a mapping, got nothing"),
    ],
)
def test_a_bad_file_names_itself(tmp_path: Path, text: bytes, expected: str) -> None:
    path = tmp_path / "codes.yaml"
    path.write_bytes(text)
    with pytest.raises(CatalogError) as info:
        load_catalog(path)
    assert info.value.errors[0].startswith(f"{path}: "), info.value.errors
    assert expected in info.value.errors[0]


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def mutated_catalogs(draw: st.DrawFn) -> Any:
    """The built-in catalog with a few values anywhere in it replaced or removed."""
    data = copy.deepcopy(BUILTIN)
    for _ in range(draw(st.integers(1, 4))):
        node: Any = data
        while isinstance(node, dict | list) and node and draw(st.booleans()):
            keys = list(node) if isinstance(node, dict) else list(range(len(node)))
            key = draw(st.sampled_from(keys))
            if not isinstance(node[key], dict | list) or draw(st.integers(0, 3)) == 0:
                if draw(st.booleans()) and isinstance(node, dict):
                    del node[key]
                else:
                    node[key] = draw(yaml_values)
                break
            node = node[key]
    return data


@FUZZ
@given(data=mutated_catalogs() | yaml_values)
def test_any_catalog_loads_or_gets_precise_errors(data: Any) -> None:
    """Whatever the file holds, the loader returns a catalog or a list of file: key: reason."""
    errors: list[str] = []
    try:
        parse_catalog(data, source="codes.yaml")
    except CatalogError as exc:
        errors = exc.errors or ["(no errors listed)"]
    assert all(e.startswith("codes.yaml: ") and e.count(": ") >= 2 for e in errors), errors
