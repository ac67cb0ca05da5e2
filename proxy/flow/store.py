"""``store: redis://``: one token bucket per route shared by every process and replica.

The bucket lives in Redis as a hash per route (``gateway-proxy:rate:<route>``: tokens,
when they were right, paused until), and one server-side Lua script does the arithmetic
of bucket.py on it atomically, on Redis's own clock (``TIME``), so no two processes'
clocks need to agree. The client is the ``redis`` package's asyncio client (imported
only when a config names a store); nothing here speaks the protocol itself.

When Redis cannot be reached (refused, a timeout, an error) the proxy keeps answering:
each route falls back to its process's own bucket at the process's share of the
contract (``RateLimit.local_rate``: ``per_second / --workers``), and tries Redis again
``_RETRY_SECONDS`` later, one call at a time. A call is bounded by ``_CALL_SECONDS``
(connect included), so a Redis that hangs costs one request that much once per retry,
never a hang. Every change is one log line (``store_unreachable``, ``store_recovered``),
``gateway_proxy_store_up`` says which side is in use, and
``gateway_proxy_store_errors_total`` counts the failures (the GatewayProxyStoreUnreachable
alert). With several replicas, the fallback lets each send its own share, so together
they may exceed the contract while Redis is down; the gateway's throttling answers then
still pause each of them.
"""

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from proxy.config import RateLimit
from proxy.flow.bucket import TokenBucket
from proxy.observability.logs import get_logger
from proxy.vocab import StoreError

if TYPE_CHECKING:
    pass

_log = get_logger("gateway_proxy")
#: Connections to the store per process; calls past it wait for one.
MAX_CONNECTIONS = 64
_CALL_SECONDS = 0.25  # one call to Redis, connecting included
_RETRY_SECONDS = 1.0  # after a failure, Redis is tried again this much later
_KEY_PREFIX = "gateway-proxy:rate:"

# KEYS[1]: the route's hash. ARGV: rate, capacity, op (take | give | pause), seconds.
# Returns the wait as a string (a Lua number would reach the client as an integer).
_SCRIPT = """
local rate = tonumber(ARGV[1])
local cap = tonumber(ARGV[2])
local op = ARGV[3]
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'stamp', 'paused')
local tokens = tonumber(state[1]) or cap
local stamp = tonumber(state[2]) or now
local paused = tonumber(state[3]) or 0
if now > stamp then
  tokens = math.min(cap, tokens + (now - stamp) * rate)
  stamp = now
end
local wait = 0
if op == 'take' then
  if now < paused then
    wait = paused - now
  elseif tokens >= 1 then
    tokens = tokens - 1
  else
    wait = (1 - tokens) / rate
  end
elseif op == 'give' then
  tokens = math.min(cap, tokens + 1)
elseif op == 'pause' then
  local untl = now + tonumber(ARGV[4])
  if untl > paused then
    paused = untl
    tokens = math.min(1, cap)
    stamp = untl
  end
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'stamp', tostring(stamp),
  'paused', tostring(paused))
local idle = cap / rate + math.max(paused - now, 0) + 60
redis.call('PEXPIRE', KEYS[1], math.ceil(idle * 1000))
return tostring(wait)
"""


class StoreDown(Exception):
    """Redis could not be used for this call (the caller falls back)."""


