"""Idempotency-Key through the proxy, on a real store (a SQLite file, a real redis-server).

Each rule of README "Safe retries and delivery reports" against a fake MM7 gateway that
counts what reached it: in flight (409), replay (the counter unchanged), another request
with the key (422), retryable answers released, TIMEOUT kept, the ledger down (503, not
forwarded), expiry, a restart of the proxy, the correlation record of a send.
"""

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client import generate_latest

from proxy.ledger.store import open_ledger
from proxy.server.keys import REGISTRY_KEY
from tests.conftest import ProxyFactory, make_config, validate_envelope
from tests.redis_server import RedisServer, free_port
from tests.test_server import SUBMIT_REQ

MM7_NS = "http://www.3gpp.org/ftp/Specs/archive/23_series/23.140/schema/REL-6-MM7-1-4"
XML = {"Content-Type": "text/xml"}


def submit_rsp(message_id: str, code: str = "1000", text: str = "Success") -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<env:Envelope xmlns:env="http://schemas.xmlsoap.org/soap/envelope/"><env:Body>
<SubmitRsp xmlns="{MM7_NS}"><MM7Version>6.8.0</MM7Version>
<Status><StatusCode>{code}</StatusCode><StatusText>{text}</StatusText></Status>
<MessageID>{message_id}</MessageID></SubmitRsp></env:Body></env:Envelope>"""


class Relay:
    """A fake MM7 relay: counts the sends that reached it, answers each with a new
    message id; ``codes`` (popped per send) and ``hold`` shape the next answers."""

    def __init__(self) -> None:
        self.sends: list[dict[str, Any]] = []
        self.codes: list[str] = []
        self.hold: asyncio.Event | None = None
        self.delay = 0.0
        self._ids = itertools.count(1)
        self.arrived = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.sends.append({"headers": dict(request.headers), "body": body})
        self.arrived.set()
        if self.hold is not None:
            await self.hold.wait()
        if self.delay:
            await asyncio.sleep(self.delay)
        code = self.codes.pop(0) if self.codes else "1000"
        text = "Success" if code == "1000" else "Refused"
        return web.Response(
            text=submit_rsp(f"mid-{next(self._ids)}", code, text), content_type="text/xml"
        )


@pytest.fixture(params=["sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The top-level config of a ledger in a SQLite file, or in a real Redis."""
    ledger = {"path": str(tmp_path / "ledger" / "ledger.sqlite3")}
    if request.param == "sqlite":
        yield {"ledger": ledger}
        return
    with RedisServer(tmp_path / "redis") as redis:
        yield {"ledger": ledger, "store": redis.url}


