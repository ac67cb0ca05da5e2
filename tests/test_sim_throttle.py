"""``simulate --tps N``: the relay's throughput, its throttling answers, and what the
proxy makes of them: the app sees throttling without a rate limit, only successes with
one; and two simulators show failover."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from proxy.tools.sim import SimSettings, create_sim_app
from proxy.tools.sim.mm7 import submit_request
from proxy.tools.sim.settings import add_simulate_arguments, settings_from_args
from proxy.tools.sim.throttle import Throughput
from tests.conftest import ProxyFactory, make_config

Start = Callable[..., Awaitable[TestServer]]
SUBMIT = submit_request("+15550001000").encode()
MOMS_SEND = "/moms/transaction.send?campaign_id=1&from=21534&message=hi&to=15550001234"


def test_a_throughput_admits_n_at_once_then_n_a_second() -> None:
    bucket = Throughput(2)
    assert [bucket.admit(10.0) for _ in range(3)] == [True, True, False]
    assert bucket.retry_after() == 1
    assert bucket.admit(10.25) is False
    assert bucket.admit(10.5) is True  # one more every half second
    assert (bucket.admitted, bucket.throttled) == (3, 2)


def test_tps_is_a_positive_number() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    add_simulate_arguments(parser)
    assert settings_from_args(parser.parse_args(["--tps", "50"])).tps == 50.0
    assert settings_from_args(parser.parse_args([])).tps is None
    for bad in ("0", "-1", "fast", "inf"):
        with pytest.raises(SystemExit):
            parser.parse_args(["--tps", bad])


async def test_each_vendor_throttles_its_own_way(aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_sim_app(SimSettings(tps=1)))
    assert (await client.post("/mm7", data=SUBMIT)).status == 200
    mm7 = await client.post("/mm7", data=SUBMIT)
    body = await mm7.text()
    assert (mm7.status, mm7.headers["Retry-After"]) == (429, "1")
    assert "<faultcode>env:Server.Throttled</faultcode>" in body
    moms = await client.get(MOMS_SEND)
    assert (moms.status, moms.headers["Retry-After"]) == (429, "1")
    assert "Too Many Requests" in await moms.text()
    assert (await client.get("/healthz")).status == 200  # probes are never throttled


async def burst(client: Any, path: str, count: int) -> list[tuple[str, str]]:
    async def one() -> tuple[str, str]:
        resp = await client.post(path, data=SUBMIT)
        envelope = await resp.json()
        return envelope["code"], envelope["vendor"]["name"]

    async with asyncio.timeout(60):
        return list(await asyncio.gather(*(one() for _ in range(count))))


async def test_without_a_rate_limit_the_app_sees_the_relay_s_throttling(
    aiohttp_server: Start, proxy_client: ProxyFactory
) -> None:
    sim = await aiohttp_server(create_sim_app(SimSettings(tps=3)))
    config = make_config(
        {"name": "mms", "path_prefix": "/mm7", "upstream": str(sim.make_url("/mm7"))}
    )
    got = await burst(await proxy_client(config), "/mm7", 9)
    assert got.count(("RATE_LIMITED", "mm7")) >= 5  # the relay's own answer, classified
    assert {code for code, _ in got} == {"OK", "RATE_LIMITED"}


async def test_with_a_rate_limit_the_app_sees_only_successes(
    aiohttp_server: Start, proxy_client: ProxyFactory
) -> None:
    sim = await aiohttp_server(create_sim_app(SimSettings(tps=3)))
    config = make_config({
        "name": "mms", "path_prefix": "/mm7", "upstream": str(sim.make_url("/mm7")),
        "rate_limit": {"per_second": 3, "burst": 3, "max_wait": 10},
    })  # fmt: skip
    got = await burst(await proxy_client(config), "/mm7", 9)
    assert got == [("OK", "mm7")] * 9


async def test_two_simulators_show_failover(
    aiohttp_server: Start, proxy_client: ProxyFactory
) -> None:
    first = await aiohttp_server(create_sim_app(SimSettings()))
    second = await aiohttp_server(create_sim_app(SimSettings()))
    config = make_config({
        "name": "mms", "path_prefix": "/mm7",
        "upstreams": [str(first.make_url("/mm7")), str(second.make_url("/mm7"))],
    })  # fmt: skip
    client = await proxy_client(config)

    async def endpoint() -> str:
        envelope = await (await client.post("/mm7", data=SUBMIT)).json()
        assert envelope["code"] == "OK"
        return str(envelope["vendor"]["endpoint"])

    assert await endpoint() == f"127.0.0.1:{first.port}"
    await first.close()  # the primary goes away: connections are refused
    assert await endpoint() == f"127.0.0.1:{second.port}"
