"""Rate limits: the token bucket on its own (time passed in), then the queue over real
sockets: arrival order, max_wait, a hang-up while queued, a throttling answer resent after
its pause, and the drain with a queue. No assertion on a duration: the order of events,
the gateway's counts, the queue gauge and the log lines say what happened."""

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from proxy.config import RateLimit, shared_by
from proxy.flow.bucket import DEFAULT_PAUSE_SECONDS, MAX_PAUSE_SECONDS, TokenBucket, pause_seconds
from proxy.process.serve import serve
from tests.conftest import ProxyFactory, make_config
from tests.test_forward import free_port
from tests.test_reliability_gateway import (
    HANG_GUARD_S,
    SUBMIT_REQ,
    SUBMIT_RSP,
    RawGateway,
    response,
)

THROTTLED_FAULT = (
    b'<env:Envelope xmlns:env="http://schemas.xmlsoap.org/soap/envelope/"><env:Body><env:Fault>'
    b"<faultcode>env:Server.Throttled</faultcode><faultstring>Throttled</faultstring>"
    b"</env:Fault></env:Body></env:Envelope>"
)


# --- the bucket ------------------------------------------------------------------------------
def test_a_bucket_starts_full_then_gives_rate_tokens_a_second() -> None:
    bucket = TokenBucket(rate=2.0, capacity=3.0)
    assert [bucket.take(10.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(10.0) == pytest.approx(0.5)  # nothing taken: half a second to one
    assert bucket.take(10.5) == 0.0
    assert bucket.take(20.0) == 0.0  # refilled, never above capacity
    assert bucket.tokens == pytest.approx(2.0)


def test_the_estimate_counts_the_waiters_ahead() -> None:
    bucket = TokenBucket(rate=1.0, capacity=1.0)
    assert bucket.estimate(0.0, 0) == 0.0
    bucket.take(0.0)
    assert bucket.estimate(0.0, 0) == pytest.approx(1.0)
    assert bucket.estimate(0.0, 2) == pytest.approx(3.0)
    assert bucket.estimate(0.5, 2) == pytest.approx(2.5)


def test_a_pause_stops_taking_then_gives_one_token() -> None:
    bucket = TokenBucket(rate=1.0, capacity=5.0)
    bucket.pause(0.0, 2.0)
    assert bucket.take(1.0) == pytest.approx(1.0)  # the pause's rest
    assert bucket.estimate(1.0, 1) == pytest.approx(2.0)  # the pause, one token, then 1/s
    assert bucket.take(2.0) == 0.0  # the resend
    assert bucket.take(2.0) == pytest.approx(1.0)  # what was saved before was forgotten
    bucket.pause(2.0, 0.5)
    bucket.pause(2.0, 0.1)  # a shorter pause never shortens a longer one
    assert bucket.paused_until == 2.5


def test_a_token_given_back_is_there_again() -> None:
    bucket = TokenBucket(rate=1.0, capacity=1.0)
    bucket.take(0.0)
    bucket.give_back(0.0)
    assert bucket.take(0.0) == 0.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, DEFAULT_PAUSE_SECONDS),
        ("3", 3.0),
        (" 0 ", 0.0),
        ("100000", MAX_PAUSE_SECONDS),
        ("soon", DEFAULT_PAUSE_SECONDS),
        ("-5", DEFAULT_PAUSE_SECONDS),
        ("Thu, 01 Jan 1970 00:00:10 GMT", 10.0),
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0),
    ],
)
def test_pause_seconds_reads_retry_after(value: str | None, expected: float) -> None:
    headers = {} if value is None else {"Retry-After": value}
    assert pause_seconds(headers, now_epoch=0.0) == expected


