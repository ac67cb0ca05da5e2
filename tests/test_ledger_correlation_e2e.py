"""Correlation end to end, through the simulator: an app's SubmitReq with ``Idempotency-Key``
and ``X-Callback-Data`` through the proxy's send route to the simulated relay, whose
DeliveryReportReq comes back to the proxy's inbound route; its event must carry the send's
``submit``. Real sockets on loopback, a real SQLite ledger in tmp_path, and the simulator
as the independent relay (it shares no parsing with the proxy).

The simulator's reporter waits on a gate (its ``sleep``) that the test opens once the app
has its answer: the relay reports after the SubmitRsp, as a real one does, and nothing
here depends on how long anything takes.
"""

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from proxy.aio.testing import GuardedTestServer
from proxy.server import REGISTRY_KEY, create_app, runner
from proxy.tools.sim import SimSettings, create_sim_app
from proxy.tools.sim.callback import REPORTER_KEY
from proxy.tools.sim.mm7 import submit_request
from tests import pii
from tests.conftest import Checks, make_config
from tests.test_forward import free_port
from tests.test_inbound_e2e import EVENT_SCHEMA, Webhook
from tests.test_sim_callback import Clock

RECIPIENT = "+15550001000"  # the simulator's success


async def start_webhook(aiohttp_server: Any, hook: Webhook, path: str) -> str:
    app = web.Application()
    app.router.add_post(path, hook.handler)
    server: TestServer = await aiohttp_server(app)
    return str(server.make_url(path))


@pytest.mark.parametrize("own_webhook", [False, True], ids=["route-webhook", "client-webhook"])
async def test_the_simulator_s_report_carries_the_send_s_submit(  # noqa: PLR0917
    aiohttp_server: Any,
    aiohttp_client: Any,
    checks: Checks,
    tmp_path: Path,
    log_lines: Any,
    own_webhook: bool,
) -> None:
    route_hook, client_hook = Webhook(), Webhook()
    route_url = await start_webhook(aiohttp_server, route_hook, "/events")
    client_url = await start_webhook(aiohttp_server, client_hook, "/checkout/events")
    proxy_port = free_port()  # the relay must know where to report before the proxy runs
    gate = Clock(open_gate=False)
    sim_app = create_sim_app(
        SimSettings(callback_url=f"http://127.0.0.1:{proxy_port}/inbound/mm7"),
        sleep=gate.sleep,
    )
    sim = await aiohttp_server(sim_app)
    checkout = {"name": "checkout", "key": "${CHECKOUT_KEY}"}
    config = make_config(
        {"name": "mms", "path_prefix": "/mm7", "upstream": str(sim.make_url("/mm7"))},
        inbound=[{"name": "mm7-events", "path_prefix": "/inbound/mm7", "deliver_to": route_url}],
        clients=[{**checkout, "webhook": client_url} if own_webhook else checkout],
        ledger={"path": str(tmp_path / "ledger.sqlite3")},
    )
    app = checks.watch(create_app(config, registry=checks.registry()))
    proxy: TestClient[web.Request, web.Application] = await aiohttp_client(
        GuardedTestServer(app, runner, port=proxy_port)
    )

    answer = await proxy.post(
        "/mm7",
        data=submit_request(RECIPIENT),
        headers={
            "Content-Type": "text/xml; charset=utf-8",
            "Proxy-Authorization": f"Bearer {pii.CHECKOUT_KEY}",
            "Idempotency-Key": "k1",
            "X-Callback-Data": "order-42",
        },
    )
    envelope = await answer.json()
    assert (answer.status, envelope["ok"], envelope["code"]) == (200, True, "OK")
    message_id = envelope["data"]["message_id"]

    gate.gate.set()  # the relay reports now, after the app got its answer
    assert await asyncio.wait_for(sim_app[REPORTER_KEY].wait_idle(), 30) == ["accepted"]

    got, other = (client_hook, route_hook) if own_webhook else (route_hook, client_hook)
    assert other.events == []
    (event,) = got.events
    EVENT_SCHEMA.validate(event)
    assert (event["event"], event["message_id"], event["status"]) == (
        "delivery_report", message_id, "DELIVERED",
    )  # fmt: skip
    submit = event["submit"]
    assert submit is not None, "the report was not matched to its send"
    assert {k: v for k, v in submit.items() if k != "submitted_at"} == {
        "request_id": envelope["request_id"],
        "client": "checkout",
        "idempotency_key": "k1",
        "callback_data": "order-42",
        "route": "mms",
    }
    submitted = datetime.fromisoformat(submit["submitted_at"])
    assert submitted <= datetime.fromisoformat(event["received_at"])
    labels = {"route": "mm7-events", "result": "matched"}
    registry = app[REGISTRY_KEY]
    assert registry.get_sample_value("gateway_proxy_correlated_events_total", labels) == 1
    assert "order-42" not in str(log_lines())  # the app's callback data is never logged
