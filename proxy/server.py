"""The application factory and the request handler, a pipeline of values.

``create_app`` builds the app-traffic application. Process-wide state lives in typed
``web.AppKey``s and is created/closed in ``cleanup_ctx``: the config, the catalog, the
one ``ClientSession``, the metrics and the readiness flag. ``handle`` reads as the flow
the package docstring draws; each stage returns what the next needs::

    decide (routing.py) → _forward → _classify → decide_reply (respond.py) → _observe

Every request leaves its traces (a metric and a log line), also when the app goes away
mid-request (``CLIENT_CLOSED_REQUEST``) and when the proxy itself fails: the only
catch-all is ``_last_resort``, which answers ``INTERNAL_ERROR``. It is the outermost
layer either way the app is served: ``ProxyRunner`` calls it (around ``handle``) straight
from the guarded connection handler (``protocol.AppHandler``: no router look-up or
middleware chain per request); a plain ``web.AppRunner`` reaches it as the app's one
middleware, through the catch-all route.
"""

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web
from aiohttp.web_request import BaseRequest
from prometheus_client import CollectorRegistry

from proxy import headers as hdrs
from proxy.admin import Readiness
from proxy.catalog import Catalog, load_catalog
from proxy.classify import Outcome, classify_failure, classify_reply
from proxy.config import Config, Route
from proxy.forward import Progress, ProxyFailure, Request, UpstreamAnswer, create_session, exchange
from proxy.logs import get_logger
from proxy.metrics import PROXY_VENDOR, UNMATCHED_ROUTE, Metrics
from proxy.observe import RequestRecord, log_request
from proxy.protocol import AppHandler, GuardedServer, Handler
from proxy.respond import Reply, decide_reply
from proxy.routing import InboundMatch, Refusal, RouteMatch, decide
from proxy.traffic import Traffic
from proxy.upstream import Origin, UpstreamPool, origin_of, request_target
from proxy.vendors import parse_reply
from proxy.vocab import FailureKind

if TYPE_CHECKING:  # the inbound side is imported only by a config that has inbound routes
    from proxy.callbacks import InboundMetrics

# Answers that cannot carry a body (RFC 9110 §6.4.1).
_BODILESS_STATUSES = frozenset({204, 304})

CONFIG_KEY = web.AppKey("config", Config)
CATALOG_KEY = web.AppKey("catalog", Catalog)
REGISTRY_KEY = web.AppKey("registry", CollectorRegistry)
METRICS_KEY: web.AppKey[Metrics | None] = web.AppKey("metrics")
READINESS_KEY = web.AppKey("readiness", Readiness)
SESSION_KEY = web.AppKey("session", aiohttp.ClientSession)
UPSTREAM_KEY = web.AppKey("upstream", UpstreamPool)
ORIGINS_KEY = web.AppKey("origins", dict[str, Origin])
LOOP_KEY = web.AppKey("loop", asyncio.AbstractEventLoop)
TRAFFIC_KEY = web.AppKey("traffic", Traffic)
INBOUND_METRICS_KEY: web.AppKey["InboundMetrics | None"] = web.AppKey("inbound_metrics")
# When the request arrived and its id: what _last_resort needs to answer and observe it.
_ARRIVAL_KEY = web.RequestKey("arrival", tuple[float, str])

_log = get_logger("gateway_proxy")


@dataclass(slots=True)  # built per request: frozen=True costs a call per field
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
    app = web.Application(
        middlewares=[_last_resort],
        # The handler is cancelled when the app goes away, and with it the upstream call;
        # the app's body is forwarded as it came (its Content-Encoding is passed on).
        handler_args={"handler_cancellation": True, "auto_decompress": False},
    )
    app[CONFIG_KEY] = config
    app[CATALOG_KEY] = catalog or load_catalog(config.catalog)
    app[REGISTRY_KEY] = registry if registry is not None else CollectorRegistry()
    app[METRICS_KEY] = (
        Metrics(app[REGISTRY_KEY], config.routes, app[CATALOG_KEY]) if metrics_enabled else None
    )
    app[READINESS_KEY] = Readiness()
    app[ORIGINS_KEY] = {route.name: origin_of(route.upstream) for route in config.routes}
    limits = {r.name: r.max_in_flight for r in config.routes} | {
        r.name: None for r in config.inbound
    }
    app[TRAFFIC_KEY] = Traffic(config.max_in_flight, limits)
    app[INBOUND_METRICS_KEY] = None
    if metrics_enabled and config.inbound:
        from proxy.callbacks import InboundMetrics  # noqa: PLC0415 - only with inbound routes

        app[INBOUND_METRICS_KEY] = InboundMetrics(
            app[REGISTRY_KEY], config.inbound, app[CATALOG_KEY]
        )
    app.cleanup_ctx.append(_session_ctx)
    app.on_startup.append(_mark_serving)
    app.on_shutdown.append(_mark_shutting_down)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


