"""Overload: past max_in_flight the proxy answers at once, without contacting the gateway."""

import asyncio
from typing import Any

from aiohttp import web

from proxy.server import REGISTRY_KEY
from tests.test_server import SUBMIT_REQ, submit_rsp


class Gate:
    """A gateway that holds every request until ``release``; counts what reached it."""

    def __init__(self) -> None:
        self.arrived = 0
        self.open = asyncio.Event()

    async def __call__(self, request: web.Request) -> web.Response:
        await request.read()
        self.arrived += 1
        await self.open.wait()
        return submit_rsp()

    async def until(self, count: int) -> None:
        for _ in range(500):
            if self.arrived >= count:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"only {self.arrived} requests reached the gateway")


async def test_past_the_global_limit_requests_are_shed(one_route_proxy: Any) -> None:
    gate = Gate()
    client = await one_route_proxy(gate, top={"max_in_flight": 2})
    held = [asyncio.ensure_future(client.post("/gw", data=SUBMIT_REQ)) for _ in range(2)]  # noqa: TID251
    await gate.until(2)
    shed = await client.post("/gw", data=SUBMIT_REQ)
    envelope = await shed.json(content_type=None)
    assert (shed.status, envelope["code"], envelope["retryable"]) == (503, "OVERLOADED", True)
    assert shed.headers["Retry-After"].isdigit()
    assert gate.arrived == 2  # the gateway was never contacted for it
    registry = client.app[REGISTRY_KEY]
    rejected = {"route": "gw", "reason": "shed"}
    assert registry.get_sample_value("gateway_proxy_rejected_requests_total", rejected) == 1
    gate.open.set()
    assert [r.status for r in await asyncio.gather(*held)] == [200, 200]
    again = await client.post("/gw", data=SUBMIT_REQ)  # room again once they finished
    assert again.status == 200


async def test_a_route_limit_sheds_only_that_route(one_route_proxy: Any) -> None:
    gate = Gate()
    client = await one_route_proxy(gate, max_in_flight=1)
    held = asyncio.ensure_future(client.post("/gw", data=SUBMIT_REQ))  # noqa: TID251
    await gate.until(1)
    shed = await client.post("/gw", data=SUBMIT_REQ)
    assert (await shed.json(content_type=None))["code"] == "OVERLOADED"
    gate.open.set()
    assert (await held).status == 200


async def test_shed_requests_are_logged_with_their_own_code(
    one_route_proxy: Any, log_lines: Any
) -> None:
    gate = Gate()
    client = await one_route_proxy(gate, top={"max_in_flight": 1})
    held = asyncio.ensure_future(client.post("/gw", data=SUBMIT_REQ))  # noqa: TID251
    await gate.until(1)
    await client.post("/gw", data=SUBMIT_REQ)
    gate.open.set()
    await held
    codes = [line["code"] for line in log_lines() if line["event"] == "request"]
    assert sorted(codes) == ["OK", "OVERLOADED"]


async def test_listen_backlog_sets_the_listen_queue(gateway: Any) -> None:
    """The kernel shows a listening socket's backlog as its Send-Q (ss -ltn)."""
    import shutil

    from proxy.process.serve import serve
    from tests.conftest import make_config
    from tests.test_forward import free_port

    ss = shutil.which("ss")
    assert ss, "iproute2's ss is needed to read the listen queue"
    app = web.Application()
    upstream = await gateway(app)
    port = free_port()
    config = make_config(
        {"path_prefix": "/gw", "upstream": str(upstream.make_url("/"))},
        listen=f"127.0.0.1:{port}",
        admin_listen=f"127.0.0.1:{free_port()}",
        listen_backlog=777,
    )
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.get_running_loop().create_task(serve(config, stop=stop, on_ready=ready.set))
    await asyncio.wait_for(ready.wait(), 10)
    ss_run = await asyncio.create_subprocess_exec(
        ss, "-ltnH", f"sport = :{port}", stdout=asyncio.subprocess.PIPE
    )
    listing = (await ss_run.communicate())[0].decode().split()
    stop.set()
    await asyncio.wait_for(task, 10)
    assert listing[0] == "LISTEN"
    assert listing[2] == "777"  # Send-Q of a listening socket: its backlog
