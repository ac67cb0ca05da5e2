"""The admin server: /metrics (text and OpenMetrics), /healthz, /readyz, nothing else."""

from typing import Any

from prometheus_client import CollectorRegistry

from proxy.server.admin import Readiness, create_admin_app


async def test_health_and_readiness(aiohttp_client: Any) -> None:
    readiness = Readiness()
    client = await aiohttp_client(create_admin_app(CollectorRegistry(), readiness))
    assert (await client.get("/healthz")).status == 200
    starting = await client.get("/readyz")
    assert (starting.status, (await starting.json())["status"]) == (503, "starting")
    readiness.serving = True
    assert (await client.get("/readyz")).status == 200
    readiness.shutting_down = True
    stopping = await client.get("/readyz")
    assert (stopping.status, (await stopping.json())["status"]) == (503, "shutting down")
    assert (await client.get("/healthz")).status == 200  # liveness never depends on readiness


async def test_metrics_negotiates_openmetrics(aiohttp_client: Any) -> None:
    from prometheus_client import Counter

    registry = CollectorRegistry()
    Counter("demo_total", "d", registry=registry).inc()
    client = await aiohttp_client(create_admin_app(registry, Readiness()))
    plain = await client.get("/metrics")
    assert plain.headers["Content-Type"].startswith("text/plain")
    assert "demo_total 1.0" in await plain.text()
    om = await client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert om.headers["Content-Type"].startswith("application/openmetrics-text")
    assert (await om.text()).endswith("# EOF\n")


async def test_admin_serves_nothing_else(aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_admin_app(CollectorRegistry(), Readiness()))
    for path in ("/", "/mm7", "/moms/system.ping", "/metrics/x"):
        assert (await client.get(path)).status == 404
    assert (await client.post("/metrics")).status == 405


async def test_app_port_does_not_serve_admin_endpoints(one_route_proxy: Any) -> None:
    async def never(request: Any) -> Any:
        raise AssertionError("not forwarded")

    client = await one_route_proxy(never)
    for path in ("/metrics", "/healthz", "/readyz"):
        resp = await client.get(path)
        assert (resp.status, (await resp.json())["code"]) == (404, "ROUTE_NOT_FOUND")
