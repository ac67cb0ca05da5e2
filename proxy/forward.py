"""Talk to the upstream gateway: the one place where aiohttp and OS errors are mapped.

``exchange`` streams the app's body to the upstream and reads the (small) answer up
to the route's ``max_response_bytes``. It returns an ``UpstreamAnswer`` or raises
``ProxyFailure``, never anything else from aiohttp. The exception tree is kept
shallow on purpose::

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
gives on its own goes through one path.

``map_exception`` is the boundary; everything above it switches on ``kind``.
"""

import asyncio
import os
import time
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from proxy.config import Pool, Route
from proxy.vocab import FailureKind

_CHUNK = 64 * 1024
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


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


class _AppBodyTooLarge(Exception):
    """Raised inside the body stream; mapped to ``request_too_large``."""


class _AppBodyBroken(Exception):
    """Reading the app's body failed; mapped to ``bad_request``."""


class _AppBodyStalled(Exception):
    """The app's body paused longer than its ``body_idle``; mapped to ``client_timeout``."""


class Progress:
    """How many body bytes went upstream so far: read by the caller even when the
    exchange is cancelled (the app went away) or fails."""

    __slots__ = ("awaiting_app", "bytes_sent")

    def __init__(self) -> None:
        self.bytes_sent = 0
        # True while the upload waits for the app's next chunk: a timeout then is the app's.
        self.awaiting_app = False


@dataclass(frozen=True, slots=True)
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
    """The one ``ClientSession`` of the process: keep-alive, bounded pool, no cookies.

    Redirects are never followed and proxy env vars are ignored: only the configured
    upstreams are ever contacted.
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
    # the request went out, without knowing whether the gateway had it: a duplicate MMS.
    # The proxy never resends (the connector already drops connections it sees closed).
    session._retry_connection = False  # aiohttp has no public switch for it
    return session


def client_timeout(route: Route) -> aiohttp.ClientTimeout:
    """The route's timeouts; ``connect`` includes waiting for a pooled connection."""
    return aiohttp.ClientTimeout(total=route.timeout.total, connect=route.timeout.connect)


def upstream_url(route: Route, rest_path: str, raw_query: str) -> URL:
    """The route's upstream with the app's remaining (still encoded) path and query."""
    text = route.upstream + rest_path
    if raw_query:
        text += "?" + raw_query
    return URL(text, encoded=True)


async def exchange(
    session: aiohttp.ClientSession,
    route: Route,
    *,
    method: str,
    url: URL,
    headers: CIMultiDict[str],
    body: aiohttp.StreamReader | None,
    time_limits: aiohttp.ClientTimeout,
    progress: Progress | None = None,
) -> UpstreamAnswer:
    """Send one request upstream and read the answer. Raises only ``ProxyFailure``.

    ``progress`` (optional) counts the body bytes sent, as they go.
    """
    counter = progress or Progress()
    data = (
        _stream(body, counter, route.max_request_bytes, route.client_timeout.body_idle)
        if body is not None
        else None
    )
    started = time.perf_counter()
    try:
        async with session.request(
            method,
            url,
            headers=headers,
            data=data,
            timeout=time_limits,
            allow_redirects=False,
        ) as response:
            payload = await _read_capped(response, route.max_response_bytes)
            return UpstreamAnswer(
                status=response.status,
                headers=response.headers,
                body=payload,
                content=decode_content(
                    payload, response.headers.get("Content-Encoding"), route.max_response_bytes
                ),
                duration_s=time.perf_counter() - started,
                bytes_out=counter.bytes_sent,
            )
    except ProxyFailure as failure:
        failure.elapsed_s, failure.bytes_sent = time.perf_counter() - started, counter.bytes_sent
        raise
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        kind, detail = map_exception(exc)
        if kind == "timeout" and counter.awaiting_app:  # the app stalled, not the gateway
            kind, detail = "client_timeout", "the app's body stalled past the route's timeout"
        mapped = ProxyFailure(kind, detail)
        mapped.elapsed_s, mapped.bytes_sent = time.perf_counter() - started, counter.bytes_sent
        raise mapped from exc


