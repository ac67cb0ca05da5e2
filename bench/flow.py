"""``make bench-flow`` (``python -m bench.flow``): flow control and failover, in figures.

Each scenario runs a real ``gateway-proxy serve`` process (two for ``shared``, on one real
``redis-server``) in front of a recording gateway in a process of its own (raw HTTP/1.1
on asyncio streams) that answers an MM7 SubmitRsp, enforces a contract with the
simulator's own ``Throughput`` (``simulate --tps``; over it, its throttling answer) and
keeps every arrival's time. The client is this process: raw keep-alive HTTP/1.1
connections on uvloop. Figures, never asserted (docs/performance.md):

* ``burst``: 10x a 50/s contract for 10 s, through a route with ``rate_limit: {per_second:
  50, burst: 10, max_wait: 2}``: the most the gateway saw in any 1-s window (target <= 60),
  its throttling answers (target 0), and what the app got (OK within max_wait, or
  RATE_LIMITED from the proxy);
* ``outage``: a primary that refuses connections, the secondary answers: errors (target
  0) and the median added to a request (target <= 5 ms), without and with a circuit
  breaker;
* ``dead``: a gateway that accepts and never answers: the first requests each take
  ``timeout.total``; once the circuit is open, the p99 answer time (target <= 10 ms);
* ``shared``: two processes with one 50/s contract on one Redis, 4x the contract each:
  the most the gateway saw in any 1-s window, together.

    python -m bench.flow [--only burst,outage,dead,shared] [--seconds 10]
"""

import argparse
import asyncio
import bisect
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import free_port, recorder_process, wait_http
from proxy.tools.sim.mm7 import render_reply, submit_request
from proxy.tools.sim.throttle import Throughput, throttled

SUBMIT = submit_request("+15550001000").encode()
CONTRACT = 50.0
SCENARIOS = ("burst", "outage", "dead", "shared")
ADMINS: dict[str, str] = {}  # a served proxy's base URL -> its admin URL


async def store_errors(proxy: str) -> float:
    """Failed calls to the store, as the proxy counted them (its fallback's use)."""
    async with aiohttp.ClientSession() as http, http.get(f"{ADMINS[proxy]}/metrics") as resp:
        text = await resp.text()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("gateway_proxy_store_errors_total{")
    )


async def waits(proxy: str) -> dict[str, float]:
    """The proxy's own view of its queue: how many requests waited for a token, how many
    of them within max_wait (2 s), and the longest bucket any wait fell in."""
    async with aiohttp.ClientSession() as http, http.get(f"{ADMINS[proxy]}/metrics") as resp:
        text = await resp.text()
    buckets: dict[float, float] = {}
    for line in text.splitlines():
        if (
            line.startswith("gateway_proxy_rate_limit_wait_seconds_bucket{")
            and 'route="mms"' in line
        ):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[float(le)] = float(line.rsplit(" ", 1)[1])
    total = buckets.get(float("inf"), 0.0)
    within = buckets.get(2.0, 0.0)
    longest = min((le for le, n in buckets.items() if n == total), default=float("nan"))
    return {"waited": total, "within_max_wait": within, "longest_wait_bucket_s": longest}


