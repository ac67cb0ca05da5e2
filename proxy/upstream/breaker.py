"""One endpoint's circuit breaker: a small state machine, sans-io (the clock is passed in).

::

    closed ──(``failures`` counted outcomes in a row)──► open
      ▲                                                   │ ``open_seconds`` pass
      │                                                   ▼
      └──────(the probe's answer is not a failure)─── half-open: one request, the probe
                                   open ◄──(the probe fails)──┘

``allow(now)`` says whether a request may go to the endpoint now, and whether it is the
half-open probe; ``record(verdict, probe=...)`` takes the request's verdict:

* ``failure``: an outcome the catalog counts (``circuit_failures``: connect errors,
  timeouts, lost connections, UPSTREAM_UNAVAILABLE answers);
* ``success``: resets the count;
* ``neutral``: the app's or the recipient's error, throttling: neither counts nor resets
  (as a probe's answer it closes the circuit: the gateway is answering);
* ``abandoned``: no verdict (the app went away); a probe's slot goes to the next request.

Only the probe's verdict moves a half-open circuit, and nothing moves an open one: the
late answers of requests sent before it opened say nothing about it now.
"""

from collections.abc import Callable
from typing import Literal

from proxy.config import CircuitBreaker
from proxy.vocab import CircuitState, EndpointResult

#: A send's verdict for the breaker (also the ``result`` label of the endpoint metric).
Verdict = EndpointResult
#: What ``allow`` grants: no request, a plain one, or the half-open probe.
Pass = Literal["no", "yes", "probe"]


class Breaker:
    """The circuit of one endpoint. Single-threaded: lives on the event loop."""

    __slots__ = ("_count", "_failures", "_on_change", "_open_seconds", "_probing", "_retry_at",
                 "state")  # fmt: skip

    def __init__(
        self,
        settings: CircuitBreaker,
        on_change: Callable[[CircuitState], None] | None = None,
    ) -> None:
        self._failures = settings.failures
        self._open_seconds = settings.open_seconds
        self._on_change = on_change
        self._count = 0  # counted outcomes in a row (closed)
        self._retry_at = 0.0  # when an open circuit lets its probe through
        self._probing = False  # half-open: the probe is under way
        self.state: CircuitState = "closed"

    def allow(self, now: float) -> Pass:
        """Whether a request may go to the endpoint at ``now`` (monotonic seconds)."""
        if self.state == "closed":
            return "yes"
        if self.state == "open":
            if now < self._retry_at:
                return "no"
            self._set("half_open")
        if self._probing:
            return "no"
        self._probing = True
        return "probe"

    def record(self, verdict: Verdict, now: float, *, probe: bool = False) -> None:
        """The verdict of a request ``allow`` let through (``probe``: as the probe)."""
        if self.state == "closed":
            if verdict == "failure":
                self._count += 1
                if self._count >= self._failures:
                    self._open(now)
            elif verdict == "success":
                self._count = 0
        elif self.state == "half_open" and probe:
            self._probing = False
            if verdict == "failure":
                self._open(now)
            elif verdict != "abandoned":
                self._count = 0
                self._set("closed")

    def retry_in(self, now: float) -> float:
        """Seconds until an open circuit lets its probe through (0 when it would now)."""
        return max(0.0, self._retry_at - now) if self.state == "open" else 0.0

    def _open(self, now: float) -> None:
        self._retry_at = now + self._open_seconds
        self._count = 0
        self._set("open")

    def _set(self, state: CircuitState) -> None:
        self.state = state
        if self._on_change is not None:
            self._on_change(state)


__all__ = ["Breaker", "Pass", "Verdict"]
