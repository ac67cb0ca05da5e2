"""The request handler, a pipeline of values, and the edge's reports.

``handle`` reads as the flow the package docstring draws; each stage returns what the
next needs::

    decide (routing.py) → identify (clients.py) → admitted (admission.py) → _forward
        → _classify → decide_reply (respond.py) → _observe

Every request leaves its traces (a metric and a log line), also when the app goes away
mid-request (``CLIENT_CLOSED_REQUEST``) and when the proxy itself fails: the only
catch-all is ``last_resort``, which answers ``INTERNAL_ERROR``. It is the outermost
layer either way the app is served: the guarded runner calls it (around ``handle``)
straight from the connection handler (``outermost``: no router look-up or middleware
chain per request); a plain ``web.AppRunner`` reaches it as the app's one middleware,
through the catch-all route.
"""

import asyncio
import time
from collections.abc import Coroutine
from typing import Any

from aiohttp import StreamReader, web

from proxy.aio.server import Handler
from proxy.codes.catalog import Catalog
from proxy.codes.classify import Outcome, classify_failure, classify_reply
from proxy.config import Route
from proxy.ledger import StoredAnswer
from proxy.observability.logs import get_logger
from proxy.observability.metrics import ANONYMOUS, PROXY_VENDOR, UNMATCHED_ROUTE
from proxy.observability.record import RequestRecord, log_request
from proxy.server import headers as hdrs
from proxy.server.admission import admitted
from proxy.server.clients import Denied
from proxy.server.flow import forwarded
from proxy.server.idempotency import (
    Claim,
    Keys,
    Refused,
    Replay,
    Stage,
    message_id_of,
    read_keys,
    replay_headers,
)
from proxy.server.keys import (
    CATALOG_KEY,
    CLIENT_WEBHOOKS_KEY,
    CLIENTS_KEY,
    CONFIG_KEY,
    INBOUND_METRICS_KEY,
    LEDGER_KEY,
    LEDGER_METRICS_KEY,
    LEDGER_STAGES_KEY,
    LIMITS_KEY,
    LOOP_KEY,
    METRICS_KEY,
    SERVED_KEY,
    TRAFFIC_KEY,
    UPSTREAM_KEY,
    WEBHOOKS_KEY,
)
from proxy.server.respond import Reply, decide_reply
from proxy.server.result import Result
from proxy.server.routing import InboundMatch, Refusal, RouteMatch, decide
from proxy.upstream import Answer, Endpoint, ExchangeFailure, Progress, Request, exchange
from proxy.vendors import parse_reply
from proxy.vocab import BODILESS_STATUSES, FailureKind

_NO_KEYS = Keys(None, None)
# When the request arrived and its id: what last_resort needs to answer and observe it.
_ARRIVAL_KEY = web.RequestKey("arrival", tuple[float, str])

_log = get_logger("gateway_proxy")


async def handle(request: web.Request) -> web.StreamResponse:
    """Proxy one app request: route, identify, admit, forward, classify, respond, observe."""
    started, request_id = time.perf_counter(), hdrs.request_id_from(request.headers)
    request[_ARRIVAL_KEY] = (started, request_id)
    app = request.app
    catalog = app[CATALOG_KEY]
    routes, inbound = app[SERVED_KEY]
    decision = decide(routes, request.method, request.raw_path, inbound)
    if isinstance(decision, Refusal):
        return _finish(request, decision, _refused(catalog, decision.kind, decision.detail))
    if isinstance(decision, InboundMatch):
        return await _callback(request, decision)
    client = app[CLIENTS_KEY].identify(
        request.headers.get("Proxy-Authorization"), decision.route.name
    )
    if isinstance(client, Denied):
        refused = _refused(catalog, client.kind, client.detail)
        return _finish(request, decision, refused, client.client)
    keys = _NO_KEYS
    if (stage := app[LEDGER_STAGES_KEY].get(decision.route.name)) is not None:
        read = read_keys(request.headers, decision.route)
        if isinstance(read, Refused):
            return _finish(request, decision, _refused(catalog, read.kind, read.detail), client)
        keys = read
    progress = Progress()

    async def forward() -> web.StreamResponse:
        if stage is not None:
            return await _ledgered(request, decision, request_id, progress, client, stage, keys)
        result = await _proxy(request, decision, request_id, progress)
        return _finish(request, decision, result, client)

    def shed() -> web.Response:
        detail = "the proxy is at max_in_flight; the gateway was not contacted"
        return _finish(request, decision, _refused(catalog, "shed", detail), client)

    def cut() -> web.Response:
        detail = "the proxy shut down before the gateway answered"
        return _finish(request, decision, _refused(catalog, "shutdown", detail, progress), client)

    def gone() -> None:
        # The app went away (aiohttp cancels the handler, and with it the upstream call):
        # nobody reads the answer, but the request still gets its metric and log line.
        closed = _refused(catalog, "client_closed", "the app closed the connection", progress)
        _finish(request, decision, closed, client)

    return await admitted(
        app[TRAFFIC_KEY], decision.route.name, forward,
        shed=shed, cut=cut, gone=gone, loop=app[LOOP_KEY],
    )  # fmt: skip


