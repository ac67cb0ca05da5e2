"""``make profile``: where gateway-proxy's CPU goes under the bench's load, function by function.

The side-by-side bench says how much each request costs; this says on what. It starts the
same lab (nginx as the fake gateway on the client core; each proxy pinned to the proxy
core, gateway-proxy with everything on), and for gateway-proxy and then the minimal
aiohttp proxy drives wrk's four-reply mix for ``--seconds`` at ``--connections`` while
``py-spy`` samples the proxy. It prints, per target:

* each function's **self** share of the samples (the leaf frame: time spent in its own
  code and in the C it calls) and what that is in microseconds per request, using the
  proxy's measured CPU seconds and wrk's request count;
* the **inclusive** share of gateway-proxy's pipeline stages (the handler, the upstream
  exchange, parsing, classification, the reply, observation), each sample counted once
  per stage;

and then both side by side: self microseconds per request added up per module (aiohttp's
server, aiohttp's client, each ``proxy`` module, ...), which is where the two differ.

py-spy samples without pausing the proxy (``--nonblocking``), so the proxy's own CPU time
is not charged for the sampling, and its speed is the bench's. The price: a stack read
while the proxy runs can come out cut short (its outer frames missing). A sample's leaf,
and so the self figures, are what to read; stage shares are lower bounds. ``--blocking``
pauses the proxy for each sample instead: whole stacks, but a proxy slowed down by it,
and idle waits of the log writer's thread counted as busy. The figures go to
``bench/profile.json``.

    python -m bench.profile [--targets gateway-proxy,minimal] [--connections 16]
                            [--seconds 10] [--top 30] [--keep-raw PATH] [--blocking]
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import cast

from bench import targets, wrk
from bench.procs import cpu_seconds, tree_pids
from bench.results import TargetName

OUTPUT = Path(__file__).resolve().parent / "profile.json"
INSTALL_HINT = "pip install py-spy (make profile installs it)"

# The pipeline's stages, each by the function that runs it and where it lives (inclusive).
STAGES: dict[str, tuple[str, str]] = {
    "aiohttp's connection handler (all of a request)": ("_handle_request", "aiohttp/"),
    "gateway-proxy's handler": ("handle", "proxy/server/handle.py"),
    "upstream exchange (send, wait, read)": ("exchange", "proxy/upstream/exchange.py"),
    "vendor parsing (XML, JSON)": ("parse_reply", "proxy/vendors/"),
    "classification": ("_classify", "proxy/server/handle.py"),
    "reply decision": ("decide_reply", "proxy/server/respond.py"),
    "finish (observe, build the response)": ("_finish", "proxy/server/handle.py"),
    "  the log line": ("log_request", "proxy/observability/record.py"),
    "  the metrics": ("observe", "proxy/observability/metrics.py"),
}

# "function (path:line)" as py-spy's raw format writes a frame.
_FRAME = re.compile(r"^(?P<function>.+?) \((?P<path>[^():]+)(?::\d+)?\)$")


@dataclass(frozen=True, slots=True)
class Row:
    """One function's samples: its own (self) and with everything it called (inclusive)."""

    function: str
    where: str
    self_samples: int
    inclusive_samples: int


