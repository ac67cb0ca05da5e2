"""Running the proxy: start-up and shutdown lines, readiness, graceful drain."""

import asyncio
import json
import os
import signal
import subprocess
import sys
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from proxy.process.serve import serve
from tests.conftest import make_config
from tests.test_forward import free_port


async def test_graceful_shutdown_drains_in_flight_requests(gateway: Any, log_lines: Any) -> None:
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text='{"response": {"code": "1", "status": "success"}}')

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", slow)
    upstream = await gateway(app)
    port, admin_port = free_port(), free_port()
    config = make_config(
        {"vendor": "moms", "path_prefix": "/moms", "upstream": str(upstream.make_url("/moms"))},
        listen=f"127.0.0.1:{port}",
        admin_listen=f"127.0.0.1:{admin_port}",
        shutdown={"drain_seconds": 10},
    )
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.get_running_loop().create_task(serve(config, stop=stop, on_ready=ready.set))
    await asyncio.wait_for(ready.wait(), 10)
    async with aiohttp.ClientSession() as http:
        admin = f"http://127.0.0.1:{admin_port}"
        assert (await http.get(f"{admin}/readyz")).status == 200
        ping = http.get(f"http://127.0.0.1:{port}/moms/system.ping")
        in_flight = asyncio.get_running_loop().create_task(ping.__aenter__(), name="ping")
        await asyncio.sleep(0.2)
        stop.set()
        await asyncio.sleep(0.2)
        assert (await http.get(f"{admin}/readyz")).status == 503  # out of rotation at once
        release.set()
        resp = await in_flight
        assert (resp.status, (await resp.json())["code"]) == (200, "OK")  # not lost
    await asyncio.wait_for(task, 15)
    events = [line["event"] for line in log_lines()]
    assert events.count("startup") == 1
    assert events.count("shutdown") == 1
    assert events.index("startup") < events.index("request") < events.index("shutdown")


def test_sigterm_stops_the_process_cleanly(tmp_path: Any) -> None:
    port, admin_port = free_port(), free_port()
    config = tmp_path / "gw.yaml"
    config.write_text(
        f"listen: 127.0.0.1:{port}\nadmin_listen: 127.0.0.1:{admin_port}\n"
        "shutdown: {drain_seconds: 2}\n"
        "routes: [{name: a, path_prefix: /a, vendor: mm7, upstream: 'http://127.0.0.1:9/'}]\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "proxy", "serve", "--config", str(config), "--log-level", "info"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        startup = json.loads(proc.stdout.readline())
        assert startup["event"] == "startup"
        assert startup["listen"] == f"127.0.0.1:{port}"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    shutdown = json.loads(out.strip().splitlines()[-1])
    assert (shutdown["event"], shutdown["signal"]) == ("shutdown", "SIGTERM")


@pytest.mark.parametrize("where", ["flag", "config"])
def test_console_format_for_humans(tmp_path: Any, where: str) -> None:
    config = tmp_path / "gw.yaml"
    config.write_text(
        f"listen: 127.0.0.1:{free_port()}\nadmin_listen: 127.0.0.1:{free_port()}\n"
        + ("log: {format: console}\n" if where == "config" else "")
        + "routes: [{name: a, path_prefix: /a, vendor: mm7, upstream: 'http://127.0.0.1:9/'}]\n"
    )
    flags = ["--log-format", "console"] if where == "flag" else []
    proc = subprocess.Popen(
        [sys.executable, "-m", "proxy", "serve", "--config", str(config), *flags],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert "startup" in first
    assert not first.lstrip().startswith("{")
