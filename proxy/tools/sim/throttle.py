"""``--tps N``: the relay's contracted throughput, and its throttling answer (sans-io).

``Throughput`` is a token bucket of ``N`` a second holding at most ``N`` (N requests at
once, then N a second), over the time passed in. Past it the relay answers throttling in
its vendor's own way (``throttled``):

* MM7: HTTP 429 with a SOAP 1.1 Fault whose faultcode is ``env:Server.Throttled`` (the
  relay's "slow down", no MM7 status) and a ``Retry-After``;
* MoMS/CM: HTTP 429 with a plain-text body and a ``Retry-After`` (the API's documented
  answers are HTTP 200 with a code; it documents no rate-limit code, and its 4xx are the
  service refusing the request).

Independent of the proxy (the simulator is its oracle): its own bucket, its own bodies.
"""

import math

from proxy.tools.sim.reply import Reply

_SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"


class Throughput:
    """``tps`` requests a second, ``tps`` at once at most. Single-threaded."""

    def __init__(self, tps: float) -> None:
        self.tps = tps
        self._tokens = max(1.0, tps)
        self._stamp: float | None = None
        self.admitted = 0
        self.throttled = 0

    def admit(self, now: float) -> bool:
        """Whether a request arriving at ``now`` (seconds) is within the throughput."""
        if self._stamp is not None and now > self._stamp:
            self._tokens = min(max(1.0, self.tps), self._tokens + (now - self._stamp) * self.tps)
        self._stamp = now if self._stamp is None else max(self._stamp, now)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            self.admitted += 1
            return True
        self.throttled += 1
        return False

    def retry_after(self) -> int:
        """Whole seconds until the next request would be admitted (at least 1)."""
        return max(1, math.ceil((1.0 - self._tokens) / self.tps))


def throttled(vendor: str, tps: float, retry_after: int) -> Reply:
    """The relay's answer to a request over its throughput."""
    headers = (("Retry-After", str(retry_after)),)
    text = f"Throttled: over {tps:g} requests per second"
    if vendor == "mm7":
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<env:Envelope xmlns:env="{_SOAP_NS}"><env:Body><env:Fault>'
            f"<faultcode>env:Server.Throttled</faultcode><faultstring>{text}</faultstring>"
            "</env:Fault></env:Body></env:Envelope>"
        ).encode()
        return Reply(429, 'text/xml; charset="utf-8"', body, headers)
    return Reply(
        429, "text/plain; charset=utf-8", f"Too Many Requests. {text}.\n".encode(), headers
    )


__all__ = ["Throughput", "throttled"]
