"""proxy.inbound.tables: the delivery_statuses and inbound sections of config/codes.yaml."""

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from proxy.codes.catalog import CatalogError, builtin_catalog_path
from proxy.config.loading import Checker, read_yaml
from proxy.inbound import InboundTablesError, parse_inbound_tables, read_inbound_tables

CODES = Path(__file__).resolve().parents[1] / "config" / "codes.yaml"


def shipped() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(CODES.read_text(encoding="utf-8"))
    return data


def errors_of(data: Any) -> list[str]:
    with pytest.raises(InboundTablesError) as info:
        parse_inbound_tables(data, source="codes.yaml")
    return info.value.errors


def test_the_shipped_catalog_has_valid_inbound_tables() -> None:
    """config/codes.yaml, read the way the catalog reads it, gives the inbound tables."""
    tables = parse_inbound_tables(read_yaml(builtin_catalog_path(), CatalogError))
    assert set(tables.vendors) == {"mm7"}
    assert set(tables.vendors["mm7"]) == {"delivery_report", "read_reply"}


def test_words_match_ignoring_case_and_padding() -> None:
    """Relays send Retrieved, retrieved, RETRIEVED: all one word."""
    tables = parse_inbound_tables(shipped())
    for word in ("Retrieved", "retrieved", "RETRIEVED", "  rEtRiEvEd\n"):
        resolution = tables.resolve("mm7", "delivery_report", word)
        assert (resolution.status.name, resolution.known) == ("DELIVERED", True)


def test_an_unknown_word_takes_the_unknown_entry() -> None:
    """A word outside the table is the section's unknown status, with its own finality."""
    resolution = parse_inbound_tables(shipped()).resolve("mm7", "delivery_report", "Sent")
    assert (resolution.status.name, resolution.final, resolution.known) == (
        "INDETERMINATE",
        False,
        False,
    )


def test_a_maintainer_can_remap_a_word_in_yaml_alone() -> None:
    """Changing the YAML changes the meaning; no code knows the words."""
    data = shipped()
    data["inbound"]["mm7"]["delivery_report"]["statuses"]["NotSupported"] = "UNRECOGNISED"
    tables = parse_inbound_tables(data)
    assert tables.resolve("mm7", "delivery_report", "notsupported").status.name == "UNRECOGNISED"


def _broken(path: list[str], value: Any) -> dict[str, Any]:
    data = copy.deepcopy(shipped())
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (
            ["delivery_statuses", "DEFERRED", "final"],
            "no",
            "delivery_statuses.DEFERRED.final: must be true or false",
        ),
        (
            ["delivery_statuses", "DEFERRED", "colour"],
            "red",
            "delivery_statuses.DEFERRED.colour: unknown key",
        ),
        (
            ["delivery_statuses", "Deferred"],
            {"final": False, "title": "x"},
            "delivery_statuses.Deferred: a status name is UPPER_CASE",
        ),
        (
            ["delivery_statuses", "READ", "title"],
            "",
            "delivery_statuses.READ.title: must be a non-empty string",
        ),
        (["delivery_statuses"], {}, "delivery_statuses: must name at least one status"),
        (["delivery_statuses"], ["DELIVERED"], "delivery_statuses: must be a mapping"),
        (["inbound", "sms"], {}, "inbound.sms: unknown key"),
        (["inbound", "mm7", "submit"], {}, "inbound.mm7.submit: unknown key"),
        (["inbound", "mm7", "read_reply", "extra"], 1, "inbound.mm7.read_reply.extra: unknown key"),
        (
            ["inbound", "mm7", "delivery_report", "statuses", "Retrieved"],
            "DELIVERD",
            "inbound.mm7.delivery_report.statuses.Retrieved: unknown status 'DELIVERD'",
        ),
        (
            ["inbound", "mm7", "delivery_report", "statuses", "RETRIEVED"],
            "DELIVERED",
            "inbound.mm7.delivery_report.statuses.RETRIEVED: the same word as 'Retrieved'",
        ),
        (
            ["inbound", "mm7", "delivery_report", "statuses", " "],
            "DELIVERED",
            "inbound.mm7.delivery_report.statuses. : a vendor word must not be empty",
        ),
        (
            ["inbound", "mm7", "delivery_report", "unknown"],
            "INDETERMINATE",
            "inbound.mm7.delivery_report.unknown: must be a mapping",
        ),
        (
            ["inbound", "mm7", "read_reply", "unknown", "final"],
            None,
            "inbound.mm7.read_reply.unknown.final: must be true or false",
        ),
        (
            ["inbound", "mm7", "read_reply", "unknown", "status"],
            "LOST",
            "inbound.mm7.read_reply.unknown.status: unknown status 'LOST'",
        ),
    ],
)
def test_invalid_sections_are_refused_with_key_and_reason(
    path: list[str], value: Any, expected: str
) -> None:
    """Every problem is one `file: key: reason` line naming the exact key."""
    errors = errors_of(_broken(path, value))
    assert any(e.startswith(f"codes.yaml: {expected}") for e in errors), errors


@pytest.mark.parametrize(
    ("drop", "expected"),
    [
        (["delivery_statuses"], "codes.yaml: delivery_statuses: is required"),
        (["inbound"], "codes.yaml: inbound: is required"),
        (["inbound", "mm7"], "codes.yaml: inbound.mm7: is required"),
        (["inbound", "mm7", "read_reply"], "codes.yaml: inbound.mm7.read_reply: is required"),
        (
            ["inbound", "mm7", "delivery_report", "statuses"],
            "codes.yaml: inbound.mm7.delivery_report.statuses: is required",
        ),
        (
            ["inbound", "mm7", "delivery_report", "unknown", "final"],
            "codes.yaml: inbound.mm7.delivery_report.unknown.final: is required",
        ),
    ],
)
def test_required_keys(drop: list[str], expected: str) -> None:
    """Each section and entry the tables need is required."""
    data = copy.deepcopy(shipped())
    node = data
    for key in drop[:-1]:
        node = node[key]
    del node[drop[-1]]
    assert expected in errors_of(data)


def test_a_non_mapping_document_is_refused() -> None:
    """A document that is not a mapping is refused at the root."""
    assert (
        errors_of(["not", "a", "catalog"])[0] == "codes.yaml: (root): must be a mapping, got a list"
    )


def test_every_problem_is_reported_at_once() -> None:
    """Two mistakes, two lines: a bad file is reported whole."""
    data = _broken(["delivery_statuses", "DEFERRED", "final"], "no")
    data["inbound"]["mm7"]["read_reply"]["statuses"]["Read"] = "SEEN"
    assert len(errors_of(data)) == 2


def test_problems_go_into_the_callers_checker() -> None:
    """read_inbound_tables records into the catalog's own Checker, raising nothing."""
    checker = Checker("codes.yaml")
    checker.add("canonical.OK", "an earlier problem")
    assert read_inbound_tables(checker, _broken(["inbound", "mm7", "x"], 1)) is None
    assert checker.errors == [
        "codes.yaml: canonical.OK: an earlier problem",
        "codes.yaml: inbound.mm7.x: unknown key (expected one of delivery_report, read_reply)",
    ]


def test_other_catalog_sections_are_not_read() -> None:
    """Only delivery_statuses and inbound are read: the rest is the catalog's business."""
    data = {"delivery_statuses": shipped()["delivery_statuses"], "inbound": shipped()["inbound"]}
    data["canonical"] = "anything at all"
    assert parse_inbound_tables(data).statuses.keys() == shipped()["delivery_statuses"].keys()
