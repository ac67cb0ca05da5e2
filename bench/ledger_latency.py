"""What the message ledger adds to a request, through the real proxy process.

Three ``gateway-proxy serve`` processes run side by side in front of one counting relay
(``bench.ledger_gateway``): one without a ledger, one with a SQLite ledger, one with a
ledger in a local ``redis-server``. One client sends one request at a time, in turns over
the three (so the machine's drift falls on each alike), each kind of request on its own
keep-alive connection:

* ``unkeyed OK``: a success with a message id, without a key. With a ledger, the proxy
  remembers the message id for its reports before it answers (one write).
* ``unkeyed error``: an address error (no message id), without a key: the ledger is not
  touched at all. It costs the same as without a ledger, within noise.
* ``keyed OK``: the same success under a fresh ``Idempotency-Key``: the key is claimed
  before forwarding (``begin``), the answer kept (``finish``) and the message id
  remembered, all before the app gets its answer.

The figures are p50 and p99 of each series; "added by a key" is the keyed series against
the unkeyed one of the same proxy. Then each ledger gets ``footprint`` keyed sends more,
and its growth per send says how much store a keyed send needs for its TTLs (its kept
answer and its message id). Figures, never assertions: the machine is shared and noisy.
"""

import sqlite3
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import redis

from bench.flow import Connection, split_url
from proxy.tools.sim.mm7 import submit_request

CONFIGS = ("none", "sqlite", "redis")
KINDS = ("unkeyed OK", "unkeyed error", "keyed OK")
BODY = submit_request("+15550001000", transaction_id="bench-latency").encode()
_EXPECTED = {"unkeyed OK": (200, "OK"), "unkeyed error": (400, "INVALID_ADDRESS"),
             "keyed OK": (200, "OK")}  # fmt: skip


@dataclass(slots=True)
class Latency:
    """Seconds per request, by (config, kind); bytes per keyed send, by store."""

    samples: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    bytes_per_keyed_send: dict[str, float] = field(default_factory=dict)

    def quantiles(self, config: str, kind: str) -> tuple[float, float] | None:
        """(p50, p99) in milliseconds, or None for a series not measured."""
        values = sorted(s * 1000 for s in self.samples.get((config, kind), []))
        if not values:
            return None
        return statistics.median(values), values[min(len(values) - 1, int(len(values) * 0.99))]

    def added(self, config: str, kind: str, base: tuple[str, str]) -> tuple[float, float]:
        """(p50, p99) of ``config``'s ``kind`` minus those of ``base``, in milliseconds."""
        mine, theirs = self.quantiles(config, kind), self.quantiles(*base)
        assert mine is not None
        assert theirs is not None
        return mine[0] - theirs[0], mine[1] - theirs[1]

    def lines(self) -> list[str]:
        n = min(len(v) for v in self.samples.values())
        out = [f"through the proxy, one request at a time ({n} of each): p50 / p99 ms"]
        out.append(f"  {'':14}" + "".join(f"{c:>20}" for c in CONFIGS))
        for kind in KINDS:
            cells = []
            for config in CONFIGS:
                q = self.quantiles(config, kind)
                cells.append(f"{q[0]:.3f} / {q[1]:.3f}" if q else "-")
            out.append(f"  {kind:14}" + "".join(f"{c:>20}" for c in cells))
        for store in ("sqlite", "redis"):
            key = self.added(store, "keyed OK", (store, "unkeyed OK"))
            ok = self.added(store, "unkeyed OK", ("none", "unkeyed OK"))
            error = self.added(store, "unkeyed error", ("none", "unkeyed error"))
            out.append(
                f"  {store}: a key adds {key[0]:+.3f} ms at p50 ({key[1]:+.3f} at p99; budget"
                f" 1 ms at p50); unkeyed vs no ledger: OK {ok[0]:+.3f} ms p50 (its message id"
                f" remembered), error {error[0]:+.3f} ms p50 (the ledger untouched)"
            )
        for store, size in self.bytes_per_keyed_send.items():
            out.append(
                f"  {store}: {size:,.0f} bytes of store per keyed send (answer + message id)"
            )
        return out


