"""The side-by-side bench's figures, ratios and targets (pure functions, no I/O).

In: the raw measurements of one run (``LoadRun``, ``UploadRun``, ``StartRun``,
``SlowRun``, ``WorkersRun``), several repetitions per target. Out: medians per target
(``summarize_*``), the issue's targets as ``Check``s with value, target and pass/fail
(``compute_checks``) and the JSON document (``document``); ``bench.report`` prints them.

Conventions: latencies in microseconds, memory in KiB inside, MB (MiB) in checks and
tables. A ratio whose inputs are missing or zero is ``None`` and its check has
``passed=None`` ("not measured"), never a pass.
"""

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

TargetName = Literal["direct", "nginx", "minimal", "gateway-proxy"]
TARGETS: tuple[TargetName, ...] = get_args(TargetName)
PROXIES: tuple[TargetName, ...] = TARGETS[1:]
Op = Literal[">=", "<="]
GP: TargetName = "gateway-proxy"

#: The issue's targets for gateway-proxy: check name -> (op, target, unit).
TARGET_SPECS: dict[str, tuple[Op, float, str]] = {
    "req_per_cpu_s_vs_minimal": (">=", 1.0, "x"),
    "req_per_cpu_s_vs_nginx": (">=", 0.07, "x"),
    "added_p50_vs_minimal": ("<=", 1.2, "x"),
    "workers_2_vs_1": (">=", 1.8, "x"),
    "upload_100mb_rss_growth": ("<=", 5.0, "MB"),
    "upload_100mb_wall_vs_nginx": ("<=", 1.2, "x"),
    "idle_rss": ("<=", 45.0, "MB"),
    "start_to_ready": ("<=", 1.0, "s"),
    "slow_errors": ("<=", 0.0, ""),
    "slow_peak_rss": ("<=", 300.0, "MB"),
}


@dataclass(frozen=True, slots=True)
class LoadRun:
    """One wrk run. ``cpu_s`` is the target's tree (for ``direct``: the gateway's, which is
    then also ``gateway_cpu_s``); ``client_cpu_s`` is wrk's."""

    target: TargetName
    rep: int
    connections: int
    requests: int
    duration_s: float
    cpu_s: float
    p50_us: float
    p99_us: float
    non_2xx: int = 0
    expected_non_2xx: float = 0.0
    socket_errors: int = 0
    gateway_cpu_s: float = 0.0
    client_cpu_s: float = 0.0

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def rps_per_cpu_s(self) -> float | None:
        return self.requests / self.cpu_s if self.cpu_s > 0 else None

    @property
    def client_core_busy(self) -> float | None:
        """Share of the client core that wrk and the gateway used (1.0: saturated)."""
        if self.duration_s <= 0:
            return None
        return (self.client_cpu_s + self.gateway_cpu_s) / self.duration_s

    @property
    def unexpected_status(self) -> bool:
        """More (or fewer) non-2xx answers than the mix gives, beyond the in-flight slack."""
        return abs(self.non_2xx - self.expected_non_2xx) > self.connections + 0.01 * self.requests


@dataclass(frozen=True, slots=True)
class UploadRun:
    target: TargetName
    rep: int
    wall_s: float
    status: int
    rss_before_kib: int
    rss_peak_kib: int

    @property
    def growth_kib(self) -> int:
        return max(0, self.rss_peak_kib - self.rss_before_kib)


@dataclass(frozen=True, slots=True)
class StartRun:
    """Process start to ready (/readyz 200, or a first good answer), and RSS just after."""

    target: TargetName
    rep: int
    ready_s: float
    idle_rss_kib: int


@dataclass(frozen=True, slots=True)
class SlowRun:
    """``requests`` sent at once to a gateway that answers after a delay."""

    target: TargetName
    requests: int
    ok: int
    failures: dict[str, int]
    wall_s: float
    rss_before_kib: int
    peak_rss_kib: int
    peak_fds: int
    max_in_flight: int
    listen_overflows: int = 0  # system-wide accept-queue drops during the wave

    @property
    def errors(self) -> int:
        return self.requests - self.ok