async def _callback(request: web.Request, match: InboundMatch) -> web.Response:
    """A relay's callback: admitted, drained and cancelled like any request."""
    from proxy.inbound.handler import handle_callback, unavailable  # noqa: PLC0415 - lazy

    app, route = request.app, match.route

    async def deliver() -> web.Response:
        return await handle_callback(
            request,
            route,
            pool=app[UPSTREAM_KEY],
            webhook=app[WEBHOOKS_KEY][route.name],
            catalog=app[CATALOG_KEY],
            metrics=app[INBOUND_METRICS_KEY],
            body_idle=app[CONFIG_KEY].client_timeout.body_idle,
            rejections=app[METRICS_KEY],
            ledger=app[LEDGER_KEY],
            ledger_metrics=app[LEDGER_METRICS_KEY],
            client_webhooks=app[CLIENT_WEBHOOKS_KEY],
        )

    def gone() -> None:
        _log.warning(
            "callback", route=route.name, kind="client_closed", reason="the relay went away"
        )

    return await admitted(
        app[TRAFFIC_KEY], route.name, deliver,
        shed=lambda: unavailable(route, "the proxy is at max_in_flight"),
        cut=lambda: unavailable(route, "the proxy shut down before the app's webhook answered"),
        gone=gone,
    )  # fmt: skip


async def _ledgered(  # noqa: PLR0917 - handle's own values
    request: web.Request,
    match: RouteMatch,
    request_id: str,
    progress: Progress,
    client: str,
    stage: Stage,
    keys: Keys,
) -> web.Response:
    """The forward stage with the message ledger (proxy/server/idempotency.py): a key is
    claimed first (or answered at once), the answer kept or the key released before the
    app gets it, and a send that succeeded remembered for its reports."""
    catalog, idle = request.app[CATALOG_KEY], match.route.client_timeout.body_idle
    claim = None
    if keys.key is not None:
        claimed = await stage.claim(request, keys.key, client, idle)
        if isinstance(claimed, Refused):
            return _finish(request, match, _refused(catalog, claimed.kind, claimed.detail), client)
        if isinstance(claimed, Replay):
            return _replayed(request, match, claimed.answer, client)
        claim = claimed
        progress.tap = claim.body
    try:
        result = await _proxy(request, match, request_id, progress)
    except asyncio.CancelledError:
        if claim is not None:
            closed = "the app closed the connection before the gateway answered"
            _abandon(request, match, stage, claim, progress, "client_closed", closed)
        raise
    except Exception:
        if claim is not None:  # last_resort answers it; the key keeps the same answer
            _abandon(request, match, stage, claim, progress, "internal", "internal proxy error")
        raise
    reply = _reply(request, match, result)
    settled = None
    if claim is not None:
        settled = stage.settle(request, claim, result.outcome, _kept(reply), idle)
    # Written before the app gets its answer, and finished even if the app goes away now.
    message_id = message_id_of(result.outcome)
    if settled is not None or message_id is not None:
        await _shielded(_after_answer(stage, settled, message_id, request_id, client, keys))
    return _respond(request, match, result, reply, client)


async def _after_answer(  # noqa: PLR0917 - what the ledger keeps of one answer
    stage: Stage,
    settled: Coroutine[Any, Any, None] | None,
    message_id: str | None,
    request_id: str,
    client: str,
    keys: Keys,
) -> None:
    if settled is not None:
        await settled
    if message_id is not None:
        await stage.correlate(message_id, request_id, client, keys)


