"""Inbound end to end: a relay's callback through the proxy to a real aiohttp webhook.

The webhook accepts, refuses (4xx), fails (5xx), hangs past the timeout or is not there;
the relay's answer must say exactly that, and a report is never acknowledged with 1000
unless the webhook answered 2xx.
"""

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from lxml import etree

from proxy.server import REGISTRY_KEY
from tests.conftest import ROOT, make_config
from tests.test_forward import free_port

FIXTURES = Path(__file__).parent / "fixtures" / "inbound"
EVENT_SCHEMA = jsonschema.Draft202012Validator(
    json.loads((ROOT / "docs" / "event.schema.json").read_text())
)
REPORT = (FIXTURES / "deliveryreport-rel6-default-ns.xml").read_bytes()
NS = "http://www.3gpp.org/ftp/Specs/archive/23_series/23.140/schema/REL-6-MM7-1-4"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Webhook:
    """The app's webhook: records what it got and answers with ``answer``."""

    def __init__(self, answer: Handler | None = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.answer = answer

    async def handler(self, request: web.Request) -> web.StreamResponse:
        self.events.append(await request.json())
        self.headers.append(dict(request.headers))
        if self.answer is not None:
            return await self.answer(request)
        return web.Response(status=204)


async def proxy_with_webhook(
    aiohttp_server: Any,
    proxy_client: Any,
    webhook: Webhook | None,
    **inbound: Any,
) -> TestClient[web.Request, web.Application]:
    if webhook is not None:
        app = web.Application()
        app.router.add_post("/events", webhook.handler)
        server: TestServer = await aiohttp_server(app)
        deliver_to = str(server.make_url("/events"))
    else:
        deliver_to = f"http://127.0.0.1:{free_port()}/events"  # nobody listens
    config = make_config(
        {"name": "send", "path_prefix": "/mm7", "upstream": "http://127.0.0.1:9/"},
        inbound=[
            {
                "name": "mm7-events",
                "path_prefix": "/inbound/mm7",
                "deliver_to": deliver_to,
                "headers": {"Authorization": "Bearer ${TEST_SECRET}"},
                **inbound,
            }
        ],
    )
    return await proxy_client(config)  # type: ignore[no-any-return]


def status_code(body: bytes) -> tuple[str, str]:
    """(the answer element's name, its StatusCode)."""
    root = etree.fromstring(body)
    (code,) = (el for el in root.iter() if etree.QName(el).localname == "StatusCode")
    rsp = code.getparent().getparent()  # type: ignore[union-attr]
    return etree.QName(rsp).localname, code.text or ""


async def post(client: TestClient[web.Request, web.Application], body: bytes) -> Any:
    return await client.post(
        "/inbound/mm7", data=body, headers={"Content-Type": "text/xml; charset=utf-8"}
    )


async def test_an_accepted_report_is_acknowledged_with_1000(
    aiohttp_server: Any, proxy_client: Any, log_lines: Any
) -> None:
    webhook = Webhook()
    client = await proxy_with_webhook(aiohttp_server, proxy_client, webhook)
    answer = await post(client, REPORT)
    body = await answer.read()
    assert answer.status == 200
    assert status_code(body) == ("DeliveryReportRsp", "1000")
    root = etree.fromstring(body)
    assert root.findtext(f".//{{{NS}}}TransactionID") == "dr-0001"  # echoed in the Header
    (event,) = webhook.events
    EVENT_SCHEMA.validate(event)
    assert (event["event"], event["status"], event["final"]) == (
        "delivery_report",
        "DELIVERED",
        True,
    )
    assert event["message_id"] == "msg-7f3a9c"
    assert event["vendor"]["mm_status"] == "Retrieved"
    assert event["vendor"]["relay_server_id"] == "relay-east-1"
    assert webhook.headers[0]["X-Request-ID"] == event["id"]
    assert webhook.headers[0]["Authorization"].startswith("Bearer ")
    (line,) = [line for line in log_lines() if line["event"] == "callback"]
    assert (line["kind"], line["status"], line["answered"]) == (
        "delivery_report",
        "DELIVERED",
        1000,
    )
    assert "15550100123" not in json.dumps(log_lines())  # events are PII: never logged
    registry = client.app[REGISTRY_KEY]
    labels = {"route": "mm7-events", "event": "delivery_report", "status": "DELIVERED"}
    assert registry.get_sample_value("gateway_proxy_inbound_events_total", labels) == 1


async def refuse(request: web.Request) -> web.Response:
    return web.Response(status=422, text="unknown message")


async def fail(request: web.Request) -> web.Response:
    return web.Response(status=503)


async def hang(request: web.Request) -> web.Response:
    await asyncio.sleep(30)
    return web.Response(status=200)


@pytest.mark.parametrize(
    ("answer", "http", "code", "reason"),
    [
        (refuse, 200, "3002", "refused"),  # the app's refusal: not to be retried
        (fail, 500, "4006", "server_error"),  # retried by the relay
        (hang, 500, "4006", "timeout"),
        (None, 500, "4006", "connect"),  # the webhook is not there
    ],
)
async def test_a_report_the_app_did_not_accept_is_never_acknowledged(  # noqa: PLR0917
    aiohttp_server: Any, proxy_client: Any, log_lines: Any,
    answer: Handler | None, http: int, code: str, reason: str,
) -> None:  # fmt: skip
    webhook = Webhook(answer) if answer is not None else None
    client = await proxy_with_webhook(
        aiohttp_server, proxy_client, webhook, timeout={"connect": 0.5, "total": 0.5}
    )
    response = await post(client, REPORT)
    body = await response.read()
    assert response.status == http
    element, got = status_code(body)
    assert got == code
    assert got != "1000"
    if http == 500:
        assert element == "VASPErrorRsp"
        assert b"Fault" in body
    (line,) = [line for line in log_lines() if line["event"] == "callback"]
    assert line["answered"] == int(code)
    assert ("refused by the app" in line["outcome"]) == (reason == "refused")
    registry = client.app[REGISTRY_KEY]
    labels = {"route": "mm7-events", "reason": reason}
    assert registry.get_sample_value("gateway_proxy_webhook_failures_total", labels) == 1


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("xxe-deliveryreport.xml", "2007"),
        ("billion-laughs-readreply.xml", "2007"),
        ("wrong-root-submitrsp.xml", "4004"),
        ("submitreq-unsupported.xml", "4003"),
        ("deliveryreport-missing-mmstatus.xml", "4004"),
    ],
)
async def test_a_callback_the_proxy_cannot_take_is_never_forwarded(
    aiohttp_server: Any, proxy_client: Any, name: str, code: str
) -> None:
    webhook = Webhook()
    client = await proxy_with_webhook(aiohttp_server, proxy_client, webhook)
    response = await post(client, (FIXTURES / name).read_bytes())
    assert response.status == 200
    assert status_code(await response.read())[1] == code
    assert webhook.events == []