async def _session_ctx(app: web.Application) -> AsyncIterator[None]:
    app[UPSTREAM_KEY] = UpstreamPool(app[CONFIG_KEY].pool)
    app[SESSION_KEY] = create_session(app[CONFIG_KEY].pool)  # the app's webhooks (callbacks)
    yield
    await app[UPSTREAM_KEY].close()
    await app[SESSION_KEY].close()


async def _mark_serving(app: web.Application) -> None:
    app[LOOP_KEY] = asyncio.get_running_loop()
    app[READINESS_KEY].serving = True


async def _mark_shutting_down(app: web.Application) -> None:
    app[READINESS_KEY].shutting_down = True


async def handle(request: web.Request) -> web.StreamResponse:
    """Proxy one app request: route, admit, forward, classify, respond, observe."""
    started, request_id = time.perf_counter(), hdrs.request_id_from(request.headers)
    request[_ARRIVAL_KEY] = (started, request_id)
    catalog, traffic = request.app[CATALOG_KEY], request.app[TRAFFIC_KEY]
    config = request.app[CONFIG_KEY]
    decision = decide(config.routes, request.method, request.raw_path, config.inbound)
    if isinstance(decision, Refusal):
        return _finish(request, decision, _refused(catalog, decision.kind, decision.detail))
    if isinstance(decision, InboundMatch):
        return await _callback(request, decision)
    route = decision.route.name
    if not traffic.admit(route):
        detail = "the proxy is at max_in_flight; the gateway was not contacted"
        return _finish(request, decision, _refused(catalog, "shed", detail))
    progress = Progress()
    # With the loop given, current_task skips get_running_loop (a getpid call in 3.11).
    task = asyncio.current_task(request.app[LOOP_KEY])
    if task is not None:  # the drain waits for it (traffic.py)
        traffic.tasks.add(task)
    try:
        result = await _proxy(request, decision, request_id, progress)
    except asyncio.CancelledError:
        if traffic.drain_expired and task is not None:
            # The shutdown drain ran out: answer 503 ourselves, then let the runner close.
            task.uncancel()
            detail = "the proxy shut down before the gateway answered"
            return _finish(request, decision, _refused(catalog, "shutdown", detail, progress))
        # The app went away (aiohttp cancels the handler, and with it the upstream call):
        # nobody reads the answer, but the request still gets its metric and log line.
        closed = _refused(catalog, "client_closed", "the app closed the connection", progress)
        _finish(request, decision, closed)
        raise
    finally:
        traffic.tasks.discard(task)  # discarding None is harmless
        traffic.leave(route)
    return _finish(request, decision, result)


async def _callback(request: web.Request, match: InboundMatch) -> web.Response:
    """A relay's callback: admitted, drained and cancelled like any request."""
    from proxy.callbacks import handle_callback, unavailable  # noqa: PLC0415 - see above

    app, route = request.app, match.route
    traffic = app[TRAFFIC_KEY]
    if not traffic.admit(route.name):
        return unavailable(route, "the proxy is at max_in_flight")
    try:
        with traffic.tracking():
            return await handle_callback(
                request,
                route,
                session=app[SESSION_KEY],
                catalog=app[CATALOG_KEY],
                metrics=app[INBOUND_METRICS_KEY],
                body_idle=app[CONFIG_KEY].client_timeout.body_idle,
            )
    except asyncio.CancelledError:
        if traffic.drain_expired and (task := asyncio.current_task()) is not None:
            task.uncancel()
            return unavailable(route, "the proxy shut down before the app's webhook answered")
        _log.warning(
            "callback", route=route.name, kind="client_closed", reason="the relay went away"
        )
        raise
    finally:
        traffic.leave(route.name)


def _refused(
    catalog: Catalog, kind: FailureKind, detail: str, progress: Progress | None = None
) -> Result:
    return Result(
        classify_failure(catalog, kind, detail), bytes_in=progress.bytes_sent if progress else 0
    )


async def _proxy(
    request: web.Request, match: RouteMatch, request_id: str, progress: Progress
) -> Result:
    """Forward to the route's gateway and classify its answer (or the failure to get one)."""
    metrics = request.app[METRICS_KEY]
    in_flight = metrics.in_flight_of(match.route.name) if metrics is not None else None
    if in_flight is not None:
        in_flight.inc()
    try:
        answer = await _forward(request, match, request_id, progress)
    except ProxyFailure as failure:
        kind, detail = failure.kind, failure.detail
        if kind == "bad_request" and _app_gone(request):  # a reset mid-upload
            kind, detail = "client_closed", f"the app closed the connection ({detail})"
        outcome = classify_failure(request.app[CATALOG_KEY], kind, detail)
        return Result(outcome, bytes_in=failure.bytes_sent, upstream_s=failure.elapsed_s)
    finally:
        if in_flight is not None:
            in_flight.dec()
    outcome = _classify(request, match, answer)
    return Result(outcome, answer, answer.bytes_out, answer.duration_s)


