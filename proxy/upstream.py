"""The upstream HTTP/1.1 client: one bounded keep-alive pool, and one exchange at a time.

``forward.exchange`` drives it; this module only moves bytes. It is aiohttp's own
connection protocol (``aiohttp.client_proto.ResponseHandler``: the llhttp response parser,
its payload streams and its EOF and error handling) without ``ClientSession``'s request
machinery, which the proxy does not need (cookies, redirects, auth, tracing, proxies,
payload registry, per-request URL and header processing): that machinery was the largest
cost of a request in the profile. What is left, and what it promises::

    UpstreamPool.take(origin) ─► an idle keep-alive connection, or None (never waits)
    UpstreamPool.connect(origin) ─► waits for a slot (pool.limit, limit_per_host), resolves
        the host (cached ``_DNS_TTL`` seconds), connects, TLS-verifies; raises OSError
        (socket.gaierror, ssl.SSLError, ...) for ``forward`` to map
    Connection.send_head / send_body ─► the request, with back-pressure
    Connection.answer() ─► the response head (1xx skipped) and its payload stream
    UpstreamPool.release(conn) ─► back to the pool only when the exchange ended cleanly

A request is never sent twice: nothing here retries. A pooled connection the gateway
closed while idle, or one holding bytes nobody asked for, is dropped before it is used.

Bytes after a complete answer (a ``Content-Length`` that undercounts) are not an answer
to anything: ``AnswerBound`` hands the parser only the answer's own bytes, drops the
rest, and marks the connection not reusable. The answer stands.
"""

import asyncio
import collections
import errno
import ipaddress
import math
import os
import re
import socket
import ssl
import time
from dataclasses import dataclass

from aiohttp.client_proto import ResponseHandler
from aiohttp.http_parser import RawResponseMessage
from aiohttp.http_writer import _serialize_headers
from aiohttp.streams import StreamReader
from multidict import CIMultiDict
from yarl import URL

from proxy.config import Pool

_DNS_TTL = 60.0
# Parser limits, as aiohttp's client has them.
_MAX_LINE, _MAX_FIELD, _MAX_HEADERS = 8190, 8190, 128
_READ_BUFSIZE = 2**16
# The end of a response head, as llhttp accepts it (bare LF line ends included).
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([0-9]{3})")
_CONTENT_LENGTH = re.compile(rb"\ncontent-length[ \t]*:[ \t]*([0-9]+)[ \t]*\r?(?=\n|$)", re.I)
_TRANSFER_ENCODING = re.compile(rb"\ntransfer-encoding[ \t]*:", re.I)
_MAX_HEAD = _MAX_FIELD * 8  # past this the parser refuses the head anyway


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a route's requests go: parsed once from its ``upstream`` URL."""

    scheme: str
    host: str
    port: int
    host_header: str  # host[:port], the port only when not the scheme's default
    base_path: str  # the upstream's path, without a trailing slash ("" for "/")

    @property
    def key(self) -> tuple[str, str, int]:
        return self.scheme, self.host, self.port


def origin_of(upstream: str) -> Origin:
    """The ``Origin`` of an ``http://`` or ``https://`` upstream URL (validated by config)."""
    url = URL(upstream, encoded=True)
    host, port = url.host, url.port
    if url.scheme not in ("http", "https") or host is None or port is None:
        raise ValueError(f"not an http(s) URL with a host: {upstream!r}")
    host_header = url.host_port_subcomponent
    path = url.raw_path.rstrip("/")
    return Origin(url.scheme, host, port, host_header or host, path)


def request_target(origin: Origin, rest_path: str, raw_query: str) -> str:
    """The request-target sent upstream: the upstream's path, the rest, the raw query."""
    target = origin.base_path + rest_path or "/"
    return f"{target}?{raw_query}" if raw_query else target


