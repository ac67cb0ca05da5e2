"""Sending the relay's delivery reports (proxy/tools/sim/callback.py): after the delay, to
``--callback-url``, with a real relay's retries; tracked tasks, cancelled at shutdown.
What the reports say is tests/test_sim_mm7_reports.py's subject.

An aiohttp test server plays the proxy's inbound endpoint and records what arrives. The
reporter's ``sleep`` is a ``Clock`` that records each wait (the delay, the backoffs) and
returns at once, or only when the test opens its gate: nothing here waits on wall time.
"""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from lxml import etree

from proxy.tools.sim import SimSettings, create_sim_app
from proxy.tools.sim.callback import REPORTER_KEY, Reporter
from proxy.tools.sim.mm7 import MM7_NS, SOAP_NS
from tests.demo_process import free_port
from tests.test_sim_mm7 import _PARSER, NS, Client

INBOUND_PATH = "/inbound/mm7"


def rsp(code: str = "1000", http: int = 200) -> tuple[int, bytes]:
    """A VASP's DeliveryReportRsp with ``code``."""
    return http, (
        f'<env:Envelope xmlns:env="{SOAP_NS}" xmlns:mm7="{MM7_NS}"><env:Body>'
        "<mm7:DeliveryReportRsp><mm7:MM7Version>6.8.0</mm7:MM7Version><mm7:Status>"
        f"<mm7:StatusCode>{code}</mm7:StatusCode><mm7:StatusText>t</mm7:StatusText>"
        "</mm7:Status></mm7:DeliveryReportRsp></env:Body></env:Envelope>"
    ).encode()


def fault(code: str = "4006", http: int = 500) -> tuple[int, bytes]:
    """A VASP's SOAP Fault whose detail holds a VASPErrorRsp with ``code``."""
    return http, (
        f'<env:Envelope xmlns:env="{SOAP_NS}" xmlns:mm7="{MM7_NS}"><env:Body><env:Fault>'
        "<faultcode>env:Server</faultcode><faultstring>later</faultstring><detail>"
        "<mm7:VASPErrorRsp><mm7:MM7Version>6.8.0</mm7:MM7Version><mm7:Status>"
        f"<mm7:StatusCode>{code}</mm7:StatusCode><mm7:StatusText>t</mm7:StatusText>"
        "</mm7:Status></mm7:VASPErrorRsp></detail></env:Fault></env:Body></env:Envelope>"
    ).encode()


HANG = (0, b"")  # the endpoint never answers (until the test ends)


@dataclass
class Inbound:
    """The proxy's inbound endpoint, played: it answers ``answers`` in turn (the last one
    again and again) and records each request's headers and body."""

    answers: tuple[tuple[int, bytes], ...]
    url: str = ""
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    arrived: asyncio.Queue[bytes] = field(default_factory=asyncio.Queue)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append((dict(request.headers), body))
        status, answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
        await self.arrived.put(body)
        if (status, answer) == HANG:
            await self.release.wait()
        return web.Response(status=status, body=answer, content_type="text/xml")

    async def next_report(self) -> etree._Element:
        """The next DeliveryReportReq that arrives, parsed."""
        return etree.fromstring(await asyncio.wait_for(self.arrived.get(), 10), _PARSER)


class Clock:
    """The reporter's sleep: records every wait; returns once the gate is open."""

    def __init__(self, *, open_gate: bool = True) -> None:
        self.waits: list[float] = []
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()
        if open_gate:
            self.gate.set()

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.entered.set()
        await self.gate.wait()


@dataclass
class Relay:
    client: Client
    clock: Clock
    app: web.Application

    @property
    def reporter(self) -> Reporter:
        return self.app[REPORTER_KEY]

    async def submit(self, number: str = "+15550001234", **headers: str) -> str:
        """Send a SubmitReq; the MessageID of the SubmitRsp (empty for a Fault)."""
        return await self.post(submit_body(number), **headers)

    async def post(self, body: str, **headers: str) -> str:
        headers.setdefault("Content-Type", "text/xml")
        async with self.client.post("/mm7", data=body, headers=headers) as response:
            doc = etree.fromstring(await response.read(), _PARSER)
        return str(doc.xpath("string(//mm7:MessageID)", namespaces=NS))


