"""Security checks under faults (docs/reliability.md, "Security checks").

- An answer the proxy makes up on its own (every transport fault) carries no traceback
  and nothing about the upstream beyond the route's name: no host name, IP address, port
  or upstream path.
- The admin port answers /metrics, /healthz and /readyz and nothing else, for any
  method or request line, without a traceback.
- No MSISDN, token or Authorization value reaches a log line or a metric label under any
  fault: every request here carries tests/pii.py values in its path, query string,
  headers and body, and some gateways echo them back; the suite-wide check in
  conftest.py fails the test if one is logged or labelled.
"""

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

from proxy.process.serve import serve
from tests import pii
from tests.conftest import ProxyFactory, make_config
from tests.test_reliability_gateway import (
    FAULT_IDS,
    FAULTS,
    HANG_GUARD_S,
    INTERNAL_HOST,
    INTERNAL_PATH,
    Answer,
    Fault,
    RawGateway,
    free_port,
    healthy_gateway,
    proxy_for,
    response,
    start_upstream,
)

MSISDN, OTHER_MSISDN = pii.MSISDNS[0], pii.MSISDNS[3]
TOKEN, CLIENT_SECRET, BASIC, PASSWORD = pii.SECRETS
TRACEBACK_MARKS = ("Traceback", 'File "', "site-packages", '.py", line')
PII_PATH = f"/gw/users/{MSISDN}/send?to={OTHER_MSISDN}&token={TOKEN}&client_secret={CLIENT_SECRET}"
PII_HEADERS = {
    "Authorization": f"Basic {BASIC}",
    "X-Api-Key": TOKEN,
    "Cookie": f"session={PASSWORD}",
    "X-Request-ID": "sec-1",
}
PII_BODY = (
    f"<SubmitReq><To><Number>{MSISDN}</Number></To><Password>{PASSWORD}</Password>"
    f"<Token>{TOKEN}</Token></SubmitReq>"
).encode()


def internals(upstream: str) -> list[str]:
    """What an answer must not name: the upstream's host, address, port and path."""
    url = URL(upstream)
    marks = [url.host or "", "127.0.0.1", "localhost", INTERNAL_HOST, INTERNAL_PATH, url.path]
    return list(dict.fromkeys(mark for mark in marks if mark))


def leaked_internals(text: str, upstream: str) -> list[str]:
    port = URL(upstream).port
    found = [mark for mark in internals(upstream) if mark in text]
    if port is not None and re.search(rf"(?<![0-9]){port}(?![0-9])", text):
        found.append(f"port {port}")
    return found + [mark for mark in TRACEBACK_MARKS if mark in text]


def without_endpoint(text: str, upstream: str) -> str:
    """The envelope ``text`` without ``vendor.endpoint``: the one place the upstream is
    named, by its host:port (no path, no credentials), so that the app can tell which of
    a route's endpoints answered."""
    envelope = json.loads(text)
    endpoint = envelope["vendor"].pop("endpoint")
    assert endpoint in (None, f"{URL(upstream).host}:{URL(upstream).port}"), endpoint
    return json.dumps(envelope, separators=(",", ":"))


async def send_pii(client: Any) -> tuple[int, str, dict[str, str]]:
    url = URL(f"http://{client.host}:{client.port}{PII_PATH}", encoded=True)
    async with asyncio.timeout(HANG_GUARD_S):
        resp = await client.session.post(url, data=PII_BODY, headers=PII_HEADERS)
        return resp.status, await resp.text(), dict(resp.headers)


@pytest.mark.parametrize("fault", FAULTS, ids=FAULT_IDS)
async def test_a_fault_answer_leaks_no_internals_and_logs_no_pii(
    fault: Fault,
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    proxy_client: ProxyFactory,
    log_lines: Callable[[], list[dict[str, Any]]],
    tmp_path: Path,
) -> None:
    healthy = await healthy_gateway(aiohttp_server)
    async with start_upstream(fault, aiohttp_server, tmp_path) as (upstream, _):
        client = await proxy_for(proxy_client, upstream, healthy, **fault.route)
        status, text, headers = await send_pii(client)
    assert status >= 500
    text = without_endpoint(text, upstream)
    seen = text + "\n" + "\n".join(f"{k}: {v}" for k, v in headers.items())
    assert not leaked_internals(seen, upstream), (fault.name, text)
    assert '"route":"gw"' in text.replace(" ", "")
    (line,) = [e for e in log_lines() if e["event"] == "request"]
    assert line["code"] == fault.code  # the suite-wide check reads this line for PII
    assert "[REDACTED]" in line["path"]


