"""Metrics per code: names, labels, pre-created children and bounded cardinality."""

import os
from typing import Any

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from prometheus_client.registry import DuplicateTimeseries

from proxy.codes.catalog import Catalog
from proxy.codes.classify import Outcome
from proxy.observability.metrics import BUCKETS, Metrics, expose_without_created, upstream_buckets
from proxy.server.admin import Readiness, create_admin_app
from tests.conftest import make_config

ROUTES = make_config(
    {"name": "mms", "path_prefix": "/mm7", "vendor": "mm7", "upstream": "http://x/"},
    {"name": "moms", "path_prefix": "/moms", "vendor": "moms", "upstream": "http://y/"},
).routes


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    if name == "gateway_proxy_responses_total":
        labels.setdefault("client", "anonymous")
    return registry.get_sample_value(name, labels)


def test_children_exist_at_start_up_for_every_route_and_catalog_code(catalog: Catalog) -> None:
    registry = CollectorRegistry()
    Metrics(registry, ROUTES, catalog)
    total = "gateway_proxy_responses_total"
    for code, entry in catalog.vendors["mm7"].codes.items():
        labels = {"route": "mms", "vendor": "mm7", "code": entry.canonical.name,
                  "category": entry.canonical.category, "vendor_code": code}  # fmt: skip
        assert value(registry, total, **labels) == 0.0, code
    for code, entry in catalog.vendors["moms"].codes.items():
        labels = {"route": "moms", "vendor": "moms", "code": entry.canonical.name,
                  "category": entry.canonical.category, "vendor_code": code}  # fmt: skip
        assert value(registry, total, **labels) == 0.0, code
    # message rules of MoMS code 0 have their own series
    zero = {"route": "moms", "vendor": "moms", "category": "auth", "vendor_code": "0"}
    assert value(registry, total, code="PERMISSION_DENIED", **zero) == 0.0
    timeout = {"route": "mms", "vendor": "mm7", "code": "TIMEOUT", "category": "network"}
    assert value(registry, total, vendor_code="none", **timeout) == 0.0
    for reason in ("connect", "timeout", "connection_lost", "too_large", "unparseable"):
        failures = "gateway_proxy_upstream_failures_total"
        assert value(registry, failures, route="mms", vendor="mm7", reason=reason) == 0.0
    assert value(registry, "gateway_proxy_requests_in_flight", route="moms") == 0.0
    build = [s for s in registry.collect() if s.name == "gateway_proxy_build_info"]
    assert build[0].samples[0].value == 1.0
    assert set(build[0].samples[0].labels) == {"version", "python"}


def test_observe_counts_once_with_bounded_labels(catalog: Catalog) -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry, ROUTES, catalog)
    odd = Outcome(code=catalog["UPSTREAM_ERROR"], vendor="mm7", vendor_code="9999",
                  vendor_code_label="other", failure=None)  # fmt: skip
    metrics.observe("mms", "mm7", odd, duration_s=0.2, upstream_duration_s=0.15, trace_id=None)
    labels = {"route": "mms", "vendor": "mm7", "code": "UPSTREAM_ERROR", "category": "upstream"}
    assert value(registry, "gateway_proxy_responses_total", vendor_code="other", **labels) == 1
    text = generate_latest(registry).decode()
    assert "9999" not in text
    hist = "gateway_proxy_upstream_duration_seconds_count"
    assert value(registry, hist, route="mms", vendor="mm7") == 1
    req = "gateway_proxy_request_duration_seconds_bucket"
    assert value(registry, req, route="mms", vendor="mm7", category="upstream", le="0.25") == 1
    assert value(registry, req, route="mms", vendor="mm7", category="upstream", le="0.1") == 0


def test_failures_count_by_reason(catalog: Catalog) -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry, ROUTES, catalog)
    lost = Outcome(code=catalog["CONNECTION_LOST"], vendor="proxy", failure="connection_lost")
    metrics.observe("moms", "moms", lost, duration_s=1, upstream_duration_s=None, trace_id=None)
    failures = "gateway_proxy_upstream_failures_total"
    assert value(registry, failures, route="moms", vendor="moms", reason="connection_lost") == 1