def submit_body(number: str, *, element: str = "Number", sender: str = "") -> str:
    return (
        f'<env:Envelope xmlns:env="{SOAP_NS}" xmlns:mm7="{MM7_NS}"><env:Header>'
        '<mm7:TransactionID env:mustUnderstand="1">tx-1</mm7:TransactionID></env:Header>'
        "<env:Body><mm7:SubmitReq><mm7:MM7Version>6.8.0</mm7:MM7Version>"
        f"<mm7:SenderIdentification><mm7:VASPID>v</mm7:VASPID>{sender}"
        "</mm7:SenderIdentification><mm7:Recipients><mm7:To>"
        f"<mm7:{element}>{number}</mm7:{element}></mm7:To></mm7:Recipients>"
        "<mm7:Subject>hi</mm7:Subject></mm7:SubmitReq></env:Body></env:Envelope>"
    )


StartInbound = Callable[..., Awaitable[Inbound]]
StartRelay = Callable[..., Awaitable[Relay]]


@asynccontextmanager
async def inbound_servers(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> AsyncIterator[StartInbound]:
    """Start inbound endpoints on demand; hanging handlers are released on exit."""
    started: list[Inbound] = []

    async def start(*answers: tuple[int, bytes]) -> Inbound:
        seen = Inbound(answers or (rsp(),))
        app = web.Application()
        app.router.add_post(INBOUND_PATH, seen.handle)
        seen.url = str((await aiohttp_server(app)).make_url(INBOUND_PATH))
        started.append(seen)
        return seen

    yield start
    for seen in started:
        seen.release.set()  # let hanging handlers finish before the servers close


def relay_starter(aiohttp_client: Callable[..., Awaitable[Client]]) -> StartRelay:
    """Start a simulator with a callback URL (or None), a ``Clock`` and more settings."""

    async def start(url: str | None, clock: Clock | None = None, **settings: Any) -> Relay:
        clock = clock or Clock()
        sim = create_sim_app(SimSettings(callback_url=url, **settings), sleep=clock.sleep)
        return Relay(await aiohttp_client(sim), clock, sim)

    return start


@pytest.fixture
async def inbound(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> AsyncIterator[StartInbound]:
    async with inbound_servers(aiohttp_server) as start:
        yield start


@pytest.fixture
def relay(aiohttp_client: Callable[..., Awaitable[Client]]) -> StartRelay:
    return relay_starter(aiohttp_client)


def text(doc: etree._Element, path: str) -> str | None:
    return doc.findtext(path, namespaces=NS)


# --- when: after the delay, only with a URL ------------------------------------------
async def test_the_report_waits_the_callback_delay(
    inbound: StartInbound, relay: StartRelay
) -> None:
    """Nothing is sent while the delay runs; the report follows once it is over."""
    endpoint = await inbound()
    clock = Clock(open_gate=False)
    sim = await relay(endpoint.url, clock, callback_delay_ms=1234)
    await sim.submit()
    await asyncio.wait_for(clock.entered.wait(), 10)
    assert clock.waits == [1.234]
    assert endpoint.requests == []
    clock.gate.set()
    await endpoint.next_report()
    assert await sim.reporter.wait_idle() == ["accepted"]


async def test_the_default_delay_is_half_a_second(inbound: StartInbound, relay: StartRelay) -> None:
    endpoint = await inbound()
    sim = await relay(endpoint.url)
    await sim.submit()
    await endpoint.next_report()
    await sim.reporter.wait_idle()
    assert sim.clock.waits == [0.5]


async def test_without_a_callback_url_nothing_is_reported(relay: StartRelay) -> None:
    sim = await relay(None)
    assert await sim.submit()
    assert sim.reporter.url is None
    assert await sim.reporter.wait_idle() == []
    assert sim.clock.waits == []


# --- retries: as a real relay would ----------------------------------------------------
@pytest.mark.parametrize(
    "answers",
    [
        (fault("4006", 500), (503, b"<html>busy</html>"), rsp("1000")),
        (fault("4006", 200), rsp("1000")),  # 4006 means "later" even inside a 200
        (HANG, rsp("1000")),  # no answer within the timeout
    ],
    ids=["5xx", "4006-in-200", "timeout"],
)
async def test_a_retryable_failure_is_sent_again_until_accepted(
    inbound: StartInbound, relay: StartRelay, answers: tuple[tuple[int, bytes], ...]
) -> None:
    """The same report (same TransactionID) again, after a doubling backoff."""
    endpoint = await inbound(*answers)
    sim = await relay(endpoint.url, callback_timeout_s=0.5)
    await sim.submit()
    for _ in answers:
        await endpoint.next_report()
    assert await sim.reporter.wait_idle() == ["accepted"]
    bodies = {body for _, body in endpoint.requests}
    assert len(endpoint.requests) == len(answers)
    assert len(bodies) == 1
    assert sim.clock.waits == [0.5, 0.5, 1.0][: len(answers)]


async def test_the_relay_gives_up_after_three_attempts(
    inbound: StartInbound, relay: StartRelay, log_lines: Callable[[], list[dict[str, Any]]]
) -> None:
    endpoint = await inbound((500, b""))
    sim = await relay(endpoint.url)
    await sim.submit("+13108675309")  # a tests/pii.py number: it must not reach the logs
    for _ in range(3):
        await endpoint.next_report()
    assert await sim.reporter.wait_idle() == ["retry"]
    assert len(endpoint.requests) == 3
    lines = [line for line in log_lines() if line["event"] == "delivery_report"]
    assert [(line["attempt"], line["http_status"], line["verdict"]) for line in lines] == [
        (1, 500, "retry"), (2, 500, "retry"), (3, 500, "retry"),
    ]  # fmt: skip
    assert [line.get("retry_in_s") for line in lines] == [0.5, 1.0, None]
    assert all(line["attempts"] == 3 and line["url"] == endpoint.url for line in lines)


async def test_a_connection_error_is_retried(relay: StartRelay) -> None:
    """Nothing listens at the URL: every attempt fails to connect; three in all."""
    sim = await relay(f"http://127.0.0.1:{free_port()}{INBOUND_PATH}")
    await sim.submit()
    await asyncio.wait_for(sim.clock.entered.wait(), 10)
    assert await asyncio.wait_for(sim.reporter.wait_idle(), 10) == ["retry"]
    assert sim.clock.waits == [0.5, 0.5, 1.0]


@pytest.mark.parametrize(
    ("answer", "verdict"),
    [
        (rsp("3002"), "refused"),  # HTTP 200, the app refused: never resent
        (rsp("2007"), "refused"),
        (fault("3002", 200), "refused"),
        ((404, b"not here"), "refused"),
        ((200, b""), "refused"),  # 2xx without a status
        (rsp("1000"), "accepted"),
    ],
    ids=["200-3002", "200-2007", "fault-3002-in-200", "404", "200-empty", "200-1000"],
)
async def test_other_answers_end_the_report_at_once(
    inbound: StartInbound, relay: StartRelay, answer: tuple[int, bytes], verdict: str
) -> None:
    endpoint = await inbound(answer)
    sim = await relay(endpoint.url)
    await sim.submit()
    await endpoint.next_report()
    assert await sim.reporter.wait_idle() == [verdict]
    assert len(endpoint.requests) == 1
    assert sim.clock.waits == [0.5]  # the delay, no backoff


# --- lifecycle ------------------------------------------------------------------------
async def test_shutdown_cancels_pending_reports(
    inbound: StartInbound, relay: StartRelay, log_lines: Callable[[], list[dict[str, Any]]]
) -> None:
    endpoint = await inbound()
    sim = await relay(endpoint.url, Clock(open_gate=False))
    await sim.submit()
    await asyncio.wait_for(sim.clock.entered.wait(), 10)
    await sim.client.close()  # the app's cleanup: pending reports are cancelled
    assert await sim.reporter.wait_idle() == []
    assert endpoint.requests == []
    dropped = [line for line in log_lines() if line["event"] == "delivery_reports_dropped"]
    assert [line["count"] for line in dropped] == [1]


async def test_a_bug_in_a_report_task_is_logged(
    inbound: StartInbound, relay: StartRelay, log_lines: Callable[[], list[dict[str, Any]]]
) -> None:
    class Broken(Clock):
        async def sleep(self, seconds: float) -> None:
            raise RuntimeError("a bug")

    endpoint = await inbound()
    sim = await relay(endpoint.url, Broken())
    await sim.submit()
    for _ in range(500):  # a bound, not a timing: the task fails on its first await
        failed = [line for line in log_lines() if line["event"] == "delivery_report_failed"]
        if failed:
            break
        await asyncio.sleep(0.01)
    assert [line["level"] for line in failed] == ["error"]
    assert "RuntimeError: a bug" in failed[0]["exception"]
    assert endpoint.requests == []
