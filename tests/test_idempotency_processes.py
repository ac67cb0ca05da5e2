"""A resend storm over several proxy processes: two ``serve`` processes sharing one real
Redis, and ``serve --workers 2`` sharing one SQLite file. Every key reaches the relay once,
whichever process each resend lands on."""

import asyncio
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.redis_server import RedisServer, free_port
from tests.test_idempotency import Relay
from tests.test_server import SUBMIT_REQ
from tests.test_workers import wait_ready

KEYS = 20
RESENDS = 5


def write_config(tmp_path: Path, name: str, upstream: str, ledger: str) -> tuple[Path, int, int]:
    port, admin = free_port(), free_port()
    config = tmp_path / f"{name}.yaml"
    config.write_text(
        f"listen: 127.0.0.1:{port}\nadmin_listen: 127.0.0.1:{admin}\n"
        "shutdown: {delay_seconds: 0, drain_seconds: 2}\n"
        f"routes: [{{name: mms, path_prefix: /mm7, vendor: mm7, upstream: '{upstream}'}}]\n"
        f"{ledger}\n"
    )
    return config, port, admin


def serve(config: Path, *extra: str) -> "subprocess.Popen[str]":
    return subprocess.Popen(
        [sys.executable, "-m", "proxy", "serve", "--config", str(config), *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


async def storm(http: aiohttp.ClientSession, ports: list[int]) -> list[tuple[int, str | None]]:
    """KEYS keys, each sent RESENDS times at once, spread over ``ports``."""

    async def one(key: int, attempt: int) -> tuple[int, str | None]:
        port = ports[(key + attempt) % len(ports)]
        headers = {"Content-Type": "text/xml", "Idempotency-Key": f"storm-{key}"}
        async with http.post(f"http://127.0.0.1:{port}/mm7", data=SUBMIT_REQ, headers=headers) as r:
            return r.status, r.headers.get("Idempotent-Replayed")

    jobs = [one(key, attempt) for key in range(KEYS) for attempt in range(RESENDS)]
    return list(await asyncio.gather(*jobs))


async def relay_server(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> tuple[Relay, str]:
    fake = Relay()
    fake.delay = 0.05  # long enough for resends to meet the key in flight
    app = web.Application()
    app.router.add_post("/{tail:.*}", fake.handle)
    server = await aiohttp_server(app)
    return fake, str(server.make_url("/mm7"))


async def finish(*procs: "subprocess.Popen[str]") -> None:
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        _, err = await asyncio.to_thread(proc.communicate, timeout=30)
        assert proc.returncode == 0, err
        assert "Traceback" not in err


def assert_each_key_sent_once(fake: Relay, answers: list[tuple[int, str | None]]) -> None:
    assert len(fake.sends) == KEYS
    statuses = {status for status, _ in answers}
    assert statuses <= {200, 409}, answers  # 409: a resend met its key in flight
    assert sum(1 for status, replayed in answers if status == 200 and not replayed) == KEYS


async def test_two_processes_on_one_redis_send_each_key_once(
    aiohttp_server: Callable[..., Awaitable[TestServer]], tmp_path: Path
) -> None:
    fake, url = await relay_server(aiohttp_server)
    with RedisServer(tmp_path / "redis") as redis:
        ledger = f"ledger: {{path: {tmp_path / 'unused.sqlite3'}}}\nstore: {redis.url}"
        first = write_config(tmp_path, "a", url, ledger)
        second = write_config(tmp_path, "b", url, ledger)
        procs = [serve(first[0]), serve(second[0])]
        try:
            async with aiohttp.ClientSession() as http:
                for (_, _, admin), proc in zip((first, second), procs, strict=True):
                    await wait_ready(http, admin, proc)
                answers = await storm(http, [first[1], second[1]])
        finally:
            await finish(*procs)
    assert_each_key_sent_once(fake, answers)


async def test_two_workers_on_one_sqlite_file_send_each_key_once(
    aiohttp_server: Callable[..., Awaitable[TestServer]], tmp_path: Path
) -> None:
    fake, url = await relay_server(aiohttp_server)
    config, port, admin = write_config(
        tmp_path, "w", url, f"ledger: {{path: {tmp_path / 'ledger.sqlite3'}}}"
    )
    proc = serve(config, "--workers", "2")
    try:
        async with aiohttp.ClientSession() as http:
            await wait_ready(http, admin, proc)
            answers = await storm(http, [port])
    finally:
        await finish(proc)
    assert_each_key_sent_once(fake, answers)


async def test_a_store_down_from_the_start_leaves_the_proxy_ready_for_unkeyed_traffic(
    aiohttp_server: Callable[..., Awaitable[TestServer]], tmp_path: Path
) -> None:
    """/readyz does not depend on the ledger: unkeyed sends flow, keyed ones get 503, and
    gateway_proxy_ledger_up says why."""
    fake, url = await relay_server(aiohttp_server)
    dead = f"redis://127.0.0.1:{free_port()}/0"
    config, port, admin = write_config(
        tmp_path, "d", url, f"ledger: {{path: {tmp_path / 'unused.sqlite3'}}}\nstore: {dead}"
    )
    proc = serve(config)
    try:
        async with aiohttp.ClientSession() as http:
            await wait_ready(http, admin, proc)
            send = f"http://127.0.0.1:{port}/mm7"
            xml = {"Content-Type": "text/xml"}
            async with http.post(send, data=SUBMIT_REQ, headers=xml) as unkeyed:
                assert unkeyed.status == 200
            keyed_headers = {**xml, "Idempotency-Key": "k"}
            async with http.post(send, data=SUBMIT_REQ, headers=keyed_headers) as keyed:
                assert keyed.status == 503
                assert (await keyed.json(content_type=None))["code"] == "LEDGER_UNAVAILABLE"
            async with http.get(f"http://127.0.0.1:{admin}/readyz") as ready:
                assert ready.status == 200
            async with http.get(f"http://127.0.0.1:{admin}/metrics") as metrics:
                assert "gateway_proxy_ledger_up 0.0" in await metrics.text()
    finally:
        await finish(proc)
    assert len(fake.sends) == 1


def test_a_ledger_file_that_cannot_be_opened_is_one_line_and_exit_1(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    config, _, _ = write_config(
        tmp_path, "bad", "http://127.0.0.1:9/mm7", f"ledger: {{path: {blocker / 'ledger.db'}}}"
    )
    result = subprocess.run(
        [sys.executable, "-m", "proxy", "serve", "--config", str(config)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if "startup_error" in line]
    assert len(errors) == 1, output
    assert "cannot open the message ledger" in errors[0]