def _abandon(  # noqa: PLR0917 - the request, its claim, and why it ends without an answer
    request: web.Request,
    match: RouteMatch,
    stage: Stage,
    claim: Claim,
    progress: Progress,
    kind: FailureKind,
    why: str,
) -> None:
    """The send ended without a gateway answer to keep (the app went away, or the proxy
    failed): release the key when the gateway provably got nothing, else keep the answer
    that says the outcome is unknown, so that no retry sends it twice."""
    answer = None
    if progress.bytes_sent > 0 or not request.body_exists:
        detail = f"{why}; whether the gateway took the request is unknown"
        ended = _refused(request.app[CATALOG_KEY], kind, detail, progress)
        answer = _kept(_reply(request, match, ended))
    _background(stage.abandon(claim, answer))


def _kept(reply: Reply) -> StoredAnswer:
    """The reply as the ledger keeps it for replay."""
    return StoredAnswer(reply.status, tuple(reply.headers.items()), reply.body)


def _replayed(
    request: web.Request, match: RouteMatch, stored: StoredAnswer, client: str
) -> web.Response:
    """The answer kept for the key, as it was (``Idempotent-Replayed: true``)."""
    started, request_id = request[_ARRIVAL_KEY]
    _log.info(
        "idempotent_replay", request_id=request_id, route=match.route.name, client=client,
        status=stored.status, duration_s=round(time.perf_counter() - started, 6),
    )  # fmt: skip
    return web.Response(status=stored.status, body=stored.body, headers=replay_headers(stored))


# Ledger writes that must finish although the request that started them was cancelled.
_BACKGROUND: set["asyncio.Task[None]"] = set()


def _background(work: Coroutine[Any, Any, None]) -> "asyncio.Task[None]":
    task = asyncio.get_running_loop().create_task(work, name="gateway-proxy-ledger")
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)
    return task


async def _shielded(work: Coroutine[Any, Any, None]) -> None:
    await asyncio.shield(_background(work))


def _refused(
    catalog: Catalog, kind: FailureKind, detail: str, progress: Progress | None = None
) -> Result:
    return Result(
        classify_failure(catalog, kind, detail), bytes_in=progress.bytes_sent if progress else 0
    )


async def _proxy(
    request: web.Request, match: RouteMatch, request_id: str, progress: Progress
) -> Result:
    """Forward to the route's gateway and classify its answer (or the failure to get one):
    each attempt, as the route's flow control (proxy/server/flow.py) makes them."""
    metrics = request.app[METRICS_KEY]
    in_flight = metrics.in_flight_of(match.route.name) if metrics is not None else None
    if in_flight is not None:
        in_flight.inc()

    async def attempt(
        endpoint: Endpoint, deadline: float | None, body: StreamReader | bytes | None
    ) -> Result:
        return await _attempt(request, match, request_id, progress, endpoint, deadline, body)

    try:
        return await forwarded(request, match.route, attempt)
    finally:
        if in_flight is not None:
            in_flight.dec()


async def _attempt(  # noqa: PLR0917 - the request, and where and how to send it
    request: web.Request,
    match: RouteMatch,
    request_id: str,
    progress: Progress,
    endpoint: Endpoint,
    deadline: float | None,
    body: StreamReader | bytes | None,
) -> Result:
    """One exchange with ``endpoint``, classified. ``unsent`` when it provably never
    reached the gateway: a connect-phase failure before any of the body was taken."""
    progress.bytes_sent = 0
    try:
        answer = await _forward(request, match, request_id, progress, endpoint, deadline, body)
    except ExchangeFailure as failure:
        kind, detail = failure.kind, failure.detail
        if kind == "bad_request" and _app_gone(request):  # a reset mid-upload
            kind, detail = "client_closed", f"the app closed the connection ({detail})"
        outcome = classify_failure(request.app[CATALOG_KEY], kind, detail)
        unsent = (
            kind == "connect"
            and not failure.reached
            and (failure.bytes_sent == 0 or not isinstance(body, StreamReader))
        )
        return Result(
            outcome, bytes_in=failure.bytes_sent, upstream_s=failure.elapsed_s,
            endpoint=endpoint.name, unsent=unsent,
        )  # fmt: skip
    outcome = _classify(request, match, answer)
    return Result(outcome, answer, answer.bytes_out, answer.duration_s, endpoint=endpoint.name)


