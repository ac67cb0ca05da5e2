"""``make bench``: gateway-proxy side by side with the gateway, nginx and a minimal aiohttp proxy.

One run, on loopback, in turns: the fake gateway directly (the ceiling), nginx as a
plain reverse proxy, ``bench.minimal_proxy`` (the good Python peer) and
``gateway-proxy serve`` with everything on. Each repetition starts every target afresh,
in an order that alternates between repetitions (forwards, then backwards), and takes:

* its start-up time and idle RSS (``bench.targets``);
* a correctness check of the four replies (a wrong target is not measured);
* wrk at each connection count (1, 16, 128; order alternating too): req/s, the target
  tree's CPU seconds (``/proc/<pid>/stat``) hence req per CPU-second, p50/p99 latency;
* a 100 MB upload: wall time, peak RSS growth;
* in the first repetition only, the slow-gateway wave: 5,000 requests at once.

Cores: wrk, the gateway and the bench's own clients share the first core; the proxy
under test runs alone on the second (``taskset``). ``--workers 2`` against ``1`` needs
the proxy on more than one core: on a 2-core machine it gets both, shared with the
client side, so that ratio is bounded well below 2 by the layout (it says so).

Medians, ratios and the issue's targets (``bench.results``) are printed as tables
(``bench.report``) and written to ``bench/results.json`` (not committed). Figures are
never asserted by the test-suite.

    python -m bench [--duration 5] [--reps 3] [--quick] [--output bench/results.json]
"""

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import nginx, scenarios, targets, wrk
from bench.procs import cpu_seconds, tree_pids
from bench.replies import REPLIES, SLOW_SECONDS
from bench.report import render
from bench.results import (
    TARGETS,
    LoadRun,
    Measurements,
    StartRun,
    TargetName,
    WorkersRun,
    compute_checks,
    document,
)

RESULTS_JSON = Path(__file__).resolve().parent / "results.json"
_WARMUP_S = 1.0
_WARMUP_CONNECTIONS = 16


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--reps", type=int, default=3, help="repetitions (default 3)")
    parser.add_argument("--connections", default="1,16,128", help="wrk connection counts")
    parser.add_argument("--upload-mb", type=int, default=100, help="upload size, MiB")
    parser.add_argument("--slow-requests", type=int, default=5000, help="0 skips the wave")
    parser.add_argument("--output", type=Path, default=RESULTS_JSON, help="results file")
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: 1 s runs, 1 rep, 10 MB, 500 slow"
    )
    ns = parser.parse_args(argv)
    if ns.quick:
        ns.duration, ns.reps, ns.upload_mb, ns.slow_requests = 1.0, 1, 10, 500
    ns.connections = [int(c) for c in str(ns.connections).split(",")]
    if ns.duration <= 0 or ns.reps < 1 or any(c < 1 for c in ns.connections):
        parser.error("--duration, --reps and --connections must be positive")
    return ns


