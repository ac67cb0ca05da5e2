"""Graceful shutdown of a real ``gateway-proxy serve`` process (a sidecar dies every deploy).

SIGTERM: /readyz 503 at once; requests still served for ``delay_seconds``; the listener
closes; in-flight requests get ``drain_seconds``; those still running answer 503; exit 0.
A second signal exits at once with 128 + its number.
"""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import validate_envelope
from tests.test_forward import free_port

MOMS_OK = '{"response": {"code": "1", "status": "success"}}'


class Served:
    def __init__(self, proc: subprocess.Popen[str], port: int, admin: int) -> None:
        self.proc, self.port, self.admin = proc, port, admin
        self.app = f"http://127.0.0.1:{port}"

    def lines(self) -> list[dict[str, Any]]:
        out, _ = self.proc.communicate(timeout=60)
        self.out = out
        return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


@contextmanager
def serving(tmp_path: Path, upstream: str, *, delay: float, drain: float) -> Iterator[Served]:
    port, admin = free_port(), free_port()
    config = tmp_path / "gw.yaml"
    config.write_text(
        f"listen: 127.0.0.1:{port}\nadmin_listen: 127.0.0.1:{admin}\n"
        f"shutdown: {{delay_seconds: {delay}, drain_seconds: {drain}}}\n"
        f"routes: [{{name: m, path_prefix: /moms, vendor: moms, upstream: '{upstream}',"
        " timeout: {total: 60}}]\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "proxy", "serve", "--config", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert json.loads(proc.stdout.readline())["event"] == "startup"
        yield Served(proc, port, admin)
    finally:
        proc.kill()
        proc.communicate()  # reap it and close its pipes


async def slow_gateway(aiohttp_server: Any, seconds: float) -> str:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(seconds)
        return web.Response(text=MOMS_OK)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", slow)
    server = await aiohttp_server(app)
    return str(server.make_url("/moms"))


async def fresh_get(url: str) -> tuple[int, dict[str, Any]]:
    """One request on its own connection."""
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http,
        http.get(url) as response,
    ):
        return response.status, await response.json(content_type=None)


async def wait_exit(proc: subprocess.Popen[str]) -> int:
    for _ in range(600):
        if proc.poll() is not None:
            return proc.returncode
        await asyncio.sleep(0.05)
    raise AssertionError("the proxy did not exit")


async def test_sigterm_keeps_serving_for_the_delay_then_drains(
    aiohttp_server: Any, tmp_path: Path
) -> None:
    upstream = await slow_gateway(aiohttp_server, 0.8)
    with serving(tmp_path, upstream, delay=1.5, drain=5) as served:
        url = f"{served.app}/moms/system.ping"
        before = asyncio.gather(*(fresh_get(url) for _ in range(10)))
        await asyncio.sleep(0.3)
        served.proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.2)
        status, _ = await fresh_get(f"http://127.0.0.1:{served.admin}/readyz")
        assert status == 503  # out of rotation at once
        during = await fresh_get(url)  # still served within delay_seconds
        assert during[0] == 200
        results = await before
        assert [s for s, _ in results] == [200] * 10  # nothing sent before the close is lost
        await asyncio.sleep(1.5)  # past the delay: the listener is closed
        with pytest.raises(aiohttp.ClientConnectionError):
            await fresh_get(url)
        assert await wait_exit(served.proc) == 0
        events = [line["event"] for line in served.lines()]
    assert events.count("request") == 11
    assert events[-1] == "shutdown"


async def test_requests_outliving_the_drain_answer_503(aiohttp_server: Any, tmp_path: Path) -> None:
    upstream = await slow_gateway(aiohttp_server, 30)
    with serving(tmp_path, upstream, delay=0, drain=0.5) as served:
        url = f"{served.app}/moms/system.ping"
        pending = asyncio.gather(*(fresh_get(url) for _ in range(3)))
        await asyncio.sleep(0.5)
        began = time.monotonic()
        served.proc.send_signal(signal.SIGTERM)
        results = await asyncio.wait_for(pending, 20)
        for status, envelope in results:
            validate_envelope(envelope)
            assert (status, envelope["code"], envelope["retryable"]) == (503, "OVERLOADED", True)
        assert await wait_exit(served.proc) == 0
        took = time.monotonic() - began
        lines = served.lines()
    cut = [line for line in lines if line["event"] == "request"]
    assert [line["code"] for line in cut] == ["OVERLOADED"] * 3  # each one logged
    (summary,) = [line for line in lines if line["event"] == "shutdown"]
    assert (summary["in_flight"], summary["cut_short"]) == (3, 3)
    print(f"shutdown with drain 0.5 s took {took:.2f} s")


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
async def test_a_second_signal_exits_at_once(
    aiohttp_server: Any, tmp_path: Path, sig: signal.Signals, status: int
) -> None:
    upstream = await slow_gateway(aiohttp_server, 30)
    with serving(tmp_path, upstream, delay=0, drain=30) as served:
        pending = asyncio.ensure_future(fresh_get(f"{served.app}/moms/system.ping"))  # noqa: TID251
        await asyncio.sleep(0.5)
        served.proc.send_signal(sig)
        await asyncio.sleep(0.3)
        assert served.proc.poll() is None  # draining: up to 30 s
        served.proc.send_signal(sig)
        assert await wait_exit(served.proc) == status
        with pytest.raises(aiohttp.ClientError):
            await pending