def _app_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def _forward(  # noqa: PLR0917 - _attempt's own arguments
    request: web.Request,
    match: RouteMatch,
    request_id: str,
    progress: Progress,
    endpoint: Endpoint,
    deadline: float | None,
    body: StreamReader | bytes | None,
) -> Answer:
    """Send the app's request (its body streamed, or as held) to ``endpoint``; raises
    ``ExchangeFailure``."""
    route, app = match.route, request.app
    if (
        route.max_request_bytes is not None
        and (request.content_length or 0) > route.max_request_bytes
    ):
        detail = f"request body is over {route.max_request_bytes} bytes"
        raise ExchangeFailure("request_too_large", detail, reached=False)
    outgoing = hdrs.upstream_request_headers(
        request.headers,
        request_id=request_id,
        client_ip=request.remote,
        scheme=request.scheme,
        host=request.host,
        configured=route.headers,
        upstream_host=endpoint.host_header,
    )
    target = endpoint.target(match.rest_path, match.raw_query)
    return await exchange(
        app[UPSTREAM_KEY],
        endpoint,
        Request(request.method, target, outgoing, body),
        app[LIMITS_KEY][route.name],
        progress,
        deadline=deadline,
    )


def _classify(request: web.Request, match: RouteMatch, answer: Answer) -> Outcome:
    vendor, catalog = match.route.vendor, request.app[CATALOG_KEY]
    namespaces = catalog.vendors[vendor].namespaces
    reply = parse_reply(vendor, answer.content, hdrs.content_type_of(answer.headers), namespaces)
    bodiless = request.method == "HEAD" or answer.status in BODILESS_STATUSES
    return classify_reply(
        catalog,
        vendor,
        reply,
        answer.status,
        headers=answer.headers,
        bodiless=bodiless,
    )


def _finish(
    request: web.Request,
    decision: RouteMatch | Refusal,
    result: Result,
    client: str = ANONYMOUS,
) -> web.Response:
    """Build the reply, observe the request (of ``client``), and return the response."""
    return _respond(request, decision, result, _reply(request, decision, result), client)


def _reply(request: web.Request, decision: RouteMatch | Refusal, result: Result) -> Reply:
    return decide_reply(
        result.outcome,
        request_id=request[_ARRIVAL_KEY][1],
        route=decision.route,
        rest_path=decision.rest_path if isinstance(decision, RouteMatch) else "",
        answer=result.answer,
        routes=request.app[CONFIG_KEY].routes,
        endpoint=result.endpoint,
        retry_after=result.retry_after,
    )


def _respond(
    request: web.Request,
    decision: RouteMatch | Refusal,
    result: Result,
    reply: Reply,
    client: str = ANONYMOUS,
) -> web.Response:
    """Observe the request and return its response."""
    started, request_id = request[_ARRIVAL_KEY]
    record = _record(
        request.method, request.raw_path, request_id, hdrs.trace_id_from(request.headers),
        decision.route, result, reply, time.perf_counter() - started, client,
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
    client: str = ANONYMOUS,
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
        endpoint=result.endpoint,
        client=client,
    )


def _observe(app: web.Application, record: RequestRecord) -> None:
    """The request's metrics and its one log line."""
    metrics = app[METRICS_KEY]
    if metrics is not None:
        metrics.observe(
            record.route, record.vendor, record.outcome, duration_s=record.duration_s,
            upstream_duration_s=record.upstream_duration_s, trace_id=record.trace_id,
            client=record.client,
        )  # fmt: skip
    log_request(record)


class Edge:
    """The connection handler's reports (proxy.aio.server): answered and observed here."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    def protocol_error(
        self, request: web.BaseRequest, kind: FailureKind, detail: str
    ) -> web.Response:
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


async def outermost(request: web.Request) -> web.StreamResponse:
    """``handle`` under ``last_resort``: the chain the app's middleware list also makes."""
    return await last_resort(request, handle)


@web.middleware
async def last_resort(request: web.Request, handler: Handler) -> web.StreamResponse:
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
    decision = decide(request.app[SERVED_KEY][0], request.method, request.raw_path)
    route = decision.route if isinstance(decision, RouteMatch | Refusal) else None
    refusal = Refusal(kind, detail, route)
    return _finish(request, refusal, _refused(request.app[CATALOG_KEY], kind, detail))


__all__ = ["Edge", "Result", "handle", "last_resort", "outermost"]
