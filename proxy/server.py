"""The application factory and the request handler, a pipeline of values.

``create_app`` builds the app-traffic application. Process-wide state lives in typed
``web.AppKey``s and is created/closed in ``cleanup_ctx``: the config, the catalog, the
one ``ClientSession``, the metrics and the readiness flag. ``handle`` reads as the flow
the package docstring draws; each stage returns what the next needs::

    decide (routing.py) → _forward → _classify → decide_reply (respond.py) → _observe

Every request leaves its traces (a metric and a log line), also when the app goes away
mid-request (``CLIENT_CLOSED_REQUEST``) and when the proxy itself fails: the only
catch-all is ``_last_resort``, the outermost middleware, which answers ``INTERNAL_ERROR``.
"""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry

from proxy import headers as hdrs
from proxy.admin import Readiness
from proxy.catalog import Catalog, load_catalog
from proxy.classify import Outcome, classify_failure, classify_reply
from proxy.config import Config, Route
from proxy.forward import (
    ProxyFailure,
    UpstreamAnswer,
    client_timeout,
    create_session,
    exchange,
    upstream_url,
)
from proxy.logs import get_logger
from proxy.metrics import PROXY_VENDOR, UNMATCHED_ROUTE, Metrics
from proxy.observe import RequestRecord, log_request
from proxy.respond import Reply, decide_reply
from proxy.routing import Refusal, RouteMatch, decide
from proxy.vendors import parse_reply
from proxy.vocab import FailureKind

# Answers that cannot carry a body (RFC 9110 §6.4.1).
_BODILESS_STATUSES = frozenset({204, 304})

CONFIG_KEY = web.AppKey("config", Config)
CATALOG_KEY = web.AppKey("catalog", Catalog)
REGISTRY_KEY = web.AppKey("registry", CollectorRegistry)
METRICS_KEY: web.AppKey[Metrics | None] = web.AppKey("metrics")
READINESS_KEY = web.AppKey("readiness", Readiness)
SESSION_KEY = web.AppKey("session", aiohttp.ClientSession)
TIMEOUTS_KEY = web.AppKey("timeouts", dict[str, aiohttp.ClientTimeout])
# When the request arrived and its id: what _last_resort needs to answer and observe it.
_ARRIVAL_KEY = web.RequestKey("arrival", tuple[float, str])

_log = get_logger("gateway_proxy")


@dataclass(frozen=True, slots=True)
class Result:
    """What one request produced: its outcome and, when one arrived, the gateway's answer.

    ``bytes_in`` is the body bytes sent upstream; ``upstream_s`` how long the exchange with
    the gateway took (None when there was none).
    """

    outcome: Outcome
    answer: UpstreamAnswer | None = None
    bytes_in: int = 0
    upstream_s: float | None = None


def create_app(
    config: Config,
    *,
    catalog: Catalog | None = None,
    registry: CollectorRegistry | None = None,
    metrics_enabled: bool = True,
) -> web.Application:
    """Build the app-traffic application. ``registry`` defaults to a fresh one."""
    app = web.Application(middlewares=[_last_resort])
    app[CONFIG_KEY] = config
    app[CATALOG_KEY] = catalog or load_catalog(config.catalog)
    app[REGISTRY_KEY] = registry if registry is not None else CollectorRegistry()
    app[METRICS_KEY] = (
        Metrics(app[REGISTRY_KEY], config.routes, app[CATALOG_KEY]) if metrics_enabled else None
    )
    app[READINESS_KEY] = Readiness()
    app[TIMEOUTS_KEY] = {route.name: client_timeout(route) for route in config.routes}
    app.cleanup_ctx.append(_session_ctx)
    app.on_startup.append(_mark_serving)
    app.on_shutdown.append(_mark_shutting_down)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


async def _session_ctx(app: web.Application) -> AsyncIterator[None]:
    app[SESSION_KEY] = create_session(app[CONFIG_KEY].pool)
    yield
    await app[SESSION_KEY].close()


async def _mark_serving(app: web.Application) -> None:
    app[READINESS_KEY].serving = True


async def _mark_shutting_down(app: web.Application) -> None:
    app[READINESS_KEY].shutting_down = True


async def handle(request: web.Request) -> web.StreamResponse:
    """Proxy one app request: route, forward, classify, respond, observe."""
    started, request_id = time.perf_counter(), hdrs.request_id_from(request.headers)
    request[_ARRIVAL_KEY] = (started, request_id)
    decision = decide(request.app[CONFIG_KEY].routes, request.method, request.raw_path)
    try:
        if isinstance(decision, Refusal):
            result = _refused(request.app[CATALOG_KEY], decision.kind, decision.detail)
        else:
            result = await _proxy(request, decision, request_id)
    except asyncio.CancelledError:
        # The app went away (aiohttp cancels the handler): nobody reads the answer, but
        # the request still gets its metric and log line before the cancellation goes on.
        closed = _refused(
            request.app[CATALOG_KEY], "client_closed", "the app closed the connection"
        )
        _finish(request, decision, closed)
        raise
    return _finish(request, decision, result)


