"""``make demo-traffic`` (bench/traffic.py) against the simulator behind the proxy."""

from collections.abc import Awaitable, Callable

import pytest
from aiohttp.test_utils import TestServer

from bench import traffic
from proxy.codes.catalog import Catalog
from proxy.server import create_app
from proxy.tools.sim import SimSettings, create_sim_app
from tests.conftest import Checks, make_config

Server = Callable[..., Awaitable[TestServer]]


async def test_traffic_stops_by_itself_and_gets_envelopes(
    aiohttp_server: Server, catalog: Catalog, checks: Checks
) -> None:
    sim = await aiohttp_server(create_sim_app(SimSettings()))
    timeout = {"connect": 1, "total": 1}
    config = make_config(
        {"name": "mms", "path_prefix": "/mm7", "vendor": "mm7",
         "upstream": str(sim.make_url("/mm7")), "timeout": timeout},
        {"name": "moms", "path_prefix": "/moms", "vendor": "moms",
         "upstream": str(sim.make_url("/moms")), "timeout": timeout},
    )  # fmt: skip
    proxy = await aiohttp_server(checks.watch(create_app(config, registry=checks.registry())))
    ns = traffic.parse_args(
        ["--proxy", str(proxy.make_url("")), "--duration", "30", "--rate", "200",
         "--max-requests", "60", "--seed", "3"]
    )  # fmt: skip
    results = await traffic.run(ns)
    assert sum(results.values()) == 60  # bounded by --max-requests, not by the duration
    assert results["OK"] > 0
    assert set(results) <= set(catalog.canonical), results
    assert len(results) > 3  # a mix, not only successes


@pytest.mark.parametrize(
    "argv",
    [
        ["--proxy", "http://10.0.0.1:8080"],
        ["--proxy", "http://example.com"],
        ["--rate", "0"],
        ["--keyed", "1.5"],
    ],
)
def test_traffic_refuses_non_loopback_targets_and_bad_rates(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        traffic.parse_args(argv)
    assert info.value.code == 2
