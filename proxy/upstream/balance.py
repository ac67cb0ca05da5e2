"""Choosing an endpoint: a route's endpoints in the order to try them, circuits skipped.

``Endpoints`` holds a route's endpoints (``upstreams``, in the configured order), its
``balance`` and a circuit breaker per endpoint (breaker.py; none without
``circuit_breaker``). ``attempts()`` yields them in try order:

* ``failover``: the configured order, every request;
* ``round_robin``: the configured order rotated by one more for each request, so the
  first try spreads over the endpoints and the others stay behind it for failover;

skipping an endpoint whose circuit is open (or half-open with its probe under way). An
endpoint is asked (``Breaker.allow``) only when the caller gets to it, so a request that
the first endpoint answers never takes another's probe. The caller sends to each in turn
while the previous could not have reached its gateway, and reports each verdict with
``record``; ``retry_in`` says how long until the next probe when every circuit is open.
Nothing here sends: the caller (proxy/server/forward.py) owns the attempts.
"""

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from proxy.config import Route
from proxy.upstream.breaker import Breaker, Verdict
from proxy.upstream.endpoint import Endpoint, endpoint_of
from proxy.vocab import CircuitState

#: Told when an endpoint's circuit changes state (the metrics' gauge, a log line).
StateListener = Callable[[Endpoint, CircuitState], None]


@dataclass(frozen=True, slots=True)
class Attempt:
    """One endpoint to try, and whether the request is its half-open probe."""

    endpoint: Endpoint
    probe: bool = False


class Endpoints:
    """A route's endpoints, its balance and its breakers. Lives on the event loop."""

    def __init__(
        self,
        route: Route,
        on_state: StateListener | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.endpoints = tuple(endpoint_of(url) for url in route.endpoints)
        self.first = self.endpoints[0]
        self._rotate = route.balance == "round_robin" and len(self.endpoints) > 1
        self._turn = itertools.count()
        self._clock = clock
        settings = route.circuit_breaker
        self._breakers: dict[Endpoint, Breaker] = {}
        if settings is not None:
            for endpoint in self.endpoints:
                listener = None
                if on_state is not None:
                    listener = _bound(on_state, endpoint)
                self._breakers[endpoint] = Breaker(settings, listener)
        #: One endpoint and no breaker: nothing to choose (the hot path asks this first).
        self.single = len(self.endpoints) == 1 and not self._breakers

    def order(self) -> tuple[Endpoint, ...]:
        """Every endpoint in this request's try order (circuits not consulted)."""
        if not self._rotate:
            return self.endpoints
        start = next(self._turn) % len(self.endpoints)
        return self.endpoints[start:] + self.endpoints[:start]

    def attempts(self) -> Iterator[Attempt]:
        """The endpoints a request may try, in order, each asked only when reached."""
        for endpoint in self.order():
            breaker = self._breakers.get(endpoint)
            if breaker is None:
                yield Attempt(endpoint)
                continue
            granted = breaker.allow(self._clock())
            if granted != "no":
                yield Attempt(endpoint, probe=granted == "probe")

    def record(self, attempt: Attempt, verdict: Verdict) -> None:
        """The verdict of a request sent to ``attempt.endpoint``."""
        breaker = self._breakers.get(attempt.endpoint)
        if breaker is not None:
            breaker.record(verdict, self._clock(), probe=attempt.probe)

    def retry_in(self) -> float:
        """Seconds until the first open circuit lets a probe through."""
        now = self._clock()
        return min((b.retry_in(now) for b in self._breakers.values()), default=0.0)

    def state(self, endpoint: Endpoint) -> CircuitState:
        breaker = self._breakers.get(endpoint)
        return "closed" if breaker is None else breaker.state


def _bound(listener: StateListener, endpoint: Endpoint) -> Callable[[CircuitState], None]:
    def changed(state: CircuitState) -> None:
        listener(endpoint, state)

    return changed


__all__ = ["Attempt", "Endpoints", "StateListener"]
