"""Failover between a route's ``upstreams``, over real sockets: never a duplicate send.

A request moves to the next endpoint only when it provably never reached the gateway
(refused, DNS, TLS, connect timeout, open circuit); once a byte may have been written it
stays, and the envelope (``vendor.endpoint``) and the log line name the endpoint that
answered.
"""

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ProxyFactory, make_config
from tests.test_reliability_gateway import (
    HANG_GUARD_S,
    SUBMIT_REQ,
    RawGateway,
    answer_ok,
    hang,
    reset_mid_body,
    self_signed_context,
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def gateways() -> AsyncIterator[Callable[..., Any]]:
    """Start RawGateways; every one is closed (and its own errors raised) at the end."""
    started: list[RawGateway] = []

    async def start(*answers: Any, default: Any = None) -> RawGateway:
        gateway = await RawGateway(list(answers), default=default).start()
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        await gateway.close()


def route(*upstreams: str, **extra: Any) -> dict[str, Any]:
    return {"name": "mms", "path_prefix": "/mm7", "upstreams": list(upstreams), **extra}


async def send(client: Any, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    async with asyncio.timeout(HANG_GUARD_S):
        resp = await client.post("/mm7", data=SUBMIT_REQ, headers=headers or {})
        return resp.status, await resp.json()


async def test_a_refused_primary_fails_over_to_the_secondary(
    gateways: Any, proxy_client: ProxyFactory, log_lines: Any
) -> None:
    dead = free_port()  # nothing listens there: connection refused
    secondary = await gateways()
    client = await proxy_client(make_config(route(f"http://127.0.0.1:{dead}/mm7", secondary.url())))
    status, env = await send(client)
    assert (status, env["code"]) == (200, "OK")
    assert env["vendor"]["endpoint"] == f"127.0.0.1:{secondary.port}"
    assert len(secondary.received) == 1
    assert secondary.received[0].body == SUBMIT_REQ  # the whole body, once
    (line,) = [e for e in log_lines() if e["event"] == "request"]
    assert line["endpoint"] == f"127.0.0.1:{secondary.port}"


async def test_without_failover_the_refusal_reaches_the_app(
    proxy_client: ProxyFactory,
) -> None:
    """The control: the same refused endpoint alone is the app's CONNECTION_ERROR."""
    dead = free_port()
    client = await proxy_client(make_config(route(f"http://127.0.0.1:{dead}/mm7")))
    status, env = await send(client)
    assert (status, env["code"], env["vendor"]["endpoint"]) == (
        502, "CONNECTION_ERROR", f"127.0.0.1:{dead}",
    )  # fmt: skip


async def test_a_dns_failure_fails_over(gateways: Any, proxy_client: ProxyFactory) -> None:
    secondary = await gateways()
    config = make_config(route("http://no-such-host.invalid/mm7", secondary.url()))
    status, env = await send(await proxy_client(config))
    assert (status, env["code"], len(secondary.received)) == (200, "OK", 1)


async def test_a_failed_tls_handshake_fails_over(
    gateways: Any, proxy_client: ProxyFactory, tmp_path: Path
) -> None:
    """A primary whose certificate the proxy does not trust (a real handshake, refused)."""
    server_ctx = self_signed_context(tmp_path)

    async def never_reached(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    tls = await asyncio.start_server(never_reached, "127.0.0.1", 0, ssl=server_ctx)
    port = tls.sockets[0].getsockname()[1]
    secondary = await gateways()
    try:
        config = make_config(route(f"https://127.0.0.1:{port}/mm7", secondary.url()))
        status, env = await send(await proxy_client(config))
    finally:
        tls.close()
        await tls.wait_closed()
    assert (status, env["code"], len(secondary.received)) == (200, "OK", 1)


async def test_a_reset_after_the_request_went_out_never_fails_over(
    gateways: Any, proxy_client: ProxyFactory
) -> None:
    """The primary got the request and reset mid-answer: CONNECTION_LOST, and the
    secondary never sees it (it might have been sent)."""
    primary = await gateways(reset_mid_body)
    secondary = await gateways()
    client = await proxy_client(make_config(route(primary.url(), secondary.url())))
    status, env = await send(client)
    assert (status, env["code"]) == (502, "CONNECTION_LOST")
    assert env["vendor"]["endpoint"] == f"127.0.0.1:{primary.port}"
    assert len(primary.received) == 1
    assert secondary.received == []
    assert secondary.accepted == 0


async def test_a_timeout_after_the_request_went_out_never_fails_over(
    gateways: Any, proxy_client: ProxyFactory
) -> None:
    primary = await gateways(hang)
    secondary = await gateways()
    config = make_config(route(primary.url(), secondary.url(), timeout={"total": 0.5}))
    status, env = await send(await proxy_client(config))
    assert (status, env["code"]) == (504, "TIMEOUT")
    assert (len(primary.received), secondary.accepted) == (1, 0)


async def test_every_endpoint_refusing_answers_the_last_refusal(
    proxy_client: ProxyFactory,
) -> None:
    first, second = free_port(), free_port()
    config = make_config(route(f"http://127.0.0.1:{first}/mm7", f"http://127.0.0.1:{second}/mm7"))
    status, env = await send(await proxy_client(config))
    assert (status, env["code"], env["retryable"]) == (502, "CONNECTION_ERROR", True)
    assert env["vendor"]["endpoint"] == f"127.0.0.1:{second}"


async def test_round_robin_spreads_the_first_try(gateways: Any, proxy_client: ProxyFactory) -> None:
    a, b = await gateways(), await gateways()
    config = make_config(route(a.url(), b.url(), balance="round_robin"))
    client = await proxy_client(config)
    endpoints = [(await send(client))[1]["vendor"]["endpoint"] for _ in range(4)]
    assert (len(a.received), len(b.received)) == (2, 2)
    assert endpoints[0] != endpoints[1]
    assert endpoints[0] == endpoints[2]


async def test_failover_keeps_the_configured_order(
    gateways: Any, proxy_client: ProxyFactory
) -> None:
    a, b = await gateways(), await gateways()
    client = await proxy_client(make_config(route(a.url(), b.url())))
    for _ in range(3):
        await send(client)
    assert (len(a.received), len(b.received)) == (3, 0)


async def test_all_attempts_share_one_deadline(gateways: Any, proxy_client: ProxyFactory) -> None:
    """A connect timeout on the first endpoint (a listener that never accepts, its backlog
    full) leaves the second only what is left of timeout.total: the app's answer is one
    TIMEOUT or the second's answer, never two full timeouts. Here connect = total, so the
    first attempt uses the whole budget and the second is never tried."""
    blackhole = socket.socket()
    blackhole.bind(("127.0.0.1", 0))
    blackhole.listen(0)
    fillers = []
    try:
        port = blackhole.getsockname()[1]
        for _ in range(8):  # fill the accept backlog: further connects hang in SYN-SENT
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        secondary = await gateways()
        config = make_config(
            route(f"http://127.0.0.1:{port}/mm7", secondary.url(),
                  timeout={"connect": 0.5, "total": 0.5})
        )  # fmt: skip
        _status, env = await send(await proxy_client(config))
    finally:
        for filler in fillers:
            filler.close()
        blackhole.close()
    assert env["code"] in ("TIMEOUT", "CONNECTION_ERROR"), env
    assert secondary.accepted == 0  # the deadline was spent: nothing left to try


async def test_a_connect_timeout_fails_over_within_the_total(
    gateways: Any, proxy_client: ProxyFactory
) -> None:
    blackhole = socket.socket()
    blackhole.bind(("127.0.0.1", 0))
    blackhole.listen(0)
    fillers = []
    try:
        port = blackhole.getsockname()[1]
        for _ in range(8):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        secondary = await gateways()
        config = make_config(
            route(f"http://127.0.0.1:{port}/mm7", secondary.url(),
                  timeout={"connect": 0.3, "total": 20})
        )  # fmt: skip
        status, env = await send(await proxy_client(config))
    finally:
        for filler in fillers:
            filler.close()
        blackhole.close()
    assert (status, env["code"], len(secondary.received)) == (200, "OK", 1)


async def test_a_streamed_body_fails_over_whole(gateways: Any, proxy_client: ProxyFactory) -> None:
    """A chunked body (no Content-Length) still reaches the secondary whole: nothing of it
    was taken before the refusal."""
    dead = free_port()
    secondary = await gateways()
    client = await proxy_client(make_config(route(f"http://127.0.0.1:{dead}/mm7", secondary.url())))

    async def chunks() -> AsyncIterator[bytes]:
        yield SUBMIT_REQ[:40]
        await asyncio.sleep(0.01)
        yield SUBMIT_REQ[40:]

    async with asyncio.timeout(HANG_GUARD_S):
        resp = await client.post("/mm7", data=chunks())
        env = await resp.json()
    assert env["code"] == "OK"
    assert secondary.received[0].body == SUBMIT_REQ


async def test_the_secondary_answers_keep_alive_after_failover(
    gateways: Any, proxy_client: ProxyFactory
) -> None:
    dead = free_port()
    secondary = await gateways(default=answer_ok)
    client = await proxy_client(make_config(route(f"http://127.0.0.1:{dead}/mm7", secondary.url())))
    for _ in range(3):
        assert (await send(client))[1]["code"] == "OK"
    assert (len(secondary.received), secondary.accepted) == (3, 1)