class Store:
    """The process's one Redis client and what it knows of Redis's health.

    ``on_health(up)`` and ``on_error(reason)`` feed the metrics.
    """

    def __init__(
        self,
        url: str,
        *,
        on_health: Callable[[bool], None] | None = None,
        on_error: Callable[[StoreError], None] | None = None,
    ) -> None:
        from redis.asyncio import BlockingConnectionPool, Redis  # noqa: PLC0415 - with a store
        from redis.asyncio.retry import Retry  # noqa: PLC0415
        from redis.backoff import NoBackoff  # noqa: PLC0415

        # A bounded pool whose calls wait for a free connection (within their time limit):
        # a burst past the pool's size is paced through the store, not failed over to
        # each process's own bucket.
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=MAX_CONNECTIONS,
            timeout=_CALL_SECONDS,
            socket_connect_timeout=_CALL_SECONDS,
            socket_timeout=_CALL_SECONDS,
            retry=Retry(NoBackoff(), 0),  # one try: a failure falls back, never waits
        )
        self._client: Redis = Redis.from_pool(pool)
        self._script = self._client.register_script(_SCRIPT)
        self._on_health = on_health
        self._on_error = on_error
        self.up = True
        self._retry_at = 0.0
        self._trying = False  # a call to a store known down is under way
        self._background: set[asyncio.Task[Any]] = set()
        if on_health is not None:
            on_health(True)

    def usable(self) -> bool:
        """Whether to ask Redis now: it is up, or it is time to try it again."""
        return self.up or (not self._trying and time.monotonic() >= self._retry_at)

    async def call(self, route: str, limit: RateLimit, op: str, seconds: float = 0.0) -> float:
        """Run the bucket script for ``route``; the wait it returns. Raises ``StoreDown``."""
        probing = not self.up
        self._trying = self._trying or probing
        try:
            async with asyncio.timeout(_CALL_SECONDS * 2):
                answer = await self._script(
                    keys=[_KEY_PREFIX + route],
                    args=[limit.per_second, limit.burst, op, seconds],
                )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every client error means: fall back
            self._failed(exc)
            raise StoreDown(type(exc).__name__) from None
        finally:
            if probing:
                self._trying = False
        if not self.up:
            self.up = True
            _log.warning("store_recovered", store="redis")
            if self._on_health is not None:
                self._on_health(True)
        wait = float(answer)
        return wait if math.isfinite(wait) and wait > 0 else 0.0

    def call_later(self, route: str, limit: RateLimit, op: str, seconds: float = 0.0) -> None:
        """``call`` in the background (a give-back or a pause nobody waits for)."""
        if not self.usable():
            return
        task = asyncio.get_running_loop().create_task(
            self._quietly(route, limit, op, seconds), name=f"gateway-proxy-store-{op}"
        )
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _quietly(self, route: str, limit: RateLimit, op: str, seconds: float) -> None:
        with contextlib.suppress(StoreDown):  # already logged and counted
            await self.call(route, limit, op, seconds)

    def _failed(self, exc: BaseException) -> None:
        reason: StoreError = "error"
        name = type(exc).__name__
        if isinstance(exc, TimeoutError) or "Timeout" in name:
            reason = "timeout"
        elif isinstance(exc, OSError) or "Connection" in name:
            reason = "connect"
        if self._on_error is not None:
            self._on_error(reason)
        self._retry_at = time.monotonic() + _RETRY_SECONDS
        if self.up:
            self.up = False
            # The error's type, never its message: it may quote the URL (and a password).
            _log.error(
                "store_unreachable",
                store="redis",
                reason=reason,
                error=name,
                fallback="each process's own bucket at its share of the rate limit",
                retry_seconds=_RETRY_SECONDS,
            )
            if self._on_health is not None:
                self._on_health(False)

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self._client.aclose()


class SharedSource:
    """A route's tokens from the shared bucket; its own bucket while Redis is down."""

    latency = _CALL_SECONDS * 2  # ``Store.call``'s bound

    def __init__(
        self, route: str, settings: RateLimit, store: Store, clock: Callable[[], float]
    ) -> None:
        self._route = route
        self._settings = settings
        self._store = store
        self._clock = clock
        self._local = TokenBucket(settings.local_rate, settings.local_burst)
        # When the shared bucket said the next token comes (it may be paused): a hint for
        # ``estimate``, which cannot see the other processes' queues.
        self._hint_until = -math.inf

    def take_now(self) -> float | None:
        if self._store.usable():
            return None  # ask Redis (the pump's round trip)
        return self._local.take(self._clock())

    async def take(self) -> float:
        if self._store.usable():
            try:
                wait = await self._store.call(self._route, self._settings, "take")
            except StoreDown:
                pass
            else:
                self._hint_until = self._clock() + wait
                return wait
        return self._local.take(self._clock())

    def give_back(self) -> None:
        if self._store.up:
            self._store.call_later(self._route, self._settings, "give")
        else:
            self._local.give_back(self._clock())

    def pause(self, seconds: float) -> None:
        now = self._clock()
        self._local.pause(now, seconds)
        self._hint_until = max(self._hint_until, now + seconds)
        self._store.call_later(self._route, self._settings, "pause", seconds)

    def estimate(self, ahead: int) -> float:
        now = self._clock()
        if not self._store.usable():
            return self._local.estimate(now, ahead)
        # At best the whole contract's rate serves this process's queue.
        return max(0.0, self._hint_until - now) + ahead / self._settings.per_second


__all__ = ["SharedSource", "Store", "StoreDown"]
