"""The shared ledger: a Redis (``store: redis://...``), used by every replica at once.

``RedisLedger.from_url(url, timeout=0.5)`` makes a ``redis.asyncio`` client (its own
connection pool; connections are opened on first use) with short socket and connect
timeouts and no client-side retries, and every operation is bounded by ``timeout`` as a
whole: an unreachable or stalled Redis raises ``LedgerUnavailable`` within about that
long, never a hang.

Keys (``prefix`` then a SHA-256, so neither a key nor a message id is stored in clear)::

    <prefix>idem:<scope.storage_id>   "I" + token   in flight   SET NX PX (atomic
                                                                 set-if-absent, expiring)
                                      "D" + answer  answered    records.encode_answer
    <prefix>corr:<sha256(ns, id)>     correlation               SET PX

``finish`` and ``release`` are small Lua scripts (atomic on the server): finish stores
the answer unless one is stored; release deletes the marker only while it is still the
caller's (its token). Every failure (connection refused or reset, timeout, an error
reply, a record it cannot read) becomes ``LedgerUnavailable``; its reason names the
operation and the error's class, never the URL (it may hold a password).
"""

import asyncio
import hashlib
import math
import secrets
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from proxy.ledger.base import Begin, Done, InFlight, Ledger, LedgerUnavailable, Started
from proxy.ledger.key import Scope
from proxy.ledger.records import (
    Correlation,
    RecordError,
    StoredAnswer,
    decode_answer,
    decode_correlation,
    encode_answer,
    encode_correlation,
)

T = TypeVar("T")

#: Connections to Redis per process: calls past it wait for one (within their timeout).
MAX_CONNECTIONS = 64

DEFAULT_PREFIX = "gateway-proxy:"
_IN_FLIGHT = b"I"
_DONE = b"D"
_FINISH = """
local current = redis.call('GET', KEYS[1])
if current and string.sub(current, 1, 1) == 'D' then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _raw(value: bytes | str | None) -> bytes | None:
    """A value as bytes (the client is made without ``decode_responses``)."""
    return value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value


def _millis(ttl: float) -> int:
    return max(1, math.ceil(ttl * 1000))


class RedisLedger(Ledger):
    """The ledger in a Redis; see the module docstring. ``client`` is owned (closed)."""

    def __init__(
        self, client: "aioredis.Redis", *, timeout: float, prefix: str = DEFAULT_PREFIX
    ) -> None:
        self._client = client
        self._timeout = timeout
        self._prefix = prefix
        self._finish = client.register_script(_FINISH)
        self._release = client.register_script(_RELEASE)

    @classmethod
    def from_url(
        cls, url: str, *, timeout: float = 0.5, prefix: str = DEFAULT_PREFIX
    ) -> "RedisLedger":
        """A ledger on the Redis at ``url`` (``redis://[user:password@]host:port/db``,
        ``rediss://`` for TLS). Raises ``LedgerUnavailable`` for a URL it cannot use."""
        try:
            # A bounded pool that makes a call wait for a free connection (within the
            # call's own time limit) rather than fail: a burst of sends past the pool's
            # size must not fail a finish, which would let a key's marker expire into a
            # second send (the resend storm found redis-py's default pool doing that).
            pool = aioredis.BlockingConnectionPool.from_url(
                url,
                max_connections=MAX_CONNECTIONS,
                timeout=timeout * 2,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                retry=Retry(NoBackoff(), 0),  # one attempt: the caller answers 503 at once
                health_check_interval=0,
            )
            client = aioredis.Redis.from_pool(pool)  # closing the client closes the pool
        except (ValueError, RedisError) as exc:
            reason = f"the redis URL cannot be used ({type(exc).__name__})"
            raise LedgerUnavailable(reason) from None
        return cls(client, timeout=timeout, prefix=prefix)

    def _key(self, kind: str, digest: str) -> str:
        return f"{self._prefix}{kind}:{digest}"

    def _idem(self, scope: Scope) -> str:
        return self._key("idem", scope.storage_id)

    def _corr(self, message_id: str, namespace: str) -> str:
        digest = hashlib.sha256()
        for part in (namespace, message_id):
            raw = part.encode("utf-8", "surrogateescape")
            digest.update(len(raw).to_bytes(4, "big"))
            digest.update(raw)
        return self._key("corr", digest.hexdigest())

    async def _run(self, operation: str, work: Callable[[], Awaitable[T]]) -> T:
        """``work()`` within the timeout; every failure becomes ``LedgerUnavailable``."""
        try:
            async with asyncio.timeout(self._timeout * 2):  # connect, then the command
                return await work()
        except TimeoutError:
            raise LedgerUnavailable(f"redis {operation}: no answer in time") from None
        except (RedisError, OSError) as exc:
            raise LedgerUnavailable(f"redis {operation}: {type(exc).__name__}") from None
        except RecordError:
            raise LedgerUnavailable(f"redis {operation}: a stored record is unreadable") from None

    async def begin(self, scope: Scope, ttl: float) -> Begin:
        key, token = self._idem(scope), secrets.token_hex(16)

        async def work() -> Begin:
            # SET NX fails when the key exists; GET then says what it is. The key can
            # expire between the two: then try again (a few times at most).
            marker = _IN_FLIGHT + token.encode()
            for _ in range(3):
                if await self._client.set(key, marker, nx=True, px=_millis(ttl)):
                    return Started(token)
                current = _raw(await self._client.get(key))
                if current is None:
                    continue
                if current.startswith(_DONE):
                    return Done(*decode_answer(current[1:]))
                if current.startswith(_IN_FLIGHT):
                    return InFlight()
                raise RecordError("an idempotency record of an unknown kind")
            raise LedgerUnavailable("redis begin: the key kept expiring under it")

        return await self._run("begin", work)

    async def finish(
        self, scope: Scope, fingerprint: str, answer: StoredAnswer, ttl: float
    ) -> bool:
        record = _DONE + encode_answer(fingerprint, answer)

        async def work() -> bool:
            stored = await self._finish(keys=[self._idem(scope)], args=[record, _millis(ttl)])
            return bool(stored)

        return await self._run("finish", work)

    async def release(self, scope: Scope, started: Started) -> bool:
        marker = _IN_FLIGHT + started.token.encode()

        async def work() -> bool:
            return bool(await self._release(keys=[self._idem(scope)], args=[marker]))

        return await self._run("release", work)

    async def remember(
        self, message_id: str, namespace: str, record: Correlation, ttl: float
    ) -> None:
        key, raw = self._corr(message_id, namespace), encode_correlation(record)

        async def work() -> None:
            await self._client.set(key, raw, px=_millis(ttl))

        await self._run("remember", work)

    async def recall(self, message_id: str, namespace: str) -> Correlation | None:
        key = self._corr(message_id, namespace)

        async def work() -> Correlation | None:
            raw = _raw(await self._client.get(key))
            return None if raw is None else decode_correlation(raw)

        return await self._run("recall", work)

    async def ping(self) -> None:
        async def work() -> None:
            await self._client.ping()

        await self._run("ping", work)

    async def close(self) -> None:
        await self._client.aclose()


__all__ = ["DEFAULT_PREFIX", "RedisLedger"]
