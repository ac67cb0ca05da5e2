"""The bounded keep-alive pool of upstream connections, and the deadlines of exchanges.

``UpstreamPool.take(endpoint)`` gives an idle healthy connection or None (never waits);
``connect(endpoint)`` waits for a slot (``pool.limit``, ``limit_per_host``), resolves the
host (cached ``_DNS_TTL`` seconds), connects and TLS-verifies (with the endpoint's route's
context: its CA, client certificate and name, re-read when the files change: ``tls``,
proxy/config/tls.py), and raises ``OSError``
(``socket.gaierror``, ``ssl.SSLError``, ...) for the exchange to map; ``release(conn)``
keeps a connection only when it says it is reusable. ``Deadlines`` aborts the connection
of an exchange that outlives its deadline, with one timer for all.

A request is never sent twice: nothing here retries. A pooled connection the gateway
closed while idle, or one holding bytes nobody asked for, is dropped before it is used.
"""

import asyncio
import collections
import errno
import ipaddress
import math
import os
import socket
import ssl
import time

from proxy.aio.client import AnswerBound, new_protocol
from proxy.config import Pool
from proxy.config.tls import ClientContexts
from proxy.upstream.connection import Connection
from proxy.upstream.endpoint import Endpoint, EndpointKey

_DNS_TTL = 60.0


class Deadlines:
    """Aborts the connection of an exchange that outlives its deadline; one timer for all.

    ``asyncio.timeout`` around each exchange costs a timer set and cancelled and a handful
    of frames per request, a real share of the request in the profile. Here a request
    only records its deadline (``start``, ``stop``); the one timer is set for the earliest
    deadline known, and when it fires it aborts the connections that are due (their
    exchange then fails; ``Connection.expired`` says why) and sets itself for the next.
    Deadlines are ``loop.time()`` seconds.
    """

    def __init__(self) -> None:
        self._busy: dict[Connection, float] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._at = math.inf
        # Looked up once: asyncio.get_running_loop() makes a system call (getpid) in 3.11.
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, conn: Connection, deadline: float) -> None:
        """``conn``'s exchange must be over by ``deadline`` (``loop.time()`` seconds)."""
        self._busy[conn] = deadline
        if deadline < self._at:
            self._arm(deadline)

    def now(self) -> float:
        """``loop.time()``, the clock deadlines are kept in."""
        return (self._loop or self._running_loop()).time()

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        self._loop = asyncio.get_running_loop()
        return self._loop

    def stop(self, conn: Connection) -> None:
        self._busy.pop(conn, None)

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._at = when
        self._timer = (self._loop or self._running_loop()).call_at(when, self._fire)

    def _fire(self) -> None:
        self._timer, self._at = None, math.inf
        now = (self._loop or self._running_loop()).time()
        nearest = math.inf
        for conn, deadline in list(self._busy.items()):
            if deadline <= now:
                del self._busy[conn]
                conn.expire()
            else:
                nearest = min(nearest, deadline)
        if self._busy:
            self._arm(nearest)


