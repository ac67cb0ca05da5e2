"""The upstream package: endpoints, request targets, the bounded pool and its connections."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine

import pytest
from aiohttp import StreamReader
from multidict import CIMultiDict

from proxy.aio.testing import body_stream
from proxy.config import Route
from proxy.server import limits_of
from proxy.upstream import Answer, ExchangeFailure, Request, UpstreamPool, endpoint_of, exchange
from tests.conftest import make_config

OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 2\r\n\r\nok"
Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.mark.parametrize(
    ("upstream", "host_header", "base_path"),
    [
        ("http://gw.example/mm7", "gw.example", "/mm7"),
        ("http://gw.example:8080/mm7/", "gw.example:8080", "/mm7"),
        ("https://gw.example:443/", "gw.example", ""),
        ("http://[::1]:9000/x", "[::1]:9000", "/x"),
    ],
)
def test_endpoint_of(upstream: str, host_header: str, base_path: str) -> None:
    endpoint = endpoint_of(upstream)
    assert (endpoint.host_header, endpoint.base_path) == (host_header, base_path)


def test_endpoint_of_refuses_what_is_not_http() -> None:
    with pytest.raises(ValueError, match="http"):
        endpoint_of("ftp://gw.example/")


def test_an_endpoint_is_named_by_host_and_port_only() -> None:
    assert endpoint_of("https://u:p@relay.example/mm7?x=1").name == "relay.example:443"
    assert endpoint_of("http://[::1]:9000/x").name == "[::1]:9000"
    assert endpoint_of("http://gw:8080/api").url("/send", "to=1") == "http://gw:8080/api/send?to=1"


@pytest.mark.parametrize(
    ("base", "rest", "query", "target"),
    [
        ("http://gw/api", "", "", "/api"),
        ("http://gw/api", "/send", "to=1", "/api/send?to=1"),
        ("http://gw/", "", "", "/"),
        ("http://gw", "", "a=%2B1", "/?a=%2B1"),
    ],
)
def test_request_target_keeps_the_encoded_path_and_query(
    base: str, rest: str, query: str, target: str
) -> None:
    assert endpoint_of(base).target(rest, query) == target


class Gateway:
    """A raw HTTP/1.1 server on loopback: ``serve`` handles each connection."""

    def __init__(self, serve: Serve) -> None:
        self._serve = serve
        self.accepted = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> "Gateway":
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.accepted += 1
            try:
                await self._serve(reader, writer)
            finally:
                writer.close()

        self.server = await asyncio.start_server(handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self.server is not None
        self.server.close()

    def route(self, **extra: object) -> Route:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        route = {"name": "gw", "path_prefix": "/gw", "upstream": f"http://127.0.0.1:{port}/api"}
        return make_config({**route, **extra}).routes[0]


async def read_head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


def body_of(data: bytes, *, eof: bool = True) -> StreamReader:
    return body_stream(data, eof=eof)


def request(body: StreamReader | None = None, length: int | None = None) -> Request:
    headers: CIMultiDict[str] = CIMultiDict({"X-Request-ID": "t"})
    if length is not None:
        headers["Content-Length"] = str(length)
    return Request("POST", "/api", headers, body)


@pytest.fixture
async def pool() -> AsyncIterator[UpstreamPool]:
    pool = UpstreamPool(make_config({"path_prefix": "/x", "upstream": "http://x/"}).pool)
    yield pool
    await pool.close()


def call(pool: UpstreamPool, route: Route, req: Request) -> Coroutine[None, None, Answer]:
    """The exchange of ``req`` with ``route``'s gateway, within ``route``'s limits."""
    return exchange(pool, endpoint_of(route.upstream), req, limits_of(route))


async def test_a_connection_holding_stray_bytes_is_not_reused(pool: UpstreamPool) -> None:
    async def answer_twice(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_head(reader)
            writer.write(OK + OK)  # one answer more than was asked for
            await writer.drain()

    async with Gateway(answer_twice) as gateway:
        route = gateway.route()
        for _ in range(2):
            answer = await call(pool, route, request())
            assert (answer.status, answer.body) == (200, b"ok")
            await asyncio.sleep(0.05)  # the stray answer arrives
    assert gateway.accepted == 2


async def test_the_pool_limit_queues_requests_first_come_first_served(
    pool: UpstreamPool,
) -> None:
    limited = UpstreamPool(make_config({"path_prefix": "/x", "upstream": "http://x/"},
                                       pool={"limit": 1, "limit_per_host": 1}).pool)  # fmt: skip

    async def slow_ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_head(reader)
            await asyncio.sleep(0.02)
            writer.write(OK)
            await writer.drain()

    try:
        async with Gateway(slow_ok) as gateway:
            route = gateway.route()
            answers = await asyncio.gather(*(call(limited, route, request()) for _ in range(5)))
        assert [a.status for a in answers] == [200] * 5
        assert gateway.accepted == 1
    finally:
        await limited.close()


async def test_a_request_that_timed_out_waiting_for_the_pool_frees_its_turn() -> None:
    limited = UpstreamPool(make_config({"path_prefix": "/x", "upstream": "http://x/"},
                                       pool={"limit": 1, "limit_per_host": 1}).pool)  # fmt: skip
    release = asyncio.Event()

    async def held(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_head(reader)
            await release.wait()
            writer.write(OK)
            await writer.drain()

    try:
        async with Gateway(held) as gateway:
            route = gateway.route(timeout={"connect": 0.1, "total": 5})
            first = asyncio.get_running_loop().create_task(
                call(limited, route, request()), name="first"
            )
            await asyncio.sleep(0.05)
            with pytest.raises(ExchangeFailure) as waited:
                await call(limited, route, request())
            assert waited.value.kind == "connect"
            release.set()
            assert (await first).status == 200
            assert (await call(limited, route, request())).status == 200
    finally:
        await limited.close()


async def test_an_answer_before_the_whole_body_is_returned_and_the_connection_closed(
    pool: UpstreamPool,
) -> None:
    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)  # answers without reading the body
        writer.write(b"HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.2)

    async with Gateway(refuse) as gateway:
        route = gateway.route()
        body = body_of(b"x" * 10, eof=False)  # the app has more to send, later
        answer = await call(pool, route, request(body, 1000))
        assert answer.status == 413
    assert pool.open_connections == 0


async def test_an_app_body_that_stalls_is_the_apps_timeout(pool: UpstreamPool) -> None:
    async def read_all(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        await reader.read()

    async with Gateway(read_all) as gateway:
        route = gateway.route(client_timeout={"body_idle": 0.1})
        body = body_of(b"x" * 10, eof=False)
        with pytest.raises(ExchangeFailure) as failed:
            await call(pool, route, request(body, 1000))
    assert (failed.value.kind, failed.value.bytes_sent) == ("client_timeout", 10)
    assert pool.open_connections == 0


async def test_a_chunked_body_is_framed_as_chunks(pool: UpstreamPool) -> None:
    received: list[bytes] = []

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await read_head(reader))
        received.append(await reader.readuntil(b"0\r\n\r\n"))
        writer.write(OK)
        await writer.drain()

    async with Gateway(echo) as gateway:
        route = gateway.route()
        answer = await call(pool, route, request(body_of(b"hello")))
    assert answer.status == 200
    assert b"Transfer-Encoding: chunked\r\n" in received[0]
    assert received[0].startswith(b"POST /api HTTP/1.1\r\nHost: 127.0.0.1:")
    assert received[1] == b"5\r\nhello\r\n0\r\n\r\n"


async def test_a_shorter_deadline_is_kept_while_a_longer_one_is_pending(
    pool: UpstreamPool,
) -> None:
    release = asyncio.Event()

    async def held(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        await release.wait()
        writer.write(OK)
        await writer.drain()

    async with Gateway(held) as gateway:
        patient = gateway.route(timeout={"connect": 1, "total": 30})
        hasty = gateway.route(timeout={"connect": 0.2, "total": 0.2})
        first = asyncio.get_running_loop().create_task(
            call(pool, patient, request()), name="patient"
        )
        await asyncio.sleep(0.05)
        with pytest.raises(ExchangeFailure) as failed:
            await call(pool, hasty, request())
        assert failed.value.kind == "timeout"
        assert not first.done()
        release.set()
        assert (await first).status == 200
