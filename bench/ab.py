"""``make ab``: two gateway-proxy builds, or two configs, paired and interleaved.

A change's cost per request is a few percent; this VM's CPU speed drifts by more than that
between runs minutes apart. So both sides run in one lab (``bench.targets``: the nginx
gateway and wrk on the client core, the proxy alone on the other), in turns A, B, B, A,
A, B, ..., and each round's B/A ratio of requests per CPU-second is taken from the two
runs next to each other. The report gives each side's median and the median of the
paired ratios, per connection count.

A side is ``TREE[:VARIANT]``: a git ref (checked out into a temporary worktree and run
from it with this venv: ``python -m proxy`` with the tree first on ``PYTHONPATH``) or
``.`` for the working tree, and a config variant of ``VARIANTS`` (default ``plain``,
``make bench``'s config).

    python -m bench.ab --a HEAD~3 --b .            # the last three commits' cost
    python -m bench.ab --a .:plain --b .:rate-limit-high --rounds 8
    python -m bench.ab --a .:plain --b .:ledger
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench import targets, wrk
from bench.procs import cpu_seconds, tree_pids

ROOT = Path(__file__).resolve().parent.parent
_WARMUP_S = 1.0

#: Config variants: extra YAML appended to ``make bench``'s proxy config, or a function of
#: it (for settings inside routes). ``plain`` is that config unchanged. ``clients``: every
#: request authenticated with a client key (issue 20's cost: with a valid key against no
#: ``clients`` at all), the key sent as ``VARIANT_HEADERS`` says.
_BENCH_KEY = "bench-client-key-0123456789"
VARIANTS: dict[str, Callable[[str], str]] = {
    "plain": lambda config: config,
    "clients": lambda config: (
        config
        + "clients:\n"
        + f"  - {{name: bench, key: {_BENCH_KEY}}}\n"
        + f"  - {{name: other, key: other-{_BENCH_KEY}}}\n"
    ),
}
#: Request headers a variant's clients send (bench/instructions.py adds them to each request).
VARIANT_HEADERS: dict[str, dict[str, str]] = {
    "clients": {"Proxy-Authorization": f"Bearer {_BENCH_KEY}"},
}


def _rate_limit_never_binding(config: str) -> str:
    """Every route with a rate limit far above any load (a token always there): the cost
    of the limit itself (README "Flow control and failover": at most 5% fewer req/CPU-s)."""
    limit = "    rate_limit: {per_second: 1000000, burst: 1000000, max_wait: 5}\n"
    return config.replace("    timeout: {total: 60}\n", "    timeout: {total: 60}\n" + limit)


VARIANTS["rate-limit-high"] = _rate_limit_never_binding
#: The message ledger on a SQLite file next to the config, with the bench's traffic, which
#: carries no Idempotency-Key (README "Safe retries and delivery reports": what unkeyed
#: requests pay; each MM7 success's message id is remembered before the answer).
VARIANTS["ledger"] = lambda config: config + "ledger: {path: ledger.sqlite3}\n"


@dataclass(frozen=True, slots=True)
class Side:
    """One side of the comparison: where its code is and which config it runs."""

    label: str
    tree: Path
    variant: str


@dataclass(slots=True)
class Runs:
    """Requests per CPU-second of each side, per connection count, in round order."""

    a: dict[int, list[float]] = field(default_factory=dict)
    b: dict[int, list[float]] = field(default_factory=dict)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__.split("\n")[0])
    parser.add_argument("--a", default="HEAD", help="TREE[:VARIANT]; TREE a git ref or '.'")
    parser.add_argument("--b", default=".", help="TREE[:VARIANT] (default: the working tree)")
    parser.add_argument("--rounds", type=int, default=6, help="A/B pairs (default 6)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--connections", default="16", help="wrk connection counts")
    ns = parser.parse_args(argv)
    ns.connections = [int(c) for c in str(ns.connections).split(",")]
    if ns.rounds < 1 or ns.duration <= 0:
        parser.error("--rounds and --duration must be positive")
    return ns


def side(spec: str, worktrees: Path) -> Side:
    tree_spec, _, variant = spec.partition(":")
    variant = variant or "plain"
    if variant not in VARIANTS:
        raise SystemExit(f"bench.ab: unknown variant {variant!r}; one of {', '.join(VARIANTS)}")
    if tree_spec in ("", "."):
        return Side(spec, ROOT, variant)
    tree = worktrees / tree_spec.replace("/", "_").replace("~", "-")
    if not tree.exists():
        subprocess.run(
            [
                "git",
                "-C",
                str(ROOT),
                "worktree",
                "add",
                "--detach",
                "--quiet",
                str(tree),
                tree_spec,
            ],
            check=True,
        )
    return Side(spec, tree, variant)


def remove_trees(worktrees: Path) -> None:
    """Remove the worktrees ``side`` checked out (git keeps a record of each)."""
    for tree in worktrees.glob("*"):
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False
        )


def _measure(
    lab: targets.Lab, side: Side, script: Path, ns: argparse.Namespace
) -> dict[int, float]:
    t = targets.start(lab, "gateway-proxy", tree=side.tree, config=VARIANTS[side.variant])
    try:
        targets.answers(t)
        cpus = lab.layout.client_cpus
        wrk.run(t.base_url, script, connections=16, duration_s=_WARMUP_S, cpus=cpus)
        out: dict[int, float] = {}
        for connections in ns.connections:
            pids = tree_pids(t.pid)
            cpu0 = cpu_seconds(pids)
            r = wrk.run(
                t.base_url, script, connections=connections, duration_s=ns.duration, cpus=cpus
            )
            cpu = cpu_seconds(pids) - cpu0
            out[connections] = r.requests / cpu if cpu else 0.0
        return out
    finally:
        targets.stop(t)


def main(argv: Sequence[str] | None = None) -> int:
    ns = parse_args(argv)
    layout = targets.choose_layout(sorted(os.sched_getaffinity(0)))
    os.sched_setaffinity(0, {int(layout.client_cpus)})
    runs = Runs()
    with tempfile.TemporaryDirectory(prefix="gateway-proxy-ab-") as tmp:
        root = Path(tmp)
        os.chmod(root, 0o711)  # noqa: S103 - nginx workers ("nobody" under root) traverse it
        a, b = side(ns.a, root / "trees"), side(ns.b, root / "trees")
        script = root / "mix.lua"
        script.write_text(wrk.lua_script())
        lab = targets.start_lab(root, layout)
        try:
            for rnd in range(ns.rounds):
                order = ((a, runs.a), (b, runs.b))
                for one, into in order if rnd % 2 == 0 else order[::-1]:
                    for connections, value in _measure(lab, one, script, ns).items():
                        into.setdefault(connections, []).append(value)
                    print(f"round {rnd + 1}: {one.label}: {value:,.0f} req/CPU-s", file=sys.stderr)
        finally:
            targets.stop_lab(lab)
            remove_trees(root / "trees")
    print(f"A = {a.label}, B = {b.label}; {ns.rounds} rounds of {ns.duration:g} s, paired")
    columns = ("conns", "A req/CPU-s", "B req/CPU-s", "B/A paired", "min", "max")
    widths = (6, 12, 12, 11, 6, 6)
    print(" ".join(f"{c:>{w}}" for c, w in zip(columns, widths, strict=True)))
    for connections in ns.connections:
        pairs = [
            bv / av for av, bv in zip(runs.a[connections], runs.b[connections], strict=True) if av
        ]
        print(
            f"{connections:>6} {statistics.median(runs.a[connections]):>12,.0f}"
            f" {statistics.median(runs.b[connections]):>12,.0f} {statistics.median(pairs):>11.3f}"
            f" {min(pairs):>6.3f} {max(pairs):>6.3f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
