"""What the message ledger costs, and that it holds: ``python -m bench.ledger`` (``make bench``).

Three parts, each printed as figures (``--only calls,latency,storm``; all by default):

* ``calls``: the ledger calls of one keyed send (``begin``, ``finish``, ``remember``) back
  to back on each store, in this process: a SQLite file in a temporary directory and a
  local ``redis-server`` on a free port (as the tests start one). p50 and p99.
* ``latency`` (``bench.ledger_latency``): through real ``gateway-proxy serve`` processes,
  what a key adds to a request (p50, p99; the issue's budget is 1 ms at p50 on either
  store), what a ledger adds to requests without a key, and how much store a keyed send
  takes.
* ``storm`` (``bench.ledger_storm``): 100 keys x 10 concurrent resends through two
  ``serve`` processes sharing one Redis, then through ``serve --workers 2`` on one SQLite
  file. The counting relay must see exactly one send per key; **the command exits 1 when
  it does not** (or when a copy does not end with its message's one success). A control
  run without a ledger shows what the storm does otherwise.

Figures go to ``bench/ledger-results.json`` (not committed). Nothing here is asserted by
the test-suite but the storm's own verdict: the machine is shared and noisy.

Options: ``--sends N`` and ``--concurrency C`` (calls), ``--requests N`` (latency, per
series), ``--footprint N`` (keyed sends to measure the store's growth), ``--keys`` and
``--resends`` and ``--relay-delay`` (storm; the relay's seconds per answer, default 0.05).
"""

import argparse
import asyncio
import json
import resource
import statistics
import tempfile
import time
from pathlib import Path

from bench import ledger_latency
from bench.flow import served
from bench.ledger_gateway import gateway_process
from bench.ledger_latency import config as proxy_config
from bench.ledger_storm import StormResult, storm
from proxy.ledger import (
    Correlation,
    Ledger,
    Scope,
    Started,
    StoredAnswer,
    fingerprint_of,
    in_flight_ttl,
    utc_now,
)
from proxy.ledger.redis_ledger import RedisLedger
from proxy.ledger.sqlite_ledger import SqliteLedger
from tests.redis_server import RedisServer

#: Seconds the relay takes to answer in the storm (``--relay-delay``): a fast relay, so the
#: first send's answer is kept while the other copies of its key still pour in.
STORM_DELAY = 0.05

ANSWER = StoredAnswer(
    200,
    (("Content-Type", "application/json"), ("X-Request-ID", "0" * 32)),
    b'{"ok":true,"status":200,"code":"OK","data":{"message_id":"302718189"}}' * 8,
)


async def one_send(ledger: Ledger, i: int) -> float:
    """begin → finish → remember for one new key; the seconds it took."""
    scope = Scope("anonymous", "mms", f"key-{i}-{time.monotonic_ns()}")
    started = time.perf_counter()
    begun = await ledger.begin(scope, in_flight_ttl(30))
    assert isinstance(begun, Started)
    await ledger.finish(scope, fingerprint_of("POST", "/mm7", b"x" * 512), ANSWER, 86400)
    record = Correlation(f"req-{i}", "anonymous", scope.key, None, utc_now(), "mms")
    await ledger.remember(f"msg-{i}", "mm7", record, 604800)
    return time.perf_counter() - started


async def measure(ledger: Ledger, sends: int, concurrency: int) -> list[float]:
    for i in range(50):  # warm-up: connections, statement cache, page cache
        await one_send(ledger, -i - 1)
    samples: list[float] = []
    queue = iter(range(sends))

    async def worker() -> None:
        for i in queue:
            samples.append(await one_send(ledger, i))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return samples