def test_buckets_cover_50ms_to_30s(catalog: Catalog) -> None:
    registry = CollectorRegistry()
    Metrics(registry, ROUTES, catalog)
    text = generate_latest(registry).decode()
    for le in ('le="0.05"', 'le="30.0"', 'le="+Inf"'):
        assert le in text


def test_exemplars_carry_the_trace_id_in_openmetrics(catalog: Catalog) -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry, ROUTES, catalog)
    ok = Outcome(code=catalog["OK"], vendor="mm7", vendor_code="1000", vendor_code_label="1000")
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    metrics.observe("mms", "mm7", ok, duration_s=0.1, upstream_duration_s=0.1, trace_id=trace)
    text = openmetrics_latest(registry).decode()  # type: ignore[no-untyped-call]
    assert f'# {{trace_id="{trace}"}} 1.0' in text


async def test_proxy_traffic_is_counted_per_code(one_route_proxy: Any) -> None:
    async def opted_out(request: web.Request) -> web.Response:
        return web.Response(text='{"response": {"code": "606", "status": "error"}}')

    client = await one_route_proxy(opted_out, vendor="moms")
    for _ in range(3):
        await client.get("/gw/transaction.send")
    await client.get("/nowhere")
    from proxy.server import REGISTRY_KEY

    registry = client.app[REGISTRY_KEY]
    total = "gateway_proxy_responses_total"
    opt = {"route": "gw", "vendor": "moms", "code": "RECIPIENT_OPTED_OUT", "category": "recipient"}
    assert value(registry, total, vendor_code="606", **opt) == 3
    unmatched = {"route": "unmatched", "vendor": "proxy", "code": "ROUTE_NOT_FOUND"}
    assert value(registry, total, category="client", vendor_code="none", **unmatched) == 1
    assert value(registry, "gateway_proxy_requests_in_flight", route="gw") == 0


async def test_metrics_endpoint_has_no_created_series(
    aiohttp_client: Any, catalog: Catalog
) -> None:
    """_created series were a quarter of all series; neither format carries them."""
    registry = CollectorRegistry()
    metrics = Metrics(registry, ROUTES, catalog)
    ok = Outcome(code=catalog["OK"], vendor="mm7", vendor_code="1000", vendor_code_label="1000")
    metrics.observe("mms", "mm7", ok, duration_s=0.1, upstream_duration_s=0.09, trace_id=None)
    client = await aiohttp_client(create_admin_app(registry, Readiness()))
    for accept in ("text/plain", "application/openmetrics-text"):
        resp = await client.get("/metrics", headers={"Accept": accept})
        text = await resp.text()
        assert "gateway_proxy_responses_total{" in text
        assert "gateway_proxy_overhead_seconds_bucket{" in text
        assert "_created" not in text, accept


def test_other_registries_keep_their_created_series(catalog: Catalog) -> None:
    """The proxy's choice is per registry: it never flips prometheus_client's global switch."""
    Metrics(CollectorRegistry(), ROUTES, catalog)
    other = CollectorRegistry()
    Counter("unrelated", "d", registry=other).inc()
    globally_off = os.environ.get("PROMETHEUS_DISABLE_CREATED_SERIES", "").lower() in (
        "true", "1", "t",
    )  # fmt: skip
    assert ("unrelated_created" in generate_latest(other).decode()) is not globally_off


def test_any_collectors_can_be_exposed_without_created_series() -> None:
    """The bridge other metric sets of the proxy (inbound callbacks, ...) can reuse."""
    source, target = CollectorRegistry(), CollectorRegistry()
    Counter("events", "d", ["kind"], registry=source).labels("a").inc(2)
    expose_without_created(target, source)
    text = generate_latest(target).decode()
    assert 'events_total{kind="a"} 2.0' in text
    assert "_created" not in text
    assert "events_created" in generate_latest(source).decode() or os.environ.get(
        "PROMETHEUS_DISABLE_CREATED_SERIES"
    )


