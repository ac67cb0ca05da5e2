"""The simulator plays Mogreet: ``POST /sim/mogreet/incoming`` posts an incoming message.

The pure half (incoming.py) is checked with lxml alone; then the simulator posts through
a real proxy with a ``vendor: moms`` inbound route to a real webhook: the proxy's parser
and the simulator's renderer share no code, so each checks the other.
"""

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from lxml import etree

from proxy.tools.sim import SimSettings, create_sim_app
from proxy.tools.sim.incoming import (
    Incoming,
    IncomingError,
    incoming_from_params,
    incoming_request,
    incoming_verdict,
)
from tests.conftest import make_config
from tests.test_inbound_e2e import EVENT_SCHEMA, Webhook

SUBSCRIBER = "13108675309"


class Clock:
    """Records the simulator's backoffs instead of sleeping them."""

    def __init__(self) -> None:
        self.slept: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


def test_the_trigger_s_parameters_and_their_defaults() -> None:
    assert incoming_from_params({"msisdn": f" {SUBSCRIBER} "}) == Incoming(
        "message-in", "1", SUBSCRIBER
    )
    full = incoming_from_params(
        {"msisdn": SUBSCRIBER, "event": "stop", "campaign_id": "20948", "message": "STOP",
         "carrier": "T-Mobile", "subject": ""},
        [" http://a.invalid/1.jpg ", ""],
    )  # fmt: skip
    assert full == Incoming(
        "stop", "20948", SUBSCRIBER, "T-Mobile", "STOP", "", ("http://a.invalid/1.jpg",)
    )
    with pytest.raises(IncomingError, match="msisdn is required"):
        incoming_from_params({"message": "hi"})


def test_the_document_is_mogreet_s_shape() -> None:
    incoming = Incoming(
        "message-in", "20948", SUBSCRIBER, "Verizon Wireless", "hi <b> & ]]> there", "",
        ("http://a.invalid/1.jpg", "http://a.invalid/2.png"),
    )  # fmt: skip
    body = incoming_request(incoming)
    assert body.startswith(b'<?xml version="1.0"?>\n<mogreet>')
    assert b"<![CDATA[Verizon Wireless]]>" in body
    root = etree.fromstring(body)
    assert [child.tag for child in root] == [
        "event", "campaign_id", "msisdn", "carrier", "message", "subject", "images",
    ]  # fmt: skip
    assert root.findtext("message") == "hi <b> & ]]> there"
    assert [image.text for image in root.iter("image")] == list(incoming.images)
    bare = etree.fromstring(incoming_request(Incoming("stop", "1", SUBSCRIBER, message="STOP")))
    assert [child.tag for child in bare] == ["event", "campaign_id", "msisdn", "message"]


@pytest.mark.parametrize(
    ("status", "verdict"),
    [(200, "accepted"), (204, "accepted"), (None, "retry"), (500, "retry"), (503, "retry"),
     (400, "refused"), (422, "refused"), (301, "refused")],
)  # fmt: skip
def test_how_the_sender_takes_the_answer(status: int | None, verdict: str) -> None:
    assert incoming_verdict(status) == verdict


Client = TestClient[Any, Any]


async def proxy_with_mogreet_route(
    aiohttp_server: Callable[..., Awaitable[TestServer]], proxy_client: Any, webhook: Webhook
) -> Client:
    app = web.Application()
    app.router.add_post("/events", webhook.handler)
    hook = await aiohttp_server(app)
    config = make_config(
        {"name": "send", "path_prefix": "/moms", "vendor": "moms", "upstream": "http://127.0.0.1:9/"},
        inbound=[{"name": "mogreet-in", "path_prefix": "/inbound/moms", "vendor": "moms",
                  "deliver_to": str(hook.make_url("/events"))}],
    )  # fmt: skip
    return await proxy_client(config)  # type: ignore[no-any-return]


async def simulator(
    aiohttp_client: Callable[..., Awaitable[Client]], url: str | None, clock: Clock
) -> Client:
    settings = SimSettings(moms_callback_url=url, callback_backoff_ms=100)
    return await aiohttp_client(create_sim_app(settings, sleep=clock.sleep))