@pytest.fixture
async def relay(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> tuple[Relay, str]:
    fake = Relay()
    app = web.Application()
    app.router.add_post("/{tail:.*}", fake.handle)
    server = await aiohttp_server(app)
    return fake, str(server.make_url("/mm7"))


def route(upstream: str, **extra: Any) -> dict[str, Any]:
    return {"name": "mms", "path_prefix": "/mm7", "upstream": upstream, **extra}


async def send(
    client: Any,
    key: str | None = None,
    *,
    body: bytes = SUBMIT_REQ,
    headers: dict[str, str] | None = None,
) -> Any:
    headers = dict(headers or {})
    if key is not None:
        headers["Idempotency-Key"] = key
    resp = await client.post("/mm7", data=body, headers={**XML, **headers})
    resp.envelope = await resp.json(content_type=None) if "json" in resp.content_type else None
    if resp.envelope is not None:
        validate_envelope(resp.envelope)
    return resp


async def test_a_resend_with_the_key_is_replayed_and_never_reaches_the_relay(
    proxy_client: ProxyFactory, relay: tuple[Relay, str], store: dict[str, Any]
) -> None:
    fake, url = relay
    client = await proxy_client(make_config(route(url), **store))
    first = await send(client, "order-1")
    assert (first.status, first.envelope["code"]) == (200, "OK")
    assert "Idempotent-Replayed" not in first.headers
    for _ in range(3):
        again = await send(client, "order-1")
        assert again.status == 200
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.envelope == first.envelope  # the same message id, the same request id
    assert len(fake.sends) == 1
    other = await send(client, "order-2")  # another key is another message
    assert other.envelope["data"]["message_id"] != first.envelope["data"]["message_id"]
    assert len(fake.sends) == 2


async def test_the_same_key_while_in_flight_is_409_and_not_forwarded(
    proxy_client: ProxyFactory, relay: tuple[Relay, str], store: dict[str, Any]
) -> None:
    fake, url = relay
    fake.hold = asyncio.Event()
    client = await proxy_client(make_config(route(url), **store))
    first = asyncio.get_running_loop().create_task(send(client, "k-flight"), name="first")
    await fake.arrived.wait()
    second = await send(client, "k-flight")
    assert second.status == 409
    assert second.headers["Retry-After"] == "1"
    assert (second.envelope["code"], second.envelope["retryable"]) == (
        "IDEMPOTENCY_KEY_IN_USE",
        True,
    )
    fake.hold.set()
    assert (await first).status == 200
    assert len(fake.sends) == 1
    third = await send(client, "k-flight")
    assert third.headers["Idempotent-Replayed"] == "true"
    assert len(fake.sends) == 1


async def test_the_key_with_another_request_is_422(
    proxy_client: ProxyFactory, relay: tuple[Relay, str], store: dict[str, Any]
) -> None:
    fake, url = relay
    client = await proxy_client(make_config(route(url), **store))
    assert (await send(client, "k-reuse")).status == 200
    changed = await send(
        client, "k-reuse", body=SUBMIT_REQ.replace(b"+15550002002", b"+15550002003")
    )
    assert changed.status == 422
    assert (changed.envelope["code"], changed.envelope["retryable"]) == (
        "IDEMPOTENCY_KEY_REUSED",
        False,
    )
    other_path = await client.post(
        "/mm7/other", data=SUBMIT_REQ, headers={**XML, "Idempotency-Key": "k-reuse"}
    )
    assert other_path.status == 422
    assert len(fake.sends) == 1


async def test_a_retryable_answer_is_not_kept_and_the_retry_executes(
    proxy_client: ProxyFactory, relay: tuple[Relay, str], store: dict[str, Any]
) -> None:
    fake, url = relay
    fake.codes = ["4006"]  # Service unavailable: UPSTREAM_UNAVAILABLE, retryable
    client = await proxy_client(make_config(route(url), **store))
    first = await send(client, "k-retry")
    assert (first.envelope["code"], first.envelope["retryable"]) == ("UPSTREAM_UNAVAILABLE", True)
    second = await send(client, "k-retry")
    assert (second.status, second.envelope["code"]) == (200, "OK")
    assert "Idempotent-Replayed" not in second.headers
    assert len(fake.sends) == 2


async def test_a_connection_error_releases_the_key(
    proxy_client: ProxyFactory, store: dict[str, Any]
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/mm7"
    client = await proxy_client(make_config(route(dead), **store))
    for _ in range(2):  # never reached the gateway: retryable, so each retry executes
        resp = await send(client, "k-dead")
        assert (resp.envelope["code"], resp.envelope["retryable"]) == ("CONNECTION_ERROR", True)
        assert "Idempotent-Replayed" not in resp.headers


async def test_a_timeout_is_kept_so_a_blind_retry_never_sends_twice(
    proxy_client: ProxyFactory, relay: tuple[Relay, str], store: dict[str, Any]
) -> None:
    fake, url = relay
    fake.delay = 2.0
    client = await proxy_client(
        make_config(route(url, timeout={"connect": 0.3, "total": 0.3}), **store)
    )
    first = await send(client, "k-slow")
    assert (first.status, first.envelope["code"], first.envelope["retryable"]) == (
        504,
        "TIMEOUT",
        False,
    )
    fake.delay = 0.0
    again = await send(client, "k-slow")
    assert (again.status, again.envelope) == (504, first.envelope)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(fake.sends) == 1


async def test_a_refused_message_is_kept_too(
    proxy_client: ProxyFactory, relay: tuple[Relay, str], store: dict[str, Any]
) -> None:
    fake, url = relay
    fake.codes = ["3001"]  # Not Possible: the gateway's refusal, not retryable
    client = await proxy_client(make_config(route(url), **store))
    first = await send(client, "k-refused")
    assert first.envelope["ok"] is False
    again = await send(client, "k-refused")
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.envelope == first.envelope
    assert len(fake.sends) == 1


async def test_passthrough_replays_the_gateways_own_answer(
    proxy_client: ProxyFactory, relay: tuple[Relay, str], store: dict[str, Any]
) -> None:
    fake, url = relay
    client = await proxy_client(make_config(route(url, mode="passthrough"), **store))
    first = await client.post("/mm7", data=SUBMIT_REQ, headers={**XML, "Idempotency-Key": "p"})
    body = await first.read()
    again = await client.post("/mm7", data=SUBMIT_REQ, headers={**XML, "Idempotency-Key": "p"})
    assert (again.status, await again.read()) == (first.status, body)
    assert again.headers["Content-Type"] == first.headers["Content-Type"]
    assert again.headers["X-Gateway-Code"] == first.headers["X-Gateway-Code"] == "OK"
    assert again.headers["Idempotent-Replayed"] == "true"
    assert b"mid-1" in body
    assert len(fake.sends) == 1


async def test_keys_are_scoped_to_the_client(
    proxy_client: ProxyFactory, relay: tuple[Relay, str], store: dict[str, Any]
) -> None:
    from tests import pii

    fake, url = relay
    clients = [
        {"name": "checkout", "key": "${CHECKOUT_KEY}"},
        {"name": "reports", "key": "${REPORTS_KEY}"},
    ]
    client = await proxy_client(make_config(route(url), clients=clients, **store))
    for key in (pii.CHECKOUT_KEY, pii.REPORTS_KEY):
        resp = await send(client, "shared-key", headers={"Proxy-Authorization": f"Bearer {key}"})
        assert "Idempotent-Replayed" not in resp.headers
    assert len(fake.sends) == 2


async def test_the_ledger_down_is_503_and_nothing_is_sent(
    proxy_client: ProxyFactory, relay: tuple[Relay, str], tmp_path: Path, log_lines: Any
) -> None:
    fake, url = relay
    redis = RedisServer(tmp_path / "redis").start()
    top = {"ledger": {"path": str(tmp_path / "unused.sqlite3")}, "store": redis.url}
    client = await proxy_client(make_config(route(url), **top))
    assert (await send(client, "k-up")).status == 200
    redis.stop()
    down = await send(client, "k-down")
    assert down.status == 503
    assert (down.envelope["code"], down.envelope["retryable"]) == ("LEDGER_UNAVAILABLE", True)
    unkeyed = await send(client)  # a request without a key flows on
    assert (unkeyed.status, unkeyed.envelope["code"]) == (200, "OK")
    assert len(fake.sends) == 2  # k-up and the unkeyed one: never k-down
    failures = [line for line in log_lines() if line.get("event") == "ledger_unavailable"]
    assert {line["operation"] for line in failures} >= {"begin", "remember"}
    text = generate_latest(client.app[REGISTRY_KEY]).decode()
    assert 'gateway_proxy_ledger_errors_total{operation="begin",route="mms"} 1.0' in text
    assert 'gateway_proxy_idempotency_requests_total{result="unavailable",route="mms"} 1.0' in text


async def test_an_answer_expires_with_its_ttl(
    proxy_client: ProxyFactory, relay: tuple[Relay, str], store: dict[str, Any]
) -> None:
    fake, url = relay
    store = {**store, "ledger": {**store["ledger"], "idempotency_ttl": 1}}
    client = await proxy_client(make_config(route(url), **store))
    assert (await send(client, "k-ttl")).status == 200
    assert (await send(client, "k-ttl")).headers.get("Idempotent-Replayed") == "true"
    await asyncio.sleep(1.3)
    expired = await send(client, "k-ttl")
    assert "Idempotent-Replayed" not in expired.headers
    assert len(fake.sends) == 2


async def test_the_sqlite_ledger_survives_a_restart(
    proxy_client: ProxyFactory, relay: tuple[Relay, str], tmp_path: Path
) -> None:
    fake, url = relay
    top = {"ledger": {"path": str(tmp_path / "ledger.sqlite3")}}
    first_proxy = await proxy_client(make_config(route(url), **top))
    first = await send(first_proxy, "k-restart")
    await first_proxy.close()  # the proxy stops: its ledger is closed
    second_proxy = await proxy_client(make_config(route(url), **top))
    again = await send(second_proxy, "k-restart")
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.envelope == first.envelope
    assert len(fake.sends) == 1


async def test_bad_keys_and_a_required_key_are_400_before_the_gateway(
    proxy_client: ProxyFactory, relay: tuple[Relay, str], store: dict[str, Any]
) -> None:
    fake, url = relay
    client = await proxy_client(make_config(route(url, require_idempotency_key=True), **store))
    missing = await send(client)
    assert (missing.status, missing.envelope["code"]) == (400, "IDEMPOTENCY_KEY_REQUIRED")
    for bad in ("two words", "x" * 256, '"unterminated'):
        resp = await send(client, bad)
        assert (resp.status, resp.envelope["code"]) == (400, "IDEMPOTENCY_KEY_INVALID"), bad
        assert bad not in str(resp.envelope)
    quoted = await send(client, '"sf-key"')  # the draft's sf-string and the bare token: one key
    bare = await send(client, "sf-key")
    assert bare.headers["Idempotent-Replayed"] == "true"
    assert bare.envelope == quoted.envelope
    too_long = await send(client, "k-cb", headers={"X-Callback-Data": "x" * 1025})
    assert (too_long.status, too_long.envelope["code"]) == (400, "INVALID_REQUEST")
    assert len(fake.sends) == 1


async def test_a_send_is_remembered_for_its_reports_before_the_answer(
    proxy_client: ProxyFactory, relay: tuple[Relay, str], store: dict[str, Any], log_lines: Any
) -> None:
    """X-Callback-Data never reaches the gateway nor a log line; the message id is in the
    ledger, with the app's reference, when the app reads its answer."""
    fake, url = relay
    client = await proxy_client(make_config(route(url), **store))
    reference = "order-42/customer-7"
    keyed = await send(
        client, "k-corr", headers={"X-Callback-Data": reference, "X-Request-ID": "req-1"}
    )
    unkeyed = await send(client, headers={"X-Callback-Data": "plain", "X-Request-ID": "req-2"})
    ledger = await open_ledger(path=store["ledger"]["path"], store=store.get("store"))
    try:
        first = await ledger.recall(keyed.envelope["data"]["message_id"], "mm7")
        second = await ledger.recall(unkeyed.envelope["data"]["message_id"], "mm7")
    finally:
        await ledger.close()
    assert first is not None
    assert second is not None
    assert first.as_submit() | {"submitted_at": None} == {
        "request_id": "req-1", "client": "anonymous", "idempotency_key": "k-corr",
        "callback_data": reference, "submitted_at": None, "route": "mms",
    }  # fmt: skip
    assert (second.request_id, second.idempotency_key, second.callback_data) == (
        "req-2",
        None,
        "plain",
    )
    assert all("x-callback-data" not in {k.lower() for k in s["headers"]} for s in fake.sends)
    assert reference not in str(log_lines())


async def test_an_app_that_goes_away_mid_send_never_causes_a_second_send(
    proxy_client: ProxyFactory, relay: tuple[Relay, str], store: dict[str, Any]
) -> None:
    """The relay got the request, the app hung up before the answer: the key keeps an
    answer that says the outcome is unknown, and the app's retry gets it."""
    fake, url = relay
    fake.hold = asyncio.Event()
    client = await proxy_client(make_config(route(url), **store))
    first = asyncio.get_running_loop().create_task(send(client, "k-gone"), name="first")
    await fake.arrived.wait()
    first.cancel()
    await asyncio.sleep(0.2)
    fake.hold.set()
    for _ in range(50):
        retry = await send(client, "k-gone")
        if retry.status != 409:
            break
        await asyncio.sleep(0.05)
    assert retry.headers.get("Idempotent-Replayed") == "true"
    assert retry.envelope["code"] == "CLIENT_CLOSED_REQUEST"
    assert len(fake.sends) == 1


async def test_a_proxy_failure_after_the_send_never_causes_a_second_send(
    proxy_client: ProxyFactory,
    relay: tuple[Relay, str],
    store: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bug after the relay had the request: INTERNAL_ERROR, kept for the key (the outcome
    is unknown), so the app's retry gets it again instead of a second send."""
    from proxy.server import handle as handle_module

    def broken(*_: Any) -> None:
        raise RuntimeError("a bug in classification")

    fake, url = relay
    client = await proxy_client(make_config(route(url), **store))
    monkeypatch.setattr(handle_module, "_classify", broken)
    first = await send(client, "k-bug")
    assert (first.status, first.envelope["code"]) == (500, "INTERNAL_ERROR")
    monkeypatch.undo()
    for _ in range(50):  # the key is kept in the background, right after the answer
        retry = await send(client, "k-bug")
        if retry.status != 409:
            break
        await asyncio.sleep(0.05)
    assert retry.headers.get("Idempotent-Replayed") == "true"
    assert retry.envelope["code"] == "INTERNAL_ERROR"
    assert len(fake.sends) == 1
