"""Reports matched to their send (proxy/inbound/correlate.py and the inbound handler), with
real sockets and a real store: a SQLite file in tmp_path, a real redis-server.

The send side's part is played by calling ``ledger.remember`` on the proxy's own ledger,
exactly as a send that succeeded does; the relay's part by POSTing a DeliveryReportReq or
ReadReplyReq to the inbound route. The app's webhooks are real aiohttp servers.
"""

import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry

from proxy.inbound import parse_callback
from proxy.inbound.correlate import NOT_LOOKED_UP, Destination, Match, destination, match
from proxy.inbound.types import DeliveryReport, MogreetCallback
from proxy.ledger import Correlation, Ledger, LedgerUnavailable, utc_now
from proxy.ledger.sqlite_ledger import SqliteLedger
from proxy.server import REGISTRY_KEY
from proxy.server.keys import CLIENT_WEBHOOKS_KEY, LEDGER_KEY
from proxy.upstream import endpoint_of
from tests import pii
from tests.conftest import make_config
from tests.redis_server import RedisServer
from tests.test_forward import free_port
from tests.test_inbound_e2e import (
    EVENT_SCHEMA,
    FIXTURES,
    NS,
    Handler,
    Webhook,
    post,
    status_code,
)
from tests.test_inbound_listen import RELAY_AUTH, XML, Running, answer_of

FIXTURE_ID = b"msg-7f3a9c"  # the MessageID of both report fixtures
DELIVERY_REPORT = (FIXTURES / "deliveryreport-rel6-default-ns.xml").read_bytes()
READ_REPLY = (FIXTURES / "readreply-rel6.xml").read_bytes()
ROUTE = "mm7-events"
CALLBACK_DATA = '{"order": "order-42", "note": "never logged"}'


def report_for(message_id: str, body: bytes = DELIVERY_REPORT) -> bytes:
    """A report fixture about ``message_id``."""
    assert FIXTURE_ID in body
    return body.replace(FIXTURE_ID, message_id.encode())


def sent(client: str = "anonymous", key: str | None = "key-1") -> Correlation:
    """What a send that succeeded remembers (the send side's ``Correlation``)."""
    return Correlation(f"req-{uuid.uuid4().hex}", client, key, CALLBACK_DATA, utc_now(), "mms")


def correlated(registry: CollectorRegistry, result: str) -> float | None:
    labels = {"route": ROUTE, "result": result}
    return registry.get_sample_value("gateway_proxy_correlated_events_total", labels)


def recall_errors(registry: CollectorRegistry) -> float | None:
    labels = {"route": ROUTE, "operation": "recall"}
    return registry.get_sample_value("gateway_proxy_ledger_errors_total", labels)


def callback_lines(log_lines: Any) -> list[dict[str, Any]]:
    return [line for line in log_lines() if line["event"] == "callback"]


async def start_webhook(aiohttp_server: Any, hook: Webhook) -> str:
    app = web.Application()
    app.router.add_post("/events", hook.handler)
    server = await aiohttp_server(app)
    return str(server.make_url("/events"))


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """The config's top-level keys of each store: a SQLite file, or a real Redis (each
    test uses its own message ids, so tests sharing the server do not meet)."""
    if request.param == "sqlite":
        return {"ledger": {"path": str(tmp_path / "ledger.sqlite3")}}
    server: RedisServer = request.getfixturevalue("redis_server")
    return {"ledger": {}, "store": server.url}