async def test_an_oversize_callback_is_2007_and_never_read_whole(
    aiohttp_server: Any, proxy_client: Any
) -> None:
    webhook = Webhook()
    client = await proxy_with_webhook(aiohttp_server, proxy_client, webhook, max_request_bytes=1000)
    response = await post(client, REPORT + b" " * 2000)
    assert status_code(await response.read())[1] == "2007"
    assert webhook.events == []


async def test_read_replies_and_messages_become_events(
    aiohttp_server: Any, proxy_client: Any
) -> None:
    webhook = Webhook()
    client = await proxy_with_webhook(aiohttp_server, proxy_client, webhook)
    read = await post(client, (FIXTURES / "readreply-rel6.xml").read_bytes())
    assert status_code(await read.read()) == ("ReadReplyRsp", "1000")
    content_type, _, body = (FIXTURES / "deliver-related-smil.http").read_bytes().partition(b"\n\n")
    message = await client.post(
        "/inbound/mm7", data=body, headers={"Content-Type": content_type.decode()[14:].strip()}
    )
    assert status_code(await message.read()) == ("DeliverRsp", "1000")
    kinds = [event["event"] for event in webhook.events]
    assert kinds == ["read_reply", "message"]
    for event in webhook.events:
        EVENT_SCHEMA.validate(event)
    assert webhook.events[1]["parts"]


async def test_inbound_routes_take_only_post(aiohttp_server: Any, proxy_client: Any) -> None:
    client = await proxy_with_webhook(aiohttp_server, proxy_client, Webhook())
    response = await client.get("/inbound/mm7")
    assert (await response.json(content_type=None))["code"] == "INVALID_REQUEST"


async def test_callbacks_count_against_max_in_flight(
    aiohttp_server: Any, proxy_client: Any
) -> None:
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(status=200)

    webhook = Webhook(slow)
    app = web.Application()
    app.router.add_post("/events", webhook.handler)
    server = await aiohttp_server(app)
    config = make_config(
        {"name": "send", "path_prefix": "/mm7", "upstream": "http://127.0.0.1:9/"},
        inbound=[{"name": "ev", "path_prefix": "/inbound/mm7", "deliver_to": str(server.make_url("/events"))}],
        max_in_flight=1,
    )  # fmt: skip
    client = await proxy_client(config)
    first = asyncio.ensure_future(post(client, REPORT))  # noqa: TID251
    for _ in range(200):
        if webhook.events:
            break
        await asyncio.sleep(0.01)
    shed = await post(client, REPORT)
    assert shed.status == 500  # 4006 in a Fault: the relay retries later
    assert status_code(await shed.read())[1] == "4006"
    release.set()
    assert status_code(await (await first).read())[1] == "1000"