async def _stream(
    body: aiohttp.StreamReader, counter: Progress, limit: int | None, idle: float
) -> AsyncIterator[bytes]:
    """Yield the app's body chunk by chunk, never holding it whole in memory.

    A pause longer than ``idle`` seconds between chunks is the app's stall, not the
    gateway's slowness: it ends the exchange as ``client_timeout``.
    """
    while True:
        counter.awaiting_app = True
        try:
            async with asyncio.timeout(idle):
                chunk = await body.readany()
        except TimeoutError as exc:
            raise _AppBodyStalled(f"the app's body paused for more than {idle:g} s") from exc
        except (aiohttp.ClientError, OSError, asyncio.IncompleteReadError) as exc:
            raise _AppBodyBroken(str(exc) or type(exc).__name__) from exc
        finally:
            counter.awaiting_app = False
        if not chunk:
            return
        counter.bytes_sent += len(chunk)
        if limit is not None and counter.bytes_sent > limit:
            raise _AppBodyTooLarge(f"request body is over {limit} bytes")
        yield chunk


async def _read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    declared = response.content_length
    if declared is not None and declared > limit:
        response.close()  # don't read (or reuse) a connection carrying a huge body
        raise ProxyFailure("too_large", f"gateway answer declared {declared} bytes (> {limit})")
    buffer = bytearray()
    async for chunk in response.content.iter_chunked(_CHUNK):
        buffer += chunk
        if len(buffer) > limit:
            response.close()
            raise ProxyFailure("too_large", f"gateway answer is over {limit} bytes")
    return bytes(buffer)


def decode_content(body: bytes, coding: str | None, limit: int) -> bytes:
    """Undo a gzip/deflate Content-Encoding, never inflating past ``limit`` bytes.

    The proxy asks for ``identity``; this is for gateways that compress anyway. A body
    that does not decode is returned as it is (the parser then calls it malformed); one
    that would inflate past ``limit`` is ``too_large`` (a zip bomb is not read whole).
    """
    coding = (coding or "").strip().lower()
    if coding in ("", "identity") or not body:
        return body
    wbits = _WBITS.get(coding)
    if wbits is None:
        return body
    inflater = zlib.decompressobj(wbits)
    try:
        content = inflater.decompress(body, limit + 1)
    except zlib.error:
        return body
    if len(content) > limit:
        raise ProxyFailure("too_large", f"gateway answer inflates to over {limit} bytes")
    return content


def map_exception(exc: BaseException) -> tuple[FailureKind, str]:
    """Map an aiohttp/OS/timeout error to a failure kind and a short description.

    Connect-phase errors (refused, DNS, TLS, connect timeout) never reached the gateway;
    everything after that may have, so it is ``connection_lost`` or ``timeout``.
    """
    cause = exc.__cause__
    if isinstance(cause, _AppBodyTooLarge):
        return "request_too_large", str(cause)
    if isinstance(cause, _AppBodyBroken):
        return "bad_request", f"the app's request body ended early: {cause}"
    if isinstance(cause, _AppBodyStalled):
        return "client_timeout", str(cause)
    name = type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return "connect", "timed out connecting to the gateway"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "connect", "could not resolve the gateway's host name"
    if isinstance(exc, aiohttp.ClientSSLError | aiohttp.ServerFingerprintMismatch):
        return "connect", f"TLS handshake with the gateway failed ({name})"
    if isinstance(exc, aiohttp.ClientConnectorError):
        # Not exc.strerror: it names the gateway's address ("Connect call failed (IP, port)").
        reason = os.strerror(exc.errno).lower() if exc.errno else name
        return "connect", f"could not connect to the gateway ({reason})"
    if isinstance(exc, aiohttp.ServerTimeoutError | asyncio.TimeoutError):
        return "timeout", "the gateway did not answer in time"
    if isinstance(exc, aiohttp.ClientResponseError):
        # Not the parser's message: it quotes the gateway's bytes (paths, numbers, tokens).
        return "unparseable", "the gateway's answer is not valid HTTP"
    return "connection_lost", f"the connection to the gateway was lost ({name})"
