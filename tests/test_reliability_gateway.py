"""Gateway faults: each is answered with its code, a log line and a metric, and the proxy
goes on serving (docs/reliability.md, "Gateway faults").

Every fault is one row of ``FAULTS``. The faulty gateway is a raw socket server
(``RawGateway``) that plays the fault on its first request and answers normally after
that, so each row also proves that the proxy does not reuse a broken connection. The
proxy under test has a second, healthy route (``ok``) which must serve right after the
fault too. Faults that cannot be played by a gateway that accepts the connection
(refused, DNS, TLS) are rows with their own upstream.

Helpers here (``RawGateway``, ``FAULTS``, ``start_upstream``) are shared with
tests/test_reliability_security.py and tests/test_reliability_pool.py.
"""

import asyncio
import contextlib
import shutil
import socket
import ssl
import struct
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from proxy.server import REGISTRY_KEY
from tests.conftest import ProxyFactory, make_config

Client = TestClient[web.Request, web.Application]
MM7_NS = "http://www.3gpp.org/ftp/Specs/archive/23_series/23.140/schema/REL-6-MM7-1-4"
SUBMIT_REQ = (
    '<?xml version="1.0"?><env:Envelope xmlns:env="http://schemas.xmlsoap.org/soap/envelope/">'
    f'<env:Body><SubmitReq xmlns="{MM7_NS}"><Recipients><To><Number>+15550001234</Number>'
    "</To></Recipients></SubmitReq></env:Body></env:Envelope>"
).encode()
SUBMIT_RSP = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<env:Envelope xmlns:env="http://schemas.xmlsoap.org/soap/envelope/">'
    f'<env:Body><SubmitRsp xmlns="{MM7_NS}"><MM7Version>6.8.0</MM7Version>'
    "<Status><StatusCode>1000</StatusCode><StatusText>Success</StatusText></Status>"
    "<MessageID>msg-1</MessageID></SubmitRsp></env:Body></env:Envelope>"
).encode()
MOMS_OK = b'<response status="success" code="1"><message>ok</message></response>'
# Where an upstream route points: a path and host that must never show in an envelope.
INTERNAL_PATH = "/internal-gw-path"
INTERNAL_HOST = "gw-internal.invalid"
HANG_GUARD_S = 30.0  # only a guard against a test that hangs; never reached when it passes