async def correlating_proxy(
    aiohttp_server: Any,
    proxy_client: Any,
    route_hook: Webhook,
    top: dict[str, Any],
    *,
    clients: list[dict[str, Any]] | None = None,
    **inbound: Any,
) -> TestClient[web.Request, web.Application]:
    """A proxy with one send route, one MM7 inbound route to ``route_hook`` (with a bearer
    token in its ``headers`` and a ``signing_secret``), the store of ``top`` and
    ``clients``."""
    deliver_to = await start_webhook(aiohttp_server, route_hook)
    config = make_config(
        {"name": "mms", "path_prefix": "/mm7", "upstream": "http://127.0.0.1:9/"},
        inbound=[{
            "name": ROUTE, "path_prefix": "/inbound/mm7", "deliver_to": deliver_to,
            "headers": {"Authorization": "Bearer ${TEST_SECRET}"},
            "signing_secret": "${SIGNING_SECRET}", **inbound,
        }],
        **({"clients": clients} if clients is not None else {}),
        **top,
    )  # fmt: skip
    return await proxy_client(config)  # type: ignore[no-any-return]


def ledger_of(client: TestClient[web.Request, web.Application]) -> Ledger:
    ledger = client.app[LEDGER_KEY]
    assert ledger is not None
    return ledger


# --- matched, unmatched --------------------------------------------------------------------


@pytest.mark.parametrize("body", [DELIVERY_REPORT, READ_REPLY], ids=["delivery", "read"])
async def test_a_report_of_a_remembered_send_carries_its_submit(
    aiohttp_server: Any, proxy_client: Any, store: dict[str, Any], log_lines: Any, body: bytes
) -> None:
    hook = Webhook()
    client = await correlating_proxy(aiohttp_server, proxy_client, hook, store)
    message_id, record = f"mid-{uuid.uuid4().hex}", sent()
    await ledger_of(client).remember(message_id, "mm7", record, 60)

    answer = await post(client, report_for(message_id, body))
    assert answer.status == 200
    assert status_code(await answer.read())[1] == "1000"
    (event,) = hook.events
    EVENT_SCHEMA.validate(event)
    assert event["message_id"] == message_id
    assert event["submit"] == {
        "request_id": record.request_id,
        "client": "anonymous",
        "idempotency_key": "key-1",
        "callback_data": CALLBACK_DATA,
        "submitted_at": record.submitted_at,
        "route": "mms",
    }
    registry = client.app[REGISTRY_KEY]
    assert (correlated(registry, "matched"), correlated(registry, "unmatched")) == (1, 0)
    assert recall_errors(registry) == 0
    (line,) = callback_lines(log_lines)
    assert (line["correlation"], line["client"], line["delivered_to"]) == (
        "matched", "anonymous", "deliver_to",
    )  # fmt: skip
    logged = json.dumps(log_lines())
    assert "order-42" not in logged  # the app's callback data is never logged
    assert "key-1" not in logged


async def test_a_message_id_is_matched_only_in_its_vendor_s_namespace(
    aiohttp_server: Any, proxy_client: Any, tmp_path: Path
) -> None:
    """A MoMS send's message id does not match an MM7 report with the same id."""
    hook = Webhook()
    top = {"ledger": {"path": str(tmp_path / "ledger.sqlite3")}}
    client = await correlating_proxy(aiohttp_server, proxy_client, hook, top)
    await ledger_of(client).remember("shared-id", "moms", sent(), 60)
    await post(client, report_for("shared-id"))
    (event,) = hook.events
    assert event["submit"] is None
    assert correlated(client.app[REGISTRY_KEY], "unmatched") == 1


async def test_an_unknown_send_is_delivered_with_submit_null_and_counted(
    aiohttp_server: Any, proxy_client: Any, store: dict[str, Any], log_lines: Any
) -> None:
    hook = Webhook()
    client = await correlating_proxy(aiohttp_server, proxy_client, hook, store)
    answer = await post(client, report_for(f"mid-{uuid.uuid4().hex}"))
    assert answer.status == 200
    assert status_code(await answer.read())[1] == "1000"
    (event,) = hook.events
    EVENT_SCHEMA.validate(event)
    assert event["submit"] is None
    registry = client.app[REGISTRY_KEY]
    assert (correlated(registry, "matched"), correlated(registry, "unmatched")) == (0, 1)
    (line,) = callback_lines(log_lines)
    assert (line["correlation"], line["delivered_to"]) == ("unmatched", "deliver_to")
    assert "client" not in line


