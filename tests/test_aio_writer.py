"""proxy.aio.writer: an answer in one write is byte for byte what aiohttp would send.

Each case runs the same handler behind aiohttp's own ``web.Server`` and behind the guarded
server, over a real socket, and compares the raw bytes of the answers (``Date`` aside).
"""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.web_request import BaseRequest

from proxy.aio import server as protocol
from proxy.aio import writer as response_writer
from proxy.aio.server import GuardedServer
from proxy.vocab import FailureKind

Make = Callable[[], web.StreamResponse]
WAIT = 30.0  # bounds a broken exchange; never asserted


class _Edge:
    def protocol_error(self, request: BaseRequest, kind: FailureKind, detail: str) -> web.Response:
        return web.Response(status=400, text=kind)

    def head_timeout(self, peer: str | None) -> None:
        return None


def _json() -> web.StreamResponse:
    return web.Response(
        status=422, body=b'{"ok":false}', content_type="application/json",
        headers={"X-Request-ID": "abc"},
    )  # fmt: skip


def _closing() -> web.StreamResponse:
    response = web.Response(text="bye")
    response.force_close()
    return response


def _chunked() -> web.StreamResponse:
    response = web.Response(body=b"abc")
    response.enable_chunked_encoding()
    return response


def _with_cookie() -> web.StreamResponse:
    response = web.Response(text="x")
    response.set_cookie("k", "v")
    return response


def _compressed() -> web.StreamResponse:
    response = web.Response(text="x" * 100)
    response.enable_compression()
    return response


CASES: dict[str, Make] = {
    "json envelope": _json,
    "text": lambda: web.Response(text="hello"),
    "no content type": lambda: web.Response(body=b"\x00\x01"),
    "empty body": lambda: web.Response(body=b""),
    "a gateway status": lambda: web.Response(status=502, body=b"{}"),
    "reason of its own": lambda: web.Response(status=299, reason="Fine", body=b"x"),
    "forced close": _closing,
    "a header repeated": lambda: web.Response(body=b"x", headers=[("Via", "a"), ("Via", "b")]),
    "204": lambda: web.Response(status=204),
    "304": lambda: web.Response(status=304),
    "chunked": _chunked,
}


