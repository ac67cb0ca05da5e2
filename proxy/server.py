"""The application factory and the request handler, read as a short list of stages.

``create_app`` builds the app-traffic application. Process-wide state lives in typed
``web.AppKey``s and is created/closed in ``cleanup_ctx``: the config, the catalog, the
one ``ClientSession``, the metrics and the readiness flag. The handler is::

    _route → _forward → _classify → _respond → _observe

Every request leaves its traces (a metric and a log line), also when the app goes away
mid-request (``CLIENT_CLOSED_REQUEST``) and when the proxy itself fails: the only
catch-all is ``_last_resort``, the outermost middleware, which answers ``INTERNAL_ERROR``.
"""

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry

from proxy import headers as hdrs
from proxy.admin import Readiness
from proxy.catalog import Catalog, TransportKind, load_catalog
from proxy.classify import Outcome, classify_failure, classify_reply
from proxy.config import Config, Route
from proxy.envelope import build_envelope, passthrough_headers, render
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
from proxy.vendors import parse_reply

# Answers that cannot carry a body (RFC 9110 §6.4.1).
_BODILESS_STATUSES = frozenset({204, 304})
# Path segments that could climb out of the upstream's path once a server decodes them.
_ESCAPING = re.compile(r"(?:^|/)(?:\.|%2e){2}(?:/|$)|%2f|%5c", re.IGNORECASE)


@dataclass(slots=True)
class _Exchange:
    """What the stages learn about one request, in order."""

    request_id: str
    trace_id: str | None
    started: float
    route: Route | None = None
    rest_path: str = ""
    answer: UpstreamAnswer | None = None
    outcome: Outcome | None = None
    bytes_in: int = 0
    upstream_s: float | None = None
    extra_headers: dict[str, str] = field(default_factory=dict)


# The request's _Exchange, so that _last_resort can still observe it.
_EXCHANGE_KEY = web.RequestKey("exchange", _Exchange)
CONFIG_KEY = web.AppKey("config", Config)
CATALOG_KEY = web.AppKey("catalog", Catalog)
REGISTRY_KEY = web.AppKey("registry", CollectorRegistry)
METRICS_KEY: web.AppKey[Metrics | None] = web.AppKey("metrics")
READINESS_KEY = web.AppKey("readiness", Readiness)
SESSION_KEY = web.AppKey("session", aiohttp.ClientSession)
TIMEOUTS_KEY = web.AppKey("timeouts", dict[str, aiohttp.ClientTimeout])

_log = get_logger("gateway_proxy")


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
    ex = _Exchange(
        request_id=hdrs.request_id_from(request.headers),
        trace_id=hdrs.trace_id_from(request.headers),
        started=time.perf_counter(),
    )
    request[_EXCHANGE_KEY] = ex
    catalog = request.app[CATALOG_KEY]
    metrics = request.app[METRICS_KEY]
    try:
        _route(request, ex)
        assert ex.route is not None
        in_flight = (
            metrics.in_flight.labels(ex.route.name).track_inprogress()
            if metrics is not None
            else contextlib.nullcontext()
        )
        with in_flight:
            await _forward(request, ex)
        _classify(request, catalog, ex)
    except ProxyFailure as failure:
        ex.outcome = classify_failure(catalog, failure.kind, failure.detail)
        ex.bytes_in, ex.upstream_s = failure.bytes_sent, failure.elapsed_s
    except asyncio.CancelledError:
        # The app went away (aiohttp cancels the handler): nobody reads the answer, but
        # the request still gets its metric and log line before the cancellation goes on.
        ex.outcome = classify_failure(catalog, "client_closed", "the app closed the connection")
        _observe(request, ex, _respond(ex))
        raise
    response = _respond(ex)
    _observe(request, ex, response)
    return response


def _route(request: web.Request, ex: _Exchange) -> None:
    """Pick the route; only configured upstreams are reachable."""
    # Only origin-form targets ("/path?query"): absolute-form ("http://host/...") and
    # CONNECT would make this an open forward proxy.
    if request.method == "CONNECT" or not request.raw_path.startswith("/"):
        raise ProxyFailure("bad_request", "absolute-URI and CONNECT requests are refused")
    raw_path = request.rel_url.raw_path
    for route in request.app[CONFIG_KEY].routes:
        if route.matches(raw_path):
            ex.route, ex.rest_path = route, raw_path[len(route.path_prefix) :]
            if _ESCAPING.search(ex.rest_path):
                raise ProxyFailure(
                    "bad_request", "dot-segments and encoded slashes are not allowed in the path"
                )
            return
    raise ProxyFailure("route_not_found", f"no route is configured for {request.path}")


