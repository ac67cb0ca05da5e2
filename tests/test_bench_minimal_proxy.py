"""bench/minimal_proxy.py: the benchmark's Python peer classifies the four fixed replies.

No external programs: the fake gateway is a small aiohttp app serving ``bench.replies``.
"""

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bench.minimal_proxy import Verdict, classify, create_app
from bench.replies import REPLIES, UPLOAD_PATH, Reply

ClientFactory = Callable[[web.Application], Awaitable[TestClient[web.Request, web.Application]]]


@pytest.mark.parametrize("reply", REPLIES, ids=[r.name for r in REPLIES])
def test_each_reply_is_classified(reply: Reply) -> None:
    """The vendor code and the success flag are read from each fixed body."""
    assert classify(reply.vendor, reply.body) == Verdict(reply.vendor, reply.vendor_code, reply.ok)


@pytest.mark.parametrize(
    ("vendor", "body"),
    [
        ("mm7", b""),
        ("mm7", b"<html><body>502 Bad Gateway</body></html>"),
        ("mm7", b"<unclosed"),
        ("moms", b""),
        ("moms", b"{"),
        ("moms", b"[1, 2]"),
        ("moms", b'{"response": "queued"}'),
        ("moms", b"<html>"),
        ("moms", b'<!DOCTYPE r [<!ENTITY a "x">]><response status="&a;" code="1"/>'),
    ],
)
def test_anything_else_is_no_success_and_never_raises(vendor: str, body: bytes) -> None:
    """Bodies without a readable success give ok=False; entities are not expanded."""
    assert classify(vendor, body).ok is False


def _fake_gateway() -> web.Application:
    async def answer(request: web.Request) -> web.Response:
        reply = next(r for r in REPLIES if r.path == request.path)
        await request.read()
        return web.Response(
            status=reply.status, body=reply.body, headers={"Content-Type": reply.content_type}
        )

    async def upload(request: web.Request) -> web.Response:
        size = 0
        async for chunk in request.content.iter_any():
            size += len(chunk)
        # The byte count comes back as the vendor code, so the test can see it.
        return web.json_response({"response": {"status": "success", "code": size}})

    app = web.Application()
    for reply in REPLIES:
        app.router.add_post(reply.path, answer)
    app.router.add_post(UPLOAD_PATH, upload)
    return app


@pytest.fixture
async def proxy(
    aiohttp_server: Any, aiohttp_client: Any
) -> TestClient[web.Request, web.Application]:
    gateway: TestServer = await aiohttp_server(_fake_gateway())
    client: TestClient[web.Request, web.Application] = await aiohttp_client(
        create_app(str(gateway.make_url("")))
    )
    return client


@pytest.mark.parametrize("reply", REPLIES, ids=[r.name for r in REPLIES])
async def test_the_proxy_answers_each_reply(
    proxy: TestClient[web.Request, web.Application], reply: Reply
) -> None:
    """Through the proxy: 200 for a success, 422 otherwise, with the gateway's code."""
    headers = {"Content-Type": reply.request_content_type}
    async with proxy.post(reply.path, data=reply.request_body, headers=headers) as response:
        answer = await response.json()
    assert response.status == (200 if reply.ok else 422)
    assert answer == {
        "ok": reply.ok, "vendor": reply.vendor, "code": reply.vendor_code,
        "http_status": reply.status,
    }  # fmt: skip


async def test_the_request_body_reaches_the_gateway_whole(
    proxy: TestClient[web.Request, web.Application],
) -> None:
    """A body sent in chunks is streamed upstream intact."""
    size = 3 * 1024 * 1024 + 7

    async def chunks() -> Any:
        for _ in range(size // 65536):
            yield b"x" * 65536
        yield b"x" * (size % 65536)

    async with proxy.post(UPLOAD_PATH, data=chunks()) as response:
        answer = await response.json()
    assert response.status == 200
    assert answer["code"] == str(size)


async def test_an_unreachable_gateway_is_a_502(aiohttp_client: Any, unused_tcp_port: int) -> None:
    """A connection error is answered, not raised."""
    client: TestClient[web.Request, web.Application] = await aiohttp_client(
        create_app(f"http://127.0.0.1:{unused_tcp_port}")
    )
    async with client.post("/mm7/submit-ok", data=b"<x/>") as response:
        answer = await response.json()
    assert response.status == 502
    assert answer["ok"] is False