def _app_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def _forward(
    request: web.Request, match: RouteMatch, request_id: str, progress: Progress
) -> UpstreamAnswer:
    """Stream the app's request to the gateway; raises ``ProxyFailure``."""
    route = match.route
    if (
        route.max_request_bytes is not None
        and (request.content_length or 0) > route.max_request_bytes
    ):
        raise ProxyFailure(
            "request_too_large", f"request body is over {route.max_request_bytes} bytes"
        )
    origin = request.app[ORIGINS_KEY][route.name]
    outgoing = hdrs.upstream_request_headers(
        request.headers,
        request_id=request_id,
        client_ip=request.remote,
        scheme=request.scheme,
        host=request.host,
        configured=route.headers,
        upstream_host=origin.host_header,
    )
    target = request_target(origin, match.rest_path, match.raw_query)
    body = request.content if request.body_exists else None
    return await exchange(
        request.app[UPSTREAM_KEY],
        route,
        origin,
        Request(request.method, target, outgoing, body),
        progress,
    )


def _classify(request: web.Request, match: RouteMatch, answer: UpstreamAnswer) -> Outcome:
    vendor, catalog = match.route.vendor, request.app[CATALOG_KEY]
    namespaces = catalog.vendors[vendor].namespaces
    reply = parse_reply(vendor, answer.content, hdrs.content_type_of(answer.headers), namespaces)
    bodiless = request.method == "HEAD" or answer.status in _BODILESS_STATUSES
    return classify_reply(
        catalog,
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
        routes=request.app[CONFIG_KEY].routes,
    )
    record = _record(
        request.method, request.raw_path, request_id, hdrs.trace_id_from(request.headers),
        decision.route, result, reply, time.perf_counter() - started,
    )  # fmt: skip
    _observe(request.app, record)
    return web.Response(status=reply.status, body=reply.body, headers=reply.headers)


def _record(  # noqa: PLR0917 - one positional per field of the record
    method: str,
    path: str,
    request_id: str,
    trace_id: str | None,
    route: Route | None,
    result: Result,
    reply: Reply,
    duration: float,
) -> RequestRecord:
    return RequestRecord(
        request_id=request_id,
        trace_id=trace_id,
        route=route.name if route else UNMATCHED_ROUTE,
        vendor=route.vendor if route else PROXY_VENDOR,
        method=method,
        path=path,
        status=reply.status,
        outcome=result.outcome,
        duration_s=duration,
        upstream_duration_s=result.upstream_s,
        bytes_in=result.bytes_in,
        bytes_out=len(reply.body),
    )


def _observe(app: web.Application, record: RequestRecord) -> None:
    """The request's metrics and its one log line."""
    metrics = app[METRICS_KEY]
    if metrics is not None:
        metrics.observe(
            record.route, record.vendor, record.outcome, duration_s=record.duration_s,
            upstream_duration_s=record.upstream_duration_s, trace_id=record.trace_id,
        )  # fmt: skip
    log_request(record)


class _Edge:
    """The connection handler's reports (proxy.protocol): answered and observed here."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    def protocol_error(self, request: BaseRequest, kind: FailureKind, detail: str) -> web.Response:
        started = time.perf_counter()
        request_id = hdrs.new_request_id()
        result = _refused(self._app[CATALOG_KEY], kind, detail)
        reply = decide_reply(result.outcome, request_id=request_id, route=None)
        # The request line could not be read: nothing of it is logged.
        duration = time.perf_counter() - started
        _observe(self._app, _record("-", "-", request_id, None, None, result, reply, duration))
        return web.Response(status=reply.status, body=reply.body, headers=reply.headers)

    def head_timeout(self, peer: str | None) -> None:
        seconds = self._app[CONFIG_KEY].client_timeout.head
        _log.warning("client_head_timeout", timeout_s=seconds, peer=peer)
        if (metrics := self._app[METRICS_KEY]) is not None:
            metrics.head_timeout()


class ProxyRunner(web.AppRunner):
    """``web.AppRunner`` whose server is the guarded one (proxy.protocol)."""

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()  # startup, freeze, and aiohttp's own Server
        return GuardedServer(
            AppHandler(self.app, _outermost),
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            loop=plain._loop,
            edge=_Edge(self.app),
            head_seconds=self.app[CONFIG_KEY].client_timeout.head,
            **plain._kwargs,
        )


async def _outermost(request: web.Request) -> web.StreamResponse:
    """``handle`` under ``_last_resort``: the chain the app's middleware list also makes."""
    return await _last_resort(request, handle)


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
    route = decision.route if isinstance(decision, RouteMatch | Refusal) else None
    refusal = Refusal(kind, detail, route)
    return _finish(request, refusal, _refused(request.app[CATALOG_KEY], kind, detail))
