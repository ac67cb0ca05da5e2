"""The real-Prometheus harness: it scrapes a target with our labels and answers queries."""

from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.prometheus_harness import (
    PrometheusServer,
    ScrapeTarget,
    substitute_dashboard_vars,
    values,
)

METRICS_TEXT = """\
# HELP gateway_proxy_build_info Always 1; the labels say which build is running.
# TYPE gateway_proxy_build_info gauge
gateway_proxy_build_info{version="x",python="3"} 1
"""


def test_substitute_dashboard_vars_all_forms() -> None:
    expr = (
        'rate(m{namespace=~"$namespace", job=~"${job}", route=~"${route:regex}"}[$__rate_interval])'
    )
    got = substitute_dashboard_vars(expr, {"namespace": "test", "job": "gp", "route": "mms"})
    assert got == 'rate(m{namespace=~"test", job=~"gp", route=~"mms"}[1m])'


def test_substitute_dashboard_vars_caller_wins_and_unknown_fails() -> None:
    assert substitute_dashboard_vars("x[$__rate_interval]", {"__rate_interval": "10s"}) == "x[10s]"
    with pytest.raises(KeyError, match="nope"):
        substitute_dashboard_vars('m{a="$nope"}', {})


@pytest.mark.integration
async def test_prometheus_scrapes_a_target_with_our_labels(
    aiohttp_server: Any, tmp_path: Path
) -> None:
    """A real prometheus scrapes a hand-written exposition and the API returns it labelled."""

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(text=METRICS_TEXT, content_type="text/plain")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    server = await aiohttp_server(app, host="127.0.0.1")
    target = ScrapeTarget(f"127.0.0.1:{server.port}", labels={"namespace": "test"})

    async with PrometheusServer([target], tmp_path / "prom") as prom:
        result = await prom.wait_for("gateway_proxy_build_info", lambda r: len(r) == 1)
        labels = result[0]["metric"]
        assert labels["namespace"] == "test"
        assert labels["job"] == "gateway-proxy"
        assert (labels["version"], labels["python"]) == ("x", "3")
        assert values(result, "version") == {"x": 1.0}
        up = await prom.query('up{job="gateway-proxy"}')
        assert values(up, "namespace") == {"test": 1.0}
