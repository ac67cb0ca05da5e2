"""aiohttp's server side, guarded: the connection handler, the runner and the test server.

Part of the fence (``proxy.aio``): it subclasses aiohttp's ``RequestHandler``,
``web.Server`` and ``web.AppRunner`` and reads their private state.

``GuardedServer`` is aiohttp's ``web.Server`` whose connections are handled by
``GuardedRequestHandler``, which adds four things to aiohttp's own ``RequestHandler``:

* **a head deadline** (``client_timeout.head``): from the first byte of a request (or the
  connection's start) to its complete request line and headers. A client trickling its
  head (slowloris) is cut when it passes, logged and counted; aiohttp alone would wait
  for its keep-alive timer, which a trickle keeps resetting;
* **protocol errors as envelopes**: what aiohttp's parser refuses (headers or a URL over
  the limits, too many headers, bad framing) is answered by ``Edge.protocol_error`` with
  the proxy's JSON envelope instead of aiohttp's plain text and traceback log, and the
  connection is closed after it, as RFC 9112 requires;
* **extension methods**: aiohttp's C parser (llhttp) knows a fixed list of methods; a
  connection whose first request uses another valid token (``FOO``) is parsed by
  aiohttp's pure-Python parser instead, so that the method is forwarded like any other;
* **answers in one write**: a finished body is sent by ``response_writer.write_at_once``
  instead of aiohttp's layered ``prepare`` and ``write_eof``.

``AppHandler`` is the request handler the guarded server calls: the app's one catch-all
handler, without ``Application._handle``'s router look-up and middleware chain (a real
share of a request's cost in the profile), but with what that path gives a request:
``request.app`` and its ``on_response_prepare`` signal, and the ``Expect: 100-continue``
answer.

``GuardedRunner`` is ``web.AppRunner`` serving an app through ``GuardedServer`` and
``AppHandler`` (``proxy.aio.testing`` runs it under aiohttp's ``TestServer``).

Everything here is aiohttp plumbing; what to answer and how to count it is the
``Edge`` callbacks' business (proxy/server/).
"""

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, cast

from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.http_parser import HttpRequestParserPy
from aiohttp.web_protocol import RequestHandler, RequestPayloadError
from aiohttp.web_request import BaseRequest
from aiohttp.web_urldispatcher import UrlMappingMatchInfo

from proxy.aio.writer import can_write_at_once, write_at_once
from proxy.vocab import FailureKind

# Methods llhttp parses natively; any other valid token gets the Python parser.
_LLHTTP_METHODS = frozenset(
    b"DELETE GET HEAD POST PUT CONNECT OPTIONS TRACE COPY LOCK MKCOL MOVE PROPFIND "
    b"PROPPATCH SEARCH UNLOCK BIND REBIND UNBIND ACL REPORT MKACTIVITY CHECKOUT MERGE "
    b"M-SEARCH NOTIFY SUBSCRIBE UNSUBSCRIBE PATCH PURGE MKCALENDAR LINK UNLINK SOURCE "
    b"QUERY".split()
)
_METHOD = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}) ")
# Enough of a connection's first bytes to tell a long request line from long headers.
_HEAD_SAMPLE = 16 * 1024


class Edge(Protocol):
    """What the connection handler reports to the application (server.py)."""

    def protocol_error(self, request: BaseRequest, kind: FailureKind, detail: str) -> web.Response:
        """The answer to a request aiohttp's parser refused."""

    def head_timeout(self, peer: str | None) -> None:
        """A connection was closed because its request head did not arrive in time."""