def _raise_nofile() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard one (inherited by every target)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class _Run:
    """One bench run: the lab, the settings, and what has been measured so far."""

    def __init__(self, lab: targets.Lab, ns: argparse.Namespace, script: Path) -> None:
        self.lab, self.ns, self.script = lab, ns, script
        self.m = Measurements()
        self.answers: dict[str, dict[str, int]] = {}
        self.log_lines: list[int] = []

    def _wrk(self, t: targets.Target, connections: int, duration_s: float) -> wrk.WrkResult:
        cpus = self.lab.layout.client_cpus
        return wrk.run(
            t.base_url, self.script, connections=connections, duration_s=duration_s, cpus=cpus
        )

    def load(self, t: targets.Target, rep: int, connections: int, non_2xx_share: float) -> None:
        pids, gateway = tree_pids(t.pid), tree_pids(self.lab.gateway.pid)
        cpu0, gw0 = cpu_seconds(pids), cpu_seconds(gateway)
        children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        r = self._wrk(t, connections, self.ns.duration)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        client_cpu = (children.ru_utime - children0.ru_utime) + (
            children.ru_stime - children0.ru_stime
        )
        run = LoadRun(
            target=t.name, rep=rep, connections=connections, requests=r.requests,
            duration_s=r.duration_s, cpu_s=cpu_seconds(pids) - cpu0, p50_us=r.p50_us,
            p99_us=r.p99_us, non_2xx=r.non_2xx, expected_non_2xx=non_2xx_share * r.requests,
            socket_errors=r.socket_errors, gateway_cpu_s=cpu_seconds(gateway) - gw0,
            client_cpu_s=client_cpu,
        )  # fmt: skip
        self.m.load.append(run)
        per_cpu = f"{run.rps_per_cpu_s:,.0f}" if run.rps_per_cpu_s else "-"
        _progress(
            f"    {connections:>4} conns: {run.rps:>9,.0f} req/s  {per_cpu:>9} req/CPU-s"
            f"  p50 {r.p50_us / 1000:.3f} ms  p99 {r.p99_us / 1000:.3f} ms"
        )

    def session(self, name: TargetName, rep: int) -> None:
        """Start ``name``, measure it, stop it."""
        t = targets.start(self.lab, name)
        try:
            if name != "direct" or rep == 0:
                self.m.starts.append(StartRun(name, rep, t.ready_s, t.idle_rss_kib))
            statuses = targets.answers(t)
            self.answers[name] = statuses
            non_2xx_share = sum(s >= 300 for s in statuses.values()) / len(REPLIES)
            _progress(
                f"  {name}: ready in {t.ready_s:.3f} s, idle RSS {t.idle_rss_kib / 1024:.1f} MB"
            )
            self._wrk(t, _WARMUP_CONNECTIONS, _WARMUP_S)
            order = self.ns.connections if rep % 2 == 0 else self.ns.connections[::-1]
            for connections in order:
                self.load(t, rep, connections, non_2xx_share)
            size = self.ns.upload_mb * 2**20
            up = scenarios.upload(name, rep, t.base_url, t.pid, size)
            self.m.uploads.append(up)
            _progress(
                f"    upload {self.ns.upload_mb} MB: {up.wall_s:.3f} s, status {up.status},"
                f" RSS +{up.growth_kib / 1024:.1f} MB"
            )
            if rep == 0 and self.ns.slow_requests:
                wave = scenarios.slow_wave(name, t.base_url, t.pid, self.ns.slow_requests)
                self.m.slow.append(wave)
                _progress(
                    f"    slow wave: {wave.ok}/{wave.requests} ok in {wave.wall_s:.2f} s,"
                    f" peak RSS {wave.peak_rss_kib / 1024:.1f} MB, {wave.peak_fds} fds"
                )
        finally:
            targets.stop(t)
        if t.log is not None and name == "gateway-proxy":
            self.log_lines.append(_count_lines(t.log))

    def workers(self) -> WorkersRun:
        """gateway-proxy ``--workers 2`` against ``--workers 1`` at the largest load."""
        if not targets.workers_supported():
            return WorkersRun(False, "not available: gateway-proxy serve has no --workers")
        cpus = self.lab.layout.all_cpus
        connections = max(self.ns.connections)
        rps: dict[int, list[float]] = {1: [], 2: []}
        per_cpu: dict[int, list[float]] = {1: [], 2: []}
        for order in ((1, 2), (2, 1))[: min(2, self.ns.reps)]:
            for n in order:
                t = targets.start(self.lab, "gateway-proxy", cpus=cpus, workers=n)
                try:
                    targets.answers(t)
                    self._wrk(t, connections, _WARMUP_S)
                    pids = tree_pids(t.pid)  # the parent and its workers
                    cpu0 = cpu_seconds(pids)
                    r = self._wrk(t, connections, self.ns.duration)
                    cpu = cpu_seconds(pids) - cpu0
                    rps[n].append(r.rps)
                    per_cpu[n].append(r.requests / cpu if cpu else 0.0)
                    _progress(
                        f"  --workers {n}: {r.rps:,.0f} req/s, {per_cpu[n][-1]:,.0f} req/CPU-s"
                    )
                finally:
                    targets.stop(t)
        note = (
            f"proxy on cores {cpus}, wrk and the gateway on core {self.lab.layout.client_cpus}"
            f" ({connections} connections)"
        )
        if len(cpus.split(",")) <= 2:
            note += ": with 2 cores the second worker shares a core with the client side"
        return WorkersRun(
            True, note, statistics.mean(rps[1]), statistics.mean(rps[2]),
            statistics.mean(per_cpu[1]), statistics.mean(per_cpu[2]),
        )  # fmt: skip


