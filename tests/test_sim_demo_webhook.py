"""The demo's webhook (proxy/tools/demo_webhook.py): it prints every event it receives, as one
recognisable block, and answers 200; ``python -m proxy.tools.demo_webhook`` serves it."""

import json
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from proxy.tools.demo_webhook import PREFIX, create_webhook_app, render_event
from tests.demo_process import free_port, webhook_events

Client = TestClient[Any, Any]
EVENT = {
    "event": "delivery_report",
    "message_id": "302718193",
    "recipient": {"type": "number", "value": "+15550001000"},
    "status": "DELIVERED",
    "final": True,
}


@pytest.fixture
async def webhook(aiohttp_client: Callable[..., Awaitable[Client]]) -> tuple[Client, list[str]]:
    printed: list[str] = []
    return await aiohttp_client(create_webhook_app(printed.append)), printed


async def test_an_event_is_printed_as_one_block_and_answered_200(
    webhook: tuple[Client, list[str]],
) -> None:
    client, printed = webhook
    async with client.post("/gateway-events", json=EVENT) as response:
        assert response.status == 200
        assert await response.json() == {"received": True}
    [block] = printed
    assert block.startswith(f"{PREFIX} {{\n")
    assert block == render_event(EVENT)
    assert webhook_events(block.splitlines()) == [EVENT]  # what the demo's tests read back


async def test_any_path_is_a_webhook(webhook: tuple[Client, list[str]]) -> None:
    client, printed = webhook
    async with client.post("/another/hook", json={"event": "message"}) as response:
        assert response.status == 200
    assert webhook_events("\n".join(printed).splitlines()) == [{"event": "message"}]


async def test_a_body_that_is_not_json_is_answered_400(
    webhook: tuple[Client, list[str]],
) -> None:
    client, printed = webhook
    async with client.post("/gateway-events", data=b"<xml/>") as response:
        assert response.status == 400
    assert printed == ["webhook: 6 bytes that are not JSON; answered 400"]


async def test_by_default_it_prints_on_stdout(
    aiohttp_client: Callable[..., Awaitable[Client]], capsys: pytest.CaptureFixture[str]
) -> None:
    client = await aiohttp_client(create_webhook_app())
    async with client.post("/gateway-events", json=EVENT) as response:
        assert response.status == 200
    assert capsys.readouterr().out == render_event(EVENT) + "\n"


async def test_healthz(webhook: tuple[Client, list[str]]) -> None:
    client, printed = webhook
    async with client.get("/healthz") as response:
        assert (response.status, await response.text()) == (200, "ok\n")
    assert printed == []


def test_run_as_a_module_serves_until_sigterm() -> None:
    port = free_port()
    child = subprocess.Popen(
        [sys.executable, "-m", "proxy.tools.demo_webhook", "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert child.stdout is not None
        assert child.stdout.readline().startswith(f"demo webhook on http://127.0.0.1:{port}")
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/gateway-events", data=json.dumps(EVENT).encode(),
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        lines = []
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            assert response.status == 200
        for line in child.stdout:
            lines.append(line.rstrip("\n"))
            if line.rstrip("\n") == "}":
                break
        assert webhook_events(lines) == [EVENT]
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=30) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()


def test_a_bad_listen_address_is_a_usage_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "proxy.tools.demo_webhook", "--listen", "nowhere"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "--listen: must be HOST:PORT" in result.stderr