# --- a raw HTTP/1.1 gateway -------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Received:
    """One complete request as the gateway read it."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes


# What the gateway does with one request: write (or not) an answer; return True to keep
# the connection open for the next request.
Answer = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[bool]]


def response(body: bytes, *, status: bytes = b"200 OK", content_type: bytes = b"text/xml") -> bytes:
    """A complete HTTP/1.1 answer with Content-Length."""
    head = b"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n"
    return head % (status, content_type, len(body)) + body


async def answer_ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    """A normal MM7 success, keep-alive."""
    writer.write(response(SUBMIT_RSP))
    await writer.drain()
    return True


async def _read_request(reader: asyncio.StreamReader, first: bytes = b"") -> Received | None:
    """One request (Content-Length or chunked body); None when the peer closed first.

    ``first`` is the request's first byte when the caller already read it.
    """
    try:
        head = first + await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    line, *fields = head.decode("latin-1").split("\r\n")
    method, target, _ = line.split(" ", 2)
    headers = {}
    for item in fields:
        if ":" in item:
            name, value = item.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    body = b""
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            body += (await reader.readexactly(size + 2))[:-2]  # the data, without its CRLF
        await reader.readuntil(b"\r\n")
    elif length := int(headers.get("content-length", "0")):
        body = await reader.readexactly(length)
    return Received(method, target, headers, body)


class RawGateway:
    """A fake gateway speaking HTTP/1.1 by hand on loopback.

    Request ``n`` (0-based, across connections) gets ``answers[n]``, or ``default``
    (``answer_ok``) after the list. ``idle_close`` closes a keep-alive connection that
    stays idle that long (a gateway's server-side keep-alive timeout). It counts accepted
    connections and complete requests; ``connection_closed`` is set each time a
    connection ends.
    """

    def __init__(
        self,
        answers: list[Answer] | None = None,
        *,
        idle_close: float | None = None,
        default: Answer | None = None,
    ) -> None:
        self.answers = list(answers or [])
        self.idle_close = idle_close
        self.default = default or answer_ok
        self.accepted = 0
        self.closed = 0
        self.received: list[Received] = []
        self.connection_closed = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    def url(self, path: str = INTERNAL_PATH, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    async def start(self) -> "RawGateway":
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def close(self) -> None:
        """Stop listening, end every connection, and raise what a connection task raised
        (a bug in the fake gateway must fail the test, not vanish)."""
        if self._server is not None:
            self._server.close()
        for task in self._tasks:
            task.cancel()
        results = await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        errors = [r for r in results if isinstance(r, Exception)]
        if errors:
            raise errors[0]

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Our own task (not the one asyncio.start_server would make): close() cancels it.
        self.accepted += 1
        task = asyncio.get_running_loop().create_task(
            self._serve(reader, writer), name=f"raw-gateway-connection-{self.accepted}"
        )
        self._tasks.append(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            first = b""
            while await self._one(reader, writer, first):
                if self.idle_close is not None:
                    try:
                        first = await asyncio.wait_for(reader.read(1), self.idle_close)
                    except TimeoutError:
                        break  # idle for too long: close, as a keep-alive timeout does
                    if not first:
                        break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()  # the socket is closed: the peer has the FIN/RST
            self.closed += 1
            self.connection_closed.set()

    async def _one(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, first: bytes
    ) -> bool:
        received = await _read_request(reader, first)
        if received is None:
            return False
        index = len(self.received)
        self.received.append(received)
        answer = self.answers[index] if index < len(self.answers) else self.default
        return await answer(reader, writer)

    async def wait_closed_connections(self, count: int) -> None:
        """Until ``count`` connections have ended (a hang guard bounds the wait)."""
        async with asyncio.timeout(HANG_GUARD_S):
            while self.closed < count:
                self.connection_closed.clear()
                await self.connection_closed.wait()


# --- the faults ---------------------------------------------------------------------------
async def forever() -> None:
    await asyncio.Event().wait()


async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    """Reads the request, never answers."""
    await forever()
    return False


async def stall_mid_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    """Sends the head and part of the body, then nothing more (the socket stays open)."""
    writer.write(response(SUBMIT_RSP)[: -len(SUBMIT_RSP) // 2])
    await writer.drain()
    await forever()
    return False


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (SO_LINGER 0), not a FIN."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def reset_mid_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    writer.write(response(SUBMIT_RSP)[: -len(SUBMIT_RSP) // 2])
    await writer.drain()
    await asyncio.sleep(0.05)  # let the head reach the proxy first
    _reset(writer)
    return False


TEN_MB = 10 * 1024 * 1024


async def _write_ignoring_hangup(writer: asyncio.StreamWriter, chunks: Iterator[bytes]) -> None:
    """Write until done or until the proxy hangs up (it does, at its response cap)."""
    with contextlib.suppress(ConnectionError):
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()


def _blocks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    block = b"a" * size
    for start in range(0, total, size):
        yield block[: min(size, total - start)]


async def ten_mb_declared(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: %d\r\n\r\n" % TEN_MB
    await _write_ignoring_hangup(writer, iter([head, b"<x>", *_blocks(TEN_MB - 3)]))
    return False


async def ten_mb_until_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    """No Content-Length: the body runs until the gateway closes (HTTP/1.0 style)."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nConnection: close\r\n\r\n"
    await _write_ignoring_hangup(writer, iter([head, b"<x>", *_blocks(TEN_MB)]))
    return False


CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nTransfer-Encoding: chunked\r\n\r\n"


async def endless_chunks(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    """Chunks of 16 KiB forever, as fast as the proxy reads them."""
    chunk = b"4000\r\n" + b"a" * 0x4000 + b"\r\n"

    def forever_chunks() -> Iterator[bytes]:
        yield CHUNKED_HEAD
        while True:
            yield chunk

    await _write_ignoring_hangup(writer, forever_chunks())
    return False


async def endless_slow_chunks(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    """One tiny chunk every 10 ms, forever: never over the cap, never finished."""
    writer.write(CHUNKED_HEAD)
    with contextlib.suppress(ConnectionError):
        while True:
            writer.write(b"1\r\na\r\n")
            await writer.drain()
            await asyncio.sleep(0.01)
    return False


async def drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    """A valid answer at 1 byte per second."""
    with contextlib.suppress(ConnectionError):
        for byte in response(SUBMIT_RSP):
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(1)
    return False


def body_answer(
    body: bytes, status: bytes = b"200 OK", content_type: bytes = b"text/xml"
) -> Answer:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(response(body, status=status, content_type=content_type))
        await writer.drain()
        return True

    return answer


XXE = (
    b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    b"<env:Envelope xmlns:env='http://schemas.xmlsoap.org/soap/envelope/'><env:Body>"
    b"<SubmitRsp><Status><StatusCode>&x;</StatusCode></Status></SubmitRsp>"
    b"</env:Body></env:Envelope>"
)
BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(
        b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
        for i in range(1, 10)
    )
    + b"]><env:Envelope xmlns:env='http://schemas.xmlsoap.org/soap/envelope/'><env:Body>"
    b"<SubmitRsp><Status><StatusCode>1000</StatusCode><StatusText>&lol9;</StatusText>"
    b"</Status></SubmitRsp></env:Body></env:Envelope>"
)
DEEP_XML = b"<a>" * 100_000 + b"1000" + b"</a>" * 100_000
HTML_502 = b"<html><head><title>502 Bad Gateway</title></head><body><h1>502</h1></body></html>"
LAUGHS_ANSWER = body_answer(BILLION_LAUGHS)
HTML_502_ANSWER = body_answer(HTML_502, b"502 Bad Gateway", b"text/html")


async def bad_status_line(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    writer.write(b"HTTP/1.1 abc\r\n\r\n")
    await writer.drain()
    return False


# --- upstreams that refuse before any HTTP: refused, DNS, TLS ---------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def self_signed_context(directory: Path) -> ssl.SSLContext:
    """A server context with a fresh self-signed certificate for 127.0.0.1 (openssl CLI;
    the ``cryptography`` package is not a dependency)."""
    openssl = shutil.which("openssl")
    assert openssl, "the self-signed TLS test needs the openssl command (Debian: openssl)"
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


@dataclass(frozen=True)
class Fault:
    """One gateway fault and what the app must get for it.

    ``answers`` is what a RawGateway plays (the fault first, then normal answers);
    ``upstream`` names the faults that need no gateway behind them. ``reason`` is the
    ``gateway_proxy_upstream_failures_total`` reason the fault counts under (None: it is
    a classified answer, not a transport failure). ``recovers`` says whether the same
    route serves the next request (not when the upstream itself is unreachable).
    """

    name: str
    code: str
    reason: str | None
    answers: tuple[Answer, ...] = ()
    upstream: str | None = None  # "refused" | "dns" | "tls"
    route: dict[str, Any] = field(default_factory=dict)

    @property
    def recovers(self) -> bool:
        return self.upstream is None


QUICK = {"timeout": {"connect": 0.5, "total": 0.5}}
FAULTS = [
    Fault("connection refused", "CONNECTION_ERROR", "connect", upstream="refused"),
    Fault("DNS failure", "CONNECTION_ERROR", "connect", upstream="dns"),
    Fault("self-signed TLS", "CONNECTION_ERROR", "connect", upstream="tls"),
    Fault("hang", "TIMEOUT", "timeout", (hang,), route=QUICK),
    Fault("stalled body", "TIMEOUT", "timeout", (stall_mid_body,), route=QUICK),
    Fault("reset mid-body", "CONNECTION_LOST", "connection_lost", (reset_mid_body,)),
    Fault("10 MB declared", "INVALID_UPSTREAM_RESPONSE", "too_large", (ten_mb_declared,)),
    Fault("10 MB until close", "INVALID_UPSTREAM_RESPONSE", "too_large", (ten_mb_until_close,)),
    Fault("endless chunks", "INVALID_UPSTREAM_RESPONSE", "too_large", (endless_chunks,)),
    Fault("endless slow chunks", "TIMEOUT", "timeout", (endless_slow_chunks,), route=QUICK),
    Fault("1 byte/s drip", "TIMEOUT", "timeout", (drip,), route=QUICK),
    Fault("XXE", "INVALID_UPSTREAM_RESPONSE", "unparseable", (body_answer(XXE),)),
    Fault("billion laughs", "INVALID_UPSTREAM_RESPONSE", "unparseable", (LAUGHS_ANSWER,)),
    Fault("100k-deep XML", "INVALID_UPSTREAM_RESPONSE", "unparseable", (body_answer(DEEP_XML),)),
    Fault("HTML 502", "UPSTREAM_UNAVAILABLE", None, (HTML_502_ANSWER,)),
    Fault("bad status line", "INVALID_UPSTREAM_RESPONSE", "unparseable", (bad_status_line,)),
]
FAULT_IDS = [fault.name for fault in FAULTS]


@contextlib.asynccontextmanager
async def start_upstream(
    fault: Fault,
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    tmp_path: Path,
) -> AsyncIterator[tuple[str, RawGateway | None]]:
    """The faulty upstream's URL (and its RawGateway, when there is one)."""
    if fault.upstream == "refused":
        yield f"http://127.0.0.1:{free_port()}{INTERNAL_PATH}", None
    elif fault.upstream == "dns":
        yield f"http://{INTERNAL_HOST}:{free_port()}{INTERNAL_PATH}", None
    elif fault.upstream == "tls":

        async def never(request: web.Request) -> web.Response:
            raise AssertionError("the proxy must refuse the certificate before any request")

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", never)
        server = await aiohttp_server(app, ssl=self_signed_context(tmp_path))
        yield f"https://127.0.0.1:{server.port}{INTERNAL_PATH}", None
    else:
        gateway = await RawGateway(list(fault.answers)).start()
        try:
            yield gateway.url(), gateway
        finally:
            await gateway.close()


async def healthy_gateway(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> TestServer:
    async def ok(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=SUBMIT_RSP, content_type="text/xml")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", ok)
    return await aiohttp_server(app)


async def proxy_for(
    proxy_client: ProxyFactory, upstream: str, healthy: TestServer, **route: Any
) -> Client:
    """The proxy with route ``gw`` (/gw → ``upstream``) and a healthy route ``ok`` (/ok)."""
    config = make_config(
        {"name": "gw", "path_prefix": "/gw", "upstream": upstream, **route},
        {"name": "ok", "path_prefix": "/ok", "upstream": str(healthy.make_url("/mm7"))},
    )
    return await proxy_client(config)


def responses(client: Client, route: str, code: str, category: str) -> float:
    labels = {"route": route, "vendor": "mm7", "code": code, "category": category,
              "vendor_code": "none", "client": "anonymous"}  # fmt: skip
    return client.app[REGISTRY_KEY].get_sample_value("gateway_proxy_responses_total", labels) or 0


def failures(client: Client, reason: str) -> float:
    labels = {"route": "gw", "vendor": "mm7", "reason": reason}
    value = client.app[REGISTRY_KEY].get_sample_value(
        "gateway_proxy_upstream_failures_total", labels
    )
    return value or 0


async def post(client: Client, path: str, request_id: str) -> tuple[int, dict[str, Any]]:
    async with asyncio.timeout(HANG_GUARD_S):
        resp = await client.post(path, data=SUBMIT_REQ, headers={"X-Request-ID": request_id})
        return resp.status, await resp.json(content_type=None)


# --- the tests -----------------------------------------------------------------------------
@pytest.mark.parametrize("fault", FAULTS, ids=FAULT_IDS)
async def test_every_gateway_fault_gets_its_code_a_log_line_and_a_metric(
    fault: Fault,
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    proxy_client: ProxyFactory,
    log_lines: Callable[[], list[dict[str, Any]]],
    tmp_path: Path,
) -> None:
    healthy = await healthy_gateway(aiohttp_server)
    async with start_upstream(fault, aiohttp_server, tmp_path) as (upstream, _):
        client = await proxy_for(proxy_client, upstream, healthy, **fault.route)
        status, envelope = await post(client, "/gw", "fault-1")
        assert (envelope["code"], envelope["status"], envelope["route"]) == (
            fault.code, status, "gw",
        )  # fmt: skip
        assert envelope["ok"] is False
        (line,) = [e for e in log_lines() if e["event"] == "request" and e["route"] == "gw"]
        assert (line["code"], line["request_id"], line["status"]) == (fault.code, "fault-1", status)
        assert line["level"] == "error"  # network and upstream categories log as errors
        assert responses(client, "gw", fault.code, envelope["category"]) == 1
        if fault.reason is not None:
            assert failures(client, fault.reason) == 1
        # Still serving: the healthy route at once, and the same route when it can.
        assert (await post(client, "/ok", "after-1"))[1]["code"] == "OK"
        if fault.recovers:
            status, envelope = await post(client, "/gw", "after-2")
            assert (status, envelope["code"]) == (200, "OK")
        registry = client.app[REGISTRY_KEY]
        assert registry.get_sample_value("gateway_proxy_requests_in_flight", {"route": "gw"}) == 0


async def test_hostile_xml_is_never_expanded_into_the_envelope(
    aiohttp_server: Callable[..., Awaitable[TestServer]], proxy_client: ProxyFactory
) -> None:
    """The XXE target's content and the expanded entities never reach the app."""
    healthy = await healthy_gateway(aiohttp_server)
    gateway = await RawGateway([body_answer(XXE), body_answer(BILLION_LAUGHS)]).start()
    try:
        client = await proxy_for(proxy_client, gateway.url(), healthy)
        for request_id in ("xxe", "laughs"):
            resp = await client.post("/gw", data=SUBMIT_REQ, headers={"X-Request-ID": request_id})
            text = await resp.text()
            assert "root:" not in text
            assert "lollol" not in text
            assert len(text) < 4096
    finally:
        await gateway.close()


async def test_a_fault_mid_answer_never_poisons_the_pool(
    aiohttp_server: Callable[..., Awaitable[TestServer]], proxy_client: ProxyFactory
) -> None:
    """Several faults in a row on one route, each followed by normal answers."""
    healthy = await healthy_gateway(aiohttp_server)
    answers: list[Answer] = []
    for fault in (reset_mid_body, bad_status_line, ten_mb_declared, body_answer(XXE)):
        answers += [answer_ok, fault, answer_ok]
    gateway = await RawGateway(answers).start()
    try:
        client = await proxy_for(proxy_client, gateway.url(), healthy)
        codes = [(await post(client, "/gw", f"r{i}"))[1]["code"] for i in range(len(answers))]
    finally:
        await gateway.close()
    assert codes == [
        "OK", "CONNECTION_LOST", "OK",
        "OK", "INVALID_UPSTREAM_RESPONSE", "OK",
        "OK", "INVALID_UPSTREAM_RESPONSE", "OK",
        "OK", "INVALID_UPSTREAM_RESPONSE", "OK",
    ]  # fmt: skip
    assert len(gateway.received) == len(answers)  # nothing was sent twice