class UpstreamPool:
    """Keep-alive connections to the upstreams, bounded like ``pool`` says.

    ``limit`` counts every connection, idle, busy or being opened (0: no bound);
    ``limit_per_host`` the same per endpoint. Waiters are served first come, first served.
    Idle connections older than ``keepalive_seconds`` are closed. Single-threaded: lives
    on the event loop.
    """

    def __init__(self, pool: Pool) -> None:
        self._limit = pool.limit
        self._limit_per_host = pool.limit_per_host
        self._keepalive = float(pool.keepalive_seconds)
        self._idle: dict[EndpointKey, collections.deque[Connection]] = {}
        self._open: collections.Counter[EndpointKey] = collections.Counter()
        self._total = 0
        self._waiters: collections.deque[tuple[EndpointKey, asyncio.Future[None]]] = (
            collections.deque()
        )
        self._dns: dict[tuple[str, int], tuple[float, list[tuple[int, str]]]] = {}
        # One context per route TLS setting (and the system store's), created on first use
        # (plain-HTTP deployments never pay for one) and re-read when its files change.
        self.tls = ClientContexts()
        self._cleanup: asyncio.TimerHandle | None = None
        self._closed = False
        self.deadlines = Deadlines()

    @property
    def open_connections(self) -> int:
        """Connections open or being opened, for all endpoints."""
        return self._total

    def take(self, endpoint: Endpoint) -> Connection | None:
        """An idle, healthy connection to ``endpoint``, most recently used first; or None."""
        idle = self._idle.get(endpoint.key)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            protocol = conn.protocol
            if (
                protocol.is_connected()
                and not protocol.should_close
                and now - conn.idle_since <= self._keepalive
            ):
                return conn
            self._forget(conn)  # closed by the gateway, stale, or holding stray bytes
        return None

    async def connect(self, endpoint: Endpoint) -> Connection:
        """A connection to ``endpoint`` once the limits allow one: an idle one freed while
        waiting, else a new one. Raises ``OSError``."""
        key = endpoint.key
        while True:
            if self._closed:
                raise ConnectionResetError("the upstream pool is closed")
            conn = self.take(endpoint)
            if conn is not None:
                return conn
            if self._has_room(key):
                break
            await self._wait_turn(key)
        self._total += 1
        self._open[key] += 1
        try:
            protocol = await self._open_connection(endpoint)
        except BaseException:
            self._slot_freed(key)
            raise
        return Connection(endpoint, protocol)

    def release(self, conn: Connection) -> None:
        """The exchange on ``conn`` is over: keep it for the next one, or close it."""
        if conn.reusable and not self._closed:
            conn.idle_since = time.monotonic()
            self._idle.setdefault(conn.endpoint.key, collections.deque()).append(conn)
            self._schedule_cleanup()
            self._wake_one()  # a waiter for another endpoint may fit now that this one idles
            return
        self._forget(conn)

    async def close(self) -> None:
        """Close every idle connection; busy ones close when their exchange releases them."""
        self._closed = True
        if self._cleanup is not None:
            self._cleanup.cancel()
            self._cleanup = None
        for idle in self._idle.values():
            while idle:
                conn = idle.pop()
                # Dropped at once: a TLS connection's close would wait for the gateway's
                # close_notify, which a process about to exit does not need.
                conn.abort()
                self._forget(conn)
        for _, waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(ConnectionResetError("the upstream pool is closed"))
        self._waiters.clear()

    # --- limits ---------------------------------------------------------------------------
    def _has_room(self, key: EndpointKey) -> bool:
        """Whether a connection to ``key`` may open now, closing an idle one if that helps."""
        if self._limit and self._total >= self._limit and not self._close_an_idle(None):
            return False
        full = self._limit_per_host and self._open[key] >= self._limit_per_host
        return not full or self._close_an_idle(key)

    def _close_an_idle(self, key: EndpointKey | None) -> bool:
        """Make room by closing the oldest idle connection (of ``key``, or of any endpoint)."""
        queues = [self._idle.get(key)] if key is not None else list(self._idle.values())
        for idle in queues:
            if idle:
                self._forget(idle.popleft())
                return True
        return False

    def _forget(self, conn: Connection) -> None:
        conn.close()
        self._slot_freed(conn.endpoint.key)

    def _slot_freed(self, key: EndpointKey) -> None:
        self._total -= 1
        self._open[key] -= 1
        if not self._open[key]:
            del self._open[key]
        self._wake_one()

    def _wake_one(self) -> None:
        for entry in self._waiters:
            key, waiter = entry
            if not waiter.done() and self._has_room_now(key):
                self._waiters.remove(entry)
                waiter.set_result(None)
                return

    def _has_room_now(self, key: EndpointKey) -> bool:
        """Like ``_has_room``, without closing anything (idle ones count as room)."""
        idle_any = any(self._idle.values())
        if self._limit and self._total >= self._limit and not idle_any:
            return False
        if self._limit_per_host and self._open[key] >= self._limit_per_host:
            return bool(self._idle.get(key))
        return True

    async def _wait_turn(self, key: EndpointKey) -> None:
        waiter = asyncio.get_running_loop().create_future()
        entry = (key, waiter)
        self._waiters.append(entry)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._wake_one()  # woken, then cancelled before its turn: pass it on
            elif entry in self._waiters:
                self._waiters.remove(entry)
            raise

    # --- keep-alive expiry ------------------------------------------------------------------
    def _schedule_cleanup(self) -> None:
        if self._cleanup is None:
            loop = asyncio.get_running_loop()
            self._cleanup = loop.call_later(self._keepalive, self._expire_idle)

    def _expire_idle(self) -> None:
        self._cleanup = None
        deadline = time.monotonic() - self._keepalive
        for idle in self._idle.values():
            while idle and idle[0].idle_since <= deadline:
                self._forget(idle.popleft())
        if any(self._idle.values()):
            self._schedule_cleanup()

    # --- opening ----------------------------------------------------------------------------
    async def _open_connection(self, endpoint: Endpoint) -> AnswerBound:
        loop = asyncio.get_running_loop()
        tls = self.tls.context_for(endpoint.tls) if endpoint.scheme == "https" else None
        last: OSError | None = None
        for family, address in await self._resolve(endpoint.host, endpoint.port):
            try:
                _, protocol = await loop.create_connection(
                    lambda: new_protocol(loop),
                    address,
                    endpoint.port,
                    family=family,
                    ssl=tls,
                    server_hostname=endpoint.server_name if tls is not None else None,
                )
            except ssl.SSLError:
                raise  # a TLS failure is the gateway's answer; another address won't differ
            except OSError as exc:
                last = exc
                continue
            return protocol
        raise last or ConnectionRefusedError(errno.ECONNREFUSED, os.strerror(errno.ECONNREFUSED))

    async def _resolve(self, host: str, port: int) -> list[tuple[int, str]]:
        """(family, address) pairs for ``host``, cached ``_DNS_TTL`` seconds."""
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            pass
        else:  # no look-up (and no resolver thread) for an address
            family = socket.AF_INET6 if literal.version == 6 else socket.AF_INET
            return [(family, host)]
        cached = self._dns.get((host, port))
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_ADDRCONFIG
        )
        addresses: list[tuple[int, str]] = list(
            dict.fromkeys((int(info[0]), str(info[4][0])) for info in infos)
        )
        self._dns[(host, port)] = (now + _DNS_TTL, addresses)
        return addresses


__all__ = ["Deadlines", "UpstreamPool"]
