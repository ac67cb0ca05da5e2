"""Talk to the upstream gateway: the one place where aiohttp and OS errors are mapped.

``exchange`` streams the app's body to the upstream over the process's ``UpstreamPool``
(proxy/upstream.py: keep-alive HTTP/1.1 on aiohttp's connection protocol) and reads the
(small) answer up to the route's ``max_response_bytes``. It returns an ``UpstreamAnswer``
or raises ``ProxyFailure``, never anything else from aiohttp or the OS. The exception tree
is kept shallow on purpose::

    ProxyFailure(kind)         kind is one of
      connect                  refused, DNS, TLS, connect timeout: never reached the gateway
      timeout                  the total timeout ran out
      connection_lost          closed or reset before the full answer arrived
      too_large                the answer is over max_response_bytes
      unparseable              the answer is not valid HTTP
      request_too_large        the app's body is over max_request_bytes
      client_timeout           the app's body paused longer than client_timeout.body_idle
      bad_request              the app's body ended early or broke its framing

The server raises the same exception for requests it refuses before forwarding
(``route_not_found``, ``bad_request``, ``request_too_large``): every answer the proxy
gives on its own goes through one path. A detail never quotes the gateway's bytes or
names its address: it is sent to the app.

``map_exception`` is the boundary (``_connect_failure`` for the connect phase); everything
above it switches on ``kind``. Nothing is ever sent twice: a request whose connection
breaks is answered ``connection_lost``, never retried.
"""

import asyncio
import os
import socket
import ssl
import time
import zlib
from dataclasses import dataclass

import aiohttp
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.http_parser import RawResponseMessage
from aiohttp.streams import EMPTY_PAYLOAD, EofStream, StreamReader
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from proxy.config import Pool, Route
from proxy.upstream import Connection, Origin, UpstreamPool
from proxy.vocab import FailureKind

_GZIP_WBITS = 16 + zlib.MAX_WBITS
_GZIP_MAGIC = b"\x1f\x8b"
_METHODS_WITHOUT_BODY = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_LAST_CHUNK = b"0\r\n\r\n"
# What reading the app's body can raise: a broken upload, or the app gone (RuntimeError,
# "Connection closed.", from aiohttp's stream once the app's connection is lost).
_APP_BODY_ERRORS = (aiohttp.ClientError, OSError, asyncio.IncompleteReadError, RuntimeError)
# What reading or writing an upstream connection can raise, past the connect phase.
_TRANSPORT_ERRORS = (OSError, aiohttp.ClientError, HttpProcessingError, EofStream)


class ProxyFailure(Exception):
    """The proxy answers itself: no complete, valid gateway answer (or none was sought).

    ``elapsed_s`` and ``bytes_sent`` say how far the exchange with the gateway got, when
    one was attempted.
    """

    def __init__(self, kind: FailureKind, detail: str) -> None:
        super().__init__(detail)
        self.kind: FailureKind = kind
        self.detail = detail
        self.elapsed_s: float | None = None
        self.bytes_sent = 0


class Progress:
    """How many body bytes went upstream so far: read by the caller even when the
    exchange is cancelled (the app went away) or fails."""

    __slots__ = ("awaiting_app", "bytes_sent")

    def __init__(self) -> None:
        self.bytes_sent = 0
        # True while the upload waits for the app's next chunk: a timeout then is the app's.
        self.awaiting_app = False


