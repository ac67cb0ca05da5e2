"""``serve --workers N``: N processes on one port, one admin port adding them up."""

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client.parser import text_string_to_metric_families

from tests.test_forward import free_port

MOMS_OK = '{"response": {"code": "1", "status": "success", "message": "queued"}}'
REQUESTS = 60


def start_workers(config: Path, workers: int = 2) -> "subprocess.Popen[str]":
    return subprocess.Popen(
        [sys.executable, "-m", "proxy", "serve", "--config", str(config),
         "--workers", str(workers), "--log-level", "info"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ},
    )  # fmt: skip


def write_config(tmp_path: Path, upstream: str) -> tuple[Path, int, int]:
    port, admin = free_port(), free_port()
    config = tmp_path / "gw.yaml"
    config.write_text(
        f"listen: 127.0.0.1:{port}\nadmin_listen: 127.0.0.1:{admin}\n"
        "shutdown: {delay_seconds: 0, drain_seconds: 2}\n"
        f"routes: [{{name: m, path_prefix: /moms, vendor: moms, upstream: '{upstream}'}}]\n"
    )
    return config, port, admin


async def wait_ready(
    http: aiohttp.ClientSession, admin: int, proc: "subprocess.Popen[str]"
) -> None:
    for _ in range(300):
        assert proc.poll() is None, proc.communicate()
        try:
            async with http.get(f"http://127.0.0.1:{admin}/readyz") as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError("the workers never became ready")


async def readyz_turns_503(http: aiohttp.ClientSession, admin: int) -> bool:
    for _ in range(500):
        async with http.get(f"http://127.0.0.1:{admin}/readyz") as resp:
            if resp.status == 503:
                return True
        await asyncio.sleep(0.02)
    return False


def responses_total(text: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "gateway_proxy_responses"
        for sample in family.samples
        if sample.name == "gateway_proxy_responses_total"
    )


async def test_two_workers_count_every_request_once_and_sigterm_exits_0(
    aiohttp_server: Callable[..., Awaitable[TestServer]], tmp_path: Path
) -> None:
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text=MOMS_OK, content_type="text/xml")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", ok)
    gateway = await aiohttp_server(app)
    config, port, admin = write_config(tmp_path, str(gateway.make_url("/moms")))
    proc = start_workers(config)
    try:
        # A new connection per request: the kernel spreads them over both workers.
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as http:
            await wait_ready(http, admin, proc)
            for i in range(REQUESTS):
                url = f"http://127.0.0.1:{port}/moms/transaction.send?n={i}"
                async with http.get(url) as resp:
                    assert (resp.status, (await resp.json())["code"]) == (200, "OK")
            async with http.get(f"http://127.0.0.1:{admin}/metrics") as resp:
                metrics = await resp.text()
        assert responses_total(metrics) == REQUESTS
        assert "_created" not in metrics
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.to_thread(proc.communicate, timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    started = [e for e in events if e["event"] == "worker_startup"]
    assert sorted(e["worker"] for e in started) == [0, 1]
    assert len([e for e in events if e["event"] == "request"]) == REQUESTS
    assert [e["exits"] for e in events if e["event"] == "shutdown" and "exits" in e] == [[0, 0]]


def test_a_port_in_use_is_one_error_line_and_exit_1(tmp_path: Path) -> None:
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        config = tmp_path / "gw.yaml"
        config.write_text(
            f"listen: 127.0.0.1:{busy.getsockname()[1]}\nadmin_listen: 127.0.0.1:{free_port()}\n"
            "routes: [{name: a, path_prefix: /a, vendor: mm7, upstream: 'http://127.0.0.1:9/'}]\n"
        )
        proc = start_workers(config)
        out, err = proc.communicate(timeout=60)
    finally:
        busy.close()
    assert proc.returncode == 1, err
    (line,) = [json.loads(line) for line in out.splitlines()]
    assert line["event"] == "listen_error"
    assert "address already in use" in line["error"]


@pytest.mark.parametrize("value", ["0", "x", "-2"])
def test_workers_must_be_a_positive_count(value: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "proxy", "serve", "--workers", value],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--workers" in done.stderr


def test_help_names_the_layout_and_the_missing_exemplars() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "proxy", "serve", "--help"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    text = " ".join(done.stdout.split())
    assert "SO_REUSEPORT" in text
    assert "no exemplars" in text


async def test_sigterm_drains_a_request_in_flight_in_a_worker(
    aiohttp_server: Callable[..., Awaitable[TestServer]], tmp_path: Path
) -> None:
    arrived, release = asyncio.Event(), asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        arrived.set()
        await release.wait()
        return web.Response(text=MOMS_OK, content_type="text/xml")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", slow)
    gateway = await aiohttp_server(app)
    config, port, admin = write_config(tmp_path, str(gateway.make_url("/moms")))
    proc = start_workers(config)
    try:
        async with aiohttp.ClientSession() as http:
            await wait_ready(http, admin, proc)
            in_flight = asyncio.get_running_loop().create_task(
                http.get(f"http://127.0.0.1:{port}/moms/transaction.send"), name="in-flight"
            )
            await arrived.wait()
            proc.send_signal(signal.SIGTERM)
            assert await readyz_turns_503(http, admin)  # out of rotation, the request held
            release.set()
            resp = await in_flight
            assert (resp.status, (await resp.json())["code"]) == (200, "OK")  # not lost
        out, err = await asyncio.to_thread(proc.communicate, timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    drained = [json.loads(line) for line in out.splitlines() if '"worker"' in line]
    shutdowns = [e for e in drained if e["event"] == "shutdown"]
    assert sorted(e["worker"] for e in shutdowns) == [0, 1]  # each ran the drain
    assert all(e["cut_short"] == 0 for e in shutdowns)  # and nothing was cut


async def test_sighup_reaches_every_worker_and_stops_nothing(
    aiohttp_server: Callable[..., Awaitable[TestServer]], tmp_path: Path
) -> None:
    """SIGHUP to the parent: each worker re-reads its TLS files and keeps serving, on
    `listen` and on `inbound_listen` (claimed once, shared by the workers)."""

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text=MOMS_OK, content_type="text/xml")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", ok)
    gateway = await aiohttp_server(app)
    config, port, admin = write_config(tmp_path, str(gateway.make_url("/moms")))
    inbound = free_port()
    config.write_text(
        config.read_text()
        + f"inbound_listen: 127.0.0.1:{inbound}\n"
        + "inbound: [{name: ev, path_prefix: /inbound, deliver_to: 'http://127.0.0.1:9/'}]\n"
    )
    proc = start_workers(config)
    try:
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as http:
            await wait_ready(http, admin, proc)
            proc.send_signal(signal.SIGHUP)
            for i in range(20):
                url = f"http://127.0.0.1:{port}/moms/transaction.send?n={i}"
                async with http.get(url) as resp:
                    assert (resp.status, (await resp.json())["code"]) == (200, "OK")
            async with http.get(f"http://127.0.0.1:{inbound}/moms/x") as resp:
                assert (await resp.json())["code"] == "ROUTE_NOT_FOUND"  # callbacks only there
            async with http.get(f"http://127.0.0.1:{admin}/readyz") as resp:
                assert resp.status == 200
        assert proc.poll() is None, "SIGHUP stopped nothing"
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.to_thread(proc.communicate, timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    hangups = [e for e in events if e["event"] == "sighup"]
    assert len(hangups) == 3  # the parent, and each of the two workers
