"""The flow-control metrics: circuits, rate-limit queues, requests per endpoint, the store.

Names and labels are API, like metrics.py's (README "Flow control and failover")::

    gateway_proxy_circuit_state{route, endpoint}            0 closed, 1 open, 2 half-open
    gateway_proxy_endpoint_requests_total{route, endpoint, result}
                                                            every send to an endpoint:
                                                            success, failure (counts
                                                            against its circuit), neutral,
                                                            abandoned (the app went away)
    gateway_proxy_rate_limit_wait_seconds{route}            time in the queue (0: none)
    gateway_proxy_rate_limit_queue{route}                   requests waiting for a token
    gateway_proxy_store_up                                  1 while the shared store is used
    gateway_proxy_store_errors_total{reason}                failed calls to it

Label values are bounded: routes and endpoints (host:port, no path, no credentials) come
from the config, the rest from vocab.py. Children are created at start-up, only for the
routes that have the feature (a route without ``rate_limit`` has no queue series), and
the store series only with a ``store``. Like metrics.py, the collectors live on a private
registry exposed without ``_created`` samples. Under ``--workers`` each process has its
own circuits and queues: the gauges add up (queues) or take the worst (circuits: the
highest state; the store: the lowest).
"""

from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from proxy.config import Route
from proxy.observability.metrics import expose_without_created
from proxy.vocab import CIRCUIT_STATES, ENDPOINT_RESULTS, STORE_ERRORS, CircuitState, EndpointResult
from proxy.vocab import StoreError as StoreErrorReason

# Queue waits: from a token's gap at a high rate to a max_wait of half a minute.
WAIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def wait_buckets(routes: Iterable[Route]) -> tuple[float, ...]:
    """``WAIT_BUCKETS`` plus each rate-limited route's ``max_wait`` and 80% of it (the
    GatewayProxyRateLimitQueueing threshold): a quantile near them reads exactly."""
    bounds = set(WAIT_BUCKETS)
    for route in routes:
        if route.rate_limit is not None and route.rate_limit.max_wait > 0:
            bounds.update((route.rate_limit.max_wait, round(0.8 * route.rate_limit.max_wait, 6)))
    return tuple(sorted(bounds))


class FlowMetrics:
    """The flow-control collectors, exposed on ``registry``."""

    def __init__(
        self,
        registry: CollectorRegistry,
        routes: Iterable[Route],
        endpoints: Mapping[str, tuple[str, ...]],
        *,
        store: bool,
    ) -> None:
        """``endpoints``: each route's endpoint names (host:port, ``Endpoint.name``)."""
        own = CollectorRegistry()
        self.circuit_state = Gauge(
            "gateway_proxy_circuit_state",
            "An endpoint's circuit breaker: 0 closed, 1 open, 2 half-open (one probe).",
            ["route", "endpoint"],
            registry=own,
            multiprocess_mode="livemax",
        )
        self.endpoint_requests = Counter(
            "gateway_proxy_endpoint_requests",
            "Sends to each endpoint of a route, by result: success, failure (counts against "
            "its circuit), neutral (neither), abandoned (the app went away).",
            ["route", "endpoint", "result"],
            registry=own,
        )
        routes = list(routes)
        self.wait = Histogram(
            "gateway_proxy_rate_limit_wait_seconds",
            "Time a request of a rate-limited route waited for its token (0: none).",
            ["route"],
            buckets=wait_buckets(routes),
            registry=own,
        )
        self.max_wait = Gauge(
            "gateway_proxy_rate_limit_max_wait_seconds",
            "A rate-limited route's max_wait: the longest a request may queue.",
            ["route"],
            registry=own,
            multiprocess_mode="max",
        )
        self.queue = Gauge(
            "gateway_proxy_rate_limit_queue",
            "Requests of a rate-limited route waiting for a token now.",
            ["route"],
            registry=own,
            multiprocess_mode="livesum",
        )
        self.store_up: Gauge | None = None
        self.store_errors: Counter | None = None
        if store:
            self.store_up = Gauge(
                "gateway_proxy_store_up",
                "1 while rate limits are shared through the store; 0 while it cannot be "
                "reached and each process uses its own bucket at its share.",
                registry=own,
                multiprocess_mode="livemin",
            )
            self.store_errors = Counter(
                "gateway_proxy_store_errors",
                "Calls to the shared store that failed, by reason.",
                ["reason"],
                registry=own,
            )
            for reason in STORE_ERRORS:
                self.store_errors.labels(reason)
        self._waits: dict[str, Histogram] = {}
        self._queues: dict[str, Gauge] = {}
        self._sends: dict[tuple[str, str, EndpointResult], Counter] = {}
        for route in routes:
            if route.rate_limit is not None:
                self.max_wait.labels(route.name).set(route.rate_limit.max_wait)
                self._waits[route.name] = self.wait.labels(route.name)
                self._queues[route.name] = self.queue.labels(route.name)
            if len(route.endpoints) > 1 or route.circuit_breaker is not None:
                for endpoint in endpoints[route.name]:
                    if route.circuit_breaker is not None:
                        self.circuit_state.labels(route.name, endpoint).set(0)
                    for result in ENDPOINT_RESULTS:
                        key = (route.name, endpoint, result)
                        self._sends[key] = self.endpoint_requests.labels(*key)
        expose_without_created(registry, own)

    def circuit(self, route: str, endpoint: str, state: CircuitState) -> None:
        self.circuit_state.labels(route, endpoint).set(CIRCUIT_STATES.index(state))

    def sent(self, route: str, endpoint: str, result: EndpointResult) -> None:
        child = self._sends.get((route, endpoint, result))
        if child is not None:
            child.inc()

    def waited(self, route: str, seconds: float) -> None:
        child = self._waits.get(route)
        if child is not None:
            child.observe(seconds)

    def queued(self, route: str, length: int) -> None:
        child = self._queues.get(route)
        if child is not None:
            child.set(length)

    def store_health(self, up: bool) -> None:
        if self.store_up is not None:
            self.store_up.set(1 if up else 0)

    def store_error(self, reason: StoreErrorReason) -> None:
        if self.store_errors is not None:
            self.store_errors.labels(reason).inc()


__all__ = ["WAIT_BUCKETS", "FlowMetrics", "wait_buckets"]