def report(name: str, samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return f"{name:8} sends={len(ms):5}  p50={statistics.median(ms):.3f} ms  p99={p99:.3f} ms"


async def run(sends: int, concurrency: int) -> list[str]:
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = await SqliteLedger.open(Path(tmp) / "ledger.sqlite3")
        try:
            lines.append(report("sqlite", await measure(sqlite, sends, concurrency)))
        finally:
            await sqlite.close()
        with RedisServer(Path(tmp) / "redis") as server:
            redis = RedisLedger.from_url(server.url)
            try:
                lines.append(report("redis", await measure(redis, sends, concurrency)))
            finally:
                await redis.close()
    return lines


def _raise_nofile() -> None:
    """The storm opens a connection per copy: raise the soft descriptor limit to the hard."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def latency(directory: Path, requests: int, footprint: int) -> ledger_latency.Latency:
    """Three proxies (no ledger, SQLite, Redis) in front of one relay: ``bench.ledger_latency``."""
    sqlite_file = directory / "latency" / "ledger.sqlite3"
    with (
        RedisServer(directory / "latency-redis") as store,
        gateway_process(directory) as (relay, _),
        served(proxy_config(relay, None), directory) as none,
        served(proxy_config(relay, f"ledger: {{path: '{sqlite_file}'}}\n"), directory) as sqlite,
        served(proxy_config(relay, f"store: {store.url}\nledger: {{}}\n"), directory) as redis,
    ):
        urls = {"none": none, "sqlite": sqlite, "redis": redis}
        figures = await ledger_latency.measure(urls, requests)
        if footprint:
            figures.bytes_per_keyed_send = await ledger_latency.store_sizes(
                urls, sqlite_file, store.url, footprint
            )
    return figures


async def storms(directory: Path, keys: int, resends: int, delay: float) -> list[StormResult]:
    """The resend storm on two processes sharing Redis, on two workers sharing SQLite, and
    (the control) on two processes without a ledger."""
    results = []
    with RedisServer(directory / "storm-redis") as store:
        with gateway_process(directory, delay=delay) as (relay, seen):
            text = proxy_config(relay, f"store: {store.url}\nledger: {{}}\n")
            with served(text, directory) as one, served(text, directory) as other:
                urls = [f"{one}/mm7/ok", f"{other}/mm7/ok"]
                result = await storm(urls, keys, resends, "2 processes, one Redis")
        result.relay_sends = seen.total
        results.append(result)
    with gateway_process(directory, delay=delay) as (relay, seen):
        text = proxy_config(relay, f"ledger: {{path: '{directory / 'storm.sqlite3'}'}}\n")
        with served(text, directory, "--workers", "2") as workers:
            result = await storm([f"{workers}/mm7/ok"], keys, resends, "--workers 2, one SQLite")
    result.relay_sends = seen.total
    results.append(result)
    with gateway_process(directory, delay=delay) as (relay, seen):
        text = proxy_config(relay, None)
        with served(text, directory) as one, served(text, directory) as other:
            urls = [f"{one}/mm7/ok", f"{other}/mm7/ok"]
            result = await storm(urls, keys, resends, "control: 2 processes, no ledger")
    result.relay_sends = seen.total
    result.control = True
    results.append(result)
    return results


PARTS = ("calls", "latency", "storm")
RESULTS_JSON = Path(__file__).resolve().parent / "ledger-results.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ledger", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--only", default=",".join(PARTS), help="calls,latency,storm")
    parser.add_argument("--sends", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--footprint", type=int, default=1000)
    parser.add_argument("--keys", type=int, default=100)
    parser.add_argument("--resends", type=int, default=10)
    parser.add_argument("--relay-delay", type=float, default=STORM_DELAY)
    parser.add_argument("--output", type=Path, default=RESULTS_JSON)
    ns = parser.parse_args(argv)
    only = [part for part in ns.only.split(",") if part]
    if set(only) - set(PARTS):
        parser.error(f"--only takes {', '.join(PARTS)}")
    _raise_nofile()
    figures: dict[str, object] = {}
    held = True
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp:
        directory = Path(tmp)
        if "calls" in only:
            print("ledger calls of one keyed send (begin + finish + remember):", flush=True)
            lines = asyncio.run(run(ns.sends, ns.concurrency))
            figures["calls"] = lines
            for line in lines:
                print(line, flush=True)
        if "latency" in only:
            measured = asyncio.run(latency(directory, ns.requests, ns.footprint))
            figures["latency"] = {
                "p50_p99_ms": {f"{c} {k}": measured.quantiles(c, k)
                               for c, k in measured.samples},
                "bytes_per_keyed_send": measured.bytes_per_keyed_send,
            }  # fmt: skip
            for line in measured.lines():
                print(line, flush=True)
        if "storm" in only:
            print("resend storm (each copy retries while its answer is retryable):", flush=True)
            runs: list[dict[str, object]] = []
            runs_of = storms(directory, ns.keys, ns.resends, ns.relay_delay)
            for result in asyncio.run(runs_of):
                print("  " + result.line(), flush=True)
                runs.append({
                    "processes": result.processes, "relay_sends": result.relay_sends,
                    "ok": result.ok, "codes": result.codes, "seconds": result.seconds,
                    "ledger_errors": result.ledger_errors, "relay_delay_s": ns.relay_delay,
                })  # fmt: skip
                held = held and (result.control or result.ok)
            figures["storm"] = runs
    ns.output.write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if held else 1


if __name__ == "__main__":
    raise SystemExit(main())
