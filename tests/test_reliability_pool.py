"""The upstream connection pool: keep-alive reuse, a bounded pool, and what happens when a
gateway closes a connection (docs/reliability.md, "Gateway faults").

The contract: sequential requests share one upstream connection; concurrent ones never
open more than ``pool.limit_per_host``; a connection the gateway closed while idle costs
no request; and a request the gateway received is never sent to it a second time, whatever
its method (a MoMS ``transaction.send`` is a GET, and sending it twice sends two messages).

Why the last one needs a test: aiohttp's ``ClientSession`` (3.14, ``_request``) re-sends a
request once when sending it or reading the answer's head fails with
``ServerDisconnectedError`` or ``ClientOSError``, for RFC 9110's idempotent methods (GET,
HEAD, OPTIONS, TRACE, PUT, DELETE), on a fresh connection as well as a pooled one, unless
its body was a stream that cannot be replayed; it never re-sends a POST or a PATCH. Behind
a ClientSession, the GET and DELETE cases below get the gateway's second answer (200 OK)
and the gateway counts the request twice.
"""

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import ProxyFactory, make_config
from tests.test_reliability_gateway import (
    HANG_GUARD_S,
    MOMS_OK,
    SUBMIT_REQ,
    SUBMIT_RSP,
    Answer,
    Client,
    RawGateway,
    body_answer,
)

MOMS_ANSWER = body_answer(MOMS_OK)
MM7_ANSWER = body_answer(SUBMIT_RSP)


async def through(
    proxy_client: ProxyFactory, gateway: RawGateway, vendor: str = "mm7", **top: Any
) -> Client:
    config = make_config(
        {"name": "gw", "vendor": vendor, "path_prefix": "/gw", "upstream": gateway.url()}, **top
    )
    return await proxy_client(config)


# The requests apps send: an MM7 submit (POST), a MoMS send (GET with the query), and two
# methods of the idempotent set, one with a body (PUT) and one without (DELETE).
REQUESTS: dict[str, tuple[str, str, str, bytes | None]] = {
    "POST mm7": ("mm7", "POST", "/gw", SUBMIT_REQ),
    "GET moms": ("moms", "GET", "/gw/transaction.send?campaign_id=1&to=15550001234", None),
    "PUT with a body": ("mm7", "PUT", "/gw", SUBMIT_REQ),
    "DELETE": ("moms", "DELETE", "/gw/list.delete?list_id=1", None),
}


async def send(client: Client, name: str, request_id: str) -> tuple[int, str]:
    _, method, path, body = REQUESTS[name]
    async with asyncio.timeout(HANG_GUARD_S):
        resp = await client.request(method, path, data=body, headers={"X-Request-ID": request_id})
        return resp.status, (await resp.json(content_type=None))["code"]


def ok_answer(vendor: str) -> Answer:
    return MOMS_ANSWER if vendor == "moms" else MM7_ANSWER


async def test_sequential_requests_reuse_one_upstream_connection(
    proxy_client: ProxyFactory,
) -> None:
    gateway = await RawGateway().start()
    try:
        client = await through(proxy_client, gateway)
        for i in range(30):
            assert await send(client, "POST mm7", f"seq-{i}") == (200, "OK")
    finally:
        await gateway.close()
    assert (gateway.accepted, len(gateway.received)) == (1, 30)


async def test_concurrent_requests_never_open_more_connections_than_the_pool(
    proxy_client: ProxyFactory,
) -> None:
    async def slow_ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(0.02)  # keeps requests overlapping, so the pool fills up
        return await MM7_ANSWER(reader, writer)

    gateway = await RawGateway(default=slow_ok).start()
    try:
        client = await through(proxy_client, gateway, pool={"limit": 4, "limit_per_host": 4})
        for wave in range(2):
            results = await asyncio.gather(
                *(send(client, "POST mm7", f"w{wave}-{i}") for i in range(32))
            )
            assert set(results) == {(200, "OK")}
    finally:
        await gateway.close()
    assert len(gateway.received) == 64
    assert 1 <= gateway.accepted <= 4


@pytest.mark.parametrize("name", list(REQUESTS))
async def test_a_gateway_closing_idle_keep_alive_connections_costs_no_request(
    proxy_client: ProxyFactory, name: str
) -> None:
    """The gateway's keep-alive timeout closes each connection between two requests."""
    vendor = REQUESTS[name][0]
    gateway = await RawGateway(idle_close=0.05, default=ok_answer(vendor)).start()
    try:
        client = await through(proxy_client, gateway, vendor)
        for i in range(5):
            assert await send(client, name, f"idle-{i}") == (200, "OK")
            await gateway.wait_closed_connections(i + 1)
    finally:
        await gateway.close()
    assert (gateway.accepted, len(gateway.received)) == (5, 5)


async def close_without_answering(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> bool:
    """The gateway has read the whole request; it closes the connection without a word."""
    return False


@pytest.mark.parametrize("connection", ["fresh", "pooled"])
@pytest.mark.parametrize("name", list(REQUESTS))
async def test_a_request_the_gateway_received_is_never_sent_twice(
    proxy_client: ProxyFactory,
    log_lines: Callable[[], list[dict[str, Any]]],
    name: str,
    connection: str,
) -> None:
    """Received, then the connection closed with no answer: CONNECTION_LOST, sent once.

    ``pooled``: the connection already carried one answered request (keep-alive), so this
    is also the "dead pooled connection" case as the proxy sees it.
    """
    vendor = REQUESTS[name][0]
    answers: list[Answer] = [close_without_answering]
    if connection == "pooled":
        answers.insert(0, ok_answer(vendor))
    gateway = await RawGateway(answers, default=ok_answer(vendor)).start()
    try:
        client = await through(proxy_client, gateway, vendor)
        if connection == "pooled":
            assert await send(client, name, "first") == (200, "OK")
        status, code = await send(client, name, "once")
        received = [r for r in gateway.received if r.headers.get("x-request-id") == "once"]
        # (times the gateway got it, what the app got)
        assert (len(received), status, code) == (1, 502, "CONNECTION_LOST")
        assert [e["code"] for e in log_lines() if e.get("request_id") == "once"] == [
            "CONNECTION_LOST"
        ]
    finally:
        await gateway.close()


async def test_after_a_lost_connection_the_next_request_gets_a_new_one(
    proxy_client: ProxyFactory,
) -> None:
    gateway = await RawGateway([close_without_answering]).start()
    try:
        client = await through(proxy_client, gateway)
        assert await send(client, "POST mm7", "lost") == (502, "CONNECTION_LOST")
        assert await send(client, "POST mm7", "next") == (200, "OK")
    finally:
        await gateway.close()
    assert (gateway.accepted, len(gateway.received)) == (2, 2)