def frame_key(frame: str) -> tuple[str, str]:
    """(function, module path shortened to its package) of one py-spy frame."""
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip(), ""
    path = match["path"]
    for marker in ("site-packages/", "/lib/python3", "/work/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return match["function"], path.removeprefix("main/")


def parse_raw(lines: Iterable[str]) -> tuple[list[Row], int]:
    """Aggregate py-spy ``--format raw`` lines (``frame;frame;... count``, outermost first)
    into rows sorted by self samples, and the total sample count."""
    own: Counter[tuple[str, str]] = Counter()
    inclusive: Counter[tuple[str, str]] = Counter()
    total = 0
    for line in lines:
        stack, _, count_text = line.rstrip("\n").rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [frame_key(f) for f in stack.split(";") if f]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for key in set(frames):
            inclusive[key] += count
    rows = [
        Row(function, where, own[(function, where)], inclusive[(function, where)])
        for (function, where) in inclusive
    ]
    rows.sort(key=lambda r: (-r.self_samples, -r.inclusive_samples, r.function))
    return rows, total


def stage_shares(rows: Sequence[Row], total: int) -> dict[str, float]:
    """Each stage's inclusive share of ``total`` samples (its function's row)."""
    shares: dict[str, float] = {}
    for stage, (function, where) in STAGES.items():
        samples = sum(
            r.inclusive_samples
            for r in rows
            if (r.function == function or r.function.endswith("." + function)) and where in r.where
        )
        shares[stage] = samples / total if total else 0.0
    return shares


def render(
    rows: Sequence[Row], total: int, us_per_request: float, top: int, stages: dict[str, float]
) -> str:
    lines = [
        f"{total:,} samples; {us_per_request:.1f} µs of proxy CPU per request",
        "",
        f"{'self %':>7} {'µs/req':>7} {'incl %':>7}  function (where)",
    ]
    for r in rows[:top]:
        share, incl = r.self_samples / total, r.inclusive_samples / total
        lines.append(
            f"{share:>7.1%} {share * us_per_request:>7.1f} {incl:>7.1%}  {r.function} ({r.where})"
        )
    if stages:
        lines += [
            "",
            f"{'incl %':>7} {'µs/req':>7}  stage (at least: unpaused reads cut some stacks)",
        ]
    for stage, share in stages.items():
        lines.append(f"{share:>7.1%} {share * us_per_request:>7.1f}  {stage}")
    return "\n".join(lines)


def _py_spy() -> str:
    beside = Path(sys.executable).with_name("py-spy")
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise FileNotFoundError(f"py-spy not found: {INSTALL_HINT}")
    return found


def module_group(where: str) -> str:
    """Which part of the stack a frame's file belongs to, for the side-by-side table."""
    if where.startswith("aiohttp/"):
        name = where.removeprefix("aiohttp/")
        if name.startswith("web_") or name == "http_writer.py":
            return "aiohttp server (request, response, writer)"
        if name.startswith(("client", "connector")):
            return "aiohttp client (session, request, connector)"
        return f"aiohttp {name.removesuffix('.py')}"
    if where.startswith(("proxy/", "bench/")):
        return where
    return where.split("/", 1)[0] or "(unknown)"


def by_module(rows: Sequence[Row], total: int, us_per_request: float) -> dict[str, float]:
    """Self µs per request, added up per ``module_group``, biggest first."""
    groups: Counter[str] = Counter()
    for r in rows:
        if r.self_samples:
            groups[module_group(r.where)] += r.self_samples
    scale = us_per_request / total if total else 0.0
    return {group: round(samples * scale, 1) for group, samples in groups.most_common()}


def render_side_by_side(profiles: dict[str, dict[str, float]], top: int) -> str:
    """µs per request per module group, one column per target."""
    names = list(profiles)
    groups = sorted(
        {g for p in profiles.values() for g in p},
        key=lambda g: -max(p.get(g, 0.0) for p in profiles.values()),
    )
    lines = ["  ".join(f"{n[:13]:>13}" for n in names) + "  self µs/request, by module"]
    for group in groups[:top]:
        lines.append(
            "  ".join(f"{profiles[n].get(group, 0.0):>13.1f}" for n in names) + f"  {group}"
        )
    lines.append("  ".join(f"{sum(profiles[n].values()):>13.1f}" for n in names) + "  total")
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class _Sampled:
    rows: list[Row]
    total: int
    requests: int
    cpu_s: float

    @property
    def us_per_request(self) -> float:
        return self.cpu_s / self.requests * 1e6 if self.requests else 0.0


def _sample(ns: argparse.Namespace, lab: targets.Lab, name: TargetName, script: Path) -> _Sampled:
    """Start ``name``, warm it up, and sample it under load for ``--seconds``."""
    client = lab.layout.client_cpus
    proxy = targets.start(lab, name)
    try:
        wrk.run(proxy.base_url, script, connections=ns.connections, duration_s=2.0,
                cpus=client)  # fmt: skip  # warm-up: pools, caches
        raw = lab.root / f"{name}.raw"
        spy = subprocess.Popen(
            ["taskset", "-c", client, _py_spy(), "record", "--pid", str(proxy.pid),
             "--duration", f"{ns.seconds:g}", "--rate", str(ns.rate),
             *([] if ns.blocking else ["--nonblocking"]), "--format", "raw", "--output", str(raw)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        pids = tree_pids(proxy.pid)
        cpu0 = cpu_seconds(pids)
        load = wrk.run(proxy.base_url, script, connections=ns.connections,
                       duration_s=ns.seconds, cpus=client)  # fmt: skip
        cpu_s = cpu_seconds(pids) - cpu0
        _, err = spy.communicate(timeout=ns.seconds + 60)
        if spy.returncode != 0:
            raise RuntimeError(f"py-spy failed ({spy.returncode}): {err.decode()[-500:]}")
    finally:
        targets.stop(proxy)
    if ns.keep_raw is not None:
        shutil.copyfile(raw, ns.keep_raw.with_name(f"{ns.keep_raw.name}.{name}"))
    rows, total = parse_raw(raw.read_text().splitlines())
    return _Sampled(rows, total, load.requests, cpu_s)


def _profile(ns: argparse.Namespace, root: Path) -> dict[str, object]:
    layout = targets.choose_layout(sorted(os.sched_getaffinity(0)))
    os.sched_setaffinity(0, {int(layout.client_cpus)})
    script = root / "mix.lua"
    script.write_text(wrk.lua_script())
    os.chmod(root, 0o711)  # noqa: S103 - nginx workers ("nobody" under root) traverse it
    lab = targets.start_lab(root, layout)
    try:
        sampled = {name: _sample(ns, lab, name, script) for name in ns.targets}
    finally:
        targets.stop_lab(lab)
    modules: dict[str, dict[str, float]] = {}
    documents: dict[str, object] = {}
    for name, s in sampled.items():
        stages = stage_shares(s.rows, s.total) if name == "gateway-proxy" else {}
        print(f"== {name}")
        print(render(s.rows, s.total, s.us_per_request, ns.top, stages) + "\n")
        modules[name] = by_module(s.rows, s.total, s.us_per_request)
        documents[name] = {
            "requests": s.requests,
            "proxy_cpu_s": round(s.cpu_s, 3),
            "us_per_request": round(s.us_per_request, 1),
            "samples": s.total,
            "stages": {k: round(v, 4) for k, v in stages.items()},
            "modules_us_per_request": modules[name],
            "functions": [asdict(r) for r in s.rows[: ns.top]],
        }
    if len(modules) > 1:
        print(render_side_by_side(modules, ns.top))
    return {
        "benchmark": "profile",
        "connections": ns.connections,
        "seconds": ns.seconds,
        "layout": asdict(layout),
        "targets": documents,
    }


def _targets(text: str) -> list[TargetName]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    for name in names:
        if name not in PROFILED:
            raise argparse.ArgumentTypeError(f"not one of {', '.join(PROFILED)}: {name!r}")
    return cast(list[TargetName], names)


PROFILED = ("gateway-proxy", "minimal")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument(
        "--targets", type=_targets, default=list(PROFILED), help="comma-separated, in order"
    )
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=500, help="samples per second")
    parser.add_argument("--top", type=int, default=30, help="functions to list")
    parser.add_argument(
        "--blocking", action="store_true",
        help="pause the proxy for each sample: whole stacks, but a slower proxy, and the log "
        "writer's waits count as busy",
    )  # fmt: skip
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument(
        "--keep-raw", type=Path, metavar="PATH",
        help="also keep py-spy's raw stacks (with line numbers) as PATH.<target>",
    )  # fmt: skip
    ns = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="gateway-proxy-profile-") as tmp:
        result = _profile(ns, Path(tmp))
    ns.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nresults in {ns.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
