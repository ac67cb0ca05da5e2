"""Print the side-by-side bench as plain-text tables (pure: strings in, a string out)."""

from collections.abc import Sequence

from bench.results import (
    TARGETS,
    Check,
    Measurements,
    added_p50_us,
    summarize_load,
    summarize_starts,
    summarize_uploads,
)


def table(
    header: Sequence[str], rows: Sequence[Sequence[str]], *, text_last: bool = False
) -> list[str]:
    """Columns sized to fit: numbers right-aligned, the first column (and with
    ``text_last`` the last one) left-aligned."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    left = {0, len(header) - 1} if text_last else {0}

    def line(cells: Sequence[str]) -> str:
        padded = (
            c.ljust(w) if i in left else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )
        return "  " + "  ".join(padded).rstrip()

    return [line(header), *(line(r) for r in rows)]


def num(value: float | None, digits: int = 1, scale: float = 1.0) -> str:
    """``value / scale`` with ``digits`` decimals and thousands separators; "-" for None."""
    return "-" if value is None else f"{value / scale:,.{digits}f}"


def verdict(passed: bool | None) -> str:
    return {True: "PASS", False: "FAIL", None: "n/a"}[passed]


def _load_rows(m: Measurements) -> list[list[str]]:
    load = summarize_load(m.load)
    rows = []
    for target, by_conn in load.items():
        for c, s in by_conn.items():
            added = None if target == "direct" else added_p50_us(load, target, c)
            flag = "!" if s.socket_errors or s.unexpected_status_runs else ""
            rows.append([
                target, str(c), num(s.rps, 0), num(s.rps_per_cpu_s, 0), num(s.p50_us, 3, 1000),
                num(s.p99_us, 3, 1000), num(added, 3, 1000), f"{s.client_core_busy:.0%}", flag,
            ])  # fmt: skip
    return rows


def _other_rows(m: Measurements) -> list[list[str]]:
    uploads, starts = summarize_uploads(m.uploads), summarize_starts(m.starts)
    rows = []
    for t in TARGETS:
        u, s = uploads.get(t, {}), starts.get(t, {})
        rows.append([
            t, num(u.get("wall_s"), 3), num(u.get("rss_growth_kib"), 1, 1024),
            num(s.get("ready_s"), 3), num(s.get("idle_rss_kib"), 1, 1024),
        ])  # fmt: skip
    return rows


def render(m: Measurements, checks: Sequence[Check]) -> str:
    """The whole report: throughput, upload and start-up, slow gateway, workers, targets."""
    out = ["Throughput: wrk -t1, the 4-reply mix; medians over the repetitions"]
    out += table(
        ["target", "conns", "req/s", "req/CPU-s", "p50 ms", "p99 ms", "+p50 ms", "client", ""],
        _load_rows(m),
    )
    out.append(
        "  +p50: latency added over direct; client: share of the client core that wrk and the"
        " gateway used; !: socket errors or an unexpected share of non-2xx (see results.json)"
    )
    out += ["", "Upload of 100 MB; process start to ready; RSS after start-up"]
    out += table(["target", "upload s", "RSS +MB", "ready s", "idle MB"], _other_rows(m))
    if m.slow:
        out += ["", "Slow gateway: requests held open at once until it answers"]
        rows = [
            [r.target, str(r.requests), str(r.ok), num(r.wall_s, 2), num(r.peak_rss_kib, 1, 1024),
             num(r.peak_rss_kib - r.rss_before_kib, 1, 1024), str(r.peak_fds), str(r.max_in_flight),
             str(r.listen_overflows), " ".join(f"{k}={v}" for k, v in sorted(r.failures.items()))]
            for r in m.slow
        ]  # fmt: skip
        header = ["target", "sent", "ok", "wall s", "peak MB", "+MB", "fds", "in flight"]
        out += table([*header, "overflows", "failures"], rows, text_last=True)
    w = m.workers
    figures = ""
    if w.available:
        figures = f"{num(w.rps_1, 0)} -> {num(w.rps_2, 0)} req/s"
        if w.per_cpu_ratio is not None:
            figures += (
                f" ({num(w.rps_per_cpu_s_1, 0)} -> {num(w.rps_per_cpu_s_2, 0)} req/CPU-s, "
                f"{w.per_cpu_ratio:.2f} x per CPU)"
            )
        figures += "; "
    out += ["", f"gateway-proxy --workers 1 -> 2: {figures}{w.note}"]
    out += ["", "Targets for gateway-proxy"]
    out += table(
        ["check", "value", "target", "verdict", "note"],
        [
            [c.name, f"{num(c.value, 3 if c.unit else 0)} {c.unit}".strip(),
             f"{c.op} {c.target:g} {c.unit}".strip(), verdict(c.passed), c.note]
            for c in checks
        ],
        text_last=True,
    )  # fmt: skip
    return "\n".join(out)
