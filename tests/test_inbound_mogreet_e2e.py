"""Mogreet's incoming messages end to end: a ``vendor: moms`` inbound route, real sockets.

Mogreet's POST goes through the proxy to a real aiohttp webhook; Mogreet's answer must be
2xx only once the webhook answered 2xx, 5xx whenever resending can help, and the event
never logged.
"""

import asyncio
import json
from typing import Any

import pytest
from aiohttp import web

from proxy.config import ConfigError, InboundRoute
from proxy.inbound.handler import unavailable
from proxy.server import REGISTRY_KEY
from tests.conftest import make_config
from tests.test_inbound_e2e import EVENT_SCHEMA, FIXTURES, Handler, Webhook, proxy_with_webhook

MESSAGE = (FIXTURES / "mogreet-message-in-mms.xml").read_bytes()
STOP = (FIXTURES / "mogreet-stop.xml").read_bytes()
SUBSCRIBER = "13108675309"  # tests/pii.py: the leak check watches for it


async def mogreet_proxy(
    aiohttp_server: Any, proxy_client: Any, webhook: Webhook | None, **inbound: Any
) -> Any:
    return await proxy_with_webhook(aiohttp_server, proxy_client, webhook, vendor="moms", **inbound)


async def post(client: Any, body: bytes, content_type: str = "application/xml") -> Any:
    return await client.post("/inbound/mm7", data=body, headers={"Content-Type": content_type})


async def test_an_incoming_message_becomes_a_message_event(
    aiohttp_server: Any, proxy_client: Any, log_lines: Any
) -> None:
    webhook = Webhook()
    client = await mogreet_proxy(aiohttp_server, proxy_client, webhook)
    response = await post(client, MESSAGE)
    assert (response.status, await response.text()) == (200, "OK\n")
    (event,) = webhook.events
    EVENT_SCHEMA.validate(event)
    assert (event["event"], event["route"], event["sender"]["value"]) == (
        "message", "mm7-events", SUBSCRIBER,
    )  # fmt: skip
    assert [part.get("url") for part in event["parts"]][1:] == [
        "http://media.example.invalid/mo-mms/images/4711_1.jpeg",
        "http://media.example.invalid/mo-mms/images/4711_2.PNG?v=2",
    ]
    assert webhook.headers[0]["X-Request-ID"] == event["id"]
    assert webhook.headers[0]["Content-Type"] == "application/json"
    (line,) = [line for line in log_lines() if line["event"] == "callback"]
    assert (line["kind"], line["answered"], line["vendor_event"]) == ("message", 200, "message-in")
    assert "my dog" not in json.dumps(log_lines())  # the content is never logged
    registry = client.app[REGISTRY_KEY]
    labels = {"route": "mm7-events", "event": "message", "status": "none"}
    assert registry.get_sample_value("gateway_proxy_inbound_events_total", labels) == 1


async def test_a_stop_becomes_an_opt_out_event(aiohttp_server: Any, proxy_client: Any) -> None:
    webhook = Webhook()
    client = await mogreet_proxy(aiohttp_server, proxy_client, webhook)
    response = await post(client, STOP)
    assert response.status == 200
    (event,) = webhook.events
    EVENT_SCHEMA.validate(event)
    assert (event["event"], event["text"], event["vendor"]["event"]) == (
        "opt_out", "Stop KEYWORD", "stop",
    )  # fmt: skip
    registry = client.app[REGISTRY_KEY]
    labels = {"route": "mm7-events", "event": "opt_out", "status": "none"}
    assert registry.get_sample_value("gateway_proxy_inbound_events_total", labels) == 1


async def refuse(request: web.Request) -> web.Response:
    return web.Response(status=400)


async def fail(request: web.Request) -> web.Response:
    return web.Response(status=500)


async def busy(request: web.Request) -> web.Response:
    return web.Response(status=429)


async def hang(request: web.Request) -> web.Response:
    await asyncio.sleep(30)
    return web.Response(status=200)


@pytest.mark.parametrize(
    ("answer", "status", "reason"),
    [
        (refuse, 422, "refused"),  # the app's refusal: not to be resent unchanged
        (busy, 503, "refused"),  # "later": Mogreet may resend
        (fail, 503, "server_error"),
        (hang, 503, "timeout"),
        (None, 503, "connect"),  # the webhook is not there
    ],
)
async def test_a_post_the_app_did_not_take_is_never_acknowledged(  # noqa: PLR0917
    aiohttp_server: Any, proxy_client: Any, log_lines: Any,
    answer: Handler | None, status: int, reason: str,
) -> None:  # fmt: skip
    webhook = Webhook(answer) if answer is not None else None
    client = await mogreet_proxy(
        aiohttp_server, proxy_client, webhook, timeout={"connect": 0.5, "total": 0.5}
    )
    response = await post(client, MESSAGE)
    assert response.status == status
    assert await response.text() != "OK\n"
    (line,) = [line for line in log_lines() if line["event"] == "callback"]
    assert line["answered"] == status
    registry = client.app[REGISTRY_KEY]
    labels = {"route": "mm7-events", "reason": reason}
    assert registry.get_sample_value("gateway_proxy_webhook_failures_total", labels) == 1


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ((FIXTURES / "mogreet-xxe.xml").read_bytes(), 400),
        ((FIXTURES / "mogreet-two-msisdns.xml").read_bytes(), 400),
        (b"<response code='1' status='success'/>", 400),
        (MESSAGE + b" " * 2000, 413),
    ],
)
async def test_a_post_the_proxy_cannot_take_is_never_forwarded(
    aiohttp_server: Any, proxy_client: Any, log_lines: Any, body: bytes, status: int
) -> None:
    webhook = Webhook()
    client = await mogreet_proxy(aiohttp_server, proxy_client, webhook, max_request_bytes=1000)
    response = await post(client, body)
    assert response.status == status
    assert webhook.events == []
    (line,) = [line for line in log_lines() if line["event"] == "callback"]
    assert (line["kind"], line["answered"]) == ("invalid", status)


async def test_json_posts_are_taken_too(aiohttp_server: Any, proxy_client: Any) -> None:
    webhook = Webhook()
    client = await mogreet_proxy(aiohttp_server, proxy_client, webhook)
    body = json.dumps({"event": "stop", "msisdn": SUBSCRIBER, "message": "STOP"}).encode()
    response = await post(client, body, "application/json")
    assert response.status == 200
    assert [event["event"] for event in webhook.events] == ["opt_out"]


def test_a_shed_or_cut_post_is_told_to_come_back() -> None:
    route = InboundRoute("mogreet", "/inbound/mogreet", "http://127.0.0.1:9/", vendor="moms")
    response = unavailable(route, "the proxy is at max_in_flight")
    assert response.status == 503
    assert response.content_type == "text/plain"


def test_moms_inbound_routes_are_configurable_and_other_vendors_are_not() -> None:
    def config(vendor: str) -> Any:
        return make_config(
            {"name": "send", "path_prefix": "/mm7", "upstream": "http://127.0.0.1:9/"},
            inbound=[{"name": "in", "path_prefix": "/inbound", "vendor": vendor,
                      "deliver_to": "http://127.0.0.1:9/events"}],
        )  # fmt: skip

    assert config("moms").inbound[0].vendor == "moms"
    assert config("mm7").inbound[0].vendor == "mm7"
    with pytest.raises(ConfigError) as error:
        config("sms")
    assert error.value.errors == ["<test>: inbound[0].vendor: must be one of mm7, moms, got 'sms'"]