async def _forward(request: web.Request, ex: _Exchange) -> None:
    route = ex.route
    assert route is not None
    peer = request.remote
    outgoing = hdrs.upstream_request_headers(
        request.headers,
        request_id=ex.request_id,
        client_ip=peer,
        scheme=request.scheme,
        host=request.host,
        configured=route.headers,
    )
    if (
        route.max_request_bytes is not None
        and (request.content_length or 0) > route.max_request_bytes
    ):
        raise ProxyFailure(
            "request_too_large", f"request body is over {route.max_request_bytes} bytes"
        )
    body = request.content if request.body_exists else None
    ex.answer = await exchange(
        request.app[SESSION_KEY],
        route,
        method=request.method,
        url=upstream_url(route, ex.rest_path, request.rel_url.raw_query_string),
        headers=outgoing,
        body=body,
        time_limits=request.app[TIMEOUTS_KEY][route.name],
    )
    ex.bytes_in, ex.upstream_s = ex.answer.bytes_out, ex.answer.duration_s


def _classify(request: web.Request, catalog: Catalog, ex: _Exchange) -> None:
    answer, route = ex.answer, ex.route
    assert answer is not None
    assert route is not None
    reply = parse_reply(route.vendor, answer.content, answer.headers.get("Content-Type"))
    bodiless = request.method == "HEAD" or answer.status in _BODILESS_STATUSES
    ex.outcome = classify_reply(
        catalog, route.vendor, reply, answer.status, headers=answer.headers, bodiless=bodiless
    )
    retry_after = answer.headers.get("Retry-After")
    if retry_after:
        ex.extra_headers["Retry-After"] = retry_after


def _respond(ex: _Exchange) -> web.Response:
    outcome = ex.outcome
    assert outcome is not None
    route_name = ex.route.name if ex.route else None
    if (
        ex.route is not None
        and ex.route.mode == "passthrough"
        and ex.answer is not None
        and 200 <= ex.answer.status <= 599  # anything else can't be relayed as it is
    ):
        answer, route = ex.answer, ex.route
        relayed = hdrs.rewrite_locations(
            hdrs.downstream_response_headers(answer.headers),
            # Without the query: it only matters to same-document references ("#x"),
            # and those are left for the client to resolve.
            request_url=str(upstream_url(route, ex.rest_path, "")),
            upstream=route.upstream,
            path_prefix=route.path_prefix,
        )
        response = web.Response(status=answer.status, body=answer.body, headers=relayed)
        response.headers.update(passthrough_headers(outcome, ex.request_id))
        return response
    status, content_type, body = render(
        build_envelope(outcome, request_id=ex.request_id, route=route_name)
    )
    response = web.Response(status=status, body=body, content_type=content_type)
    response.headers["X-Request-ID"] = ex.request_id
    response.headers.update(ex.extra_headers)
    return response


def _observe(request: web.Request, ex: _Exchange, response: web.Response) -> None:
    outcome = ex.outcome
    assert outcome is not None
    route = ex.route.name if ex.route else UNMATCHED_ROUTE
    vendor = ex.route.vendor if ex.route else PROXY_VENDOR
    duration = time.perf_counter() - ex.started
    metrics = request.app[METRICS_KEY]
    if metrics is not None:
        metrics.observe(
            route, vendor, outcome, duration_s=duration, upstream_duration_s=ex.upstream_s,
            trace_id=ex.trace_id,
        )  # fmt: skip
    log_request(
        RequestRecord(
            request_id=ex.request_id,
            trace_id=ex.trace_id,
            route=route,
            vendor=vendor,
            method=request.method,
            path=request.raw_path,
            status=response.status,
            outcome=outcome,
            duration_s=duration,
            upstream_duration_s=ex.upstream_s,
            bytes_in=ex.bytes_in,
            bytes_out=len(response.body) if isinstance(response.body, bytes) else 0,
        )
    )


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _last_resort(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The one catch-all: log with the traceback, answer with an envelope, never hang.

    It also turns the router's own refusals (CONNECT, ``OPTIONS *``: targets no route
    pattern can match) into envelopes, so every answer has the same shape.
    """
    kind: TransportKind
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
    ex = request.get(_EXCHANGE_KEY) or _Exchange(
        hdrs.request_id_from(request.headers), None, time.perf_counter()
    )
    ex.outcome = classify_failure(request.app[CATALOG_KEY], kind, detail)
    ex.answer = None  # never pass through half-handled gateway bytes
    response = _respond(ex)
    _observe(request, ex, response)
    return response
