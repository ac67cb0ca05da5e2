"""One upstream connection and one exchange on it at a time: the request out (its body
streamed), the answer in (within its cap).

The connection owns its state: whether a byte of the current request was written
(``sent``), whether its deadline expired (``expire``, called by ``pool.Deadlines``), and
whether the exchange ended cleanly enough to reuse it (``reusable``). The pool reads
``reusable``; nobody else sets any of it.
"""

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
from aiohttp import EMPTY_PAYLOAD, StreamReader
from multidict import CIMultiDict, CIMultiDictProxy

from proxy.aio.client import AnswerBound, RawResponseMessage, configure, drain, serialize_head
from proxy.upstream.endpoint import Endpoint
from proxy.upstream.errors import ExchangeFailure
from proxy.vocab import METHODS_WITHOUT_BODY

_LAST_CHUNK = b"0\r\n\r\n"
# What reading the app's body can raise: a broken upload, or the app gone (RuntimeError,
# "Connection closed.", from aiohttp's stream once the app's connection is lost).
_APP_BODY_ERRORS = (aiohttp.ClientError, OSError, asyncio.IncompleteReadError, RuntimeError)
_DIGITS = re.compile(r"[0-9]{1,18}")


@dataclass(slots=True)  # built per request: frozen=True costs a call per field
class Request:
    """One request: ``target`` is the request-target (path and query); ``body`` the app's
    stream, finished bytes (a webhook event), or None."""

    method: str
    target: str
    headers: CIMultiDict[str]
    body: StreamReader | bytes | None


@dataclass(slots=True)  # built per request: frozen=True costs a call per field
class Limits:
    """What one exchange may take: seconds to connect (pool wait included) and in all, the
    answer's size, the app's body size and its longest pause. ``body_unused``: the caller
    does not use the answer's body (a webhook's): it is read up to its cap and the rest
    dropped, never failed for, and never decoded."""

    connect: float
    total: float
    max_response_bytes: int
    max_request_bytes: int | None = None
    body_idle: float = 10.0
    body_unused: bool = False


class Progress:
    """How many body bytes went upstream so far: read by the caller even when the
    exchange is cancelled (the app went away) or fails."""

    __slots__ = ("awaiting_app", "bytes_sent", "tap")

    def __init__(self) -> None:
        self.bytes_sent = 0
        # Called with each body chunk and its offset in the body, as it goes (the ledger's
        # fingerprint); a body sent again starts again at offset 0.
        self.tap: Callable[[bytes, int], None] | None = None
        # True while the upload waits for the app's next chunk: a timeout then is the app's.
        self.awaiting_app = False