@dataclass(slots=True)  # built per request: frozen=True costs a call per field
class UpstreamAnswer:
    """A complete gateway answer. ``body`` is as received (passthrough returns it);
    ``content`` is the same body with any gzip/deflate coding removed (parsers read it)."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    content: bytes
    duration_s: float
    bytes_out: int


def create_session(pool: Pool) -> aiohttp.ClientSession:
    """A ``ClientSession`` for the proxy's other calls (the app's webhooks, callbacks.py):
    keep-alive, bounded pool, no cookies.

    Redirects are never followed and proxy env vars are ignored: only the configured
    targets are ever contacted.
    """
    connector = aiohttp.TCPConnector(
        limit=pool.limit,
        limit_per_host=pool.limit_per_host,
        keepalive_timeout=pool.keepalive_seconds,
        ttl_dns_cache=60,
    )
    session = aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        trust_env=False,
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
    )
    # aiohttp resends GET/PUT/DELETE/... once when a kept-alive connection breaks after
    # the request went out, without knowing whether the peer had it. The proxy never
    # resends (the upstream pool, upstream.py, has no retry at all).
    session._retry_connection = False  # aiohttp has no public switch for it
    return session


def upstream_url(route: Route, rest_path: str, raw_query: str) -> URL:
    """The route's upstream with the app's remaining (still encoded) path and query."""
    text = route.upstream + rest_path
    if raw_query:
        text += "?" + raw_query
    return URL(text, encoded=True)


@dataclass(slots=True)  # built per request: frozen=True costs a call per field
class Request:
    """One request for the gateway: ``target`` is the request-target (path and query)."""

    method: str
    target: str
    headers: CIMultiDict[str]
    body: StreamReader | None


async def exchange(
    pool: UpstreamPool,
    route: Route,
    origin: Origin,
    request: Request,
    progress: Progress | None = None,
) -> UpstreamAnswer:
    """Send one request upstream and read the answer. Raises only ``ProxyFailure``.

    ``progress`` (optional) counts the body bytes sent, as they go. The route's
    ``timeout.total`` bounds it all (``Deadlines``: the connection is aborted when it runs
    out); ``timeout.connect`` the wait for a connection.
    """
    counter = progress or Progress()
    started = time.perf_counter()
    limits = route.timeout
    conn: Connection | None = None
    try:
        conn = pool.take(origin) or await _connect(pool, origin, limits.connect, limits.total)
        # The connect phase counts against the total, as it did inside asyncio.timeout.
        pool.deadlines.start(conn, limits.total - (time.perf_counter() - started))
        status, headers, payload = await _send(conn, route, request, counter)
    except ProxyFailure as failure:
        failure.elapsed_s, failure.bytes_sent = time.perf_counter() - started, counter.bytes_sent
        raise
    except (TimeoutError, *_TRANSPORT_ERRORS) as exc:
        kind, detail = map_exception(TimeoutError() if conn and conn.expired else exc)
        if kind == "timeout" and counter.awaiting_app:  # the app stalled, not the gateway
            kind, detail = "client_timeout", "the app's body stalled past the route's timeout"
        mapped = ProxyFailure(kind, detail)
        mapped.elapsed_s, mapped.bytes_sent = time.perf_counter() - started, counter.bytes_sent
        raise mapped from exc
    finally:
        if conn is not None:
            pool.deadlines.stop(conn)
            pool.release(conn)
    codings = headers.getall("Content-Encoding", None)
    content = payload
    if codings:
        try:
            content = decode_content(payload, ", ".join(codings), route.max_response_bytes)
        except ProxyFailure as failure:
            failure.elapsed_s = time.perf_counter() - started
            failure.bytes_sent = counter.bytes_sent
            raise
    return UpstreamAnswer(
        status=status,
        headers=headers,
        body=payload,
        content=content,
        duration_s=time.perf_counter() - started,
        bytes_out=counter.bytes_sent,
    )


async def _connect(pool: UpstreamPool, origin: Origin, connect: float, total: float) -> Connection:
    """A new connection within ``connect`` seconds (the pool wait included) and the total:
    the connect phase."""
    try:
        async with asyncio.timeout(min(connect, total)):
            return await pool.connect(origin)
    except TimeoutError:
        if total < connect:
            raise ProxyFailure("timeout", "the gateway did not answer in time") from None
        raise ProxyFailure("connect", "timed out connecting to the gateway") from None
    except OSError as exc:
        raise _connect_failure(exc) from exc


def _connect_failure(exc: OSError) -> ProxyFailure:
    """Connect-phase errors: nothing reached the gateway. Names no address (the text goes
    to the app)."""
    if isinstance(exc, socket.gaierror):
        return ProxyFailure("connect", "could not resolve the gateway's host name")
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        name = type(exc).__name__
        return ProxyFailure("connect", f"TLS handshake with the gateway failed ({name})")
    reason = os.strerror(exc.errno).lower() if exc.errno else type(exc).__name__
    return ProxyFailure("connect", f"could not connect to the gateway ({reason})")


async def _send(
    conn: Connection, route: Route, request: Request, counter: Progress
) -> tuple[int, CIMultiDictProxy[str], bytes]:
    """The exchange on ``conn``: the request, its body (streamed), the answer (capped).

    The body goes out in a task of its own when it is not all there yet, so a gateway that
    answers before reading all of it (an early error) is heard. ``conn.reusable`` is set
    when the answer was read to its end and both sides may go on.
    """
    headers, body, chunked = _framing(request, conn.origin)
    first, done = (b"", True) if body is None else _buffered(body, counter, route)
    conn.send_head(request.method, request.target, headers, _frame(first, done, chunked))
    upload = None
    if not done:
        assert body is not None
        upload = asyncio.get_running_loop().create_task(
            _upload(conn, body, counter, route, chunked), name="gateway-proxy-upload"
        )
    try:
        message, payload = await conn.answer()
        content = await _read_capped(conn, message, payload, route.max_response_bytes)
    except BaseException:
        conn.abort()
        if upload is not None:
            upload.cancel()
            failed = upload.done() and not upload.cancelled() and upload.exception()
            if isinstance(failed, ProxyFailure):  # the app's body broke: that is the cause
                raise failed from None
        raise
    if upload is not None and (not upload.done() or upload.cancelled() or upload.exception()):
        upload.cancel()  # answered before the whole body went: that connection cannot go on
        conn.reusable = False
    return message.code, message.headers, content


def _framing(
    request: Request, origin: Origin
) -> tuple[CIMultiDict[str], StreamReader | None, bool]:
    """The headers as they go out, the body, and whether it goes chunked.

    ``request.headers`` gets a ``Host`` (the upstream's, first) when it has none, and the
    framing aiohttp's client would give it: the app's ``Content-Length`` is kept; a body
    without one is chunked; no body on a method that may carry one is ``Content-Length: 0``.
    """
    headers, body = request.headers, request.body
    if "Host" not in headers:
        seeded: CIMultiDict[str] = CIMultiDict(Host=origin.host_header)
        seeded.extend(headers)
        headers = seeded
    chunked = False
    if "Content-Length" not in headers:
        if body is not None:
            headers["Transfer-Encoding"] = "chunked"
            chunked = True
        elif request.method not in _METHODS_WITHOUT_BODY:
            headers["Content-Length"] = "0"
    return headers, body, chunked


def _buffered(body: StreamReader, counter: Progress, route: Route) -> tuple[bytes, bool]:
    """What of the app's body is here already (not waiting), and whether that is all."""
    try:
        chunk = body.read_nowait()
    except _APP_BODY_ERRORS as exc:
        raise _broken(exc) from exc
    _count(chunk, counter, route.max_request_bytes)
    return chunk, body.at_eof()


def _frame(chunk: bytes, last: bool, chunked: bool) -> bytes:
    if not chunked:
        return chunk
    framed = b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunk else b""
    return framed + _LAST_CHUNK if last else framed


def _count(chunk: bytes, counter: Progress, limit: int | None) -> None:
    counter.bytes_sent += len(chunk)
    if limit is not None and counter.bytes_sent > limit:
        raise ProxyFailure("request_too_large", f"request body is over {limit} bytes")


def _broken(exc: BaseException) -> ProxyFailure:
    reason = str(exc) or type(exc).__name__
    return ProxyFailure("bad_request", f"the app's request body ended early: {reason}")


async def _upload(
    conn: Connection, body: StreamReader, counter: Progress, route: Route, chunked: bool
) -> None:
    """Stream the rest of the app's body, never holding it whole in memory.

    A pause longer than the route's ``body_idle`` between chunks is the app's stall, not
    the gateway's slowness: it ends the exchange as ``client_timeout``. Any failure aborts
    the connection, which wakes the exchange waiting for the answer.
    """
    idle = route.client_timeout.body_idle
    try:
        while True:
            counter.awaiting_app = True
            try:
                async with asyncio.timeout(idle):
                    chunk = await body.readany()
            except TimeoutError as exc:
                detail = f"the app's body paused for more than {idle:g} s"
                raise ProxyFailure("client_timeout", detail) from exc
            except _APP_BODY_ERRORS as exc:
                raise _broken(exc) from exc
            finally:
                counter.awaiting_app = False
            last = not chunk
            _count(chunk, counter, route.max_request_bytes)
            await conn.send_body(_frame(chunk, last, chunked))
            if last:
                return
    except BaseException:
        conn.abort()
        raise


def _content_length(message: RawResponseMessage) -> int | None:
    value = message.headers.get("Content-Length")
    try:
        return None if value is None else int(value)
    except ValueError:  # llhttp already refused malformed framing; be safe anyway
        return None


async def _read_capped(
    conn: Connection, message: RawResponseMessage, payload: StreamReader, limit: int
) -> bytes:
    """The answer's body, never more than ``limit`` bytes of it."""
    if payload is EMPTY_PAYLOAD:
        conn.reusable = not message.should_close
        return b""
    declared = _content_length(message)
    if declared is not None and declared > limit:
        conn.close()  # don't read (or reuse) a connection carrying a huge body
        raise ProxyFailure("too_large", f"gateway answer declared {declared} bytes (> {limit})")
    if declared is not None:  # bounded by its framing: read it at once
        data = await payload.read()
    else:
        buffer = bytearray()
        while chunk := await payload.readany():
            buffer += chunk
            if len(buffer) > limit:
                conn.close()
                raise ProxyFailure("too_large", f"gateway answer is over {limit} bytes")
        data = bytes(buffer)
    conn.reusable = payload.is_eof() and not message.should_close
    return data


def decode_content(body: bytes, coding: str | None, limit: int) -> bytes:
    """Undo every Content-Encoding completely, never inflating past ``limit`` bytes.

    ``coding`` lists the codings in the order they were applied (RFC 9110 §8.4), one
    header or several joined with ``,``; they are undone in reverse. ``gzip`` (and
    ``x-gzip``) is read member after member to the end (RFC 1952 allows any number, empty
    ones too; zero padding after the last is ignored); ``deflate`` with or without its
    zlib wrapper. The proxy asks for ``identity``; this is for gateways that compress
    anyway. Raises ``ProxyFailure``: ``unparseable`` when a body cannot be decoded
    completely (an unknown coding, corrupt or truncated data, bytes after the end), with
    the reason; ``too_large`` when it would inflate past ``limit`` (a zip bomb is never
    read whole). A body that decodes in part is never used in part.
    """
    if not coding or not body:
        return body
    for name in reversed([c.strip().lower() for c in coding.split(",") if c.strip()]):
        if name == "identity":
            continue
        if name in ("gzip", "x-gzip"):
            body = _gunzip(body, limit)
        elif name == "deflate":
            body = _inflate(body, limit)
        else:
            raise _undecodable(f"content coding {name[:32]!r} is not one the proxy decodes")
    return body


def _gunzip(body: bytes, limit: int) -> bytes:
    """Every gzip member of ``body``, concatenated."""
    out = bytearray()
    rest = body
    while True:
        inflater = zlib.decompressobj(_GZIP_WBITS)
        out += _inflated(inflater, rest, limit - len(out), "gzip")
        rest = inflater.unused_data
        if not rest.strip(b"\x00"):  # the end, or the zero padding gzip(1) also allows
            return bytes(out)
        if not rest.startswith(_GZIP_MAGIC):
            raise _undecodable("gzip data is followed by bytes that are not a gzip member")


def _inflate(body: bytes, limit: int) -> bytes:
    """A ``deflate`` body: zlib-wrapped as RFC 9110 says, or raw as many servers send it."""
    wrapped = len(body) >= 2 and body[0] & 0x0F == 8 and (body[0] << 8 | body[1]) % 31 == 0
    inflater = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
    content = _inflated(inflater, body, limit, "deflate")
    if inflater.unused_data.strip(b"\x00"):
        raise _undecodable("deflate data is followed by more bytes")
    return content


def _inflated(inflater: "zlib._Decompress", data: bytes, room: int, name: str) -> bytes:
    """One stream inflated to its end, in at most ``room`` bytes."""
    try:
        content = inflater.decompress(data, room + 1)
    except zlib.error as exc:
        raise _undecodable(f"{name} data is corrupt ({exc})") from None
    if len(content) > room or inflater.unconsumed_tail:
        raise ProxyFailure("too_large", "gateway answer inflates to over the route's limit")
    if not inflater.eof:
        raise _undecodable(f"{name} data ends before its end (truncated)")
    return content


def _undecodable(reason: str) -> ProxyFailure:
    return ProxyFailure("unparseable", f"the gateway's answer could not be decoded: {reason}")


def map_exception(exc: BaseException) -> tuple[FailureKind, str]:
    """Map an aiohttp/OS/timeout error to a failure kind and a short description.

    Connect-phase errors (refused, DNS, TLS, connect timeout) never reached the gateway;
    everything after that may have, so it is ``connection_lost`` or ``timeout``. The
    description names the error's type, never its message: that may quote the gateway's
    bytes or its address.
    """
    name = type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return "connect", "timed out connecting to the gateway"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "connect", "could not resolve the gateway's host name"
    if isinstance(exc, aiohttp.ClientSSLError | aiohttp.ServerFingerprintMismatch):
        return "connect", f"TLS handshake with the gateway failed ({name})"
    if isinstance(exc, aiohttp.ClientConnectorError):
        reason = os.strerror(exc.os_error.errno).lower() if exc.os_error.errno else name
        return "connect", f"could not connect to the gateway ({reason})"
    if isinstance(exc, aiohttp.ServerTimeoutError | asyncio.TimeoutError):
        return "timeout", "the gateway did not answer in time"
    if isinstance(exc, aiohttp.ClientResponseError | HttpProcessingError):
        cause = exc.__cause__ if isinstance(exc.__cause__, HttpProcessingError) else exc
        return "unparseable", f"the gateway's answer is not valid HTTP ({type(cause).__name__})"
    return "connection_lost", f"the connection to the gateway was lost ({name})"
