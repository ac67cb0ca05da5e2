"""The message ledger's metrics: keyed requests, the ledger's errors and health, and events
matched to their send.

Names and labels are API, like metrics.py's (README "Safe retries and delivery reports")::

    gateway_proxy_idempotency_requests_total{route, result}   requests with an
                                                              Idempotency-Key: stored,
                                                              released, replayed,
                                                              in_flight (409), mismatch
                                                              (422), unavailable (503),
                                                              abandoned
    gateway_proxy_ledger_errors_total{route, operation}       ledger calls that failed
    gateway_proxy_ledger_up                                   1 while the ledger answers its
                                                              health check, else 0
    gateway_proxy_correlated_events_total{route, result}      events of an inbound route,
                                                              matched to their send or not

Label values are bounded: routes come from the config, the rest from vocab.py. Children
are created at start-up (a dashboard sees zeros, not gaps). Like metrics.py, the
collectors live on a private registry exposed without ``_created`` samples.
"""

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge

from proxy.observability.metrics import expose_without_created
from proxy.vocab import (
    CORRELATION_RESULTS,
    IDEMPOTENCY_RESULTS,
    LEDGER_OPERATIONS,
    CorrelationResult,
    IdempotencyResult,
    LedgerOperation,
)


class LedgerMetrics:
    """The ledger's collectors, exposed on ``registry``."""

    def __init__(
        self, registry: CollectorRegistry, routes: Iterable[str], inbound: Iterable[str]
    ) -> None:
        own = CollectorRegistry()
        self.requests = Counter(
            "gateway_proxy_idempotency_requests",
            "Requests that carried an Idempotency-Key, by what the ledger did with them.",
            ["route", "result"],
            registry=own,
        )
        self.errors = Counter(
            "gateway_proxy_ledger_errors",
            "Calls to the message ledger that failed, by route and operation.",
            ["route", "operation"],
            registry=own,
        )
        self.up = Gauge(
            "gateway_proxy_ledger_up",
            "1 while the message ledger's store answers its health check; 0 while it does "
            "not (keyed requests then get LEDGER_UNAVAILABLE; others flow on).",
            registry=own,
            multiprocess_mode="livemin",
        )
        self.events = Counter(
            "gateway_proxy_correlated_events",
            "Events of an inbound route, matched to the send that caused them or not.",
            ["route", "result"],
            registry=own,
        )
        routes, inbound = list(routes), list(inbound)
        for route in routes:
            for result in IDEMPOTENCY_RESULTS:
                self.requests.labels(route, result)
        for route in [*routes, *inbound]:
            for operation in LEDGER_OPERATIONS:
                self.errors.labels(route, operation)
        for route in inbound:
            for matched in CORRELATION_RESULTS:
                self.events.labels(route, matched)
        self.up.set(1)
        expose_without_created(registry, own)

    def request(self, route: str, result: IdempotencyResult) -> None:
        self.requests.labels(route, result).inc()

    def error(self, route: str, operation: LedgerOperation) -> None:
        self.errors.labels(route, operation).inc()

    def health(self, up: bool) -> None:
        self.up.set(1 if up else 0)

    def event(self, route: str, result: CorrelationResult) -> None:
        self.events.labels(route, result).inc()


__all__ = ["LedgerMetrics"]