class Connection:
    """One upstream connection, used by one exchange at a time."""

    __slots__ = ("_clean", "_expired", "_sent", "endpoint", "idle_since", "protocol")

    def __init__(self, endpoint: Endpoint, protocol: AnswerBound) -> None:
        self.endpoint = endpoint
        self.protocol = protocol
        self.idle_since = 0.0
        self._clean = False  # the last answer was read to its end and both sides may go on
        self._expired = False  # aborted by the deadlines: the exchange ran out of time
        self._sent = False  # a byte of the current request may have been written

    @property
    def sent(self) -> bool:
        """Whether any byte of the current request may have reached the peer."""
        return self._sent

    @property
    def expired(self) -> bool:
        return self._expired

    @property
    def reusable(self) -> bool:
        """Whether the next exchange may use this connection."""
        protocol = self.protocol
        return (
            self._clean and not self._expired and protocol.is_connected()
            and not protocol.should_close
        )  # fmt: skip

    def expire(self) -> None:
        """The exchange's deadline passed: drop the connection (its waiter wakes)."""
        self._expired = True
        self.abort()

    def close(self) -> None:
        self._clean = False
        self.protocol.close()

    def abort(self) -> None:
        """Drop the connection at once; whoever waits for the answer (head or body) wakes
        with an error. (``ResponseHandler.abort`` would forget the body's stream first.)"""
        self._clean = False
        transport = self.protocol.transport
        if transport is not None:
            transport.abort()

    # --- one exchange ----------------------------------------------------------------
    async def round_trip(
        self, request: Request, limits: Limits, counter: Progress
    ) -> tuple[int, CIMultiDictProxy[str], bytes]:
        """Send ``request`` and read the answer: (status, headers, body within its cap).

        The body goes out in a task of its own when it is not all there yet, so a gateway
        that answers before reading all of it (an early error) is heard. Raises
        ``ExchangeFailure`` for what the app's body did, and OS, aiohttp or timeout errors
        for the rest (``errors.exchange_failure`` maps them).
        """
        self._clean = self._sent = False
        headers, chunked = _framing(request, self.endpoint)
        body = request.body
        if isinstance(body, bytes | None):
            first, done, stream = body or b"", True, None
            _count(first, counter, limits.max_request_bytes)
        else:
            first, done, stream = *_buffered(body, counter, limits), body
        self._send_head(request.method, request.target, headers, _frame(first, done, chunked))
        upload = None
        if not done:
            assert stream is not None
            upload = asyncio.get_running_loop().create_task(
                self._upload(stream, counter, limits, chunked), name="gateway-proxy-upload"
            )
        try:
            message, payload = await self._answer()
            content = await self._read_capped(message, payload, limits)
        except BaseException:
            self.abort()
            if upload is not None:
                upload.cancel()
                failed = upload.done() and not upload.cancelled() and upload.exception()
                if isinstance(failed, ExchangeFailure):  # the app's body broke: the cause
                    raise failed from None
            raise
        if upload is not None and (not upload.done() or upload.cancelled() or upload.exception()):
            upload.cancel()  # answered before the whole body went: this connection can't go on
            self._clean = False
        return message.code, message.headers, content

    def _send_head(self, method: str, target: str, headers: CIMultiDict[str], body: bytes) -> None:
        """Write the request line and headers, and ``body`` with them (one write)."""
        protocol = self.protocol
        configure(protocol, head_only=method == "HEAD")
        transport = protocol.transport
        if transport is None:
            raise ConnectionResetError("the connection to the gateway is closed")
        head = serialize_head(f"{method} {target} HTTP/1.1", headers)  # ValueError: CR/LF
        self._sent = True
        transport.write(head + body if body else head)

    async def _send_body(self, chunk: bytes) -> None:
        """Write one more piece of the body, then wait while the gateway reads slowly."""
        transport = self.protocol.transport
        if transport is None:
            raise ConnectionResetError("the connection to the gateway is closed")
        transport.write(chunk)
        await drain(self.protocol)

    async def _upload(
        self, body: StreamReader, counter: Progress, limits: Limits, chunked: bool
    ) -> None:
        """Stream the rest of the app's body, never holding it whole in memory.

        A pause longer than ``body_idle`` between chunks is the app's stall, not the
        gateway's slowness: it ends the exchange as ``client_timeout``. Any failure aborts
        the connection, which wakes the exchange waiting for the answer.
        """
        idle = limits.body_idle
        try:
            while True:
                counter.awaiting_app = True
                try:
                    async with asyncio.timeout(idle):
                        chunk = await body.readany()
                except TimeoutError as exc:
                    detail = f"the app's body paused for more than {idle:g} s"
                    raise ExchangeFailure("client_timeout", detail) from exc
                except _APP_BODY_ERRORS as exc:
                    raise _broken(exc) from exc
                finally:
                    counter.awaiting_app = False
                last = not chunk
                _count(chunk, counter, limits.max_request_bytes)
                await self._send_body(_frame(chunk, last, chunked))
                if last:
                    return
        except BaseException:
            self.abort()
            raise

    async def _answer(self) -> tuple[RawResponseMessage, StreamReader]:
        """The response head (interim 1xx answers skipped, 101 kept) and its payload."""
        while True:
            message, payload = await self.protocol.read()
            if not 100 <= message.code <= 199 or message.code == 101:
                return message, payload

    async def _read_capped(
        self, message: RawResponseMessage, payload: StreamReader, limits: Limits
    ) -> bytes:
        """The answer's body, never more than ``limits.max_response_bytes`` of it."""
        limit = limits.max_response_bytes
        if payload is EMPTY_PAYLOAD:
            self._clean = not message.should_close
            return b""
        value = message.headers.get("Content-Length")
        declared = int(value) if value is not None and _DIGITS.fullmatch(value) else None
        if declared is not None and declared > limit and not limits.body_unused:
            self.close()  # don't read (or reuse) a connection carrying a huge body
            raise ExchangeFailure(
                "too_large", f"gateway answer declared {declared} bytes (> {limit})"
            )
        if declared is not None and declared <= limit:  # bounded by its framing: at once
            data = await payload.read()
        else:
            buffer = bytearray()
            while chunk := await payload.readany():
                buffer += chunk
                if len(buffer) > limit:
                    self.close()
                    if limits.body_unused:
                        return bytes(buffer[:limit])
                    raise ExchangeFailure("too_large", f"gateway answer is over {limit} bytes")
            data = bytes(buffer)
        self._clean = payload.is_eof() and not message.should_close
        return data


def _framing(request: Request, endpoint: Endpoint) -> tuple[CIMultiDict[str], bool]:
    """The headers as they go out, and whether the body goes chunked.

    ``request.headers`` gets a ``Host`` (the upstream's, first) when it has none, and the
    framing aiohttp's client would give it: the app's ``Content-Length`` is kept; a
    streamed body without one is chunked; finished bytes get their length; no body on a
    method that may carry one is ``Content-Length: 0``.
    """
    headers, body = request.headers, request.body
    if "Host" not in headers:
        seeded: CIMultiDict[str] = CIMultiDict(Host=endpoint.host_header)
        seeded.extend(headers)
        headers = seeded
    chunked = False
    if "Content-Length" not in headers:
        if isinstance(body, bytes):
            headers["Content-Length"] = str(len(body))
        elif body is not None:
            headers["Transfer-Encoding"] = "chunked"
            chunked = True
        elif request.method not in METHODS_WITHOUT_BODY:
            headers["Content-Length"] = "0"
    return headers, chunked


def _buffered(body: StreamReader, counter: Progress, limits: Limits) -> tuple[bytes, bool]:
    """What of the app's body is here already (not waiting), and whether that is all."""
    try:
        chunk = body.read_nowait()
    except _APP_BODY_ERRORS as exc:
        raise _broken(exc) from exc
    _count(chunk, counter, limits.max_request_bytes)
    return chunk, body.at_eof()


def _frame(chunk: bytes, last: bool, chunked: bool) -> bytes:
    if not chunked:
        return chunk
    framed = b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunk else b""
    return framed + _LAST_CHUNK if last else framed


def _count(chunk: bytes, counter: Progress, limit: int | None) -> None:
    if counter.tap is not None:
        counter.tap(chunk, counter.bytes_sent)
    counter.bytes_sent += len(chunk)
    if limit is not None and counter.bytes_sent > limit:
        raise ExchangeFailure("request_too_large", f"request body is over {limit} bytes")


def _broken(exc: BaseException) -> ExchangeFailure:
    reason = str(exc) or type(exc).__name__
    return ExchangeFailure("bad_request", f"the app's request body ended early: {reason}")


__all__ = ["Connection", "Limits", "Progress", "Request"]
