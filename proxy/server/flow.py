"""The forward stage's flow control: a rate limit's queue, failover, the circuits.

``forwarded`` is what handle.py's ``_proxy`` awaits; ``attempt`` is its one exchange with
one endpoint, classified (a ``Result``). Around it::

    rate limit?  hold the body (resendable), wait for a token (limiter.py)  ─► refused:
    │                                                                         RATE_LIMITED
    ▼
    failover     each endpoint in try order (balance.py), open circuits skipped; the next
    │            only while the last provably never reached its gateway (``unsent``); all
    │            attempts within one deadline (timeout.total from the first send).
    │            Every circuit open: UPSTREAM_UNAVAILABLE at once, Retry-After = next probe
    ▼
    throttled?   (catalog ``throttling``, on a rate-limited route) pause the route for the
                 answer's Retry-After (else 1 s); the request goes back to the head of the
                 queue while its max_wait allows; else the app gets that answer

A route with one endpoint and neither feature goes straight to ``attempt``, as before.
Time in the queue is not the gateway's: ``timeout.total`` starts at the send.
"""

import asyncio
import math
import time
from collections.abc import Awaitable, Callable

from aiohttp import StreamReader, web

from proxy.codes.catalog import Catalog
from proxy.codes.classify import classify_failure
from proxy.config import Route
from proxy.flow.bucket import pause_seconds
from proxy.flow.limiter import Limiter, Refused
from proxy.observability.logs import get_logger
from proxy.server.keys import (
    BALANCERS_KEY,
    CATALOG_KEY,
    FLOW_METRICS_KEY,
    LIMITERS_KEY,
    UPSTREAM_KEY,
)
from proxy.server.result import Result
from proxy.upstream import Endpoint, ExchangeFailure
from proxy.upstream.balance import Endpoints
from proxy.upstream.breaker import Verdict

#: One exchange with one endpoint, within a deadline (``loop.time()``; None: timeout.total
#: from now), with the body as held (bytes), streamed, or none; classified.
Attempt = Callable[[Endpoint, float | None, StreamReader | bytes | None], Awaitable[Result]]

#: The most of an app's body held in memory on a rate-limited route, so that a throttled
#: request can be resent. A longer body (or one of unknown length) is streamed as usual,
#: and a throttling answer to it goes back to the app.
RESEND_BUFFER_BYTES = 8 * 1024 * 1024
_READ_CHUNK = 64 * 1024

_log = get_logger("gateway_proxy")


async def forwarded(request: web.Request, route: Route, attempt: Attempt) -> Result:
    """Send ``request`` as ``route``'s flow control says; see the module docstring."""
    app = request.app
    limiter = app[LIMITERS_KEY].get(route.name)
    if limiter is None:
        body = request.content if request.body_exists else None
        return await _failover(app, route, attempt, body)
    return await _paced(request, route, limiter, attempt)


async def _paced(request: web.Request, route: Route, limiter: Limiter, attempt: Attempt) -> Result:
    app = request.app
    catalog, metrics = app[CATALOG_KEY], app[FLOW_METRICS_KEY]
    try:
        body, resendable = await _held(request, route)
    except ExchangeFailure as failure:
        return Result(classify_failure(catalog, failure.kind, failure.detail))
    deadline = limiter.now() + limiter.max_wait
    throttled: Result | None = None
    while True:
        try:
            waited = await limiter.acquire(deadline, front=throttled is not None)
        except Refused as refused:
            if throttled is not None:  # its max_wait ran out: the app gets the gateway's answer
                return throttled
            outcome = classify_failure(catalog, "rate_limit", refused.detail)
            return Result(outcome, retry_after=str(refused.retry_after))
        if metrics is not None:
            metrics.waited(route.name, waited)
        result = await _failover(app, route, attempt, body)
        answer = result.answer
        if answer is None or result.outcome.code.name not in catalog.throttling:
            return result
        if not resendable:
            return result
        pause = pause_seconds(answer.headers, time.time())
        limiter.throttled(pause)
        _log.info(
            "throttled", route=route.name, endpoint=result.endpoint, pause_s=pause,
            code=result.outcome.code.name, queued=limiter.queued,
        )  # fmt: skip
        throttled = result


async def _held(request: web.Request, route: Route) -> tuple[StreamReader | bytes | None, bool]:
    """The app's body, held in memory when it may be resent (and whether it may be).

    Raises ``ExchangeFailure`` (``client_timeout``, ``bad_request``) when the body stalls
    or breaks while it is read.
    """
    if not request.body_exists:
        return None, True
    length = request.content_length
    limit = route.max_request_bytes
    if length is None or length > RESEND_BUFFER_BYTES or (limit is not None and length > limit):
        return request.content, False  # streamed (and refused, when over the limit)
    content, idle = request.content, route.client_timeout.body_idle
    chunks: list[bytes] = []
    while True:
        try:
            if not chunks:  # usually the whole body came with the head: no timer
                chunk = content.read_nowait()
                if content.at_eof():
                    return chunk, True
            else:
                async with asyncio.timeout(idle):
                    chunk = await content.readany()
        except TimeoutError:
            detail = f"the app's body paused for more than {idle:g} s"
            raise ExchangeFailure("client_timeout", detail, reached=False) from None
        except (OSError, RuntimeError, asyncio.IncompleteReadError) as exc:
            detail = f"the app's request body ended early: {type(exc).__name__}"
            raise ExchangeFailure("bad_request", detail, reached=False) from None
        if not chunk and chunks:
            return b"".join(chunks), True
        chunks.append(chunk)


async def _failover(
    app: web.Application, route: Route, attempt: Attempt, body: StreamReader | bytes | None
) -> Result:
    endpoints = app[BALANCERS_KEY][route.name]
    if endpoints.single:
        return await attempt(endpoints.first, None, body)
    catalog, metrics = app[CATALOG_KEY], app[FLOW_METRICS_KEY]
    clock = app[UPSTREAM_KEY].deadlines
    deadline = clock.now() + route.timeout.total  # every attempt together
    last: Result | None = None
    for chosen in endpoints.attempts():
        if last is not None and clock.now() >= deadline:
            endpoints.record(chosen, "abandoned")  # never sent: a probe's slot goes back
            break
        verdict: Verdict = "abandoned"
        try:
            result = await attempt(chosen.endpoint, deadline, body)
            verdict = _verdict(catalog, result)
        finally:
            endpoints.record(chosen, verdict)
            if metrics is not None:
                metrics.sent(route.name, chosen.endpoint.name, verdict)
        if not result.unsent:
            return result
        last = result
    return last if last is not None else _circuit_open(catalog, route, endpoints)


def _verdict(catalog: Catalog, result: Result) -> Verdict:
    """What ``result`` says of its endpoint, for its circuit (catalog ``circuit_failures``)."""
    code = result.outcome.code
    if code.name in catalog.circuit_failures:
        return "failure"
    if result.outcome.failure == "client_closed":
        return "abandoned"
    return "success" if code.ok else "neutral"


def _circuit_open(catalog: Catalog, route: Route, endpoints: Endpoints) -> Result:
    retry_in = endpoints.retry_in()
    detail = (
        f"the circuit of every endpoint of route {route.name!r} is open after repeated "
        f"failures; the gateway was not contacted (next probe in {retry_in:.1f} s)"
    )
    outcome = classify_failure(catalog, "circuit_open", detail)
    return Result(outcome, retry_after=str(max(1, math.ceil(retry_in))))


__all__ = ["RESEND_BUFFER_BYTES", "Attempt", "forwarded"]
