"""bench/ledger.py runs: a few sends on each store print a p50/p99 line (no figure asserted)."""

import re

import pytest

from bench import ledger


def test_the_ledger_benchmark_measures_both_stores(capsys: pytest.CaptureFixture[str]) -> None:
    assert ledger.main(["--sends", "20", "--concurrency", "2"]) == 0
    out = capsys.readouterr().out
    for store in ("sqlite", "redis"):
        assert re.search(
            rf"^{store} +sends=   20  p50=\d+\.\d{{3}} ms  p99=\d+\.\d{{3}} ms$", out, re.M
        )