def test_workers_split_the_rate_and_the_burst() -> None:
    config = make_config(
        {"path_prefix": "/a", "upstream": "http://127.0.0.1:9/a",
         "rate_limit": {"per_second": 10, "burst": 3}},
        {"path_prefix": "/b", "upstream": "http://127.0.0.1:9/b"},
    )  # fmt: skip
    split = shared_by(config, 4)
    limit = split.routes[0].rate_limit
    assert limit is not None
    assert (limit.per_second, limit.burst, limit.processes) == (10, 3, 4)  # the contract
    assert (limit.local_rate, limit.local_burst) == (2.5, 1.0)  # each worker's share (>= 1)
    assert split.routes[1].rate_limit is None
    assert RateLimit(per_second=8, burst=8, processes=2).local_burst == 4


# --- the queue over real sockets ----------------------------------------------------------
class Gateway:
    """A RawGateway answering what ``plan`` says for each request in turn (then OK)."""

    def __init__(self, *plan: bytes) -> None:
        self.plan = list(plan)
        self.raw = RawGateway(default=self._answer)

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(self.plan.pop(0) if self.plan else response(SUBMIT_RSP))
        await writer.drain()
        return True

    @property
    def seen(self) -> list[str]:
        """The ``X-Seq`` of each request the gateway got, in order."""
        return [r.headers.get("x-seq", "?") for r in self.raw.received]


@pytest.fixture
async def gateway() -> AsyncIterator[Callable[..., Any]]:
    made: list[Gateway] = []

    async def start(*plan: bytes) -> Gateway:
        gw = Gateway(*plan)
        await gw.raw.start()
        made.append(gw)
        return gw

    yield start
    for gw in made:
        await gw.raw.close()


def limited(upstream: str, **limit: Any) -> dict[str, Any]:
    return {"name": "mms", "path_prefix": "/mm7", "upstream": upstream, "rate_limit": limit}


def queued(registry: CollectorRegistry) -> float | None:
    return registry.get_sample_value("gateway_proxy_rate_limit_queue", {"route": "mms"})


