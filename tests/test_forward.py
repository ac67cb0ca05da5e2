"""Transport failures and streaming: each failure kind reaches the app as an envelope."""

import asyncio
import gzip
import socket
import tracemalloc
import zlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from proxy.upstream import decode_content
from proxy.upstream.errors import connect_failure, exchange_failure
from tests.conftest import make_config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def envelope(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    assert resp.content_type == "application/problem+json"
    data: dict[str, Any] = await resp.json()
    assert data["status"] == resp.status
    return data


async def test_connection_refused(proxy_client: Any) -> None:
    port = free_port()  # nothing listens there
    config = make_config({"path_prefix": "/gw", "upstream": f"http://127.0.0.1:{port}/x"})
    client = await proxy_client(config)
    resp = await client.post("/gw", data=b"x")
    env = await envelope(resp)
    assert (resp.status, env["code"], env["category"], env["retryable"]) == (
        502, "CONNECTION_ERROR", "network", True,
    )  # fmt: skip
    assert env["vendor"] == {
        "name": "proxy", "code": None, "message": None, "details": None,
        "http_status": None, "transaction_id": None, "endpoint": f"127.0.0.1:{port}",
    }  # fmt: skip


async def test_dns_failure_is_a_connection_error(proxy_client: Any) -> None:
    config = make_config({"path_prefix": "/gw", "upstream": "http://no-such-host.invalid/x"})
    client = await proxy_client(config)
    env = await envelope(await client.get("/gw"))
    assert env["code"] == "CONNECTION_ERROR"


async def test_gateway_that_never_answers(one_route_proxy: Any) -> None:
    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(60)
        return web.Response()

    client = await one_route_proxy(hang, timeout={"connect": 0.3, "total": 0.3})
    resp = await client.post("/gw", data=b"x")
    env = await envelope(resp)
    assert (resp.status, env["code"], env["retryable"]) == (504, "TIMEOUT", False)


async def test_gateway_that_resets_mid_body(one_route_proxy: Any) -> None:
    async def reset(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Length": "1000", "Content-Type": "text/xml"})
        await resp.prepare(request)
        await resp.write(b"<Envelope><Body><SubmitRsp>")
        assert request.transport is not None
        request.transport.abort()
        return resp

    client = await one_route_proxy(reset)
    resp = await client.post("/gw", data=b"x")
    env = await envelope(resp)
    assert (resp.status, env["code"], env["retryable"]) == (502, "CONNECTION_LOST", False)


async def test_gateway_that_closes_without_answering(one_route_proxy: Any) -> None:
    async def close(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.close()
        await asyncio.sleep(0.1)
        return web.Response()

    client = await one_route_proxy(close)
    env = await envelope(await client.post("/gw", data=b"x"))
    assert env["code"] == "CONNECTION_LOST"


@pytest.mark.parametrize("declared", [True, False])
async def test_oversized_answer(one_route_proxy: Any, declared: bool) -> None:
    big = b"<x>" + b"a" * 5000 + b"</x>"

    async def huge(request: web.Request) -> web.StreamResponse:
        if declared:
            return web.Response(body=big, content_type="text/xml")
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(0, len(big), 500):
            await resp.write(big[i : i + 500])
        await resp.write_eof()
        return resp

    client = await one_route_proxy(huge, max_response_bytes=1000)
    resp = await client.post("/gw", data=b"x")
    env = await envelope(resp)
    assert (resp.status, env["code"]) == (502, "INVALID_UPSTREAM_RESPONSE")
    assert "1000" in env["detail"]


async def test_invalid_http_from_the_gateway(proxy_client: Any) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(b"NOT-HTTP garbage\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        config = make_config({"path_prefix": "/gw", "upstream": f"http://127.0.0.1:{port}/"})
        client = await proxy_client(config)
        env = await envelope(await client.post("/gw", data=b"x"))
        assert env["code"] in {"INVALID_UPSTREAM_RESPONSE", "CONNECTION_LOST"}
    finally:
        server.close()
        await server.wait_closed()


async def body_chunks(total: int, chunk: int = 256 * 1024) -> AsyncIterator[bytes]:
    block = b"\x5a" * chunk
    sent = 0
    while sent < total:
        piece = block[: min(chunk, total - sent)]
        sent += len(piece)
        yield piece


MOMS_OK = "<response status='success' code='1'><message>ok</message></response>"


def counting_sink(received: list[int]) -> Any:
    """A gateway that reads the body chunk by chunk, records its size and says OK."""

    async def sink(request: web.Request) -> web.Response:
        size = 0
        async for chunk in request.content.iter_any():
            size += len(chunk)
        received.append(size)
        return web.Response(text=MOMS_OK)

    return sink


@pytest.mark.parametrize("declared", [True, False])
async def test_request_over_the_route_limit(one_route_proxy: Any, declared: bool) -> None:
    received: list[int] = []
    client = await one_route_proxy(counting_sink(received), max_request_bytes=100_000)
    headers = {"Content-Length": "300000"} if declared else {}
    resp = await client.post("/gw", data=body_chunks(300_000), headers=headers)
    env = await envelope(resp)
    assert (resp.status, env["code"], env["category"]) == (413, "REQUEST_TOO_LARGE", "client")
    assert all(size <= 100_000 for size in received)


@pytest.mark.slow
async def test_large_upload_is_streamed_not_buffered(one_route_proxy: Any) -> None:
    total = 120 * 1024 * 1024
    received: list[int] = []
    client = await one_route_proxy(counting_sink(received), vendor="moms", timeout={"total": 120})
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        resp = await client.post(
            "/gw/media.upload", data=body_chunks(total), headers={"Content-Length": str(total)}
        )
        env = await resp.json()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert env["code"] == "OK"
    assert received == [total]
    growth_mb = (peak - before) / 1024 / 1024
    assert growth_mb < 20, f"memory grew by {growth_mb:.1f} MB while streaming {total} bytes"


def test_the_error_map_says_what_failed_and_whether_it_reached_the_gateway() -> None:
    import socket
    import ssl

    assert connect_failure(ConnectionRefusedError(111, "refused")).kind == "connect"
    assert not connect_failure(socket.gaierror(-2, "x")).reached
    assert "TLS" in connect_failure(ssl.SSLCertVerificationError("x")).detail
    assert exchange_failure(aiohttp.SocketTimeoutError(), reached=True).kind == "timeout"
    assert exchange_failure(TimeoutError(), reached=True).kind == "timeout"
    lost = exchange_failure(aiohttp.ServerDisconnectedError(), reached=True)
    assert (lost.kind, lost.reached) == ("connection_lost", True)
    assert exchange_failure(aiohttp.ClientPayloadError("x"), reached=True).kind == "connection_lost"
    # A pooled connection found reset before a byte went out: it never had the request.
    gone = exchange_failure(ConnectionResetError(), reached=False)
    assert (gone.kind, gone.reached) == ("connect", False)


def gzip_reply(body: bytes, status: int = 200) -> web.Response:
    return web.Response(
        status=status,
        body=gzip.compress(body),
        headers={"Content-Encoding": "gzip", "Content-Type": "text/xml"},
    )


async def test_compressed_answers_are_classified(one_route_proxy: Any) -> None:
    seen: list[str] = []

    async def compressing(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Accept-Encoding", ""))
        return gzip_reply(b'<response status="error" code="606"><message>out</message></response>')

    client = await one_route_proxy(compressing, vendor="moms")
    env = await (await client.get("/gw/x", headers={"Accept-Encoding": "gzip, br"})).json()
    assert env["code"] == "RECIPIENT_OPTED_OUT"
    assert seen == ["identity"]


async def test_passthrough_returns_compressed_bodies_intact(one_route_proxy: Any) -> None:
    body = b'<response status="error" code="606"><message>out</message></response>'

    async def compressing(request: web.Request) -> web.Response:
        return gzip_reply(body)

    client = await one_route_proxy(compressing, vendor="moms", mode="passthrough")
    resp = await client.get("/gw/x")
    assert resp.headers["Content-Encoding"] == "gzip"
    assert await resp.read() == body  # the client library undoes the gzip it was told about
    assert resp.headers["X-Gateway-Code"] == "RECIPIENT_OPTED_OUT"


async def test_a_zip_bomb_is_not_inflated(one_route_proxy: Any) -> None:
    async def bomb(request: web.Request) -> web.Response:
        return gzip_reply(b"<" + b"a" * 5_000_000 + b">")

    client = await one_route_proxy(bomb, max_response_bytes=100_000)
    env = await envelope(await client.post("/gw", data=b"x"))
    assert env["code"] == "INVALID_UPSTREAM_RESPONSE"
    assert "inflates" in env["detail"]


def test_deflate_is_read_with_or_without_its_zlib_wrapper() -> None:
    assert decode_content(zlib.compress(b"abc"), "deflate", 100) == b"abc"
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    assert decode_content(raw.compress(b"abc") + raw.flush(), "deflate", 100) == b"abc"


async def test_tls_failure_is_a_connection_error(gateway: Any, proxy_client: Any) -> None:
    async def plain(request: web.Request) -> web.Response:
        return web.Response(text="not TLS")

    app = web.Application()
    app.router.add_get("/", plain)
    server = await gateway(app)  # speaks plain HTTP: the TLS handshake fails
    config = make_config(
        {"path_prefix": "/gw", "upstream": f"https://127.0.0.1:{server.port}/"},
    )
    client = await proxy_client(config)
    env = await envelope(await client.get("/gw"))
    assert (env["code"], env["retryable"]) == ("CONNECTION_ERROR", True)
    assert "TLS" in env["detail"] or "connect" in env["detail"]


async def test_a_timeout_still_records_how_long_the_gateway_took(one_route_proxy: Any) -> None:
    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(60)
        return web.Response()

    client = await one_route_proxy(hang, timeout={"total": 0.3})
    await client.post("/gw", data=b"12345")
    from proxy.server import REGISTRY_KEY

    registry = client.app[REGISTRY_KEY]
    labels = {"route": "gw", "vendor": "mm7"}
    assert registry.get_sample_value("gateway_proxy_upstream_duration_seconds_count", labels) == 1
    assert registry.get_sample_value("gateway_proxy_upstream_duration_seconds_sum", labels) > 0