async def test_an_incoming_message_through_the_proxy_reaches_the_app(
    aiohttp_server: Any, aiohttp_client: Any, proxy_client: Any, log_lines: Any
) -> None:
    webhook = Webhook()
    proxy = await proxy_with_mogreet_route(aiohttp_server, proxy_client, webhook)
    clock = Clock()
    sim = await simulator(aiohttp_client, str(proxy.make_url("/inbound/moms")), clock)
    response = await sim.post(
        "/sim/mogreet/incoming",
        params=[("msisdn", SUBSCRIBER), ("message", "hello there"), ("carrier", "T-Mobile"),
                ("image", "http://a.invalid/dog.jpeg")],
    )  # fmt: skip
    assert response.status == 200
    assert await response.json() == {
        "posted_to": str(proxy.make_url("/inbound/moms")),
        "verdict": "accepted", "http_status": 200, "attempts": 1,
    }  # fmt: skip
    (event,) = webhook.events
    EVENT_SCHEMA.validate(event)
    assert (event["event"], event["sender"]["value"], event["vendor"]["carrier"]) == (
        "message", SUBSCRIBER, "T-Mobile",
    )  # fmt: skip
    assert [part.get("text") or part.get("url") for part in event["parts"]] == [
        "hello there", "http://a.invalid/dog.jpeg",
    ]  # fmt: skip
    (line,) = [line for line in log_lines() if line["event"] == "mogreet_incoming"]
    assert (line["verdict"], line["attempt"], line["mogreet_event"]) == (
        "accepted",
        1,
        "message-in",
    )


async def test_a_stop_through_the_proxy_is_an_opt_out(
    aiohttp_server: Any, aiohttp_client: Any, proxy_client: Any
) -> None:
    webhook = Webhook()
    proxy = await proxy_with_mogreet_route(aiohttp_server, proxy_client, webhook)
    sim = await simulator(aiohttp_client, str(proxy.make_url("/inbound/moms")), Clock())
    data = {"msisdn": SUBSCRIBER, "event": "stop", "message": "Stop KEYWORD"}  # a form this time
    response = await sim.post("/sim/mogreet/incoming", data=data)
    assert (await response.json())["verdict"] == "accepted"
    assert [(e["event"], e["text"]) for e in webhook.events] == [("opt_out", "Stop KEYWORD")]


async def test_a_failing_app_makes_mogreet_retry(
    aiohttp_server: Any, aiohttp_client: Any, proxy_client: Any
) -> None:
    async def fail(request: web.Request) -> web.Response:
        return web.Response(status=500)

    webhook = Webhook(fail)
    proxy = await proxy_with_mogreet_route(aiohttp_server, proxy_client, webhook)
    clock = Clock()
    sim = await simulator(aiohttp_client, str(proxy.make_url("/inbound/moms")), clock)
    response = await sim.post("/sim/mogreet/incoming", params={"msisdn": SUBSCRIBER})
    assert await response.json() == {
        "posted_to": str(proxy.make_url("/inbound/moms")),
        "verdict": "retry", "http_status": 503, "attempts": 3,
    }  # fmt: skip
    assert len(webhook.events) == 3  # each attempt reached the app, none was acknowledged
    assert clock.slept == [0.1, 0.2]


async def test_the_trigger_s_own_refusals(aiohttp_client: Any) -> None:
    without = await simulator(aiohttp_client, None, Clock())
    response = await without.post("/sim/mogreet/incoming", params={"msisdn": SUBSCRIBER})
    assert (response.status, await response.text()) == (
        409, "simulator: no --moms-callback-url is set\n",
    )  # fmt: skip
    with_url = await simulator(aiohttp_client, "http://127.0.0.1:9/x", Clock())
    response = await with_url.post("/sim/mogreet/incoming", params={"message": "hi"})
    assert response.status == 400
    assert "msisdn is required" in await response.text()


async def test_the_trigger_is_no_gateway_traffic_for_tps(aiohttp_client: Any) -> None:
    """With ``--tps`` (the demo runs both), playing Mogreet is never throttled and does not
    use the relay's contract: the send after three triggers is still admitted."""
    sim = await aiohttp_client(
        create_sim_app(SimSettings(moms_callback_url="http://127.0.0.1:9/x", tps=1))
    )
    for _ in range(3):
        response = await sim.post("/sim/mogreet/incoming", params={"message": "hi"})
        assert response.status == 400  # the trigger's own refusal, not a 429
    send = "/moms/transaction.send?campaign_id=1&from=21534&message=hi&to=15550001234"
    assert (await sim.get(send)).status == 200
    assert (await sim.get(send)).status == 429


def test_the_moms_callback_url_option() -> None:
    import argparse

    from proxy.tools.sim import add_simulate_arguments, settings_from_args

    parser = argparse.ArgumentParser()
    add_simulate_arguments(parser)
    url = "http://127.0.0.1:8080/inbound/moms"
    settings = settings_from_args(parser.parse_args(["--moms-callback-url", url]))
    assert (settings.moms_callback_url, settings.callback_url) == (url, None)
    assert settings_from_args(parser.parse_args([])).moms_callback_url is None
    with pytest.raises(SystemExit):
        parser.parse_args(["--moms-callback-url", "ftp://x/y"])
    by_hand = parser.parse_args([])
    by_hand.moms_callback_url = "nowhere"
    with pytest.raises(ValueError, match="--moms-callback-url"):
        settings_from_args(by_hand)
