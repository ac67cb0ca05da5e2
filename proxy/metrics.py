"""Prometheus metrics per code. Names and labels are part of the product's API.

All collectors live on an injected ``CollectorRegistry`` (tests get a fresh one).
Label values are bounded by construction: ``vendor_code`` is a catalog code, ``other``
or ``none``; routes come from the config. Children for every route x catalog code are
created at start-up so dashboards show zeros rather than gaps.
"""

import platform
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from proxy import __version__
from proxy.catalog import CATEGORIES, CanonicalCode, Catalog
from proxy.classify import Outcome
from proxy.config import Route

# Gateways take 50 ms to 30 s; the top buckets catch the total timeout.
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)
# The failures that are the gateway's (the app's own, like request_too_large, are not).
FAILURE_REASONS = ("connect", "timeout", "connection_lost", "too_large", "unparseable")
_FAILURE_REASON_SET = frozenset(FAILURE_REASONS)
UNMATCHED_ROUTE = "unmatched"
PROXY_VENDOR = "proxy"


class Metrics:
    """The proxy's collectors, registered on ``registry``."""

    def __init__(self, registry: CollectorRegistry, routes: Iterable[Route], catalog: Catalog):
        self.responses = Counter(
            "gateway_proxy_responses",
            "Answers returned to apps, by canonical code and gateway code.",
            ["route", "vendor", "code", "category", "vendor_code"],
            registry=registry,
        )
        self.request_duration = Histogram(
            "gateway_proxy_request_duration_seconds",
            "Time from the app's request to the proxy's answer.",
            ["route", "vendor", "category"],
            buckets=BUCKETS,
            registry=registry,
        )
        self.upstream_duration = Histogram(
            "gateway_proxy_upstream_duration_seconds",
            "Time the gateway took, from sending the request to the end of its answer.",
            ["route", "vendor"],
            buckets=BUCKETS,
            registry=registry,
        )
        self.upstream_failures = Counter(
            "gateway_proxy_upstream_failures",
            "Exchanges with the gateway that produced no usable answer, by reason.",
            ["route", "vendor", "reason"],
            registry=registry,
        )
        self.in_flight = Gauge(
            "gateway_proxy_requests_in_flight",
            "Requests being proxied right now.",
            ["route"],
            registry=registry,
        )
        build = Gauge(
            "gateway_proxy_build_info",
            "Always 1; the labels say which build is running.",
            ["version", "python"],
            registry=registry,
        )
        build.labels(__version__, platform.python_version()).set(1)
        self._precreate(list(routes), catalog)

    def _precreate(self, routes: list[Route], catalog: Catalog) -> None:
        for route in routes:
            self.in_flight.labels(route.name)
            self.upstream_duration.labels(route.name, route.vendor)
            for category in CATEGORIES:
                self.request_duration.labels(route.name, route.vendor, category)
            for reason in FAILURE_REASONS:
                self.upstream_failures.labels(route.name, route.vendor, reason)
            for code, vendor_code in _series(catalog, route.vendor):
                self.responses.labels(
                    route.name, route.vendor, code.name, code.category, vendor_code
                )
        route_missing = catalog.transport["route_not_found"]
        self.responses.labels(
            UNMATCHED_ROUTE, PROXY_VENDOR, route_missing.name, route_missing.category, "none"
        )

    def observe(
        self,
        route: str,
        vendor: str,
        outcome: Outcome,
        *,
        duration_s: float,
        upstream_duration_s: float | None,
        trace_id: str | None,
    ) -> None:
        """Record one finished request."""
        code = outcome.code
        exemplar = {"trace_id": trace_id} if trace_id else None
        self.responses.labels(
            route, vendor, code.name, code.category, outcome.vendor_code_label
        ).inc(exemplar=exemplar)
        self.request_duration.labels(route, vendor, code.category).observe(
            duration_s, exemplar=exemplar
        )
        if upstream_duration_s is not None:
            self.upstream_duration.labels(route, vendor).observe(upstream_duration_s)
        if outcome.failure in _FAILURE_REASON_SET:
            self.upstream_failures.labels(route, vendor, outcome.failure).inc()


def _series(catalog: Catalog, vendor: str) -> Iterator[tuple[CanonicalCode, str]]:
    """Every (canonical code, vendor_code label) a route of ``vendor`` can produce."""
    table = catalog.vendors[vendor]
    for entry in table.codes.values():
        yield entry.canonical, entry.code
        for rule in entry.rules:
            yield rule.canonical, entry.code
    for entry in {table.codes[target] for target in table.class_fallbacks.values()}:
        yield entry.canonical, "other"
    for extra in (table.unknown, table.unknown_success):
        if extra is not None:
            yield extra, "other"
    no_code = [*table.fault_codes.values(), *catalog.http.values(), *catalog.transport.values()]
    for code in {c.name: c for c in no_code}.values():
        yield code, "none"