@dataclass(frozen=True, slots=True)
class WorkersRun:
    """gateway-proxy ``--workers 2`` against ``--workers 1`` (req/s at the same load), and
    the requests per CPU-second of each (parent and workers): whether a second worker
    costs more per request, which throughput cannot show when the cores are shared."""

    available: bool
    note: str
    rps_1: float | None = None
    rps_2: float | None = None
    rps_per_cpu_s_1: float | None = None
    rps_per_cpu_s_2: float | None = None

    @property
    def per_cpu_ratio(self) -> float | None:
        """req/CPU-s with 2 workers over that with 1: 1.0 means the second costs nothing."""
        return ratio(self.rps_per_cpu_s_2, self.rps_per_cpu_s_1)


@dataclass(frozen=True, slots=True)
class LoadSummary:
    rps: float
    rps_per_cpu_s: float | None
    p50_us: float
    p99_us: float
    reps: int
    socket_errors: int
    unexpected_status_runs: int
    client_core_busy: float  # (wrk + gateway CPU) / wall: near 1.0, the client side saturated


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    value: float | None
    op: Op
    target: float
    unit: str
    passed: bool | None
    note: str = ""


@dataclass
class Measurements:
    """Everything one run measured."""

    load: list[LoadRun] = field(default_factory=list)
    uploads: list[UploadRun] = field(default_factory=list)
    starts: list[StartRun] = field(default_factory=list)
    slow: list[SlowRun] = field(default_factory=list)
    workers: WorkersRun = field(default_factory=lambda: WorkersRun(False, "not measured"))


def median(values: Iterable[float | None]) -> float | None:
    """Median of the values that are not None; None when there are none."""
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def make_check(name: str, value: float | None, *, note: str = "") -> Check:
    """The check of target ``name`` (``name@N`` uses the spec of ``name``).

    ``passed`` is None when the value could not be measured.
    """
    op, target, unit = TARGET_SPECS[name.partition("@")[0]]
    shown = None if value is None else round(value, 4)  # judged as recorded: 1.2 is <= 1.2
    passed = None if shown is None else (shown >= target if op == ">=" else shown <= target)
    return Check(name, shown, op, target, unit, passed, note)


def summarize_load(runs: Sequence[LoadRun]) -> dict[TargetName, dict[int, LoadSummary]]:
    """Medians across repetitions, per target and connection count."""
    groups: dict[tuple[TargetName, int], list[LoadRun]] = {}
    for run in runs:
        groups.setdefault((run.target, run.connections), []).append(run)
    summary: dict[TargetName, dict[int, LoadSummary]] = {}
    for (target, connections), group in sorted(
        groups.items(), key=lambda kv: (TARGETS.index(kv[0][0]), kv[0][1])
    ):
        summary.setdefault(target, {})[connections] = LoadSummary(
            rps=median(r.rps for r in group) or 0.0,
            rps_per_cpu_s=median(r.rps_per_cpu_s for r in group),
            p50_us=median(r.p50_us for r in group) or 0.0,
            p99_us=median(r.p99_us for r in group) or 0.0,
            reps=len(group),
            socket_errors=sum(r.socket_errors for r in group),
            unexpected_status_runs=sum(r.unexpected_status for r in group),
            client_core_busy=median(r.client_core_busy for r in group) or 0.0,
        )
    return summary


def added_p50_us(
    load: dict[TargetName, dict[int, LoadSummary]], target: TargetName, connections: int = 1
) -> float | None:
    """The p50 latency ``target`` adds over talking to the gateway directly."""
    try:
        return load[target][connections].p50_us - load["direct"][connections].p50_us
    except KeyError:
        return None


def _by_target(values: Iterable[tuple[TargetName, float]]) -> dict[TargetName, list[float]]:
    grouped: dict[TargetName, list[float]] = {}
    for target, value in values:
        grouped.setdefault(target, []).append(value)
    return grouped


