"""bench/ab.py and bench/instructions.py: sides, variants and the counts they read."""

from pathlib import Path

import pytest

from bench import ab, instructions


def test_a_side_is_a_tree_and_a_variant(tmp_path: Path) -> None:
    side = ab.side(".", tmp_path)
    assert (side.tree, side.variant) == (ab.ROOT, "plain")
    assert ab.side(".:plain", tmp_path).label == ".:plain"
    assert not list(tmp_path.iterdir())  # the working tree needs no checkout


def test_an_unknown_variant_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="unknown variant 'turbo'"):
        ab.side(".:turbo", tmp_path)


def test_every_variant_keeps_the_bench_config_valid() -> None:
    import yaml

    from bench.targets import gateway_proxy_config
    from proxy.config import parse_config

    for name, variant in ab.VARIANTS.items():
        config = parse_config(yaml.safe_load(variant(gateway_proxy_config(1, 2, 3))), env={})
        assert len(config.routes) == 3, name


def test_callgrinds_total_is_read_from_its_summary() -> None:
    found = instructions._COLLECTED.search("==7== Events    : Ir\n==7== Collected : 8123456\n")
    assert found is not None
    assert found.group(1) == "8123456"
