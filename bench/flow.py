"""``make bench-flow`` (``python -m bench.flow``): flow control and failover, in figures.

Each scenario runs a real ``gateway-proxy serve`` process (two for ``shared``, on one real
``redis-server``) in front of a recording gateway in this process: an aiohttp app that
answers an MM7 SubmitRsp, enforces a contract with the simulator's own ``Throughput``
(``simulate --tps``; over it, its throttling answer) and keeps every arrival's time. The
client is this process's aiohttp. Figures, never asserted (docs/performance.md):

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
import multiprocessing
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench.common import free_port, wait_http
from proxy.tools.sim.mm7 import render_reply, submit_request
from proxy.tools.sim.throttle import Throughput, throttled

SUBMIT = submit_request("+15550001000").encode()
CONTRACT = 50.0
SCENARIOS = ("burst", "outage", "dead", "shared")


class Gateway:
    """The recording gateway: arrivals' times, throttling answers, an optional contract."""

    def __init__(self, tps: float | None) -> None:
        self.throughput = Throughput(tps) if tps is not None else None
        self.arrivals: list[float] = []
        self.throttled = 0

    async def answer(self, request: web.Request) -> web.Response:
        await request.read()
        now = time.monotonic()
        if self.throughput is not None and not self.throughput.admit(now):
            self.throttled += 1
            reply = throttled("mm7", self.throughput.tps, self.throughput.retry_after())
        else:
            self.arrivals.append(now)
            reply = render_reply(
                response_kind="SubmitRsp", transaction_id="bench", code="1000",
                text="Success", message_id="1",
            )  # fmt: skip
        return web.Response(status=reply.status, body=reply.body, headers=reply.all_headers())

    def busiest_second(self) -> int:
        """The most arrivals in any 1-s window (sliding: each arrival starts one)."""
        times = sorted(self.arrivals)
        return max((bisect.bisect_left(times, t + 1.0) - i for i, t in enumerate(times)), default=0)


def _gateway_process(port: int, tps: float | None, out: str) -> None:
    """The recording gateway in a process of its own (the client's loop stays free); on
    SIGTERM it writes what it saw to ``out``."""
    gateway = Gateway(tps)

    async def main() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        app = web.Application()
        app.router.add_post("/{tail:.*}", gateway.answer)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
        await stop.wait()
        await runner.cleanup()

    asyncio.run(main())
    Path(out).write_text(json.dumps({"arrivals": gateway.arrivals, "throttled": gateway.throttled}))


@contextmanager
def gateway_process(directory: Path, tps: float | None) -> Iterator[tuple[str, Gateway]]:
    """A recording gateway in its own process: its base URL, and a ``Gateway`` filled with
    what it saw once the block ends."""
    port = free_port()
    out = directory / f"gateway-{port}.json"
    process = multiprocessing.get_context("spawn").Process(
        target=_gateway_process, args=(port, tps, str(out)), name="bench-gateway"
    )
    process.start()
    seen = Gateway(tps)
    try:
        wait_http(f"http://127.0.0.1:{port}/")
        yield f"http://127.0.0.1:{port}", seen
    finally:
        if process.pid is not None:
            os.kill(process.pid, signal.SIGTERM)
        process.join(timeout=30)
        if out.exists():
            data = json.loads(out.read_text())
            seen.arrivals, seen.throttled = data["arrivals"], data["throttled"]


@contextmanager
def served(config: str, directory: Path) -> Iterator[str]:
    """``gateway-proxy serve`` with ``config`` (its ``@PORT@``s filled); its base URL."""
    port, admin = free_port(), free_port()
    path = directory / f"proxy-{port}.yaml"
    path.write_text(config.replace("@PORT@", str(port)).replace("@ADMIN@", str(admin)))
    process = subprocess.Popen(
        [sys.executable, "-m", "proxy", "serve", "--config", str(path), "--log-level", "error"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{admin}/healthz")
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


async def _sent(
    session: aiohttp.ClientSession, context: Any, params: aiohttp.TraceRequestHeadersSentParams
) -> None:
    context.trace_request_ctx["sent"] = time.perf_counter()


def tracing() -> list[aiohttp.TraceConfig]:
    """When each request's head went out: its time is counted from there, not from a wait
    for a connection in the client's own pool (that is the client's, not the proxy's)."""
    config = aiohttp.TraceConfig()
    config.on_request_headers_sent.append(_sent)
    return [config]


async def one(http: aiohttp.ClientSession, url: str) -> tuple[str, str, float]:
    """(code, vendor.name, seconds from the request's head going out to its answer)."""
    trace: dict[str, float] = {"sent": time.perf_counter()}
    try:
        async with http.post(url, data=SUBMIT, trace_request_ctx=trace) as resp:
            envelope = json.loads(await resp.read())
    except aiohttp.ClientError as exc:  # reported as what it is, never dropped
        return f"client:{type(exc).__name__}", "-", time.perf_counter() - trace["sent"]
    return envelope["code"], envelope["vendor"]["name"], time.perf_counter() - trace["sent"]


async def open_loop(url: str, rate: float, seconds: float) -> list[tuple[str, str, float]]:
    """``rate`` requests a second for ``seconds``, each sent on time whatever came back."""
    connector = aiohttp.TCPConnector(limit=1000)
    async with aiohttp.ClientSession(connector=connector, trace_configs=tracing()) as http:
        tasks = []
        start = time.monotonic()
        for i in range(int(rate * seconds)):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.get_running_loop().create_task(one(http, url), name=f"req-{i}"))
        return list(await asyncio.gather(*tasks))


async def closed_loop(url: str, count: int, concurrency: int = 4) -> list[tuple[str, str, float]]:
    async with aiohttp.ClientSession(trace_configs=tracing()) as http:
        results: list[tuple[str, str, float]] = []

        async def worker(n: int) -> None:
            for _ in range(n):
                results.append(await one(http, url))

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
    codes = Counter(f"{code}/{vendor}" for code, vendor, _ in results)
    ok = [s for code, _, s in results if code == "OK"]
    return {
        "offered_per_s": CONTRACT * 10,
        "seconds": seconds,
        "gateway_busiest_1s": gateway.busiest_second(),
        "limit_per_second_plus_burst": 60,
        "gateway_throttling_answers": gateway.throttled,
        "answers": dict(codes),
        "ok_p50_s": round(quantile(ok, 0.5), 4),
        "ok_max_s": round(max(ok, default=0.0), 4),
        "max_wait_s": 2,
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
    per_process = [sum(code == "OK" for code, _, _ in r) for r in results]
    return {
        "processes": 2,
        "offered_per_s_each": CONTRACT * 4,
        "gateway_busiest_1s": gateway.busiest_second(),
        "limit_per_second_plus_burst": 60,
        "gateway_throttling_answers": gateway.throttled,
        "ok_per_process": per_process,
        "ok_per_s_together": round(sum(per_process) / seconds, 1),
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