async def test_without_a_ledger_reports_carry_submit_null(
    aiohttp_server: Any, proxy_client: Any, log_lines: Any
) -> None:
    """The same shape as with a ledger: ``submit`` is there, null; nothing is counted."""
    hook = Webhook()
    client = await correlating_proxy(aiohttp_server, proxy_client, hook, {})
    assert client.app[LEDGER_KEY] is None
    await post(client, DELIVERY_REPORT)
    (event,) = hook.events
    EVENT_SCHEMA.validate(event)
    assert event["submit"] is None
    assert correlated(client.app[REGISTRY_KEY], "unmatched") is None  # no such metric
    (line,) = callback_lines(log_lines)
    assert "correlation" not in line


async def test_messages_are_not_looked_up(
    aiohttp_server: Any, proxy_client: Any, tmp_path: Path
) -> None:
    """A DeliverReq answers no send: even with an id the ledger knows it gets no submit,
    and nothing is counted."""
    hook = Webhook()
    top = {"ledger": {"path": str(tmp_path / "ledger.sqlite3")}}
    client = await correlating_proxy(aiohttp_server, proxy_client, hook, top)
    message_id = f"mid-{uuid.uuid4().hex}"
    body = (FIXTURES / "deliver-plain-recipients.xml").read_bytes()
    body = body.replace(b"<Priority>", f"<MessageID>{message_id}</MessageID><Priority>".encode())
    await ledger_of(client).remember(message_id, "mm7", sent(), 60)
    answer = await post(client, body)
    assert answer.status == 200
    (event,) = hook.events
    EVENT_SCHEMA.validate(event)
    assert (event["event"], event["message_id"]) == ("message", message_id)
    assert "submit" not in event
    registry = client.app[REGISTRY_KEY]
    assert (correlated(registry, "matched"), correlated(registry, "unmatched")) == (0, 0)


async def test_mogreet_events_carry_no_submit_and_are_not_counted(
    aiohttp_server: Any, proxy_client: Any, tmp_path: Path
) -> None:
    hook = Webhook()
    top = {"ledger": {"path": str(tmp_path / "ledger.sqlite3")}}
    client = await correlating_proxy(aiohttp_server, proxy_client, hook, top, vendor="moms")
    for fixture in ("mogreet-message-in-mms.xml", "mogreet-stop.xml"):
        answer = await client.post(
            "/inbound/mm7",
            data=(FIXTURES / fixture).read_bytes(),
            headers={"Content-Type": "application/xml"},
        )
        assert answer.status == 200
    assert [e["event"] for e in hook.events] == ["message", "opt_out"]
    for event in hook.events:
        EVENT_SCHEMA.validate(event)
        assert "submit" not in event
    registry = client.app[REGISTRY_KEY]
    assert (correlated(registry, "matched"), correlated(registry, "unmatched")) == (0, 0)


# --- the ledger down --------------------------------------------------------------------


@pytest.mark.integration  # a redis-server of its own, stopped under the proxy
async def test_a_report_is_delivered_when_the_ledger_is_down(
    aiohttp_server: Any, proxy_client: Any, tmp_path: Path, log_lines: Any
) -> None:
    """Redis stopped after start-up: the report goes to deliver_to with submit null, the
    relay gets 1000, the failure is counted and logged (no number, no key, no URL)."""
    hook = Webhook()
    redis = RedisServer(tmp_path / "redis").start()
    try:
        top = {"ledger": {}, "store": redis.url}
        client = await correlating_proxy(
            aiohttp_server, proxy_client, hook, top,
            clients=[{"name": "checkout", "key": "${CHECKOUT_KEY}",
                      "webhook": "http://127.0.0.1:9/never"}],
        )  # fmt: skip
        message_id = f"mid-{uuid.uuid4().hex}"
        await ledger_of(client).remember(message_id, "mm7", sent("checkout"), 60)
    finally:
        redis.stop()

    answer = await post(client, report_for(message_id))
    assert answer.status == 200
    assert status_code(await answer.read())[1] == "1000"
    (event,) = hook.events  # the route's deliver_to: the client is not known now
    EVENT_SCHEMA.validate(event)
    assert event["submit"] is None
    registry = client.app[REGISTRY_KEY]
    assert recall_errors(registry) == 1
    assert (correlated(registry, "matched"), correlated(registry, "unmatched")) == (0, 0)
    (line,) = callback_lines(log_lines)
    assert line["level"] == "warning"
    assert (line["correlation"], line["delivered_to"], line["answered"]) == (
        "ledger_unavailable", "deliver_to", 1000,
    )  # fmt: skip
    assert "recall" in line["ledger_error"]
    assert str(redis.port) not in json.dumps(line)