def test_the_same_registry_refuses_a_second_set(catalog: Catalog) -> None:
    registry = CollectorRegistry()
    Metrics(registry, ROUTES, catalog)
    with pytest.raises(DuplicateTimeseries):
        Metrics(registry, ROUTES, catalog)


def test_overhead_is_total_minus_upstream(catalog: Catalog) -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry, ROUTES, catalog)
    ok = Outcome(code=catalog["OK"], vendor="mm7", vendor_code="1000", vendor_code_label="1000")
    metrics.observe("mms", "mm7", ok, duration_s=0.2, upstream_duration_s=0.197, trace_id=None)
    overhead = "gateway_proxy_overhead_seconds"
    labels = {"route": "mms", "vendor": "mm7"}
    assert value(registry, f"{overhead}_count", **labels) == 1
    assert value(registry, f"{overhead}_sum", **labels) == pytest.approx(0.003)
    assert value(registry, f"{overhead}_bucket", le="0.005", **labels) == 1
    assert value(registry, f"{overhead}_bucket", le="0.0025", **labels) == 0
    # No gateway exchange at all: the whole request was the proxy's own time.
    missing = Outcome(code=catalog["ROUTE_NOT_FOUND"], vendor="proxy", failure="route_not_found")
    metrics.observe(
        "unmatched", "proxy", missing, duration_s=0.001, upstream_duration_s=None, trace_id=None
    )
    assert value(registry, f"{overhead}_sum", route="unmatched", vendor="proxy") == 0.001
    # Clock skew never makes it negative.
    metrics.observe("mms", "mm7", ok, duration_s=0.1, upstream_duration_s=0.1001, trace_id=None)
    assert value(registry, f"{overhead}_bucket", le="0.0005", **labels) == 1


def test_upstream_histogram_counts_only_exchanges_that_reached_the_gateway(
    catalog: Catalog,
) -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry, ROUTES, catalog)
    count = "gateway_proxy_upstream_duration_seconds_count"
    refused = Outcome(code=catalog["CONNECTION_ERROR"], vendor="proxy", failure="connect")
    metrics.observe("mms", "mm7", refused, duration_s=2, upstream_duration_s=2, trace_id=None)
    gone = Outcome(code=catalog["CLIENT_CLOSED_REQUEST"], vendor="proxy", failure="client_closed")
    metrics.observe("mms", "mm7", gone, duration_s=1, upstream_duration_s=1, trace_id=None)
    assert value(registry, count, route="mms", vendor="mm7") == 0
    lost = Outcome(code=catalog["CONNECTION_LOST"], vendor="proxy", failure="connection_lost")
    metrics.observe("mms", "mm7", lost, duration_s=1, upstream_duration_s=0.9, trace_id=None)
    assert value(registry, count, route="mms", vendor="mm7") == 1


def test_upstream_buckets_include_each_routes_timeouts(catalog: Catalog) -> None:
    routes = make_config(
        {"name": "a", "path_prefix": "/a", "upstream": "http://x/",
         "timeout": {"connect": 2, "total": 7.5}},
        {"name": "b", "path_prefix": "/b", "upstream": "http://x/", "vendor": "moms",
         "timeout": {"connect": 0.3, "total": 30}},
    ).routes  # fmt: skip
    assert set(upstream_buckets(routes)) == {*BUCKETS, 2.0, 7.5, 0.3}
    assert list(upstream_buckets(routes)) == sorted(upstream_buckets(routes))
    registry = CollectorRegistry()
    metrics = Metrics(registry, routes, catalog)
    # A timeout counts as exactly timeout.total: the le="7.5" bucket, never above it.
    timeout = Outcome(code=catalog["TIMEOUT"], vendor="proxy", failure="timeout")
    metrics.observe("a", "mm7", timeout, duration_s=7.52, upstream_duration_s=7.51, trace_id=None)
    bucket = "gateway_proxy_upstream_duration_seconds_bucket"
    assert value(registry, bucket, route="a", vendor="mm7", le="7.5") == 1
    assert value(registry, bucket, route="a", vendor="mm7", le="5.0") == 0
    assert value(registry, "gateway_proxy_upstream_duration_seconds_sum", route="a",
                 vendor="mm7") == 7.5  # fmt: skip