class AnswerBound(ResponseHandler):
    """aiohttp's response protocol, fed no byte past the end of the answer it waits for.

    It reads the answer's head as it arrives (interim 1xx heads skipped) and, when the
    final head frames its body by ``Content-Length`` (or has none: HEAD, 204, 304), knows
    where the answer ends. What comes after that end is not given to the parser: it would
    read it as the start of another response and fail the one it has. It is dropped, and
    the connection is closed when the exchange is over (``stray`` says so). Answers
    framed otherwise (chunked, or read until the connection closes) are passed on whole.
    """

    __slots__ = ("_end", "_head", "_scanning", "_seen", "_skip_body", "stray")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.begin(skip_body=False)

    def begin(self, *, skip_body: bool) -> None:
        """A new exchange: its answer starts with the next byte (a HEAD's has no body)."""
        self._skip_body = skip_body
        self._seen = 0  # bytes of this exchange's answer received so far
        self._end: int | None = None  # where the answer ends, once its head says
        self._head = bytearray()  # the head being read, from its first byte
        self._scanning = True
        self.stray = False

    def data_received(self, data: bytes) -> None:
        if self._scanning:
            self._read_head(data)
        end = self._end
        if end is not None and self._seen + len(data) > end:
            data = data[: max(end - self._seen, 0)]
            self._strayed()
            if not data:
                return
        self._seen += len(data)
        super().data_received(data)

    def _strayed(self) -> None:
        self.stray = True
        self.force_close()  # never reused: what it holds answers nothing

    def _read_head(self, data: bytes) -> None:
        """Find the end of the answer in the bytes that have come so far, if it can be."""
        held = len(self._head)
        head = bytes(self._head) + data if held else data  # most heads come in one piece
        offset = self._seen - held  # where ``head`` starts in the answer
        while True:
            found = _HEAD_END.search(head)
            if found is None:
                if len(head) > _MAX_HEAD:
                    self._stop_scanning()
                else:
                    self._head = bytearray(head)
                return
            length = self._body_length(head[: found.start()])
            if length != -1:
                if length is not None:
                    self._end = offset + found.end() + length
                self._stop_scanning()
                return
            head = head[found.end() :]  # an interim 1xx head: the answer follows it
            offset += found.end()

    def _stop_scanning(self) -> None:
        self._scanning = False
        self._head = bytearray()

    def _body_length(self, head: bytes) -> int | None:
        """-1 for an interim head; the body's length when the head frames it; else None."""
        status = _STATUS_LINE.match(head)
        if status is None:
            return None  # the parser will say what is wrong with it
        code = int(status.group(1))
        if 100 <= code < 200:
            return None if code == 101 else -1
        if self._skip_body or code in (204, 304):
            return 0
        if _TRANSFER_ENCODING.search(head) is not None:
            return None
        lengths = set(_CONTENT_LENGTH.findall(head))
        if len(lengths) != 1:
            return None  # none (read until close), or several: left to the parser
        length = lengths.pop()
        return int(length) if len(length) < 19 else None


class Connection:
    """One upstream connection, used by one exchange at a time."""

    __slots__ = ("expired", "idle_since", "origin", "protocol", "reusable")

    def __init__(self, origin: Origin, protocol: AnswerBound) -> None:
        self.origin = origin
        self.protocol = protocol
        self.idle_since = 0.0
        self.reusable = False  # set by the exchange once its answer was read to the end
        self.expired = False  # aborted by Deadlines: the exchange ran out of time

    def send_head(self, method: str, target: str, headers: CIMultiDict[str], body: bytes) -> None:
        """Write the request line and headers, and ``body`` with them (one write).

        Raises ``ValueError`` on a CR, LF or other control character in a header (aiohttp's
        own check: no header injection) and ``ConnectionResetError`` if the connection is gone.
        """
        protocol = self.protocol
        protocol.begin(skip_body=method == "HEAD")
        protocol.set_response_params(
            skip_payload=method == "HEAD",
            read_until_eof=True,
            auto_decompress=False,
            max_line_size=_MAX_LINE,
            max_field_size=_MAX_FIELD,
            max_headers=_MAX_HEADERS,
            read_bufsize=_READ_BUFSIZE,
        )
        transport = protocol.transport
        if transport is None:
            raise ConnectionResetError("the connection to the gateway is closed")
        head = _serialize_headers(f"{method} {target} HTTP/1.1", headers)
        transport.write(head + body if body else head)

    async def send_body(self, chunk: bytes) -> None:
        """Write one more piece of the body, then wait while the gateway reads slowly."""
        protocol = self.protocol
        transport = protocol.transport
        if transport is None:
            raise ConnectionResetError("the connection to the gateway is closed")
        transport.write(chunk)
        if protocol.writing_paused:
            await protocol._drain_helper()

    async def answer(self) -> tuple[RawResponseMessage, StreamReader]:
        """The response head (interim 1xx answers skipped, 101 kept) and its payload."""
        while True:
            message, payload = await self.protocol.read()
            if not 100 <= message.code <= 199 or message.code == 101:
                return message, payload

    def close(self) -> None:
        self.reusable = False
        self.protocol.close()

    def abort(self) -> None:
        """Drop the connection at once; whoever waits for the answer (head or body) wakes
        with an error. (``ResponseHandler.abort`` would forget the body's stream first.)"""
        self.reusable = False
        transport = self.protocol.transport
        if transport is not None:
            transport.abort()


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

    def start(self, conn: Connection, seconds: float) -> None:
        """``conn``'s exchange must be over within ``seconds`` from now."""
        loop = self._loop or self._running_loop()
        deadline = loop.time() + seconds
        self._busy[conn] = deadline
        if deadline < self._at:
            self._arm(deadline)

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
                conn.abort()
                conn.expired = True
            else:
                nearest = min(nearest, deadline)
        if self._busy:
            self._arm(nearest)


