"""Circuit breakers: the state machine on its own (a clock passed in), then the whole
timeline over real sockets: closed → open (answered at once, the gateway untouched) →
half-open (one probe) → open again → half-open → closed."""

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from proxy.config import CircuitBreaker
from proxy.upstream.breaker import Breaker, Verdict
from proxy.vocab import CircuitState
from tests.conftest import ProxyFactory, make_config
from tests.test_reliability_gateway import (
    HANG_GUARD_S,
    SUBMIT_REQ,
    SUBMIT_RSP,
    RawGateway,
    response,
)

MM7_2002_FAULT = (
    b'<env:Envelope xmlns:env="http://schemas.xmlsoap.org/soap/envelope/"><env:Body><env:Fault>'
    b"<faultcode>env:Client</faultcode><faultstring>Address Error</faultstring><detail>"
    b'<RSErrorRsp xmlns="http://www.3gpp.org/ftp/Specs/archive/23_series/23.140/schema/'
    b'REL-6-MM7-1-4"><Status><StatusCode>2002</StatusCode></Status></RSErrorRsp></detail>'
    b"</env:Fault></env:Body></env:Envelope>"
)


# --- the state machine ------------------------------------------------------------------
def breaker(failures: int = 2, seconds: float = 10.0) -> tuple[Breaker, list[CircuitState]]:
    changes: list[CircuitState] = []
    return Breaker(CircuitBreaker(failures, seconds), changes.append), changes


def test_failures_in_a_row_open_the_circuit() -> None:
    b, changes = breaker()
    assert b.allow(0.0) == "yes"
    b.record("failure", 0.0)
    assert b.state == "closed"
    b.record("failure", 1.0)
    assert (b.state, changes) == ("open", ["open"])
    assert b.allow(5.0) == "no"
    assert b.retry_in(5.0) == 6.0


def test_a_success_resets_the_count_and_neutral_outcomes_do_neither() -> None:
    b, changes = breaker(failures=2)
    verdicts: tuple[Verdict, ...] = ("failure", "success", "failure", "neutral", "abandoned")
    for verdict in verdicts:
        b.record(verdict, 0.0)
    assert changes == []  # failure, success (reset), failure: one in a row
    b.record("failure", 0.0)
    assert changes == ["open"]  # the neutral ones in between did not reset it


def test_after_open_seconds_one_probe_goes_and_its_success_closes() -> None:
    b, changes = breaker(seconds=10.0)
    b.record("failure", 0.0)
    b.record("failure", 0.0)
    assert b.allow(9.9) == "no"
    assert b.allow(10.0) == "probe"
    assert b.state == "half_open"
    assert b.allow(10.0) == "no"  # one probe at a time
    b.record("success", 10.5)  # a request sent before the circuit opened: ignored
    assert b.state == "half_open"
    b.record("success", 10.5, probe=True)
    assert (b.state, changes) == ("closed", ["open", "half_open", "closed"])
    assert b.allow(10.6) == "yes"


def test_a_failed_probe_opens_again_and_an_abandoned_one_lets_the_next_probe() -> None:
    b, _ = breaker(seconds=10.0)
    b.record("failure", 0.0)
    b.record("failure", 0.0)
    assert b.allow(10.0) == "probe"
    b.record("abandoned", 10.1, probe=True)
    assert b.allow(10.2) == "probe"  # the app went away: someone else probes
    b.record("failure", 11.0, probe=True)
    assert b.state == "open"
    assert b.retry_in(11.0) == 10.0
    assert b.allow(20.9) == "no"
    assert b.allow(21.0) == "probe"
    b.record("neutral", 21.0, probe=True)  # an answer, if not a success: the gateway is up
    assert b.allow(21.1) == "yes"  # closed


def test_late_answers_do_not_move_an_open_circuit() -> None:
    b, _ = breaker()
    b.record("failure", 0.0)
    b.record("failure", 0.0)
    b.record("success", 0.1)
    b.record("failure", 0.1)
    assert (b.state, b.retry_in(0.0)) == ("open", 10.0)


