"""bench/report.py: the printed tables."""

from bench.report import num, render, table
from bench.results import LoadRun, Measurements, WorkersRun, compute_checks


def test_table_columns_fit_and_numbers_align_right() -> None:
    lines = table(["target", "req/s"], [["nginx", "12,345"], ["gateway-proxy", "9"]])
    assert lines == [
        "  target          req/s",
        "  nginx          12,345",
        "  gateway-proxy       9",
    ]


def test_num_scales_and_marks_missing_values() -> None:
    assert num(1536.0, 1, 1024) == "1.5"
    assert num(12345.6, 0) == "12,346"
    assert num(None) == "-"


def test_the_report_names_every_check_and_what_was_not_measured() -> None:
    m = Measurements(
        load=[LoadRun("direct", 0, 1, 1000, 1.0, 0.5, 20.0, 60.0),
              LoadRun("gateway-proxy", 0, 1, 100, 1.0, 0.5, 520.0, 900.0)],
        workers=WorkersRun(False, "not available: no --workers"),
    )  # fmt: skip
    checks = compute_checks(m, connections=(1,))
    text = render(m, checks)
    assert "gateway-proxy --workers 1 -> 2: not available: no --workers" in text
    for check in checks:
        assert check.name in text
    assert "0.500" in text  # +p50 of gateway-proxy over direct, in ms
    assert "n/a" in text


def test_the_workers_line_shows_throughput_and_the_cost_per_cpu_second() -> None:
    workers = WorkersRun(True, "2 cores", 3000.0, 5000.0, 3100.0, 2945.0)
    assert workers.per_cpu_ratio == 2945.0 / 3100.0
    text = render(Measurements(workers=workers), [])
    assert (
        "gateway-proxy --workers 1 -> 2: 3,000 -> 5,000 req/s "
        "(3,100 -> 2,945 req/CPU-s, 0.95 x per CPU); 2 cores" in text
    )


def test_without_cpu_figures_the_workers_line_shows_throughput_only() -> None:
    text = render(Measurements(workers=WorkersRun(True, "2 cores", 3000.0, 5000.0)), [])
    assert "gateway-proxy --workers 1 -> 2: 3,000 -> 5,000 req/s; 2 cores" in text
