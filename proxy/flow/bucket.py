"""The token bucket, sans-io: every method takes the time (seconds, any monotonic clock).

A bucket holds at most ``capacity`` tokens and gains ``rate`` a second; a send takes one.
``take`` answers 0 (a token taken) or how long until one will be there; ``estimate``
says how long a newcomer with ``ahead`` waiters before it would wait. A gateway's
throttling answer ``pause``s the bucket: nothing is taken before the pause ends, and the
bucket then holds one token (the throttled request's resend), gaining ``rate`` after
that; what was saved before the pause is forgotten, since the gateway said it was too
much. ``give_back`` returns the token of a request that was never sent.

The Redis side (store.py) runs the same arithmetic in a server-side script.

``pause_seconds`` reads a throttling answer's ``Retry-After``.
"""

import math
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

#: Without a Retry-After, a throttling answer pauses the route this long.
DEFAULT_PAUSE_SECONDS = 1.0
#: A Retry-After longer than this is taken as this (a gateway's typo must not stop a
#: route for a day: the requests queued meanwhile get RATE_LIMITED at once anyway).
MAX_PAUSE_SECONDS = 300.0


class TokenBucket:
    """``rate`` tokens a second, at most ``capacity`` (>= 1) saved. Starts full."""

    __slots__ = ("capacity", "paused_until", "rate", "stamp", "tokens")

    def __init__(self, rate: float, capacity: float, now: float = -math.inf) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.stamp = now  # when ``tokens`` was right (-inf: long enough ago to be full)
        self.paused_until = -math.inf

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def take(self, now: float) -> float:
        """Take a token: 0.0, or (nothing taken) the seconds until one can be."""
        if now < self.paused_until:
            return self.paused_until - now
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate

    def give_back(self, now: float) -> None:
        """A taken token was not used (its request never went out)."""
        self._refill(now)
        self.tokens = min(self.capacity, self.tokens + 1.0)

    def pause(self, now: float, seconds: float) -> None:
        """Take nothing for ``seconds``; then one token, and ``rate`` a second."""
        until = now + seconds
        if until > self.paused_until:
            self.paused_until = until
            self.tokens = min(1.0, self.capacity)
            self.stamp = until

    def estimate(self, now: float, ahead: int) -> float:
        """Seconds a newcomer waits behind ``ahead`` waiters (each takes one token first)."""
        start = max(now, self.paused_until)
        saved = min(self.capacity, self.tokens + max(0.0, start - self.stamp) * self.rate)
        missing = ahead + 1.0 - saved
        return (start - now) + max(0.0, missing) / self.rate


def pause_seconds(headers: Mapping[str, str] | None, now_epoch: float) -> float:
    """How long a throttling answer asks the route to pause: its ``Retry-After``
    (delay-seconds or an HTTP-date, RFC 9110 §10.2.3), else ``DEFAULT_PAUSE_SECONDS``;
    never more than ``MAX_PAUSE_SECONDS``. ``now_epoch`` is the wall clock (for a date)."""
    value = (headers or {}).get("Retry-After")
    if value is None:
        return DEFAULT_PAUSE_SECONDS
    text = value.strip()
    if text.isascii() and text.isdigit():
        seconds = float(int(text[:9]))
    else:
        try:
            seconds = parsedate_to_datetime(text).timestamp() - now_epoch
        except (TypeError, ValueError, IndexError, OverflowError):
            return DEFAULT_PAUSE_SECONDS
    return min(MAX_PAUSE_SECONDS, max(0.0, seconds))


__all__ = ["DEFAULT_PAUSE_SECONDS", "MAX_PAUSE_SECONDS", "TokenBucket", "pause_seconds"]