# --- the timeline over real sockets ---------------------------------------------------------
class Switchboard:
    """What the gateway answers next: a 503, a 429, an MM7 2002 fault, or a success;
    ``hold`` makes it wait until released (a probe under way)."""

    def __init__(self) -> None:
        self.mode = "unavailable"
        self.hold: asyncio.Event | None = None
        self.arrived = asyncio.Event()

    async def answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        self.arrived.set()
        if self.hold is not None:
            await self.hold.wait()
        bodies = {
            "unavailable": response(b"busy", status=b"503 Service Unavailable", content_type=b"text/plain"),
            "throttled": response(b"slow down", status=b"429 Too Many Requests", content_type=b"text/plain"),
            "address": response(MM7_2002_FAULT, status=b"500 Internal Server Error"),
        }  # fmt: skip
        writer.write(bodies.get(self.mode, response(SUBMIT_RSP)))
        await writer.drain()
        return True


@pytest.fixture
async def switched() -> AsyncIterator[tuple[Switchboard, RawGateway]]:
    board = Switchboard()
    gateway = await RawGateway(default=board.answer).start()
    yield board, gateway
    await gateway.close()


async def post(client: Any) -> tuple[int, dict[str, Any], dict[str, str]]:
    async with asyncio.timeout(HANG_GUARD_S):
        resp = await client.post("/mm7", data=SUBMIT_REQ)
        return resp.status, await resp.json(), dict(resp.headers)


def state(registry: CollectorRegistry, endpoint: str) -> float | None:
    labels = {"route": "mms", "endpoint": endpoint}
    return registry.get_sample_value("gateway_proxy_circuit_state", labels)


