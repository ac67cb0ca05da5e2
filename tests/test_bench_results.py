"""bench/results.py: medians, ratios and the issue's targets, from made-up measurements."""

import json
from typing import Any

import pytest

from bench.results import (
    TARGET_SPECS,
    LoadRun,
    Measurements,
    SlowRun,
    StartRun,
    TargetName,
    UploadRun,
    WorkersRun,
    added_p50_us,
    compute_checks,
    document,
    make_check,
    median,
    ratio,
    summarize_load,
    summarize_uploads,
)

MB = 1024  # KiB


def load_run(target: TargetName, connections: int, *, rps: float, per_cpu: float,
             p50_us: float, rep: int = 0, **extra: Any) -> LoadRun:  # fmt: skip
    """A 10-second run with ``rps`` req/s costing 1/``per_cpu`` CPU-seconds per request."""
    requests = int(rps * 10)
    return LoadRun(
        target=target, rep=rep, connections=connections, requests=requests, duration_s=10.0,
        cpu_s=requests / per_cpu, p50_us=p50_us, p99_us=p50_us * 3, **extra,
    )  # fmt: skip


def measurements(**overrides: Any) -> Measurements:
    """gateway-proxy at 1.25x minimal's req/CPU-s and 0.1x nginx's; +p50 equal to minimal's."""
    m = Measurements()
    per_cpu: dict[TargetName, float] = {
        "direct": 100_000.0, "nginx": 50_000.0, "minimal": 4_000.0, "gateway-proxy": 5_000.0,
    }  # fmt: skip
    p50: dict[TargetName, float] = {
        "direct": 20.0, "nginx": 120.0, "minimal": 520.0, "gateway-proxy": 520.0,
    }  # fmt: skip
    for target, cost in per_cpu.items():
        for c in (1, 16, 128):
            m.load.append(load_run(target, c, rps=cost / 2, per_cpu=cost, p50_us=p50[target]))
    m.uploads = [
        UploadRun("nginx", 0, 1.0, 200, 19 * MB, 19 * MB),
        UploadRun("gateway-proxy", 0, 1.1, 200, 50 * MB, 53 * MB),
        UploadRun("gateway-proxy", 1, 1.3, 200, 50 * MB, 52 * MB),
    ]
    m.starts = [
        StartRun("gateway-proxy", 0, 0.8, 40 * MB),
        StartRun("gateway-proxy", 1, 0.9, 42 * MB),
    ]
    m.slow = [SlowRun("gateway-proxy", 5000, 5000, {}, 4.0, 50 * MB, 180 * MB, 10_020, 5000)]
    m.workers = WorkersRun(True, "2 cores", rps_1=1000.0, rps_2=1900.0)
    for key, value in overrides.items():
        setattr(m, key, value)
    return m


def by_name(m: Measurements) -> dict[str, Any]:
    return {c.name: c for c in compute_checks(m)}


def test_median_and_ratio_skip_what_is_missing() -> None:
    """None values are ignored; a ratio with a missing or zero side is None."""
    assert median([3.0, None, 1.0, 2.0]) == 2.0
    assert median([None]) is None
    assert ratio(3.0, 2.0) == 1.5
    assert ratio(None, 2.0) is None
    assert ratio(1.0, 0.0) is None


def test_a_load_run_derives_rates() -> None:
    """req/s from the wall time, req per CPU-second from the tree's CPU time."""
    run = LoadRun("minimal", 0, 16, requests=5000, duration_s=5.0, cpu_s=2.5, p50_us=1, p99_us=2)
    assert run.rps == 1000.0
    assert run.rps_per_cpu_s == 2000.0
    assert LoadRun("minimal", 0, 16, 5000, 5.0, cpu_s=0.0, p50_us=1, p99_us=2).rps_per_cpu_s is None


def test_an_unexpected_share_of_non_2xx_is_flagged() -> None:
    """The mix's own error answers are expected; many more (or fewer) are not."""

    def run(non_2xx: int) -> LoadRun:
        return LoadRun("gateway-proxy", 0, 16, requests=10_000, duration_s=5.0, cpu_s=5.0,
                       p50_us=1.0, p99_us=2.0, non_2xx=non_2xx, expected_non_2xx=5000.0)  # fmt: skip

    assert not run(5010).unexpected_status
    assert run(9000).unexpected_status
    assert run(0).unexpected_status


