"""``store: redis://`` with a real redis-server: one budget for several processes, and a
store that cannot be reached never stops (or hangs) a request.

The budgets are chosen so that no timing matters: a rate so low (one token in 100 s) that
only the burst can be spent during a test, and ``max_wait: 0``, so every request beyond
it is refused at once. Two processes sharing one burst of 2 send 2 requests together;
two processes with their own buckets would send 4. ``--workers`` gets the same proof of
its split.
"""

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from proxy.server.keys import LIMITERS_KEY
from tests.conftest import ProxyFactory, make_config
from tests.redis_server import RedisServer, free_port
from tests.test_reliability_gateway import HANG_GUARD_S, SUBMIT_REQ, SUBMIT_RSP

pytestmark = pytest.mark.integration


@pytest.fixture
async def counting_gateway(aiohttp_server: Any) -> tuple[str, list[int]]:
    """An MM7 gateway answering success; the list counts what it received."""
    received: list[int] = []

    async def answer(request: web.Request) -> web.Response:
        await request.read()
        received.append(1)
        return web.Response(body=SUBMIT_RSP, content_type="text/xml")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    server = await aiohttp_server(app)
    return str(server.make_url("/mm7")), received


def config_text(port: int, upstream: str, *, store: str | None, burst: int) -> str:
    lines = [
        f"listen: 127.0.0.1:{port}",
        f"admin_listen: 127.0.0.1:{free_port()}",
        "log: {level: info, format: json}",
        "shutdown: {drain_seconds: 1}",
    ]
    if store is not None:
        lines.append(f"store: {store}")
    lines += [
        "routes:",
        f"  - {{name: mms, path_prefix: /mm7, vendor: mm7, upstream: '{upstream}',",
        f"     rate_limit: {{per_second: 0.01, burst: {burst}, max_wait: 0}}}}",
    ]
    return "\n".join(lines) + "\n"


@contextmanager
def proxy_process(config: Path, *extra: str) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "proxy", "serve", "--config", str(config), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # until the one that says it listens
            if line.startswith("{") and json.loads(line)["event"] == "startup":
                break
        else:
            raise AssertionError("the proxy exited before it listened")
        yield proc
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


async def codes(port: int, count: int) -> list[str]:
    """``count`` requests, each on its own connection; their envelope codes."""

    async def one() -> str:
        connector = aiohttp.TCPConnector(force_close=True)
        async with (
            aiohttp.ClientSession(connector=connector) as http,
            http.post(f"http://127.0.0.1:{port}/mm7", data=SUBMIT_REQ) as resp,
        ):
            envelope = await resp.json(content_type=None)
            return str(envelope["code"])

    async with asyncio.timeout(HANG_GUARD_S):
        return [await one() for _ in range(count)]


async def test_two_processes_share_one_budget_through_redis(
    counting_gateway: tuple[str, list[int]], tmp_path: Path
) -> None:
    upstream, received = counting_gateway
    with RedisServer(tmp_path / "redis") as redis:
        ports = [free_port(), free_port()]
        for i, port in enumerate(ports):
            (tmp_path / f"p{i}.yaml").write_text(
                config_text(port, upstream, store=redis.url, burst=2)
            )
        with proxy_process(tmp_path / "p0.yaml"), proxy_process(tmp_path / "p1.yaml"):
            first = await codes(ports[0], 3)
            second = await codes(ports[1], 3)
    got = first + second
    assert got.count("OK") == 2, got  # one burst of 2 for both, not 2 each
    assert got.count("RATE_LIMITED") == 4
    assert len(received) == 2
    assert first[:2] == ["OK", "OK"]  # the first process spent the shared burst
    assert second == ["RATE_LIMITED"] * 3


async def test_without_a_store_each_process_has_its_own_budget(
    counting_gateway: tuple[str, list[int]], tmp_path: Path
) -> None:
    """The control for the test above: the same two processes, no store."""
    upstream, received = counting_gateway
    ports = [free_port(), free_port()]
    for i, port in enumerate(ports):
        (tmp_path / f"p{i}.yaml").write_text(config_text(port, upstream, store=None, burst=2))
    with proxy_process(tmp_path / "p0.yaml"), proxy_process(tmp_path / "p1.yaml"):
        got = await codes(ports[0], 3) + await codes(ports[1], 3)
    assert got.count("OK") == 4
    assert len(received) == 4


async def test_workers_split_the_budget(
    counting_gateway: tuple[str, list[int]], tmp_path: Path
) -> None:
    """``--workers 2`` with a burst of 4: each worker's bucket holds 2, so the pod sends 4
    at most, whichever worker the kernel hands each connection (without the split it
    would be 4 each). 24 fresh connections reach both workers, all but surely."""
    upstream, received = counting_gateway
    port = free_port()
    (tmp_path / "w.yaml").write_text(config_text(port, upstream, store=None, burst=4))
    with proxy_process(tmp_path / "w.yaml", "--workers", "2"):
        got = await codes(port, 24)
    assert 2 <= got.count("OK") <= 4, got
    assert len(received) == got.count("OK")
    assert got.count("RATE_LIMITED") == 24 - got.count("OK")