class UpstreamPool:
    """Keep-alive connections to the upstreams, bounded like ``pool`` says.

    ``limit`` counts every connection, idle, busy or being opened (0: no bound);
    ``limit_per_host`` the same per origin. Waiters are served first come, first served.
    Idle connections older than ``keepalive_seconds`` are closed. Single-threaded: lives
    on the event loop.
    """

    def __init__(self, pool: Pool) -> None:
        self._limit = pool.limit
        self._limit_per_host = pool.limit_per_host
        self._keepalive = float(pool.keepalive_seconds)
        self._idle: dict[tuple[str, str, int], collections.deque[Connection]] = {}
        self._open: collections.Counter[tuple[str, str, int]] = collections.Counter()
        self._total = 0
        self._waiters: collections.deque[tuple[tuple[str, str, int], asyncio.Future[None]]] = (
            collections.deque()
        )
        self._dns: dict[tuple[str, int], tuple[float, list[tuple[int, str]]]] = {}
        self._tls: ssl.SSLContext | None = None
        self._cleanup: asyncio.TimerHandle | None = None
        self._closed = False
        self.deadlines = Deadlines()

    @property
    def open_connections(self) -> int:
        """Connections open or being opened, for all origins."""
        return self._total

    def take(self, origin: Origin) -> Connection | None:
        """An idle, healthy connection to ``origin``, most recently used first; or None."""
        idle = self._idle.get(origin.key)
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

    async def connect(self, origin: Origin) -> Connection:
        """A connection to ``origin`` once the limits allow one: an idle one freed while
        waiting, else a new one. Raises ``OSError``."""
        key = origin.key
        while True:
            if self._closed:
                raise ConnectionResetError("the upstream pool is closed")
            conn = self.take(origin)
            if conn is not None:
                return conn
            if self._has_room(key):
                break
            await self._wait_turn(key)
        self._total += 1
        self._open[key] += 1
        try:
            protocol = await self._open_connection(origin)
        except BaseException:
            self._slot_freed(key)
            raise
        return Connection(origin, protocol)

    def release(self, conn: Connection) -> None:
        """The exchange on ``conn`` is over: keep it for the next one, or close it."""
        protocol = conn.protocol
        if (
            conn.reusable
            and not self._closed
            and protocol.is_connected()
            and not protocol.should_close
        ):
            conn.reusable = False
            conn.idle_since = time.monotonic()
            self._idle.setdefault(conn.origin.key, collections.deque()).append(conn)
            self._schedule_cleanup()
            self._wake_one()  # a waiter for another origin may fit now that this one idles
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
                self._forget(idle.pop())
        for _, waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(ConnectionResetError("the upstream pool is closed"))
        self._waiters.clear()

    # --- limits ---------------------------------------------------------------------------
    def _has_room(self, key: tuple[str, str, int]) -> bool:
        """Whether a connection to ``key`` may open now, closing an idle one if that helps."""
        if self._limit and self._total >= self._limit and not self._close_an_idle(None):
            return False
        full = self._limit_per_host and self._open[key] >= self._limit_per_host
        return not full or self._close_an_idle(key)

    def _close_an_idle(self, key: tuple[str, str, int] | None) -> bool:
        """Make room by closing the oldest idle connection (of ``key``, or of any origin)."""
        queues = [self._idle.get(key)] if key is not None else list(self._idle.values())
        for idle in queues:
            if idle:
                self._forget(idle.popleft())
                return True
        return False

    def _forget(self, conn: Connection) -> None:
        conn.close()
        self._slot_freed(conn.origin.key)

    def _slot_freed(self, key: tuple[str, str, int]) -> None:
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

    def _has_room_now(self, key: tuple[str, str, int]) -> bool:
        """Like ``_has_room``, without closing anything (idle ones count as room)."""
        idle_any = any(self._idle.values())
        if self._limit and self._total >= self._limit and not idle_any:
            return False
        if self._limit_per_host and self._open[key] >= self._limit_per_host:
            return bool(self._idle.get(key))
        return True

    async def _wait_turn(self, key: tuple[str, str, int]) -> None:
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
    async def _open_connection(self, origin: Origin) -> AnswerBound:
        loop = asyncio.get_running_loop()
        tls = self._tls_context() if origin.scheme == "https" else None
        last: OSError | None = None
        for family, address in await self._resolve(origin.host, origin.port):
            try:
                _, protocol = await loop.create_connection(
                    lambda: AnswerBound(loop),
                    address,
                    origin.port,
                    family=family,
                    ssl=tls,
                    server_hostname=origin.host if tls is not None else None,
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

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:  # created on first use: plain-HTTP deployments never pay for it
            self._tls = ssl.create_default_context()
        return self._tls


__all__ = [
    "AnswerBound",
    "Connection",
    "Deadlines",
    "Origin",
    "UpstreamPool",
    "origin_of",
    "request_target",
]