# --- gateways that echo the app's data back ----------------------------------------------
def echoing(gateway: RawGateway, build: Callable[[str], bytes]) -> Answer:
    """An answer built from the request line and headers the gateway just received."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        request = gateway.received[-1]
        echoed = f"{request.method} {request.target} auth={request.headers.get('authorization')}"
        writer.write(build(echoed))
        await writer.drain()
        return False

    return answer


ECHOES: dict[str, tuple[str, Callable[[str], bytes]]] = {
    "moms message": (
        "moms",
        lambda e: response(
            f'<response status="error" code="0"><message>invalid number: {e}</message>'
            "</response>".encode()
        ),
    ),
    "moms code": (
        "moms",
        lambda e: response(
            f'<response status="error" code="{MSISDN.lstrip("+")}"><message>x</message>'
            "</response>".encode()
        ),
    ),
    "mm7 status text": (
        "mm7",
        lambda e: response(
            b"<env:Envelope xmlns:env='http://schemas.xmlsoap.org/soap/envelope/'><env:Body>"
            b"<SubmitRsp><Status><StatusCode>2002</StatusCode><StatusText>"
            + e.replace("&", "&amp;").encode()
            + b"</StatusText></Status></SubmitRsp></env:Body></env:Envelope>"
        ),
    ),
    "html 502 page": (
        "mm7",
        lambda e: response(
            f"<html><body>502 for {e}</body></html>".encode(),
            status=b"502 Bad Gateway",
            content_type=b"text/html",
        ),
    ),
    "status line": ("mm7", lambda e: f"HTTP/1.1 abc {e}\r\n\r\n".encode()),
    "header": (
        "mm7",
        lambda e: f"HTTP/1.1 200 OK\r\nX-Echo: {e}\r\nBroken header\r\n\r\n".encode(),
    ),
}


@pytest.mark.parametrize("echo", list(ECHOES))
async def test_a_gateway_echoing_the_request_gets_it_redacted_in_logs(
    echo: str,
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    proxy_client: ProxyFactory,
    log_lines: Callable[[], list[dict[str, Any]]],
) -> None:
    """MSISDNs and credentials in vendor messages, codes and errors are masked in the log
    line and never become a label (the suite-wide check reads both). An answer the proxy
    makes up itself (vendor ``proxy``) quotes none of the gateway's bytes, so it cannot
    carry what the gateway echoed (here, the upstream path)."""
    vendor, build = ECHOES[echo]
    gateway = RawGateway()
    gateway.answers = [echoing(gateway, build)]
    upstream = (await gateway.start()).url()
    healthy = await healthy_gateway(aiohttp_server)
    try:
        client = await proxy_for(proxy_client, upstream, healthy, vendor=vendor)
        status, text, _ = await send_pii(client)
    finally:
        await gateway.close()
    assert gateway.received, "the gateway got the request"
    assert not [m for m in TRACEBACK_MARKS if m in text]
    if json.loads(text)["vendor"]["name"] == "proxy":
        assert not leaked_internals(without_endpoint(text, upstream), upstream), text
    (line,) = [e for e in log_lines() if e["event"] == "request"]
    assert line["status"] == status


# --- the admin port ----------------------------------------------------------------------
@pytest.fixture
async def admin(gateway: Any) -> AsyncIterator[tuple[str, int]]:
    """A real ``serve()`` (both servers, as in production); yields the admin host, port."""

    async def never(request: web.Request) -> web.Response:
        raise AssertionError("admin requests must not reach a gateway")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", never)
    upstream = await gateway(app)
    admin_port = free_port()
    config = make_config(
        {"path_prefix": "/gw", "upstream": str(upstream.make_url("/x"))},
        listen=f"127.0.0.1:{free_port()}",
        admin_listen=f"127.0.0.1:{admin_port}",
        shutdown={"drain_seconds": 1},
    )
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.get_running_loop().create_task(
        serve(config, stop=stop, on_ready=ready.set), name="serve-under-test"
    )
    await asyncio.wait_for(ready.wait(), HANG_GUARD_S)
    try:
        yield "127.0.0.1", admin_port
    finally:
        stop.set()
        await asyncio.wait_for(task, HANG_GUARD_S)


async def raw(address: tuple[str, int], request: bytes) -> tuple[int, bytes]:
    """Send bytes as they are; return the status code and the body of the answer."""
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(HANG_GUARD_S):
            answer = await reader.read()
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def get(path: str, method: str = "GET") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n".encode()


ADMIN_ENDPOINTS = ("/metrics", "/healthz", "/readyz")
NOT_ADMIN = [
    "/", "/metrics/", "/metrics/x", "/healthz/", "/readyz/x", "//metrics", "/METRICS",
    "/admin", "/debug/pprof", "/mm7", "/gw", "/gw/x", "/%2e%2e/metrics", "/..%2fmetrics",
    "/metrics;x", "/metrics%00", "/metrics/../../etc/passwd", "/" + "a" * 4000,
]  # fmt: skip


async def test_the_admin_port_answers_its_three_endpoints(admin: tuple[str, int]) -> None:
    for path in ADMIN_ENDPOINTS:
        assert (await raw(admin, get(path)))[0] == 200, path
        assert (await raw(admin, get(path, "HEAD")))[0] == 200, path  # HEAD is a GET


@pytest.mark.parametrize("path", NOT_ADMIN)
async def test_the_admin_port_serves_nothing_else(admin: tuple[str, int], path: str) -> None:
    status, body = await raw(admin, get(path))
    assert status == 404, path
    assert not [m for m in TRACEBACK_MARKS if m.encode() in body]


@pytest.mark.parametrize(
    ("method", "expected"),
    [*((m, 405) for m in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE")), ("FOO", 400)],
)
async def test_the_admin_endpoints_refuse_other_methods(
    admin: tuple[str, int], method: str, expected: int
) -> None:
    """Standard methods get 405; aiohttp's parser refuses an extension method with 400."""
    for path in ADMIN_ENDPOINTS:
        status, body = await raw(admin, get(path, method))
        assert status == expected, (method, path)
        assert not [m for m in TRACEBACK_MARKS if m.encode() in body]


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /metrics HTTP/9.9\r\nHost: a\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nHost: a\r\nX: " + b"a" * 20000 + b"\r\n\r\n",
        b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 40,  # a TLS ClientHello
    ],
    ids=["garbage", "version", "header", "long-header", "long-uri", "length", "chunk", "tls"],
)
async def test_a_malformed_request_to_the_admin_port_gets_no_traceback(
    admin: tuple[str, int], request_bytes: bytes
) -> None:
    status, body = await raw(admin, request_bytes)
    assert 400 <= status < 500
    assert not [m for m in TRACEBACK_MARKS if m.encode() in body]
