"""``Result``: what forwarding one request produced (handle.py builds it, flow.py paces and
fails over on it, respond.py and the observers read it)."""

from dataclasses import dataclass

from proxy.codes.classify import Outcome
from proxy.upstream import Answer


@dataclass(slots=True)  # built per request: frozen=True costs a call per field
class Result:
    """What one request produced: its outcome and, when one arrived, the gateway's answer.

    ``bytes_in`` is the body bytes sent upstream; ``upstream_s`` how long the exchange with
    the gateway took (None when there was none). ``endpoint`` names the endpoint that
    answered, or the last one tried (host:port; None when none was contacted).
    ``retry_after`` is the proxy's own Retry-After (a rate limit's or an open circuit's);
    ``unsent``: the request provably never reached that endpoint's gateway and may go to
    the next one.
    """

    outcome: Outcome
    answer: Answer | None = None
    bytes_in: int = 0
    upstream_s: float | None = None
    endpoint: str | None = None
    retry_after: str | None = None
    unsent: bool = False


__all__ = ["Result"]
