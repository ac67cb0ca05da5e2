"""Hostile or broken clients: each gets a clear envelope or a clean close, never a stuck worker.

Raw sockets against the proxy (its own guarded connection handler, via the conftest
fixtures), so that the bytes are exactly what a broken client sends.
"""

import asyncio
import json
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry

from proxy.server import REGISTRY_KEY
from tests.conftest import make_config
from tests.test_server import SUBMIT_REQ, Recorder, submit_rsp


def registry_of(client: TestClient[web.Request, web.Application]) -> CollectorRegistry:
    return client.app[REGISTRY_KEY]


def responses(client: TestClient[web.Request, web.Application], code: str) -> float:
    registry = registry_of(client)
    total = 0.0
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == "gateway_proxy_responses_total" and sample.labels["code"] == code:
                total += sample.value
    return total


async def raw(
    client: TestClient[web.Request, web.Application], data: bytes, *, read: bool = True
) -> tuple[int, dict[str, str], bytes, bool]:
    """Send ``data`` on a fresh connection; (status, headers, body, closed after)."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(data)
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {
        k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)
    }
    body = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", "0"))), 10)
    closed = (await asyncio.wait_for(reader.read(1), 10)) == b"" if read else False
    writer.close()
    return status, headers, body, closed


async def test_a_trickled_head_is_cut_at_client_timeout_head(
    one_route_proxy: Any, log_lines: Any
) -> None:
    """Slowloris: the head deadline closes the socket; the proxy keeps serving others."""
    client = await one_route_proxy(Recorder(), top={"client_timeout": {"head": 0.3}})
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(b"POST /gw HTTP/1.1\r\nHost: x\r\n")
    closed = asyncio.ensure_future(reader.read())  # noqa: TID251 - the test's own short task
    for _ in range(10):  # keep trickling header bytes: each one would reset an idle timer
        await asyncio.sleep(0.05)
        if closed.done():
            break
        writer.write(b"X-A: b\r\n")
    assert await asyncio.wait_for(closed, 5) == b""  # closed without an answer
    normal = await client.post("/gw", data=SUBMIT_REQ)
    assert normal.status == 200
    assert any(line["event"] == "client_head_timeout" for line in log_lines())
    counted = registry_of(client).get_sample_value(
        "gateway_proxy_rejected_requests_total", {"route": "unmatched", "reason": "head_timeout"}
    )
    assert counted == 1
    writer.close()


async def test_many_slow_heads_do_not_stop_normal_requests(one_route_proxy: Any) -> None:
    client = await one_route_proxy(Recorder(), top={"client_timeout": {"head": 0.5}})
    sockets = []
    for _ in range(200):
        _, writer = await asyncio.open_connection(client.host, client.port)
        writer.write(b"POST /gw HTTP/1.1\r\n")
        sockets.append(writer)
    answers = await asyncio.gather(*(client.post("/gw", data=SUBMIT_REQ) for _ in range(20)))
    assert [a.status for a in answers] == [200] * 20
    for writer in sockets:
        writer.close()


HEAD = b"POST /gw HTTP/1.1\r\nHost: x\r\n"


async def test_parser_refusals_get_the_envelope_and_a_close(
    one_route_proxy: Any, log_lines: Any
) -> None:
    gateway = Recorder()
    client = await one_route_proxy(gateway)
    cases = [
        (b"GET /gw/" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "URI_TOO_LONG"),
        (HEAD + b"X-Big: " + b"b" * 9000 + b"\r\n\r\n", 431, "REQUEST_HEADER_FIELDS_TOO_LARGE"),
        (HEAD + b"".join(b"X-%d: 1\r\n" % i for i in range(200)) + b"\r\n", 431,
         "REQUEST_HEADER_FIELDS_TOO_LARGE"),
        (HEAD + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400,
         "INVALID_REQUEST"),
        (HEAD + b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400, "INVALID_REQUEST"),
        (b"GET /gw HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400, "INVALID_REQUEST"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400, "INVALID_REQUEST"),  # TLS hello
    ]  # fmt: skip
    for data, status, code in cases:
        got, headers, body, closed = await raw(client, data)
        envelope = json.loads(body)
        assert (got, envelope["code"], envelope["status"]) == (status, code, status), data[:60]
        assert headers["content-type"] == "application/problem+json"
        assert closed, f"{code}: the connection must close after a framing error"
        assert "Traceback" not in body.decode()
    refusals = [line for line in log_lines() if line["event"] == "request"]
    assert len(refusals) == len(cases)
    assert {line["level"] for line in refusals} == {"warning"}
    assert not [line for line in log_lines() if "exception" in line or line["level"] == "error"]
    assert responses(client, "REQUEST_HEADER_FIELDS_TOO_LARGE") == 2
    assert gateway.requests == []  # nothing reached the gateway


async def test_a_bad_chunk_size_is_refused_and_closed(one_route_proxy: Any) -> None:
    client = await one_route_proxy(Recorder())
    data = HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"
    status, _, body, closed = await raw(client, data)
    assert (status, json.loads(body)["code"]) == (400, "INVALID_REQUEST")
    assert closed


async def test_extension_methods_are_forwarded(proxy_client: Any) -> None:
    """FOO is a valid token: it reaches the gateway (a raw one: aiohttp's C parser, like
    many servers, would refuse it too)."""
    seen: list[bytes] = []
    answer = (submit_rsp().text or "").encode()

    async def gateway(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        seen.append(head.split(b" ")[0] + b" " + await reader.readexactly(length))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n")
        writer.write(b"Content-Length: %d\r\n\r\n" % len(answer) + answer)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(gateway, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    route = {
        "name": "gw",
        "vendor": "mm7",
        "path_prefix": "/gw",
        "upstream": f"http://127.0.0.1:{port}/api",
    }
    client = await proxy_client(make_config(route))
    status, _, body, _ = await raw(
        client, b"FOO /gw/x HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi", read=False
    )
    assert (status, json.loads(body)["code"]) == (200, "OK")
    assert seen == [b"FOO hi"]
    server.close()


async def test_a_stalled_body_is_the_apps_request_timeout(
    one_route_proxy: Any, log_lines: Any
) -> None:
    """Not TIMEOUT, not an upstream failure; the upstream request is cancelled."""
    seen: list[str] = []

    async def gateway(request: web.Request) -> web.Response:
        try:
            await request.read()
        except (aiohttp.ClientError, ConnectionError) as exc:
            seen.append(type(exc).__name__)
            raise
        return submit_rsp()

    client = await one_route_proxy(gateway, top={"client_timeout": {"body_idle": 0.3}})
    data = HEAD + b"Content-Length: 100\r\n\r\n" + b"x" * 10
    status, _, body, _ = await raw(client, data, read=False)
    envelope = json.loads(body)
    assert (status, envelope["code"], envelope["category"]) == (408, "REQUEST_TIMEOUT", "client")
    (line,) = [line for line in log_lines() if line["event"] == "request"]
    assert (line["code"], line["bytes_in"]) == ("REQUEST_TIMEOUT", 10)
    for family in registry_of(client).collect():
        if family.name == "gateway_proxy_upstream_failures":
            assert not [s for s in family.samples if s.value and s.name.endswith("_total")]


async def test_a_route_can_allow_a_longer_body_pause(one_route_proxy: Any) -> None:
    client = await one_route_proxy(
        Recorder(),
        top={"client_timeout": {"body_idle": 0.1}},
        client_timeout={"body_idle": 5},
    )
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(HEAD + b"Content-Length: 4\r\n\r\nab")
    await asyncio.sleep(0.4)  # longer than the global body_idle, shorter than the route's
    writer.write(b"cd")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 200")
    writer.close()


async def test_an_app_that_hangs_up_cancels_the_upstream_call(
    one_route_proxy: Any, log_lines: Any
) -> None:
    """CLIENT_CLOSED_REQUEST at once, not when the gateway answers; the gateway sees it."""
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await request.read()
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return submit_rsp()

    client = await one_route_proxy(slow)
    _, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(HEAD + b"Content-Length: 5\r\n\r\nhello")
    await asyncio.wait_for(started.wait(), 5)
    writer.transport.abort()  # the app goes away
    await asyncio.wait_for(cancelled.wait(), 5)  # the gateway saw the connection close
    for _ in range(100):
        lines = [line for line in log_lines() if line["event"] == "request"]
        if lines:
            break
        await asyncio.sleep(0.02)
    (line,) = lines
    assert (line["code"], line["bytes_in"]) == ("CLIENT_CLOSED_REQUEST", 5)
    in_flight = registry_of(client).get_sample_value(
        "gateway_proxy_requests_in_flight", {"route": "gw"}
    )
    assert in_flight == 0


async def test_a_reset_mid_upload_is_a_client_hang_up(one_route_proxy: Any, log_lines: Any) -> None:
    client = await one_route_proxy(Recorder())
    _, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(HEAD + b"Content-Length: 1000\r\n\r\n" + b"x" * 100)
    await writer.drain()
    await asyncio.sleep(0.1)
    writer.transport.abort()
    for _ in range(100):
        lines = [line for line in log_lines() if line["event"] == "request"]
        if lines:
            break
        await asyncio.sleep(0.02)
    (line,) = lines
    assert line["code"] == "CLIENT_CLOSED_REQUEST"
    assert line["bytes_in"] == 100
