"""What the message ledger costs a keyed send: ``python -m bench.ledger``.

A keyed send that executes makes two ledger calls on its path (``begin`` before
forwarding, ``finish`` before answering) and a successful one a third (``remember``).
This measures those three, back to back, per simulated send, on each store: a SQLite file
in a temporary directory, and a local ``redis-server`` started on a free port (as the
tests do). It prints p50 and p99 in milliseconds; the issue's budget for the added
latency of a keyed request is 1 ms at p50 on either store. Figures, never assertions:
the machine is shared and noisy.

Options: ``--sends N`` (default 2000), ``--concurrency C`` (default 1: the latency one
request sees; more shows the stores under contention).
"""

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ledger")
    parser.add_argument("--sends", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=1)
    ns = parser.parse_args(argv)
    print("ledger calls of one keyed send (begin + finish + remember):")
    for line in asyncio.run(run(ns.sends, ns.concurrency)):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
