"""bench/ledger.py and its parts run, and the storm's verdict catches duplicate sends.

No figure is asserted (the machine is shared): only that each part measures what it says,
prints its lines, and that the storm passes with a ledger and fails without one.
"""

import json
import re
from pathlib import Path

import pytest

from bench import ledger
from bench.flow import served
from bench.ledger_gateway import gateway_process
from bench.ledger_latency import config as proxy_config
from bench.ledger_storm import Final, StormResult, storm


def test_the_ledger_benchmark_measures_both_stores(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    output = tmp_path / "results.json"
    assert ledger.main(["--only", "calls", "--sends", "20", "--concurrency", "2",
                        "--output", str(output)]) == 0  # fmt: skip
    out = capsys.readouterr().out
    for store in ("sqlite", "redis"):
        assert re.search(
            rf"^{store} +sends=   20  p50=\d+\.\d{{3}} ms  p99=\d+\.\d{{3}} ms$", out, re.M
        )
    assert set(json.loads(output.read_text())) == {"calls"}


def _final(code: str, message_id: str | None, replayed: bool) -> Final:
    return Final(200, code, message_id, replayed, 1)


def test_the_storm_verdict_needs_one_send_one_message_and_replays_per_key() -> None:
    """Pure: each rule of the verdict on its own."""
    good = StormResult(2, 2, "x", relay_sends=2, finals=[
        (0, _final("OK", "a", False)), (0, _final("OK", "a", True)),
        (1, _final("OK", "b", False)), (1, _final("OK", "b", True)),
    ])  # fmt: skip
    assert good.ok
    assert "-> relay saw 2 sends (want 2)" in good.line()
    assert good.line().endswith(": ok")
    for broken in (
        StormResult(2, 2, "x", relay_sends=3, finals=good.finals),  # a duplicate send
        StormResult(2, 2, "x", relay_sends=2, finals=[
            *good.finals[:3], (1, _final("OK", "c", True))]),  # two messages for key 1
        StormResult(2, 2, "x", relay_sends=2, finals=[
            *good.finals[:3], (1, _final("TIMEOUT", None, True))]),  # a copy not OK
        StormResult(2, 2, "x", relay_sends=2, finals=[
            *good.finals[:3], (1, _final("OK", "b", False))]),  # sent, not replayed
    ):  # fmt: skip
        assert not broken.ok
        assert broken.line().endswith(": FAILED")


@pytest.mark.slow
async def test_a_small_storm_reaches_the_relay_once_per_key_with_a_ledger_only(
    tmp_path: Path,
) -> None:
    """Real serve processes and the counting relay: --workers 2 on one SQLite file sends
    each key once; the same storm without a ledger sends every copy (the verdict fails)."""
    results = []
    for ledger_yaml, args in (
        (f"ledger: {{path: '{tmp_path / 'storm.sqlite3'}'}}\n", ("--workers", "2")),
        (None, ()),
    ):
        with (
            gateway_process(tmp_path, delay=0.2) as (relay, seen),
            served(proxy_config(relay, ledger_yaml), tmp_path, *args) as proxy,
        ):
            result = await storm([f"{proxy}/mm7/ok"], 5, 4, "test")
        result.relay_sends = seen.total
        results.append(result)
    with_ledger, without = results
    assert (with_ledger.relay_sends, with_ledger.ok, with_ledger.replays) == (5, True, 15)
    assert (without.relay_sends, without.ok) == (20, False)


@pytest.mark.slow
def test_the_latency_part_prints_every_series_and_the_store_sizes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    output = tmp_path / "results.json"
    assert ledger.main(["--only", "latency", "--requests", "20", "--footprint", "20",
                        "--output", str(output)]) == 0  # fmt: skip
    out = capsys.readouterr().out
    for kind in ("unkeyed OK", "unkeyed error", "keyed OK"):
        assert re.search(rf"^  {kind} .*\d+\.\d{{3}} / \d+\.\d{{3}}", out, re.M), kind
    for store in ("sqlite", "redis"):
        assert re.search(rf"^  {store}: a key adds [+-]\d+\.\d{{3}} ms at p50", out, re.M)
        assert re.search(rf"^  {store}: [\d,]+ bytes of store per keyed send", out, re.M)
    figures = json.loads(output.read_text())["latency"]
    assert set(figures["bytes_per_keyed_send"]) == {"sqlite", "redis"}
    assert all(size > 0 for size in figures["bytes_per_keyed_send"].values())