# --- a client's own webhook -------------------------------------------------------------


async def two_webhooks(
    aiohttp_server: Any,
    proxy_client: Any,
    tmp_path: Path,
    client_answer: Handler | None = None,
    **inbound: Any,
) -> tuple[TestClient[web.Request, web.Application], Webhook, Webhook, list[bytes]]:
    """A proxy whose client ``checkout`` has its own webhook (answering ``client_answer``),
    and ``reports`` has none: (the proxy, the route's webhook, checkout's, the raw bodies
    checkout's got)."""
    route_hook, own = Webhook(), Webhook(client_answer)
    raw: list[bytes] = []

    async def keep(request: web.Request) -> web.StreamResponse:
        raw.append(await request.read())
        return await own.handler(request)

    app = web.Application()
    app.router.add_post("/checkout/events", keep)
    server = await aiohttp_server(app)
    top = {"ledger": {"path": str(tmp_path / "ledger.sqlite3")}}
    client = await correlating_proxy(
        aiohttp_server, proxy_client, route_hook, top,
        clients=[
            {"name": "checkout", "key": "${CHECKOUT_KEY}",
             "webhook": str(server.make_url("/checkout/events"))},
            {"name": "reports", "key": "${REPORTS_KEY}"},
        ],
        **inbound,
    )  # fmt: skip
    return client, route_hook, own, raw


