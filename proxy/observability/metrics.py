"""Prometheus metrics per code. Names and labels are part of the product's API.

All collectors are exposed through an injected ``CollectorRegistry`` (tests get a fresh
one). Label values are bounded by construction: ``vendor_code`` is a catalog code,
``other`` or ``none``; routes come from the config. Children for every route x catalog
code are created at start-up so dashboards show zeros rather than gaps.

Three choices keep the series few and the quantiles honest:

- No ``_created`` series (they were a quarter of all series). prometheus_client can only
  switch them off process-wide (``disable_created_metrics``), so the collectors live on a
  private registry that ``expose_without_created`` bridges onto the injected one, minus
  those samples. Other registries in the process are untouched; any other set of the
  proxy's collectors can do the same.
- The upstream histogram observes only exchanges that reached the gateway (not connect
  failures, not requests the proxy refused), and its buckets include every route's
  ``timeout.connect`` and ``timeout.total``: a timeout counts as exactly
  ``timeout.total``, so a quantile never reads above the route's timeout.
- The proxy's own time per request (total minus upstream) is its own histogram,
  ``gateway_proxy_overhead_seconds``: quantiles of it, not differences of quantiles.
"""

import platform
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Metric

from proxy import __version__
from proxy.codes.catalog import CanonicalCode, Catalog
from proxy.codes.classify import Outcome
from proxy.config import Route
from proxy.observability.log_sink import DroppedLinesCollector
from proxy.vocab import (
    CATEGORIES,
    REJECTION_REASONS,
    RELAY_REJECTIONS,
    UPSTREAM_FAILURES,
    RejectionReason,
    RelayRejection,
)

# Gateways take 50 ms to 30 s; the top buckets catch the total timeout. The upstream
# histogram adds each route's timeouts (upstream_buckets).
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)
# The proxy's own work per request: parsing, classifying, rendering (milliseconds).
OVERHEAD_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
# The failures that are the gateway's (the app's own, like request_too_large, are not).
FAILURE_REASONS = UPSTREAM_FAILURES
_FAILURE_REASON_SET = frozenset(FAILURE_REASONS)
# Failures after which the gateway had the request: their wait is the gateway's latency.
# A connect failure never reached it; the app's own failures (client_closed, ...) cut the
# wait short or never started it.
_REACHED_GATEWAY = _FAILURE_REASON_SET - {"connect"}
# Rejections of a request on a route (head_timeout has no request at all), and those that
# happen before any route is known (the head was unreadable, or never came).
_ROUTE_REJECTIONS = frozenset(REJECTION_REASONS) - {"head_timeout"}
_UNMATCHED_REJECTIONS: tuple[RejectionReason, ...] = (
    "head_timeout", "header_too_large", "uri_too_long", "bad_request",
)  # fmt: skip
UNMATCHED_ROUTE = "unmatched"
PROXY_VENDOR = "proxy"
#: The ``client`` label when no ``clients`` are configured, or the app is not identified.
ANONYMOUS = "anonymous"


def upstream_buckets(routes: Iterable[Route]) -> tuple[float, ...]:
    """``BUCKETS`` plus every route's ``timeout.connect`` and ``timeout.total``, sorted."""
    bounds = set(BUCKETS)
    for route in routes:
        bounds.update((float(route.timeout.connect), float(route.timeout.total)))
    return tuple(sorted(bounds))


def expose_without_created(target: CollectorRegistry, source: CollectorRegistry) -> None:
    """Expose ``source``'s metrics on ``target`` without their ``_created`` samples.

    Call it once ``source`` holds its collectors: ``target`` then refuses names it already
    has (``DuplicateTimeseries``), as it would for the collectors themselves.
    """
    target.register(_WithoutCreated(source))


class _WithoutCreated:
    """A collector exposing ``source``'s metrics without their ``_created`` samples."""

    def __init__(self, source: CollectorRegistry) -> None:
        self._source = source

    def describe(self) -> list[Metric]:
        # Lets the target registry refuse duplicate names, as it would for the collectors.
        return list(self._source.collect())

    def collect(self) -> Iterator[Metric]:
        for metric in self._source.collect():
            kept = Metric(metric.name, metric.documentation, metric.type, metric.unit)
            kept.samples = [s for s in metric.samples if not s.name.endswith("_created")]
            yield kept