def summarize_uploads(runs: Sequence[UploadRun]) -> dict[TargetName, dict[str, float | None]]:
    """Median wall time and worst RSS growth per target."""
    walls = _by_target((r.target, r.wall_s) for r in runs)
    growth = _by_target((r.target, r.growth_kib) for r in runs)
    failed = _by_target((r.target, float(r.status != 200)) for r in runs)
    return {
        t: {"wall_s": median(walls[t]), "rss_growth_kib": max(growth[t]), "failed": sum(failed[t])}
        for t in TARGETS
        if t in walls
    }


def summarize_starts(runs: Sequence[StartRun]) -> dict[TargetName, dict[str, float | None]]:
    ready = _by_target((r.target, r.ready_s) for r in runs)
    idle = _by_target((r.target, r.idle_rss_kib) for r in runs)
    return {
        t: {"ready_s": median(ready[t]), "idle_rss_kib": median(idle[t])}
        for t in TARGETS
        if t in ready
    }


def _mb(kib: float | None) -> float | None:
    return None if kib is None else kib / 1024


def compute_checks(m: Measurements, connections: Sequence[int] = (1, 16, 128)) -> list[Check]:
    """The issue's targets for gateway-proxy (``TARGET_SPECS``), each with value and verdict."""
    load = summarize_load(m.load)
    uploads = summarize_uploads(m.uploads)
    gp_start = summarize_starts(m.starts).get(GP, {})
    gp_slow = next((r for r in m.slow if r.target == GP), None)

    def per_cpu(target: TargetName, c: int) -> float | None:
        entry = load.get(target, {}).get(c)
        return entry.rps_per_cpu_s if entry else None

    checks = [
        make_check(f"req_per_cpu_s_vs_{peer}@{c}", ratio(per_cpu(GP, c), per_cpu(peer, c)))
        for peer in ("minimal", "nginx")
        for c in connections
    ]
    added = ratio(added_p50_us(load, GP), added_p50_us(load, "minimal"))
    w = m.workers
    gp_upload = uploads.get(GP, {})
    slow_note = f"{gp_slow.requests} requests at once" if gp_slow else "not measured"
    return [
        *checks,
        make_check("added_p50_vs_minimal@1", added, note="(gp - direct) / (minimal - direct)"),
        make_check("workers_2_vs_1", ratio(w.rps_2, w.rps_1) if w.available else None, note=w.note),
        make_check("upload_100mb_rss_growth", _mb(gp_upload.get("rss_growth_kib"))),
        make_check(
            "upload_100mb_wall_vs_nginx",
            ratio(gp_upload.get("wall_s"), uploads.get("nginx", {}).get("wall_s")),
        ),
        make_check("idle_rss", _mb(gp_start.get("idle_rss_kib"))),
        make_check("start_to_ready", gp_start.get("ready_s"), note="until /readyz is 200"),
        make_check("slow_errors", gp_slow.errors if gp_slow else None, note=slow_note),
        make_check("slow_peak_rss", _mb(gp_slow.peak_rss_kib) if gp_slow else None, note=slow_note),
    ]


def document(m: Measurements, checks: Sequence[Check], meta: dict[str, Any]) -> dict[str, Any]:
    """results.json: the settings, the summaries, the checks and every raw run."""
    load = summarize_load(m.load)
    return {
        **meta,
        "summary": {
            "load": {t: {str(c): asdict(s) for c, s in by_c.items()} for t, by_c in load.items()},
            "added_p50_us_at_1": {t: added_p50_us(load, t) for t in PROXIES},
            "upload": summarize_uploads(m.uploads),
            "start": summarize_starts(m.starts),
            "slow": [asdict(r) | {"errors": r.errors} for r in m.slow],
            "workers": {**asdict(m.workers), "per_cpu_ratio": m.workers.per_cpu_ratio},
        },
        "checks": [asdict(c) for c in checks],
        "runs": {
            "load": [asdict(r) | {"rps": r.rps, "rps_per_cpu_s": r.rps_per_cpu_s} for r in m.load],
            "upload": [asdict(r) | {"growth_kib": r.growth_kib} for r in m.uploads],
            "start": [asdict(r) for r in m.starts],
        },
    }