def test_load_is_summarized_by_median_over_repetitions() -> None:
    """Each target and connection count gets the median of its repetitions."""
    runs = [load_run("nginx", 16, rps=r, per_cpu=r * 2, p50_us=r, rep=i)
            for i, r in enumerate((1000.0, 3000.0, 2000.0))]  # fmt: skip
    summary = summarize_load(runs)["nginx"][16]
    assert summary.rps == 2000.0
    assert summary.rps_per_cpu_s == pytest.approx(4000.0)
    assert summary.p50_us == 2000.0
    assert summary.reps == 3


def test_added_latency_is_over_direct() -> None:
    load = summarize_load(measurements().load)
    assert added_p50_us(load, "gateway-proxy") == 500.0
    assert added_p50_us(load, "nginx", 128) == 100.0
    assert added_p50_us({}, "nginx") is None


def test_uploads_take_the_median_wall_and_the_worst_growth() -> None:
    summary = summarize_uploads(measurements().uploads)["gateway-proxy"]
    assert summary["wall_s"] == pytest.approx(1.2)
    assert summary["rss_growth_kib"] == 3 * MB


def test_every_target_is_checked_with_its_value() -> None:
    """The made-up run meets every target: each check says so, with its value."""
    checks = by_name(measurements())
    assert {name.partition("@")[0] for name in checks} == set(TARGET_SPECS)
    assert checks["req_per_cpu_s_vs_minimal@16"].value == 1.25
    assert checks["req_per_cpu_s_vs_nginx@128"].value == 0.1
    assert checks["added_p50_vs_minimal@1"].value == 1.0
    assert checks["workers_2_vs_1"].value == 1.9
    assert checks["upload_100mb_rss_growth"].value == 3.0
    assert checks["upload_100mb_wall_vs_nginx"].value == pytest.approx(1.2)
    assert checks["idle_rss"].value == 41.0
    assert checks["start_to_ready"].value == 0.85
    assert checks["slow_errors"].value == 0
    assert checks["slow_peak_rss"].value == 180.0
    assert all(c.passed for c in checks.values()), [c for c in checks.values() if not c.passed]


def test_a_missed_target_fails() -> None:
    m = measurements(slow=[SlowRun("gateway-proxy", 5000, 4990, {"TimeoutError": 10}, 30.0,
                                   50 * MB, 400 * MB, 9000, 5000)])  # fmt: skip
    checks = by_name(m)
    assert checks["slow_errors"].value == 10
    assert checks["slow_errors"].passed is False
    assert checks["slow_peak_rss"].passed is False


def test_what_was_not_measured_is_neither_pass_nor_fail() -> None:
    """No --workers, no slow wave, no minimal peer: those checks are None, with a note."""
    m = measurements(workers=WorkersRun(False, "not available"), slow=[])
    m.load = [r for r in m.load if r.target != "minimal"]
    checks = by_name(m)
    assert checks["workers_2_vs_1"].passed is None
    assert checks["workers_2_vs_1"].note == "not available"
    assert checks["slow_errors"].passed is None
    assert checks["req_per_cpu_s_vs_minimal@1"].value is None


def test_a_target_equal_to_its_bound_passes() -> None:
    assert make_check("idle_rss", 45.0).passed is True
    assert make_check("req_per_cpu_s_vs_minimal@1", 1.0).passed is True
    assert make_check("req_per_cpu_s_vs_minimal@1", 0.999).passed is False


def test_the_document_is_json_with_value_target_and_verdict() -> None:
    m = measurements()
    doc = json.loads(json.dumps(document(m, compute_checks(m), {"benchmark": "side_by_side"})))
    assert doc["benchmark"] == "side_by_side"
    check = next(c for c in doc["checks"] if c["name"] == "idle_rss")
    assert check == {"name": "idle_rss", "value": 41.0, "op": "<=", "target": 45.0, "unit": "MB",
                     "passed": True, "note": ""}  # fmt: skip
    assert doc["summary"]["load"]["gateway-proxy"]["16"]["rps"] == 2500.0
    assert len(doc["runs"]["load"]) == 12


def test_the_document_keeps_the_workers_cost_per_cpu_second() -> None:
    m = measurements(workers=WorkersRun(True, "2 cores", 1000.0, 1900.0, 3000.0, 2850.0))
    doc = json.loads(json.dumps(document(m, compute_checks(m), {"benchmark": "side_by_side"})))
    workers = doc["summary"]["workers"]
    assert (workers["rps_per_cpu_s_1"], workers["rps_per_cpu_s_2"]) == (3000.0, 2850.0)
    assert workers["per_cpu_ratio"] == 0.95