class GuardedServer(web.Server):
    """``web.Server`` whose connections get the proxy's guards."""

    def __init__(self, *args: Any, edge: Edge, head_seconds: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.edge = edge
        self.head_seconds = head_seconds

    def __call__(self) -> RequestHandler:
        return GuardedRequestHandler(self, loop=self._loop, **self._kwargs)


class GuardedRequestHandler(RequestHandler):
    """aiohttp's connection handler plus a head deadline, envelopes and any method."""

    def __init__(self, manager: GuardedServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._edge = manager.edge
        self._head_seconds = manager.head_seconds
        # When the head now arriving must be complete (None: no head is pending), and the
        # one timer that checks it. The timer is kept across requests and re-armed only
        # when it fires early: arming a timer per request costs more than the check.
        self._head_deadline: float | None = None
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_sample = b""  # the first bytes of the current head (bounded)
        self._parsed_head = b""  # the sample of the head parsed last (for its refusal)
        self._first_data = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def resume_reading(self, resume_parser: bool = True) -> None:
        # aiohttp's payload stream calls this after every read that leaves it below its low
        # water mark, paused or not. Unpaused, nothing is held back: skip feeding the
        # parser an empty chunk on every request.
        if self._reading_paused:
            super().resume_reading(resume_parser)

    def data_received(self, data: bytes) -> None:
        if self._first_data:
            self._first_data = False
            self._python_parser_for_extension_methods(data)
        idle = not self._request_in_progress and not self._messages
        if idle and self._head_deadline is None:
            self._arm()  # a new request begins on a kept-alive connection
        if len(self._head_sample) < _HEAD_SAMPLE:
            self._head_sample += data[: _HEAD_SAMPLE - len(self._head_sample)]
        parsed = self._request_count
        super().data_received(data)
        if self._request_count > parsed:  # a whole head (or a refusal) came out
            self._disarm()
            self._parsed_head, self._head_sample = self._head_sample, b""

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """Parser refusals become envelopes; anything else is aiohttp's own answer."""
        if not isinstance(exc, HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        kind: FailureKind = "bad_request"
        detail = f"the request is not valid HTTP/1.1 ({type(exc).__name__})"
        if isinstance(exc, LineTooLong):
            request_line = self._parsed_head.split(b"\n", 1)[0]
            if len(request_line) > self.max_line_size:
                kind, detail = "uri_too_long", "the request line is over the size limit"
            else:
                kind, detail = "header_too_large", "a request header is over the size limit"
        elif "Too many headers" in str(exc):
            kind, detail = "header_too_large", "the request has too many header fields"
        response = self._edge.protocol_error(request, kind, detail)
        response.force_close()  # the framing can't be trusted any more (RFC 9112 §9.6)
        return response

    async def finish_response(
        self, request: BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        """A finished body goes out in one write (response_writer.py); else aiohttp's way.

        Returns what aiohttp's returns: the response, and whether the app had gone.
        """
        if self._upgraded or not can_write_at_once(request, resp):
            return await super().finish_response(request, resp, start_time)
        request._finish()
        try:
            await write_at_once(request, cast(web.Response, resp))
        except ConnectionError:
            self.log_access(request, resp, start_time)
            return resp, True
        self.log_access(request, resp, start_time)
        return resp, False

    def _python_parser_for_extension_methods(self, data: bytes) -> None:
        method = _METHOD.match(data)
        if method is None or method.group(1) in _LLHTTP_METHODS:
            return
        self._parser = HttpRequestParserPy(
            self,
            self._loop,
            self._read_bufsize,
            max_line_size=self.max_line_size,
            max_field_size=self.max_field_size,
            max_headers=self.max_headers,
            payload_exception=RequestPayloadError,
            auto_decompress=False,
            max_msg_queue_size=self._max_msg_queue_size,
        )

    def _arm(self) -> None:
        """A head begins now: it must be complete within ``head_seconds``."""
        if self._head_seconds > 0:
            deadline = self._loop.time() + self._head_seconds
            self._head_deadline = deadline
            if self._head_timer is None:
                self._head_timer = self._loop.call_at(deadline, self._check_head)

    def _disarm(self) -> None:
        """The head is complete (or the connection gone): nothing is pending."""
        self._head_deadline = None

    def _check_head(self) -> None:
        self._head_timer = None
        deadline = self._head_deadline
        if deadline is None:
            return  # no head pending: the next one arms the timer again
        if self._loop.time() < deadline:  # a later head than the one it was set for
            self._head_timer = self._loop.call_at(deadline, self._check_head)
            return
        self._head_deadline = None
        self._head_expired()

    def _head_expired(self) -> None:
        if self._request_in_progress or self._messages or self.transport is None:
            return
        peer = self.transport.get_extra_info("peername")
        self._edge.head_timeout(str(peer[0]) if isinstance(peer, tuple) else None)
        self.force_close()
        self.transport.close()


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class AppHandler:
    """Calls ``handler`` for every request of ``app``, an app with one catch-all route.

    Each request gets the same frozen match info naming ``app``, as ``Application._handle``
    would build it (``request.app``, ``on_response_prepare``); ``match_info`` holds no
    path variables. ``Expect`` is answered first, by the route's expect handler.
    """

    def __init__(self, app: web.Application, handler: Handler) -> None:
        routes = list(app.router.routes())
        if len(routes) != 1:
            raise ValueError(f"AppHandler serves an app with one route, not {len(routes)}")
        info = UrlMappingMatchInfo({}, routes[0])
        info.add_app(app)
        info.freeze()
        self._info = info
        self._handler = handler

    async def __call__(self, base: BaseRequest) -> web.StreamResponse:
        request = cast(web.Request, base)  # the app's request factory makes web.Request
        request._match_info = self._info
        if request.headers.get(hdrs.EXPECT):
            answer = await self._info.expect_handler(request)
            await request.writer.drain()
            if answer is not None:
                return answer
        return await self._handler(request)


class GuardedRunner(web.AppRunner):
    """``web.AppRunner`` whose server is the guarded one, calling ``handler`` for every
    request of the app (its one catch-all route) with ``edge`` answering what the parser
    refuses."""

    def __init__(
        self, app: web.Application, *, handler: Handler, edge: Edge, head_seconds: float,
        **kwargs: Any,
    ) -> None:  # fmt: skip
        super().__init__(app, **kwargs)
        self._guard = (handler, edge, head_seconds)

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()  # startup, freeze, and aiohttp's own Server
        handler, edge, head_seconds = self._guard
        return GuardedServer(
            AppHandler(self.app, handler),
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            loop=plain._loop,
            edge=edge,
            head_seconds=head_seconds,
            **plain._kwargs,
        )


__all__ = [
    "AppHandler",
    "Edge",
    "GuardedRequestHandler",
    "GuardedRunner",
    "GuardedServer",
    "Handler",
]