def config(upstream: str, ledger: str | None) -> str:
    """A proxy config (``@PORT@``s for ``bench.flow.served``) with ``ledger`` YAML or none."""
    text = (
        "listen: 127.0.0.1:@PORT@\nadmin_listen: 127.0.0.1:@ADMIN@\n"
        "log: {level: error, format: json}\nmax_in_flight: 100000\n"
        "pool: {limit: 1000, limit_per_host: 0}\n"
        f"routes:\n  - {{name: mms, path_prefix: /mm7, vendor: mm7, upstream: '{upstream}/mm7'}}\n"
    )
    return text + (ledger or "")


async def _one(conn: Connection, path: str, kind: str, key: str | None) -> float:
    headers = {"Idempotency-Key": key} if key else None
    began = time.perf_counter()
    status, fields, content = await conn.exchange(path, BODY, headers)
    took = time.perf_counter() - began
    code = content.split(b'"code":"', 1)[1].split(b'"', 1)[0].decode()
    if (status, code) != _EXPECTED[kind] or "idempotent-replayed" in fields:
        raise RuntimeError(f"bench.ledger: {kind} answered {status} {code}, not {_EXPECTED[kind]}")
    return took


async def measure(urls: dict[str, str], requests: int, warmup: int = 100) -> Latency:
    """``requests`` of each kind on each proxy (``urls``: config -> base URL), in turns."""
    run = uuid.uuid4().hex[:12]
    result = Latency()
    series = [(c, k) for c in CONFIGS for k in KINDS if c != "none" or not k.startswith("keyed")]
    conns = {}
    for config_name, kind in series:
        host, port, _ = split_url(urls[config_name])
        conns[config_name, kind] = Connection(host, port)
        result.samples[config_name, kind] = []
    try:
        for i in range(warmup + requests):
            order = series if i % 2 == 0 else series[::-1]
            for config_name, kind in order:
                path = "/mm7/ok" if kind.endswith("OK") else "/mm7/err"
                key = f"lat-{run}-{config_name}-{i}" if kind.startswith("keyed") else None
                took = await _one(conns[config_name, kind], path, kind, key)
                if i >= warmup:
                    result.samples[config_name, kind].append(took)
    finally:
        for conn in conns.values():
            if conn.writer is not None:
                conn.writer.close()
    return result


def _sqlite_bytes(path: Path) -> int:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        free = db.execute("PRAGMA freelist_count").fetchone()[0]
        size = db.execute("PRAGMA page_size").fetchone()[0]
    return int((pages - free) * size)


def _redis_bytes(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return int(client.info("memory")["used_memory"])
    finally:
        client.close()


async def footprint(url: str, sends: int, size: Callable[[], int]) -> float:
    """Bytes the store grows by per keyed send, over ``sends`` new keyed sends to ``url``;
    ``size()`` is the store's size now."""
    before = size()
    host, port, _ = split_url(url)
    conn = Connection(host, port)
    run = uuid.uuid4().hex[:12]
    try:
        for i in range(sends):
            await _one(conn, "/mm7/ok", "keyed OK", f"size-{run}-{i}")
    finally:
        if conn.writer is not None:
            conn.writer.close()
    return (size() - before) / sends


async def store_sizes(
    urls: dict[str, str], sqlite_file: Path, redis_store: str, sends: int
) -> dict[str, float]:
    """Bytes per keyed send of each ledger (``urls``: config -> base URL)."""
    return {
        "sqlite": await footprint(urls["sqlite"], sends, partial(_sqlite_bytes, sqlite_file)),
        "redis": await footprint(urls["redis"], sends, partial(_redis_bytes, redis_store)),
    }


__all__ = ["CONFIGS", "KINDS", "Latency", "config", "measure", "store_sizes"]