async def until(check: Callable[[], Any], what: str = "the condition") -> None:
    """Poll ``check`` until it holds (a hang guard bounds the wait; nothing is timed)."""
    for _ in range(int(HANG_GUARD_S / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{what} never held")


async def post(client: Any, seq: int | str) -> tuple[int, dict[str, Any], dict[str, str]]:
    async with asyncio.timeout(HANG_GUARD_S):
        resp = await client.post("/mm7", data=SUBMIT_REQ, headers={"X-Seq": str(seq)})
        return resp.status, await resp.json(), dict(resp.headers)


async def test_requests_wait_in_arrival_order_and_all_get_through(
    gateway: Any, proxy_client: ProxyFactory, registry: CollectorRegistry
) -> None:
    gw = await gateway()
    config = make_config(limited(gw.raw.url(), per_second=20, burst=1, max_wait=10))
    client = await proxy_client(config, registry=registry)
    loop = asyncio.get_running_loop()
    tasks = []

    def inside(count: int) -> Callable[[], bool]:
        # Queued, or already at the gateway: the request has its place in the order.
        return lambda: (queued(registry) or 0) + len(gw.seen) >= count

    for seq in range(6):  # each sent once the one before has its place
        tasks.append(loop.create_task(post(client, seq), name=f"request-{seq}"))
        await until(inside(seq + 1))
    results = await asyncio.gather(*tasks)
    assert [r[1]["code"] for r in results] == ["OK"] * 6
    assert gw.seen == [str(seq) for seq in range(6)]
    assert queued(registry) == 0
    waits = registry.get_sample_value(
        "gateway_proxy_rate_limit_wait_seconds_count", {"route": "mms"}
    )
    assert waits == 6


async def test_a_request_that_would_wait_past_max_wait_is_refused_at_once(
    gateway: Any, proxy_client: ProxyFactory, registry: CollectorRegistry, log_lines: Any
) -> None:
    """0.5 tokens a second, max_wait 3: the second waits ~2 s (queued), the third would
    wait ~4 s: RATE_LIMITED from the proxy while the second is still queued."""
    gw = await gateway()
    config = make_config(limited(gw.raw.url(), per_second=0.5, burst=1, max_wait=3))
    client = await proxy_client(config, registry=registry)
    assert (await post(client, "a"))[1]["code"] == "OK"
    second = asyncio.get_running_loop().create_task(post(client, "b"), name="second")
    await until(lambda: queued(registry) == 1)
    status, env, headers = await post(client, "c")
    assert queued(registry) == 1  # answered while the second still waits
    assert (status, env["code"], env["retryable"], env["vendor"]["name"]) == (
        429, "RATE_LIMITED", True, "proxy",
    )  # fmt: skip
    assert int(headers["Retry-After"]) >= 1
    assert "max_wait" in env["detail"]
    assert (await second)[1]["code"] == "OK"
    assert gw.seen == ["a", "b"]
    rejected = {"route": "mms", "reason": "rate_limit"}
    assert registry.get_sample_value("gateway_proxy_rejected_requests_total", rejected) == 1
    refused = [e for e in log_lines() if e["event"] == "request" and e["code"] == "RATE_LIMITED"]
    assert refused[0]["endpoint"] is None


async def test_a_hang_up_while_queued_gives_the_place_back(
    gateway: Any, proxy_client: ProxyFactory, registry: CollectorRegistry, log_lines: Any
) -> None:
    """The second request's app hangs up while queued: CLIENT_CLOSED_REQUEST, never sent,
    and no token spent: the third (max_wait 3, ~2 s behind the first) is queued, where it
    would have been refused had the second kept its place (~4 s)."""
    gw = await gateway()
    config = make_config(limited(gw.raw.url(), per_second=0.5, burst=1, max_wait=3))
    client = await proxy_client(config, registry=registry)
    assert (await post(client, "a"))[1]["code"] == "OK"

    reader, writer = await asyncio.open_connection(client.host, client.port)
    head = (
        f"POST /mm7 HTTP/1.1\r\nHost: x\r\nX-Seq: b\r\nContent-Length: {len(SUBMIT_REQ)}\r\n\r\n"
    ).encode()
    writer.write(head + SUBMIT_REQ)
    await writer.drain()
    await until(lambda: queued(registry) == 1)
    writer.transport.abort()  # the app hangs up
    await until(lambda: queued(registry) == 0)

    status, env, _ = await post(client, "c")
    assert (status, env["code"]) == (200, "OK")
    assert gw.seen == ["a", "c"]
    closed = [e for e in log_lines() if e["event"] == "request" and e["status"] == 499]
    assert [e["code"] for e in closed] == ["CLIENT_CLOSED_REQUEST"]
    del reader


@pytest.mark.parametrize(
    "throttle",
    [
        response(b"slow down", status=b"429 Too Many Requests", content_type=b"text/plain"),
        response(THROTTLED_FAULT, status=b"500 Internal Server Error"),  # the catalog's fault
    ],
    ids=["http 429", "throttled fault"],
)
async def test_a_throttling_answer_pauses_and_is_resent(
    throttle: bytes, gateway: Any, proxy_client: ProxyFactory, log_lines: Any
) -> None:
    with_retry_after = throttle.replace(b"\r\n\r\n", b"\r\nRetry-After: 1\r\n\r\n", 1)
    gw = await gateway(with_retry_after)
    config = make_config(limited(gw.raw.url(), per_second=50, burst=5, max_wait=10))
    client = await proxy_client(config)
    status, env, _ = await post(client, "only")
    assert (status, env["code"]) == (200, "OK")  # the app sees only the final answer
    assert gw.seen == ["only", "only"]
    assert gw.raw.received[0].body == gw.raw.received[1].body == SUBMIT_REQ
    (paused,) = [e for e in log_lines() if e["event"] == "throttled"]
    assert paused["pause_s"] == 1.0
    (line,) = [e for e in log_lines() if e["event"] == "request"]
    assert line["code"] == "OK"


async def test_without_a_rate_limit_throttling_reaches_the_app(
    gateway: Any, proxy_client: ProxyFactory
) -> None:
    gw = await gateway(response(b"", status=b"429 Too Many Requests"))
    config = make_config({"name": "mms", "path_prefix": "/mm7", "upstream": gw.raw.url()})
    status, env, _ = await post(await proxy_client(config), 1)
    assert (status, env["code"], env["vendor"]["name"]) == (429, "RATE_LIMITED", "mm7")
    assert len(gw.seen) == 1


async def test_an_answer_not_marked_throttling_is_never_resent(
    gateway: Any, proxy_client: ProxyFactory
) -> None:
    busy = response(b"busy", status=b"503 Service Unavailable", content_type=b"text/plain")
    gw = await gateway(busy.replace(b"\r\n\r\n", b"\r\nRetry-After: 1\r\n\r\n", 1))
    config = make_config(limited(gw.raw.url(), per_second=50, burst=5, max_wait=10))
    status, env, _ = await post(await proxy_client(config), 1)
    assert (status, env["code"]) == (503, "UPSTREAM_UNAVAILABLE")
    assert len(gw.seen) == 1


async def test_a_throttled_request_past_its_max_wait_gets_the_gateway_s_answer(
    gateway: Any, proxy_client: ProxyFactory
) -> None:
    throttled = response(b"", status=b"429 Too Many Requests")
    gw = await gateway(throttled.replace(b"\r\n\r\n", b"\r\nRetry-After: 30\r\n\r\n", 1))
    config = make_config(limited(gw.raw.url(), per_second=50, burst=5, max_wait=2))
    status, env, headers = await post(await proxy_client(config), 1)
    assert (status, env["code"], env["vendor"]["name"]) == (429, "RATE_LIMITED", "mm7")
    assert headers["Retry-After"] == "30"  # the gateway's own
    assert len(gw.seen) == 1


async def test_a_pause_holds_back_the_requests_queued_behind(
    gateway: Any, proxy_client: ProxyFactory, registry: CollectorRegistry
) -> None:
    """While the route is paused, the next request waits: it reaches the gateway after the
    throttled request's resend, never before."""
    throttled = response(b"", status=b"429 Too Many Requests")
    gw = await gateway(throttled.replace(b"\r\n\r\n", b"\r\nRetry-After: 1\r\n\r\n", 1))
    config = make_config(limited(gw.raw.url(), per_second=50, burst=5, max_wait=10))
    client = await proxy_client(config, registry=registry)
    first = asyncio.get_running_loop().create_task(post(client, "first"), name="first")
    await until(lambda: len(gw.seen) == 1)
    await until(lambda: queued(registry) == 1)  # the throttled one, back in the queue
    second = asyncio.get_running_loop().create_task(post(client, "second"), name="second")
    await until(lambda: queued(registry) == 2)
    assert [(await first)[1]["code"], (await second)[1]["code"]] == ["OK", "OK"]
    assert gw.seen == ["first", "first", "second"]


async def test_the_drain_serves_or_answers_the_queue(
    gateway: Any, registry: CollectorRegistry
) -> None:
    """SIGTERM's drain with requests queued: those the drain cannot wait for are answered
    503 (OVERLOADED, shutdown), like in-flight ones; none is sent after."""
    gw = await gateway()
    port = free_port()
    config = make_config(
        limited(gw.raw.url(), per_second=0.1, burst=1, max_wait=60),
        listen=f"127.0.0.1:{port}",
        shutdown={"drain_seconds": 0.3},
    )
    stop, ready = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    server = loop.create_task(
        serve(config, registry=registry, stop=stop, on_ready=ready.set, admin=False), name="serve"
    )
    await until(ready.is_set)

    async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:

        async def send(seq: str) -> tuple[int, str]:
            async with http.post("/mm7", data=SUBMIT_REQ, headers={"X-Seq": seq}) as resp:
                return resp.status, (await resp.json())["code"]

        assert await send("a") == (200, "OK")
        queued_sends = [loop.create_task(send(s), name=s) for s in ("b", "c")]
        await until(lambda: queued(registry) == 2)
        stop.set()
        results = await asyncio.gather(*queued_sends)
    async with asyncio.timeout(HANG_GUARD_S):
        await server
    assert results == [(503, "OVERLOADED"), (503, "OVERLOADED")]
    assert gw.seen == ["a"]


async def test_queued_requests_are_served_when_the_drain_allows(
    gateway: Any, registry: CollectorRegistry
) -> None:
    gw = await gateway()
    port = free_port()
    config = make_config(
        limited(gw.raw.url(), per_second=5, burst=1, max_wait=60),
        listen=f"127.0.0.1:{port}",
        shutdown={"drain_seconds": 30},
    )
    stop, ready = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    server = loop.create_task(
        serve(config, registry=registry, stop=stop, on_ready=ready.set, admin=False), name="serve"
    )
    await until(ready.is_set)

    async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:

        async def send(seq: str) -> int:
            async with http.post("/mm7", data=SUBMIT_REQ, headers={"X-Seq": seq}) as resp:
                return resp.status

        sends = [loop.create_task(send(s), name=s) for s in "abcd"]
        await until(lambda: (queued(registry) or 0) >= 2)
        stop.set()
        results = await asyncio.gather(*sends)
    async with asyncio.timeout(HANG_GUARD_S):
        await server
    assert results == [200] * 4
    assert sorted(gw.seen) == list("abcd")


async def test_time_in_the_queue_does_not_count_against_timeout_total(
    proxy_client: ProxyFactory, registry: CollectorRegistry, aiohttp_server: Any
) -> None:
    """The second request waits about 3.3 s for its token, longer than timeout.total (2 s);
    the gateway answers in 0.1 s: it gets OK, not TIMEOUT (timeout.total starts at the send)."""

    async def slowish(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.sleep(0.1)
        return web.Response(body=SUBMIT_RSP, content_type="text/xml")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", slowish)
    gw = await aiohttp_server(app)
    route = limited(str(gw.make_url("/mm7")), per_second=0.3, burst=1, max_wait=10)
    client = await proxy_client(make_config({**route, "timeout": {"total": 2}}), registry=registry)
    first = asyncio.get_running_loop().create_task(post(client, "a"), name="first")
    second = asyncio.get_running_loop().create_task(post(client, "b"), name="second")
    results = [await first, await second]
    assert [r[1]["code"] for r in results] == ["OK", "OK"]
    waited = registry.get_sample_value(
        "gateway_proxy_rate_limit_wait_seconds_bucket", {"route": "mms", "le": "2.5"}
    )
    assert waited == 1  # one did not wait; the other waited past 2.5 s, longer than the total


@pytest.mark.parametrize("stall", [False, True], ids=["trickled", "stalled"])
async def test_a_held_body_may_trickle_but_not_stall(
    stall: bool, gateway: Any, proxy_client: ProxyFactory
) -> None:
    """A rate-limited route reads the app's body before its token: a body that comes in
    pieces is held whole and sent once; one that stalls past body_idle is the app's
    REQUEST_TIMEOUT, and the gateway never sees it."""
    gw = await gateway()
    route = limited(gw.raw.url(), per_second=50, burst=5, max_wait=10)
    client = await proxy_client(make_config({**route, "client_timeout": {"body_idle": 0.3}}))
    reader, writer = await asyncio.open_connection(client.host, client.port)
    head = f"POST /mm7 HTTP/1.1\r\nHost: x\r\nContent-Length: {len(SUBMIT_REQ)}\r\n\r\n"
    writer.write(head.encode() + SUBMIT_REQ[:50])
    await writer.drain()
    await asyncio.sleep(0.1)  # a second piece, within body_idle
    writer.write(SUBMIT_REQ[50:100])
    await writer.drain()
    if not stall:
        await asyncio.sleep(0.1)
        writer.write(SUBMIT_REQ[100:])
    async with asyncio.timeout(HANG_GUARD_S):
        answer = await reader.readuntil(b"\r\n\r\n")
    writer.close()
    status = int(answer.split(b" ", 2)[1])
    if stall:
        assert status == 408
        assert gw.raw.received == []
    else:
        assert status == 200
        assert [r.body for r in gw.raw.received] == [SUBMIT_REQ]