async def test_a_client_s_report_goes_to_its_own_webhook_only(
    aiohttp_server: Any, proxy_client: Any, tmp_path: Path, log_lines: Any
) -> None:
    client, route_hook, own, raw = await two_webhooks(aiohttp_server, proxy_client, tmp_path)
    webhooks = client.app[CLIENT_WEBHOOKS_KEY]  # built once, at start-up
    assert list(webhooks) == ["checkout"]
    message_id, record = f"mid-{uuid.uuid4().hex}", sent("checkout")
    await ledger_of(client).remember(message_id, "mm7", record, 60)

    answer = await post(client, report_for(message_id))
    assert answer.status == 200
    assert status_code(await answer.read())[1] == "1000"
    assert route_hook.events == []  # the route's deliver_to got nothing
    (event,) = own.events
    EVENT_SCHEMA.validate(event)
    assert event["submit"] == record.as_submit()
    assert event["route"] == ROUTE
    headers = own.headers[0]
    assert headers["X-Request-ID"] == event["id"]
    # Signed like the route's events (the app verifies the body came from the proxy) ...
    stamp, digest = (part.split("=", 1)[1] for part in
                     headers["X-Gateway-Proxy-Signature"].split(","))  # fmt: skip
    expected = hmac.new(
        pii.SIGNING_SECRET.encode(), stamp.encode() + b"." + raw[0], hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(digest, expected)
    # ... but the route's headers, deliver_to's credentials, are not shown to it.
    assert "Authorization" not in headers
    registry = client.app[REGISTRY_KEY]
    assert correlated(registry, "matched") == 1
    labels = {"route": ROUTE, "event": "delivery_report", "status": "DELIVERED"}
    assert registry.get_sample_value("gateway_proxy_inbound_events_total", labels) == 1
    (line,) = callback_lines(log_lines)
    assert (line["route"], line["client"], line["delivered_to"], line["answered"]) == (
        ROUTE, "checkout", "client_webhook", 1000,
    )  # fmt: skip
    assert pii.CHECKOUT_KEY not in json.dumps(log_lines())


async def test_a_client_without_a_webhook_gets_the_route_s(
    aiohttp_server: Any, proxy_client: Any, tmp_path: Path
) -> None:
    client, route_hook, own, _ = await two_webhooks(aiohttp_server, proxy_client, tmp_path)
    message_id, record = f"mid-{uuid.uuid4().hex}", sent("reports")
    await ledger_of(client).remember(message_id, "mm7", record, 60)
    await post(client, report_for(message_id))
    assert own.events == []
    (event,) = route_hook.events
    assert event["submit"] == record.as_submit()
    assert route_hook.headers[0]["Authorization"].startswith("Bearer ")


async def server_error(request: web.Request) -> web.Response:
    return web.Response(status=503)


async def refused(request: web.Request) -> web.Response:
    return web.Response(status=422)


async def accepted(request: web.Request) -> web.Response:
    return web.Response(status=202)


@pytest.mark.parametrize(
    ("answer", "http", "code", "failure"),
    [
        (accepted, 200, "1000", None),
        (server_error, 500, "4006", "server_error"),  # the relay retries
        (refused, 200, "3002", "refused"),  # the app's refusal: not retried
    ],
)
async def test_the_relay_s_answer_follows_the_client_s_webhook(  # noqa: PLR0917
    aiohttp_server: Any, proxy_client: Any, tmp_path: Path, log_lines: Any,
    answer: Handler, http: int, code: str, failure: str | None,
) -> None:  # fmt: skip
    client, route_hook, own, _ = await two_webhooks(aiohttp_server, proxy_client, tmp_path, answer)
    message_id = f"mid-{uuid.uuid4().hex}"
    await ledger_of(client).remember(message_id, "mm7", sent("checkout"), 60)
    response = await post(client, report_for(message_id))
    assert response.status == http
    assert status_code(await response.read())[1] == code
    assert len(own.events) == 1
    assert route_hook.events == []  # no fallback: the relay's retry is the second chance
    registry = client.app[REGISTRY_KEY]
    for reason in ("server_error", "refused"):
        labels = {"route": ROUTE, "reason": reason}
        count = registry.get_sample_value("gateway_proxy_webhook_failures_total", labels)
        assert count == (1 if reason == failure else 0)
    (line,) = callback_lines(log_lines)
    assert (line["answered"], line["client"]) == (int(code), "checkout")


async def test_a_client_s_webhook_that_is_not_there_is_retried_by_the_relay(
    aiohttp_server: Any, proxy_client: Any, tmp_path: Path
) -> None:
    route_hook = Webhook()
    top = {"ledger": {"path": str(tmp_path / "ledger.sqlite3")}}
    client = await correlating_proxy(
        aiohttp_server, proxy_client, route_hook, top,
        clients=[{"name": "checkout", "key": "${CHECKOUT_KEY}",
                  "webhook": f"http://127.0.0.1:{free_port()}/nobody"}],
        timeout={"connect": 0.5, "total": 0.5},
    )  # fmt: skip
    message_id = f"mid-{uuid.uuid4().hex}"
    await ledger_of(client).remember(message_id, "mm7", sent("checkout"), 60)
    response = await post(client, report_for(message_id))
    assert response.status == 500
    assert status_code(await response.read())[1] == "4006"
    assert route_hook.events == []


async def test_a_client_s_webhook_on_the_inbound_listener(
    aiohttp_server: Any, tmp_path: Path
) -> None:
    """``inbound_listen``: the callbacks' own application shares the clients' webhooks
    and the ledger; here the send side is another handle on the same SQLite file, as a
    second --workers process would be."""
    own, route_hook = Webhook(), Webhook()
    own_url = await start_webhook(aiohttp_server, own)
    route_url = await start_webhook(aiohttp_server, route_hook)
    path = tmp_path / "ledger.sqlite3"
    config = make_config(
        {"name": "mms", "path_prefix": "/mm7", "upstream": "http://127.0.0.1:9/mm7"},
        listen=f"127.0.0.1:{free_port()}",
        admin_listen=f"127.0.0.1:{free_port()}",
        inbound_listen=f"127.0.0.1:{free_port()}",
        inbound=[{"name": ROUTE, "path_prefix": "/inbound/mm7", "deliver_to": route_url}],
        clients=[{"name": "checkout", "key": "${CHECKOUT_KEY}", "webhook": own_url}],
        ledger={"path": str(path)},
    )
    other = await SqliteLedger.open(path)
    try:
        message_id, record = f"mid-{uuid.uuid4().hex}", sent("checkout")
        async with Running(config) as proxy, aiohttp.ClientSession() as http:
            await other.remember(message_id, "mm7", record, 60)
            answer = await http.post(
                proxy.url("/inbound/mm7", inbound=True),
                data=report_for(message_id),
                headers={**XML, **RELAY_AUTH},
            )
            assert answer.status == 200
            assert answer_of(await answer.read()) == ("DeliveryReportRsp", NS, "1000")
    finally:
        await other.close()
    assert route_hook.events == []
    (event,) = own.events
    assert event["submit"] == record.as_submit()


# --- the pure parts ---------------------------------------------------------------------


def test_the_destination_is_the_matched_client_s_own_webhook_else_deliver_to() -> None:
    deliver_to = endpoint_of("http://app.example.invalid/events")
    own = endpoint_of("http://checkout.example.invalid/gateway-events")
    hooks = {"checkout": own}
    assert destination(Match(sent("checkout"), "matched"), deliver_to, hooks) == Destination(
        own, "checkout"
    )
    for found in (
        Match(sent("reports"), "matched"),  # a client without a webhook
        Match(sent("anonymous"), "matched"),
        Match(None, "unmatched"),
        Match(error="recall failed (ConnectionError)"),
        NOT_LOOKED_UP,
    ):
        assert destination(found, deliver_to, hooks) == Destination(deliver_to)


@pytest.fixture
async def sqlite_ledger(tmp_path: Path) -> AsyncIterator[SqliteLedger]:
    ledger = await SqliteLedger.open(tmp_path / "ledger.sqlite3")
    yield ledger
    await ledger.close()


async def test_match_asks_only_about_reports(sqlite_ledger: SqliteLedger) -> None:
    report = parse_callback(report_for("m-1"), "text/xml", 1 << 20)
    assert isinstance(report, DeliveryReport)
    record = sent()
    assert await match(sqlite_ledger, report, "mm7") == Match(None, "unmatched")
    await sqlite_ledger.remember("m-1", "mm7", record, 60)
    assert await match(sqlite_ledger, report, "mm7") == Match(record, "matched")
    assert await match(None, report, "mm7") == NOT_LOOKED_UP
    mogreet = MogreetCallback("message-in", "1", "1555", None, "hi", None, ())
    assert await match(sqlite_ledger, mogreet, "moms") == NOT_LOOKED_UP


async def test_match_turns_the_ledger_s_failure_into_an_error(tmp_path: Path) -> None:
    """A closed ledger fails like an unreachable one: ``LedgerUnavailable``, kept as the
    match's error, never raised."""
    ledger = await SqliteLedger.open(tmp_path / "ledger.sqlite3")
    await ledger.close()
    report = parse_callback(report_for("m-1"), "text/xml", 1 << 20)
    assert isinstance(report, DeliveryReport)
    with pytest.raises(LedgerUnavailable) as failure:
        await ledger.recall("m-1", "mm7")
    found = await match(ledger, report, "mm7")
    assert found == Match(error=failure.value.reason)