# --- Redis unreachable --------------------------------------------------------------------
def limited(upstream: str, store: str, *, burst: int = 2) -> Any:
    return make_config(
        {"name": "mms", "path_prefix": "/mm7", "upstream": upstream,
         "rate_limit": {"per_second": 0.01, "burst": burst, "max_wait": 0}},
        store=store,
    )  # fmt: skip


async def post(client: Any) -> str:
    async with asyncio.timeout(HANG_GUARD_S):
        resp = await client.post("/mm7", data=SUBMIT_REQ)
        return str((await resp.json())["code"])


async def test_an_unreachable_store_falls_back_to_the_process_s_own_bucket(
    counting_gateway: tuple[str, list[int]],
    proxy_client: ProxyFactory,
    registry: CollectorRegistry,
    log_lines: Any,
    tmp_path: Path,
) -> None:
    """Nothing listens where the store should be: every request is still answered, by
    the process's own bucket (its burst of 2, then RATE_LIMITED); the operator sees the
    gauge at 0, the errors counted and one log line. Once Redis is there, the proxy uses
    it again (and says so)."""
    upstream, received = counting_gateway
    redis_port = free_port()
    client = await proxy_client(
        limited(upstream, f"redis://127.0.0.1:{redis_port}/0"), registry=registry
    )
    got = [await post(client) for _ in range(3)]
    assert got == ["OK", "OK", "RATE_LIMITED"]
    assert len(received) == 2
    assert registry.get_sample_value("gateway_proxy_store_up") == 0
    errors = registry.get_sample_value("gateway_proxy_store_errors_total", {"reason": "connect"})
    assert errors is not None
    assert errors >= 1
    lines = [e for e in log_lines() if e["event"] == "store_unreachable"]
    assert len(lines) == 1
    assert lines[0]["reason"] == "connect"
    assert "127.0.0.1" not in json.dumps(lines[0])  # the error's type, never its message

    with RedisServer(tmp_path / "redis", port=redis_port):
        async with asyncio.timeout(HANG_GUARD_S):
            while registry.get_sample_value("gateway_proxy_store_up") != 1:
                await post(client)  # the retry comes with a request, after _RETRY_SECONDS
                await asyncio.sleep(0.2)
    assert [e["event"] for e in log_lines() if e["event"].startswith("store_")] == [
        "store_unreachable", "store_recovered",
    ]  # fmt: skip


async def test_a_store_that_never_answers_costs_a_bounded_wait_not_a_hang(
    counting_gateway: tuple[str, list[int]],
    proxy_client: ProxyFactory,
    registry: CollectorRegistry,
) -> None:
    """A listener that accepts and never says a word (a Redis that hangs)."""
    upstream, _received = counting_gateway

    writers: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)  # hold the connection open, answer nothing

    hole = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = hole.sockets[0].getsockname()[1]
    try:
        client = await proxy_client(
            limited(upstream, f"redis://127.0.0.1:{port}/0"), registry=registry
        )
        got = [await post(client) for _ in range(3)]
    finally:
        hole.close()
        for writer in writers:
            writer.close()
        await hole.wait_closed()
    assert got == ["OK", "OK", "RATE_LIMITED"]
    assert registry.get_sample_value("gateway_proxy_store_up") == 0
    timeouts = registry.get_sample_value("gateway_proxy_store_errors_total", {"reason": "timeout"})
    assert timeouts is not None
    assert timeouts >= 1


async def test_a_store_shares_the_throttling_pause(
    counting_gateway: tuple[str, list[int]],
    proxy_client: ProxyFactory,
    tmp_path: Path,
) -> None:
    """A pause written through one proxy holds back another that shares the store: the
    second is refused at once (max_wait 0) while the first's pause lasts."""
    upstream, received = counting_gateway
    with RedisServer(tmp_path / "redis") as redis:
        config = make_config(
            {"name": "mms", "path_prefix": "/mm7", "upstream": upstream,
             "rate_limit": {"per_second": 100, "burst": 100, "max_wait": 0}},
            store=redis.url,
        )  # fmt: skip
        one, two = await proxy_client(config), await proxy_client(config)
        assert await post(two) == "OK"
        app = one.app
        assert app is not None
        app[LIMITERS_KEY]["mms"].throttled(60)  # as a throttling answer would
        for _ in range(int(HANG_GUARD_S / 0.05)):  # the pause reaches Redis in the background
            if await post(two) == "RATE_LIMITED":
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the pause never reached the other proxy")
    assert len(received) >= 1