class Metrics:
    """The proxy's collectors, exposed on ``registry`` (without ``_created`` series)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        routes: Iterable[Route],
        catalog: Catalog,
        *,
        clients: Iterable[str] = (),
        inbound: Iterable[str] = (),
    ):
        """``clients``: the configured clients' names (the ``client`` label's values
        besides ``anonymous``); ``inbound``: the inbound routes' names (their relay
        rejections)."""
        routes = list(routes)
        self._timeout_total = {route.name: route.timeout.total for route in routes}
        own = CollectorRegistry()
        self.responses = Counter(
            "gateway_proxy_responses",
            "Answers returned to apps, by canonical code, gateway code and client.",
            ["route", "vendor", "code", "category", "vendor_code", "client"],
            registry=own,
        )
        self.request_duration = Histogram(
            "gateway_proxy_request_duration_seconds",
            "Time from the app's request to the proxy's answer.",
            ["route", "vendor", "category"],
            buckets=BUCKETS,
            registry=own,
        )
        self.upstream_duration = Histogram(
            "gateway_proxy_upstream_duration_seconds",
            "Time the gateway took, from sending the request to the end of its answer "
            "(exchanges that reached it; a timeout counts as the route's timeout.total).",
            ["route", "vendor"],
            buckets=upstream_buckets(routes),
            registry=own,
        )
        self.overhead = Histogram(
            "gateway_proxy_overhead_seconds",
            "The proxy's own time per request: the request's duration minus the gateway's.",
            ["route", "vendor"],
            buckets=OVERHEAD_BUCKETS,
            registry=own,
        )
        self.upstream_failures = Counter(
            "gateway_proxy_upstream_failures",
            "Exchanges with the gateway that produced no usable answer, by reason.",
            ["route", "vendor", "reason"],
            registry=own,
        )
        self.rejected = Counter(
            "gateway_proxy_rejected_requests",
            "Requests the proxy refused on its own account, by reason: shed (max_in_flight), "
            "shutdown (outlived the drain), head_timeout, client_timeout (a stalled body), "
            "header_too_large, uri_too_long, bad_request (not valid HTTP, or refused), "
            "client_unauthenticated, client_forbidden (an app's key), relay_unauthenticated, "
            "relay_forbidden (a relay's callback that failed auth or allow_from).",
            ["route", "reason"],
            registry=own,
        )
        # multiprocess_mode: how ``serve --workers`` adds up the workers' values (ignored in
        # one process): in-flight requests of the live workers, one build.
        self.in_flight = Gauge(
            "gateway_proxy_requests_in_flight",
            "Requests being proxied right now.",
            ["route"],
            registry=own,
            multiprocess_mode="livesum",
        )
        build = Gauge(
            "gateway_proxy_build_info",
            "Always 1; the labels say which build is running.",
            ["version", "python"],
            registry=own,
            multiprocess_mode="max",
        )
        build.labels(__version__, platform.python_version()).set(1)
        # ``labels()`` costs microseconds (it validates and joins the values): the children a
        # request touches are looked up once per label set, then kept here. Label values are
        # bounded (see the module docstring), so these dicts are too.
        self._answered: dict[tuple[str, str, str, str, str, str], tuple[Counter, Histogram]] = {}
        self._timed: dict[tuple[str, str], tuple[Histogram, Histogram]] = {}
        self._in_flight: dict[str, Gauge] = {}
        self._precreate(routes, catalog, tuple(clients), tuple(inbound))
        expose_without_created(registry, own)
        registry.register(DroppedLinesCollector())

    def _precreate(
        self,
        routes: list[Route],
        catalog: Catalog,
        clients: tuple[str, ...],
        inbound: tuple[str, ...],
    ) -> None:
        # With clients, a gateway's answer is always some client's: "anonymous" gets only
        # the proxy's own answers (a 407, no route, ...). Without, everything is anonymous.
        own_codes = {c.name for c in catalog.transport.values()}
        for route in routes:
            self.in_flight.labels(route.name)
            self.upstream_duration.labels(route.name, route.vendor)
            self.overhead.labels(route.name, route.vendor)
            for category in CATEGORIES:
                self.request_duration.labels(route.name, route.vendor, category)
            for reason in FAILURE_REASONS:
                self.upstream_failures.labels(route.name, route.vendor, reason)
            for rejection in sorted(_ROUTE_REJECTIONS):
                self.rejected.labels(route.name, rejection)
            for code, vendor_code in _series(catalog, route.vendor):
                for client in clients or (ANONYMOUS,):
                    self.responses.labels(
                        route.name, route.vendor, code.name, code.category, vendor_code, client
                    )
                if clients and code.name in own_codes and vendor_code == "none":
                    self.responses.labels(
                        route.name, route.vendor, code.name, code.category, vendor_code, ANONYMOUS
                    )
        for name in inbound:
            for relay_reason in RELAY_REJECTIONS:
                self.rejected.labels(name, relay_reason)
        for rejection in _UNMATCHED_REJECTIONS:
            self.rejected.labels(UNMATCHED_ROUTE, rejection)
        route_missing = catalog.transport["route_not_found"]
        self.responses.labels(
            UNMATCHED_ROUTE, PROXY_VENDOR, route_missing.name, route_missing.category, "none",
            ANONYMOUS,
        )  # fmt: skip

    def observe(
        self,
        route: str,
        vendor: str,
        outcome: Outcome,
        *,
        duration_s: float,
        upstream_duration_s: float | None,
        trace_id: str | None,
        client: str = ANONYMOUS,
    ) -> None:
        """Record one finished request of ``client`` (a configured name, or anonymous).

        ``upstream_duration_s`` is the exchange with the gateway (None when there was
        none); it reaches the upstream histogram only when the gateway had the request.
        """
        code = outcome.code
        key = (route, vendor, code.name, code.category, outcome.vendor_code_label, client)
        answered = self._answered.get(key)
        if answered is None:
            answered = self._answered[key] = (
                self.responses.labels(*key),
                self.request_duration.labels(route, vendor, code.category),
            )
        timed = self._timed.get((route, vendor))
        if timed is None:
            timed = self._timed[(route, vendor)] = (
                self.overhead.labels(route, vendor),
                self.upstream_duration.labels(route, vendor),
            )
        if trace_id:
            exemplar = {"trace_id": trace_id}
            answered[0].inc(exemplar=exemplar)
            answered[1].observe(duration_s, exemplar=exemplar)
        else:
            answered[0].inc()
            answered[1].observe(duration_s)
        waited = upstream_duration_s or 0.0
        timed[0].observe(max(duration_s - waited, 0.0))
        if upstream_duration_s is not None and (
            outcome.failure is None or outcome.failure in _REACHED_GATEWAY
        ):
            if outcome.failure == "timeout" and route in self._timeout_total:
                # The proxy gave up at timeout.total; the rest is scheduling jitter.
                upstream_duration_s = min(upstream_duration_s, self._timeout_total[route])
            timed[1].observe(upstream_duration_s)
        if outcome.failure is None:
            return
        if outcome.failure in _FAILURE_REASON_SET:
            self.upstream_failures.labels(route, vendor, outcome.failure).inc()
        elif outcome.failure in _ROUTE_REJECTIONS:
            self.rejected.labels(route, outcome.failure).inc()

    def in_flight_of(self, route: str) -> Gauge:
        """The ``gateway_proxy_requests_in_flight`` child of ``route`` (kept after first use)."""
        child = self._in_flight.get(route)
        if child is None:
            child = self._in_flight[route] = self.in_flight.labels(route)
        return child

    def head_timeout(self) -> None:
        """A connection was closed because its request head did not arrive in time."""
        self.rejected.labels(UNMATCHED_ROUTE, "head_timeout").inc()

    def relay_rejected(self, route: str, reason: RelayRejection) -> None:
        """A relay's callback on inbound ``route`` failed its checks (never forwarded)."""
        self.rejected.labels(route, reason).inc()


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