def _refused(catalog: Catalog, kind: FailureKind, detail: str) -> Result:
    return Result(classify_failure(catalog, kind, detail))


async def _proxy(request: web.Request, match: RouteMatch, request_id: str) -> Result:
    """Forward to the route's gateway and classify its answer (or the failure to get one)."""
    metrics = request.app[METRICS_KEY]
    in_flight = (
        metrics.in_flight.labels(match.route.name).track_inprogress()
        if metrics is not None
        else contextlib.nullcontext()
    )
    try:
        with in_flight:
            answer = await _forward(request, match, request_id)
    except ProxyFailure as failure:
        outcome = classify_failure(request.app[CATALOG_KEY], failure.kind, failure.detail)
        return Result(outcome, bytes_in=failure.bytes_sent, upstream_s=failure.elapsed_s)
    outcome = _classify(request, match, answer)
    return Result(outcome, answer, answer.bytes_out, answer.duration_s)


async def _forward(request: web.Request, match: RouteMatch, request_id: str) -> UpstreamAnswer:
    """Stream the app's request to the gateway; raises ``ProxyFailure``."""
    route = match.route
    if (
        route.max_request_bytes is not None
        and (request.content_length or 0) > route.max_request_bytes
    ):
        raise ProxyFailure(
            "request_too_large", f"request body is over {route.max_request_bytes} bytes"
        )
    outgoing = hdrs.upstream_request_headers(
        request.headers,
        request_id=request_id,
        client_ip=request.remote,
        scheme=request.scheme,
        host=request.host,
        configured=route.headers,
    )
    return await exchange(
        request.app[SESSION_KEY],
        route,
        method=request.method,
        url=upstream_url(route, match.rest_path, match.raw_query),
        headers=outgoing,
        body=request.content if request.body_exists else None,
        time_limits=request.app[TIMEOUTS_KEY][route.name],
    )


def _classify(request: web.Request, match: RouteMatch, answer: UpstreamAnswer) -> Outcome:
    vendor = match.route.vendor
    reply = parse_reply(vendor, answer.content, answer.headers.get("Content-Type"))
    bodiless = request.method == "HEAD" or answer.status in _BODILESS_STATUSES
    return classify_reply(
        request.app[CATALOG_KEY],
        vendor,
        reply,
        answer.status,
        headers=answer.headers,
        bodiless=bodiless,
    )


def _finish(request: web.Request, decision: RouteMatch | Refusal, result: Result) -> web.Response:
    """Build the reply, observe the request, and return the response to send."""
    started, request_id = request[_ARRIVAL_KEY]
    reply = decide_reply(
        result.outcome,
        request_id=request_id,
        route=decision.route,
        rest_path=decision.rest_path if isinstance(decision, RouteMatch) else "",
        answer=result.answer,
    )
    _observe(request, decision.route, result, reply, time.perf_counter() - started)
    return web.Response(status=reply.status, body=reply.body, headers=reply.headers)


def _observe(
    request: web.Request, route: Route | None, result: Result, reply: Reply, duration: float
) -> None:
    name = route.name if route else UNMATCHED_ROUTE
    vendor = route.vendor if route else PROXY_VENDOR
    trace_id = hdrs.trace_id_from(request.headers)
    metrics = request.app[METRICS_KEY]
    if metrics is not None:
        metrics.observe(
            name, vendor, result.outcome, duration_s=duration,
            upstream_duration_s=result.upstream_s, trace_id=trace_id,
        )  # fmt: skip
    log_request(
        RequestRecord(
            request_id=request[_ARRIVAL_KEY][1],
            trace_id=trace_id,
            route=name,
            vendor=vendor,
            method=request.method,
            path=request.raw_path,
            status=reply.status,
            outcome=result.outcome,
            duration_s=duration,
            upstream_duration_s=result.upstream_s,
            bytes_in=result.bytes_in,
            bytes_out=len(reply.body),
        )
    )


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _last_resort(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The one catch-all: log with the traceback, answer with an envelope, never hang.

    It also turns the router's own refusals (CONNECT, ``OPTIONS *``: targets no route
    pattern can match) into envelopes, so every answer has the same shape. A half-handled
    gateway answer is never passed through: the reply is always the proxy's envelope.
    """
    kind: FailureKind
    try:
        return await handler(request)
    except asyncio.CancelledError:
        raise
    except web.HTTPException as exc:
        if exc.status not in (404, 405):
            raise
        kind, detail = "bad_request", f"{request.method} {request.raw_path} cannot be proxied"
    except Exception:  # noqa: BLE001 - the one catch-all, at the outermost edge
        _log.exception("unhandled_error", path=request.raw_path)
        kind, detail = "internal", "internal proxy error"
    if _ARRIVAL_KEY not in request:
        request[_ARRIVAL_KEY] = (time.perf_counter(), hdrs.request_id_from(request.headers))
    decision = decide(request.app[CONFIG_KEY].routes, request.method, request.raw_path)
    return _finish(request, decision, _refused(request.app[CATALOG_KEY], kind, detail))