def _count_lines(path: Path) -> int:
    """Lines in the request log: one per request when logging is on."""
    with path.open("rb") as log:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: log.read(1 << 20), b""))


def _version(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    lines = (done.stdout + done.stderr).strip().splitlines()
    return lines[0] if lines else "?"


def _versions() -> dict[str, str]:
    import aiohttp

    return {
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "nginx": _version([nginx.nginx_binary(), "-v"]),
        "wrk": _version(["wrk", "-v"]),
        "kernel": platform.release(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bench; 1 (with the reason) when a tool is missing or a target misbehaves."""
    ns = parse_args(argv)
    try:
        return _bench(ns)
    except (FileNotFoundError, RuntimeError, TimeoutError) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1


def _bench(ns: argparse.Namespace) -> int:
    began, started_at = time.perf_counter(), datetime.datetime.now(datetime.UTC)
    nofile = _raise_nofile()
    cpus = sorted(os.sched_getaffinity(0))
    layout = targets.choose_layout(cpus)
    os.sched_setaffinity(0, {int(layout.client_cpus)})  # the bench's own clients
    load_before = os.getloadavg()
    _progress(f"layout: {layout.note}; RLIMIT_NOFILE {nofile}; load average {load_before[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="gateway-proxy-bench-") as tmp:
        root = Path(tmp)
        os.chmod(root, 0o711)  # noqa: S103 - nginx workers ("nobody" under root) traverse it
        script = root / "mix.lua"
        script.write_text(wrk.lua_script())
        lab = targets.start_lab(root, layout)
        run = _Run(lab, ns, script)
        try:
            for rep in range(ns.reps):
                order = TARGETS if rep % 2 == 0 else TARGETS[::-1]
                _progress(f"repetition {rep + 1}/{ns.reps}: {', '.join(order)}")
                for name in order:
                    run.session(name, rep)
            _progress("gateway-proxy --workers 1 vs 2")
            run.m.workers = run.workers()
        finally:
            targets.stop_lab(lab)
    checks = compute_checks(run.m, ns.connections)
    wall_s = time.perf_counter() - began
    meta: dict[str, Any] = {
        "benchmark": "side_by_side",
        "started_at": started_at.isoformat(timespec="seconds"),
        "wall_s": round(wall_s, 1),
        "settings": {
            "duration_s": ns.duration,
            "reps": ns.reps,
            "connections": ns.connections,
            "upload_bytes": ns.upload_mb * 2**20,
            "slow_requests": ns.slow_requests,
            "slow_gateway_delay_s": SLOW_SECONDS,
            "wave_timeout_s": scenarios.WAVE_TIMEOUT_S,
            "mix": [r.name for r in REPLIES],
            "wrk_threads": 1,
        },
        "machine": {
            "cpus": len(cpus),
            "layout": asdict(layout),
            "load_average_before": load_before[0],
            "load_average_after": os.getloadavg()[0],
            "rlimit_nofile": nofile,
            **_versions(),
        },
        "answers": run.answers,
        "gateway_proxy_log_lines": run.log_lines,
    }
    result = document(run.m, checks, meta)
    ns.output.write_text(json.dumps(result, indent=2) + "\n")
    print(render(run.m, checks))
    print(f"\nwall time {wall_s:.0f} s; results in {ns.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