class Gateway:
    """The recording gateway: arrivals' times, throttling answers, an optional contract.
    Raw HTTP/1.1 on asyncio streams, each answer in one write (see ``Connection``)."""

    def __init__(self, tps: float | None) -> None:
        self.throughput = Throughput(tps) if tps is not None else None
        self.arrivals: list[float] = []
        self.throttled = 0
        ok = render_reply(
            response_kind="SubmitRsp", transaction_id="bench", code="1000",
            text="Success", message_id="1",
        )  # fmt: skip
        self._ok = self._frame(ok.status, ok.all_headers().items(), ok.body)

    def record(self) -> dict[str, Any]:
        return {"arrivals": self.arrivals, "throttled": self.throttled}

    @staticmethod
    def _frame(status: int, headers: Any, body: bytes) -> bytes:
        head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers)
        return head.encode() + b"\r\n" + body

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.decode("latin-1").split("\r\n")[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                await reader.readexactly(length)
                writer.write(self.answer(time.monotonic()))
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    def answer(self, now: float) -> bytes:
        if self.throughput is not None and not self.throughput.admit(now):
            self.throttled += 1
            reply = throttled("mm7", self.throughput.tps, self.throughput.retry_after())
            return self._frame(reply.status, reply.all_headers().items(), reply.body)
        self.arrivals.append(now)
        return self._ok

    def mean_rate(self) -> float:
        """Arrivals a second over the span they came in."""
        if len(self.arrivals) < 2:
            return 0.0
        return (len(self.arrivals) - 1) / (max(self.arrivals) - min(self.arrivals))

    def busiest_second(self) -> int:
        """The most arrivals in any 1-s window (sliding: each arrival starts one)."""
        times = sorted(self.arrivals)
        return max((bisect.bisect_left(times, t + 1.0) - i for i, t in enumerate(times)), default=0)


@contextmanager
def gateway_process(directory: Path, tps: float | None) -> Iterator[tuple[str, Gateway]]:
    """A recording gateway in its own process: its base URL, and a ``Gateway`` filled with
    what it saw once the block ends."""
    seen = Gateway(tps)

    def record(data: dict[str, Any]) -> None:
        seen.arrivals, seen.throttled = data["arrivals"], data["throttled"]

    with recorder_process(directory, partial(Gateway, tps), record, "bench-gateway") as url:
        yield url, seen


@contextmanager
def served(config: str, directory: Path, *args: str) -> Iterator[str]:
    """``gateway-proxy serve`` with ``config`` (its ``@PORT@``s filled) and ``args``
    (``--workers 2``); its base URL."""
    port, admin = free_port(), free_port()
    path = directory / f"proxy-{port}.yaml"
    path.write_text(config.replace("@PORT@", str(port)).replace("@ADMIN@", str(admin)))
    process = subprocess.Popen(
        [sys.executable, "-m", "proxy", "serve", "--config", str(path), "--log-level", "error",
         *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{admin}/healthz")
        wait_http(f"http://127.0.0.1:{port}/")  # --workers: the app port too (any answer)
        ADMINS[f"http://127.0.0.1:{port}"] = f"http://127.0.0.1:{admin}"
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


@contextmanager
def redis_server(directory: Path) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("bench.flow: redis-server is missing: bash scripts/install-redis.sh")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(directory)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(0.5)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=30)


def config(route: str, *, store: str | None = None) -> str:
    head = (
        "listen: 127.0.0.1:@PORT@\nadmin_listen: 127.0.0.1:@ADMIN@\n"
        "log: {level: error, format: json}\nmax_in_flight: 100000\n"
        "pool: {limit: 1000, limit_per_host: 0}\n"
    )
    if store is not None:
        head += f"store: {store}\n"
    return head + "routes:\n  - {name: mms, path_prefix: /mm7, vendor: mm7, " + route + "}\n"


class Connection:
    """One keep-alive HTTP/1.1 connection of the load generator: each request in one write
    (TCP_NODELAY), each answer read by its Content-Length. aiohttp's client writes a POST's
    head and body apart, and Nagle with delayed ACKs then adds 40 ms on loopback: the
    harness's figure, not the proxy's."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(
        self, path: str, body: bytes, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        """POST ``body`` (with ``headers``); the answer's status and body."""
        status, _, content = await self.exchange(path, body, headers)
        return status, content

    async def exchange(
        self, path: str, body: bytes, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """POST ``body``; the answer's status, headers (lower-case names) and body."""
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            sock = self.writer.get_extra_info("socket")
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        assert self.reader is not None
        extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: text/xml\r\n"
            f"{extra}Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.writer.write(head + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        fields: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip():
                fields[name.strip().lower()] = value.strip()
        content = await self.reader.readexactly(int(fields.get("content-length", "0")))
        if "close" in fields.get("connection", "").lower():
            self.writer.close()
        return status, fields, content


def split_url(url: str) -> tuple[str, int, str]:
    rest = url.removeprefix("http://")
    netloc, _, path = rest.partition("/")
    host, _, port = netloc.partition(":")
    return host, int(port), "/" + path


async def one(conn: Connection, path: str) -> tuple[str, str, float]:
    """(code, vendor.name, seconds from the request's write to its answer)."""
    began = time.perf_counter()
    try:
        _, content = await conn.post(path, SUBMIT)
    except (OSError, asyncio.IncompleteReadError) as exc:  # reported, never dropped
        if conn.writer is not None:
            conn.writer.close()
        return f"client:{type(exc).__name__}", "-", time.perf_counter() - began
    envelope = json.loads(content)
    return envelope["code"], envelope["vendor"]["name"], time.perf_counter() - began


async def open_loop(url: str, rate: float, seconds: float) -> list[tuple[str, str, float]]:
    """``rate`` requests a second for ``seconds``, each sent on time whatever came back:
    on an idle connection of a pool that grows as needed."""
    host, port, path = split_url(url)
    idle: list[Connection] = []
    opened: list[Connection] = []

    async def send() -> tuple[str, str, float]:
        conn = idle.pop() if idle else Connection(host, port)
        if not opened or (conn is not opened[-1] and conn not in opened):
            opened.append(conn)
        result = await one(conn, path)
        idle.append(conn)
        return result

    tasks = []
    start = time.monotonic()
    for i in range(int(rate * seconds)):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.get_running_loop().create_task(send(), name=f"req-{i}"))
    results = list(await asyncio.gather(*tasks))
    for conn in opened:
        if conn.writer is not None:
            conn.writer.close()
    return results


async def closed_loop(url: str, count: int, concurrency: int = 4) -> list[tuple[str, str, float]]:
    host, port, path = split_url(url)
    results: list[tuple[str, str, float]] = []

    async def worker(n: int) -> None:
        conn = Connection(host, port)
        for _ in range(n):
            results.append(await one(conn, path))
        if conn.writer is not None:
            conn.writer.close()

    await asyncio.gather(*(worker(count // concurrency) for _ in range(concurrency)))
    return results


def quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def burst(directory: Path, seconds: float) -> dict[str, Any]:
    with gateway_process(directory, CONTRACT) as (base, gateway):
        route = f"upstream: '{base}/mm7', rate_limit: {{per_second: 50, burst: 10, max_wait: 2}}"
        with served(config(route), directory) as proxy:
            results = await open_loop(f"{proxy}/mm7", CONTRACT * 10, seconds)
            queue = await waits(proxy)
    codes = Counter(f"{code}/{vendor}" for code, vendor, _ in results)
    ok = [s for code, _, s in results if code == "OK"]
    return {
        "offered_per_s": CONTRACT * 10,
        "seconds": seconds,
        "gateway_busiest_1s": gateway.busiest_second(),
        "limit_per_second_plus_burst": 60,
        "gateway_mean_per_s": round(gateway.mean_rate(), 1),
        "gateway_throttling_answers": gateway.throttled,
        "answers": dict(codes),
        "ok_p50_s_client": round(quantile(ok, 0.5), 4),
        "ok_max_s_client": round(max(ok, default=0.0), 4),
        "max_wait_s": 2,
        "proxy_queue": queue,
    }


async def outage(directory: Path, count: int) -> dict[str, Any]:
    with gateway_process(directory, None) as (base, _):
        return await _outage(directory, count, base)


async def _outage(directory: Path, count: int, base: str) -> dict[str, Any]:
    dead = f"http://127.0.0.1:{free_port()}/mm7"  # nothing listens: refused
    variants = {
        "healthy": f"upstream: '{base}/mm7'",
        "refusing_primary": f"upstreams: ['{dead}', '{base}/mm7']",
        "refusing_primary_breaker": f"upstreams: ['{dead}', '{base}/mm7'], "
        "circuit_breaker: {failures: 5, open_seconds: 10}",
    }
    out: dict[str, Any] = {}
    for name, route in variants.items():
        with served(config(route), directory) as proxy:
            await closed_loop(f"{proxy}/mm7", 200)  # warm up
            results = await closed_loop(f"{proxy}/mm7", count)
        times = [s for _, _, s in results]
        out[name] = {
            "errors": sum(code != "OK" for code, _, _ in results),
            "p50_ms": round(statistics.median(times) * 1000, 3),
            "p99_ms": round(quantile(times, 0.99) * 1000, 3),
        }
    for name in ("refusing_primary", "refusing_primary_breaker"):
        out[name]["added_p50_ms"] = round(out[name]["p50_ms"] - out["healthy"]["p50_ms"], 3)
    return out


async def dead(directory: Path, count: int) -> dict[str, Any]:
    held: list[asyncio.StreamWriter] = []

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # accept, read nothing, never answer

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    route = (
        f"upstream: 'http://127.0.0.1:{port}/mm7', timeout: {{connect: 1, total: 2}}, "
        "circuit_breaker: {failures: 3, open_seconds: 600}"
    )
    try:
        with served(config(route), directory) as proxy:
            before = await closed_loop(f"{proxy}/mm7", 3, concurrency=1)
            after = await closed_loop(f"{proxy}/mm7", count)
    finally:
        server.close()
        for writer in held:
            writer.close()
    times = [s for _, _, s in after]
    return {
        "before_open": {"codes": dict(Counter(c for c, _, _ in before)),
                        "p50_s": round(statistics.median(s for _, _, s in before), 3)},
        "after_open": {"codes": dict(Counter(c for c, _, _ in after)),
                       "p50_ms": round(statistics.median(times) * 1000, 3),
                       "p99_ms": round(quantile(times, 0.99) * 1000, 3)},
        "timeout_total_s": 2,
    }  # fmt: skip


async def shared(directory: Path, seconds: float) -> dict[str, Any]:
    with gateway_process(directory, CONTRACT) as (base, gateway), redis_server(directory) as store:
        route = f"upstream: '{base}/mm7', rate_limit: {{per_second: 50, burst: 10, max_wait: 1}}"
        text = config(route, store=store)
        with served(text, directory) as one_proxy, served(text, directory) as other:
            results = await asyncio.gather(
                open_loop(f"{one_proxy}/mm7", CONTRACT * 4, seconds),
                open_loop(f"{other}/mm7", CONTRACT * 4, seconds),
            )
            errors = [await store_errors(one_proxy), await store_errors(other)]
    per_process = [sum(code == "OK" for code, _, _ in r) for r in results]
    return {
        "processes": 2,
        "offered_per_s_each": CONTRACT * 4,
        "gateway_busiest_1s": gateway.busiest_second(),
        "limit_per_second_plus_burst": 60,
        "gateway_throttling_answers": gateway.throttled,
        "ok_per_process": per_process,
        "gateway_mean_per_s": round(gateway.mean_rate(), 1),
        "store_errors_per_process": errors,
    }


async def run(only: Sequence[str], seconds: float, count: int) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-flow-") as tmp:
        directory = Path(tmp)
        for name in only:
            if name == "burst":
                figures[name] = await burst(directory, seconds)
            elif name == "outage":
                figures[name] = await outage(directory, count)
            elif name == "dead":
                figures[name] = await dead(directory, count)
            elif name == "shared":
                figures[name] = await shared(directory, seconds)
            print(name, json.dumps(figures[name]), flush=True)
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.flow", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios")
    parser.add_argument("--seconds", type=float, default=10.0, help="burst and shared length")
    parser.add_argument("--count", type=int, default=2000, help="requests in outage and dead")
    ns = parser.parse_args(argv)
    only = [name for name in ns.only.split(",") if name]
    unknown = set(only) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    import uvloop

    figures = uvloop.run(run(only, ns.seconds, ns.count))
    Path("bench/flow-results.json").write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