async def until(check: Callable[[], Any], what: str = "the condition") -> None:
    """Poll ``check`` until it holds (a hang guard bounds the wait; nothing is timed)."""
    for _ in range(int(HANG_GUARD_S / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{what} never held")


async def test_the_breaker_timeline(
    switched: tuple[Switchboard, RawGateway],
    proxy_client: ProxyFactory,
    registry: CollectorRegistry,
    log_lines: Any,
) -> None:
    board, gateway = switched
    endpoint = f"127.0.0.1:{gateway.port}"
    config = make_config({
        "name": "mms", "path_prefix": "/mm7", "upstreams": [gateway.url()],
        "circuit_breaker": {"failures": 2, "open_seconds": 0.3},
    })  # fmt: skip
    client = await proxy_client(config, registry=registry)
    assert state(registry, endpoint) == 0

    # closed: two UPSTREAM_UNAVAILABLE answers in a row open it
    for _ in range(2):
        status, env, _ = await post(client)
        assert (status, env["code"], env["vendor"]["name"]) == (503, "UPSTREAM_UNAVAILABLE", "mm7")
    assert state(registry, endpoint) == 1

    # open: answered at once by the proxy, the gateway untouched
    status, env, headers = await post(client)
    assert (status, env["code"], env["retryable"], env["vendor"]["name"]) == (
        503, "UPSTREAM_UNAVAILABLE", True, "proxy",
    )  # fmt: skip
    assert "circuit" in env["detail"]
    assert env["vendor"]["endpoint"] is None
    assert int(headers["Retry-After"]) >= 1
    assert len(gateway.received) == 2
    rejected = {"route": "mms", "reason": "circuit_open"}
    assert registry.get_sample_value("gateway_proxy_rejected_requests_total", rejected) == 1

    # half-open: after open_seconds one request probes; meanwhile the others are refused
    board.hold = asyncio.Event()
    probe: asyncio.Task[Any] | None = None

    async def a_probe_reached_the_gateway() -> None:
        nonlocal probe
        while True:
            board.arrived.clear()
            loop = asyncio.get_running_loop()
            probe = loop.create_task(post(client), name="probe")
            arrived = loop.create_task(board.arrived.wait(), name="arrived")
            done, _ = await asyncio.wait({probe, arrived}, return_when=asyncio.FIRST_COMPLETED)
            if arrived in done:
                return
            arrived.cancel()
            _status, env, _ = probe.result()  # still open: refused at once
            assert env["vendor"]["name"] == "proxy"
            await asyncio.sleep(0.05)

    async with asyncio.timeout(HANG_GUARD_S):
        await a_probe_reached_the_gateway()
    assert state(registry, endpoint) == 2
    status, env, _ = await post(client)  # one probe at a time
    assert (status, env["vendor"]["name"]) == (503, "proxy")
    assert len(gateway.received) == 3

    # the probe fails: open again
    board.hold.set()
    assert probe is not None
    status, env, _ = await probe
    assert (status, env["vendor"]["name"]) == (503, "mm7")
    assert state(registry, endpoint) == 1

    # the next probe succeeds: closed, and requests flow again
    board.hold, board.mode = None, "ok"
    for _ in range(int(HANG_GUARD_S / 0.05)):
        if (await post(client))[1]["code"] == "OK":
            break
        await asyncio.sleep(0.05)
    assert state(registry, endpoint) == 0
    assert (await post(client))[1]["code"] == "OK"
    circuit = [e["state"] for e in log_lines() if e["event"] == "circuit"]
    assert circuit == ["open", "half_open", "open", "half_open", "closed"]


async def test_app_errors_and_throttling_do_not_open_a_circuit(
    switched: tuple[Switchboard, RawGateway],
    proxy_client: ProxyFactory,
    registry: CollectorRegistry,
) -> None:
    board, gateway = switched
    config = make_config({
        "name": "mms", "path_prefix": "/mm7", "upstreams": [gateway.url()],
        "circuit_breaker": {"failures": 2, "open_seconds": 60},
    })  # fmt: skip
    client = await proxy_client(config, registry=registry)
    for mode, code in [("address", "INVALID_ADDRESS"), ("throttled", "RATE_LIMITED")] * 2:
        board.mode = mode
        assert (await post(client))[1]["code"] == code
    assert state(registry, f"127.0.0.1:{gateway.port}") == 0
    assert len(gateway.received) == 4


async def test_an_open_circuit_sends_to_the_next_endpoint(
    proxy_client: ProxyFactory, registry: CollectorRegistry
) -> None:
    primary_board, secondary_board = Switchboard(), Switchboard()
    secondary_board.mode = "ok"
    primary = await RawGateway(default=primary_board.answer).start()
    secondary = await RawGateway(default=secondary_board.answer).start()
    try:
        config = make_config({
            "name": "mms", "path_prefix": "/mm7", "upstreams": [primary.url(), secondary.url()],
            "circuit_breaker": {"failures": 2, "open_seconds": 60},
        })  # fmt: skip
        client = await proxy_client(config, registry=registry)
        for _ in range(2):  # answered (it reached the primary): no failover
            assert (await post(client))[1]["code"] == "UPSTREAM_UNAVAILABLE"
        for _ in range(3):
            status, env, _ = await post(client)
            assert (status, env["vendor"]["endpoint"]) == (200, f"127.0.0.1:{secondary.port}")
        assert (len(primary.received), len(secondary.received)) == (2, 3)
        sends = "gateway_proxy_endpoint_requests_total"
        primary_labels = {"route": "mms", "endpoint": f"127.0.0.1:{primary.port}"}
        assert registry.get_sample_value(sends, {**primary_labels, "result": "failure"}) == 2
        secondary_labels = {"route": "mms", "endpoint": f"127.0.0.1:{secondary.port}"}
        assert registry.get_sample_value(sends, {**secondary_labels, "result": "success"}) == 3
    finally:
        await primary.close()
        await secondary.close()