Serve = Callable[[Callable[[], web.Server]], Awaitable[int]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[asyncio.Server] = []

    async def start(factory: Callable[[], web.Server]) -> int:
        server = await asyncio.get_running_loop().create_server(factory(), "127.0.0.1", 0)
        servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


# Sent after every request: a connection still open then answers it and closes.
_LAST = b"GET /last HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"


async def _exchange(port: int, raw: bytes) -> bytes:
    """Send ``raw`` (and ``_LAST`` if it keeps the connection); all the server sends."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    kept = (b" HTTP/1.1\r\n" in raw and b"Connection: close" not in raw) or (
        b"Connection: keep-alive" in raw
    )
    writer.write(raw + _LAST if kept else raw)
    data = await asyncio.wait_for(reader.read(), WAIT)
    writer.close()
    return data


def _without_date(raw: bytes) -> bytes:
    return b"\r\n".join(line for line in raw.split(b"\r\n") if not line.startswith(b"Date: "))


async def _both(serve: Serve, make: Make, raw: bytes) -> tuple[bytes, bytes]:
    async def handler(request: BaseRequest) -> web.StreamResponse:
        return make()

    kwargs: dict[str, Any] = {"access_log": None}
    plain = await serve(lambda: web.Server(handler, **kwargs))
    guarded = await serve(lambda: GuardedServer(handler, edge=_Edge(), head_seconds=10, **kwargs))
    return await _exchange(plain, raw), await _exchange(guarded, raw)


REQUESTS = {
    "GET": b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n",
    "POST": b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc",
    "close": b"GET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    "HEAD": b"HEAD /x HTTP/1.1\r\nHost: t\r\n\r\n",
    "HTTP/1.0": b"GET /x HTTP/1.0\r\nHost: t\r\n\r\n",
    "HTTP/1.0 keep-alive": b"GET /x HTTP/1.0\r\nHost: t\r\nConnection: keep-alive\r\n\r\n",
    "two pipelined": b"GET /a HTTP/1.1\r\nHost: t\r\n\r\nGET /b HTTP/1.1\r\nHost: t\r\n\r\n",
}


# Every answer to every request, but a chunked answer to HTTP/1.0, which aiohttp refuses
# (no answer to compare).
PAIRS = [
    (case, name)
    for case in sorted(CASES)
    for name in sorted(REQUESTS)
    if not (case == "chunked" and name.startswith("HTTP/1.0"))
]


@pytest.mark.parametrize(("case", "request_name"), PAIRS)
async def test_the_bytes_on_the_wire_are_aiohttps(
    serve: Serve, case: str, request_name: str
) -> None:
    plain, guarded = await _both(serve, CASES[case], REQUESTS[request_name])
    assert plain.startswith(b"HTTP/1.")
    assert _without_date(guarded) == _without_date(plain)


async def test_an_ordinary_answer_takes_the_one_write_path(
    serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    written: list[int] = []
    real = response_writer.write_at_once

    async def counted(request: BaseRequest, response: web.Response) -> None:
        written.append(response.status)
        await real(request, response)

    monkeypatch.setattr(protocol, "write_at_once", counted)
    plain, guarded = await _both(serve, _json, REQUESTS["two pipelined"])
    assert written == [422, 422, 422]  # the two, and _LAST
    assert _without_date(guarded) == _without_date(plain)


async def test_on_response_prepare_runs_before_the_headers_are_written(serve: Serve) -> None:
    app = web.Application()

    async def stamp(request: web.Request, response: web.StreamResponse) -> None:
        response.headers["X-Seen"] = "yes"

    app.on_response_prepare.append(stamp)

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(text="hi")

    app.router.add_route("*", "/{tail:.*}", handler)
    app.freeze()
    guarded = await serve(
        lambda: GuardedServer(
            protocol.AppHandler(app, handler), request_factory=_factory(app), edge=_Edge(),
            head_seconds=10, access_log=None,
        )
    )  # fmt: skip
    raw = await _exchange(guarded, REQUESTS["GET"])
    assert b"\r\nX-Seen: yes\r\n" in raw
    assert raw.endswith(b"\r\n\r\nhi")


def _factory(app: web.Application) -> Any:
    return app._make_request


@pytest.mark.parametrize(
    ("name", "make", "raw"),
    [
        ("HEAD", lambda: web.Response(text="x"), REQUESTS["HEAD"]),
        ("HTTP/1.0", lambda: web.Response(text="x"), REQUESTS["HTTP/1.0"]),
        ("204", CASES["204"], REQUESTS["GET"]),
        ("304", CASES["304"], REQUESTS["GET"]),
        ("chunked", _chunked, REQUESTS["GET"]),
        ("a stream", web.StreamResponse, REQUESTS["GET"]),
        ("cookies", _with_cookie, REQUESTS["GET"]),
        ("compressed", _compressed, REQUESTS["GET"]),
        ("own length", lambda: web.Response(body=b"x", headers={"Content-Length": "1"}),
         REQUESTS["GET"]),
    ],
)  # fmt: skip
async def test_what_does_not_qualify_takes_aiohttps_path(
    serve: Serve, monkeypatch: pytest.MonkeyPatch, name: str, make: Make, raw: bytes
) -> None:
    real = response_writer.write_at_once

    async def refuse(request: BaseRequest, response: web.Response) -> None:
        if request.path != "/last":  # _LAST, a plain GET, may take it
            raise AssertionError(f"{name} took the one-write path")
        await real(request, response)

    monkeypatch.setattr(protocol, "write_at_once", refuse)
    plain, guarded = await _both(serve, make, raw)
    assert plain.startswith(b"HTTP/1.")
    assert _without_date(guarded) == _without_date(plain)


async def test_an_app_gone_before_the_write_is_reported_not_raised() -> None:
    """The handler's answer meets a closed transport: ``write_at_once`` raises the
    ``ConnectionError`` the connection handler turns into "the app went away"."""

    class _Closed:
        def is_closing(self) -> bool:
            return True

    class _Protocol:
        transport = _Closed()

    from aiohttp.http_writer import StreamWriter

    writer = StreamWriter(_Protocol(), asyncio.get_running_loop())  # type: ignore[arg-type]

    class _Request:
        keep_alive = True
        version = (1, 1)
        method = "GET"

        def __init__(self) -> None:
            self.writer = writer

        async def _prepare_hook(self, response: web.StreamResponse) -> None:
            return None

    with pytest.raises(ConnectionError):
        await response_writer.write_at_once(_Request(), web.Response(text="x"))  # type: ignore[arg-type,unused-ignore]
