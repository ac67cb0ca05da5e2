"""The application factory: the app-traffic application, its state and its lifecycle.

``create_app`` builds it. Process-wide state lives in typed ``web.AppKey``s (keys.py) and
is created/closed in ``cleanup_ctx``: the config, the catalog, the one upstream pool (the
gateways and the apps' webhooks), each route's endpoint and limits, each inbound route's
webhook and each client's own, the clients, the metrics and the readiness flag.
``runner`` serves the app through the guarded connection handler (proxy.aio.server),
calling the pipeline (handle.py) straight, without aiohttp's router.

With ``inbound_listen`` the callbacks get their own listener: ``create_inbound_app(app)``
is a second application on the same state (the same pool, limits, drain and metrics),
serving only the inbound routes, while ``app`` then serves only the send routes. It is
set up after ``app``, whose start-up creates the pool it shares.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from proxy.aio.server import GuardedRunner
from proxy.codes.catalog import Catalog, load_catalog
from proxy.config import Config, Route
from proxy.flow.limiter import Limiter, LocalSource, LoopClock, Source
from proxy.observability.flow_metrics import FlowMetrics
from proxy.observability.logs import get_logger
from proxy.observability.metrics import Metrics
from proxy.server.admin import Readiness
from proxy.server.admission import Traffic
from proxy.server.clients import Clients
from proxy.server.handle import Edge, handle, last_resort, outermost
from proxy.server.idempotency import Stage
from proxy.server.keys import (
    BALANCERS_KEY,
    CATALOG_KEY,
    CLIENT_WEBHOOKS_KEY,
    CLIENTS_KEY,
    CONFIG_KEY,
    ENDPOINTS_KEY,
    FLOW_METRICS_KEY,
    INBOUND_METRICS_KEY,
    LEDGER_KEY,
    LEDGER_METRICS_KEY,
    LEDGER_STAGES_KEY,
    LIMITERS_KEY,
    LIMITS_KEY,
    LOOP_KEY,
    METRICS_KEY,
    READINESS_KEY,
    REGISTRY_KEY,
    SERVED_KEY,
    STORE_KEY,
    TRAFFIC_KEY,
    UPSTREAM_KEY,
    WEBHOOKS_KEY,
)
from proxy.upstream import Endpoint, Limits, UpstreamPool, endpoint_of
from proxy.upstream.balance import Endpoints
from proxy.vocab import CircuitState

if TYPE_CHECKING:
    from proxy.ledger import Ledger
    from proxy.observability.ledger_metrics import LedgerMetrics

_log = get_logger("gateway_proxy")


def create_app(
    config: Config,
    *,
    catalog: Catalog | None = None,
    registry: CollectorRegistry | None = None,
    metrics_enabled: bool = True,
) -> web.Application:
    """Build the app-traffic application. ``registry`` defaults to a fresh one."""
    app = _application()
    app[CONFIG_KEY] = config
    app[CATALOG_KEY] = catalog or load_catalog(config.catalog)
    app[REGISTRY_KEY] = registry if registry is not None else CollectorRegistry()
    app[CLIENTS_KEY] = Clients(config.clients)
    app[METRICS_KEY] = (
        Metrics(
            app[REGISTRY_KEY],
            config.routes,
            app[CATALOG_KEY],
            clients=app[CLIENTS_KEY].names,
            inbound=[r.name for r in config.inbound],
        )
        if metrics_enabled
        else None
    )
    app[READINESS_KEY] = Readiness()
    # Without inbound_listen, `listen` serves the callbacks too.
    app[SERVED_KEY] = (config.routes, () if config.inbound_listen else config.inbound)
    app[ENDPOINTS_KEY] = {
        route.name: endpoint_of(route.upstream, tls=route.tls, query=route.query)
        for route in config.routes
    }
    app[LIMITS_KEY] = {route.name: limits_of(route) for route in config.routes}
    app[WEBHOOKS_KEY] = {route.name: endpoint_of(route.deliver_to) for route in config.inbound}
    app[CLIENT_WEBHOOKS_KEY] = {
        client.name: endpoint_of(client.webhook)
        for client in config.clients
        if client.webhook is not None
    }
    limits = {r.name: r.max_in_flight for r in config.routes} | {
        r.name: None for r in config.inbound
    }
    app[TRAFFIC_KEY] = Traffic(config.max_in_flight, limits)
    app[INBOUND_METRICS_KEY] = None
    if metrics_enabled and config.inbound:
        from proxy.inbound.handler import InboundMetrics  # noqa: PLC0415 - only with inbound routes

        app[INBOUND_METRICS_KEY] = InboundMetrics(
            app[REGISTRY_KEY], config.inbound, app[CATALOG_KEY]
        )
    _flow_control(app, config, metrics_enabled)
    app[LEDGER_KEY] = None
    app[LEDGER_METRICS_KEY] = None
    app[LEDGER_STAGES_KEY] = {}
    if config.ledger is not None:
        from proxy.observability.ledger_metrics import LedgerMetrics  # noqa: PLC0415 - only with a ledger

        if metrics_enabled:
            app[LEDGER_METRICS_KEY] = LedgerMetrics(
                app[REGISTRY_KEY], [r.name for r in config.routes], [r.name for r in config.inbound]
            )
        app.cleanup_ctx.append(_ledger_ctx)
    app.cleanup_ctx.append(_pool_ctx)
    app.on_startup.append(_mark_serving)
    app.on_shutdown.append(_mark_shutting_down)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def _flow_control(app: web.Application, config: Config, metrics_enabled: bool) -> None:
    """Each route's endpoints and circuits, each rate-limited route's queue, their metrics
    and the shared store (README "Flow control and failover"; proxy/server/flow.py)."""
    names = {r.name: tuple(endpoint_of(url).name for url in r.endpoints) for r in config.routes}
    flow = (
        FlowMetrics(app[REGISTRY_KEY], config.routes, names, store=config.store is not None)
        if metrics_enabled
        else None
    )
    app[FLOW_METRICS_KEY] = flow
    app[BALANCERS_KEY] = {
        route.name: Endpoints(route, _circuit_listener(route.name, flow)) for route in config.routes
    }
    app[STORE_KEY] = None
    limited = [route for route in config.routes if route.rate_limit is not None]
    if config.store is not None and limited:
        from proxy.flow.store import Store  # noqa: PLC0415 - the redis client only with a store

        app[STORE_KEY] = Store(
            config.store,
            on_health=flow.store_health if flow is not None else None,
            on_error=flow.store_error if flow is not None else None,
        )
    app[LIMITERS_KEY] = {route.name: _limiter(app, route, flow) for route in limited}
    app.on_cleanup.append(_close_flow)


def _limiter(app: web.Application, route: Route, flow: FlowMetrics | None) -> Limiter:
    settings, store = route.rate_limit, app[STORE_KEY]
    assert settings is not None
    clock = LoopClock()
    source: Source
    if store is not None:
        from proxy.flow.store import SharedSource  # noqa: PLC0415 - only with a store

        source = SharedSource(route.name, settings, store, clock)
    else:
        source = LocalSource(settings, clock)

    def on_queue(length: int) -> None:
        if flow is not None:
            flow.queued(route.name, length)

    return Limiter(route.name, settings, source, on_queue=on_queue)


def _circuit_listener(
    route: str, flow: FlowMetrics | None
) -> Callable[[Endpoint, CircuitState], None]:
    def changed(endpoint: Endpoint, state: CircuitState) -> None:
        log = _log.warning if state == "open" else _log.info
        log("circuit", route=route, endpoint=endpoint.name, state=state)
        if flow is not None:
            flow.circuit(route, endpoint.name, state)

    return changed


async def _close_flow(app: web.Application) -> None:
    for limiter in app[LIMITERS_KEY].values():
        await limiter.close()
    store = app[STORE_KEY]
    if store is not None:
        await store.close()


def create_inbound_app(app: web.Application) -> web.Application:
    """The application of ``inbound_listen``: ``app``'s inbound routes on ``app``'s state.

    Set it up (its runner) after ``app``'s: it takes the pool ``app``'s start-up created.
    """
    inbound = _application()
    inbound[CONFIG_KEY], inbound[CATALOG_KEY] = app[CONFIG_KEY], app[CATALOG_KEY]
    inbound[REGISTRY_KEY], inbound[METRICS_KEY] = app[REGISTRY_KEY], app[METRICS_KEY]
    inbound[READINESS_KEY], inbound[TRAFFIC_KEY] = app[READINESS_KEY], app[TRAFFIC_KEY]
    inbound[ENDPOINTS_KEY], inbound[LIMITS_KEY] = app[ENDPOINTS_KEY], app[LIMITS_KEY]
    inbound[WEBHOOKS_KEY], inbound[CLIENTS_KEY] = app[WEBHOOKS_KEY], app[CLIENTS_KEY]
    inbound[CLIENT_WEBHOOKS_KEY] = app[CLIENT_WEBHOOKS_KEY]
    inbound[INBOUND_METRICS_KEY] = app[INBOUND_METRICS_KEY]
    inbound[LEDGER_METRICS_KEY] = app[LEDGER_METRICS_KEY]
    inbound[LEDGER_STAGES_KEY] = {}  # no send route here
    inbound[SERVED_KEY] = ((), app[CONFIG_KEY].inbound)

    async def share_pool(inbound: web.Application) -> None:
        inbound[UPSTREAM_KEY] = app[UPSTREAM_KEY]
        inbound[LEDGER_KEY] = app[LEDGER_KEY]
        inbound[LOOP_KEY] = asyncio.get_running_loop()

    inbound.on_startup.append(share_pool)
    inbound.router.add_route("*", "/{tail:.*}", handle)
    return inbound


def _application() -> web.Application:
    return web.Application(
        middlewares=[last_resort],
        # The handler is cancelled when the app goes away, and with it the upstream call;
        # the app's body is forwarded as it came (its Content-Encoding is passed on).
        handler_args={"handler_cancellation": True, "auto_decompress": False},
    )


def limits_of(route: Route) -> Limits:
    """What one exchange of ``route`` may take (its timeouts and sizes)."""
    return Limits(
        connect=route.timeout.connect,
        total=route.timeout.total,
        max_response_bytes=route.max_response_bytes,
        max_request_bytes=route.max_request_bytes,
        body_idle=route.client_timeout.body_idle,
    )


def runner(app: web.Application, **kwargs: Any) -> GuardedRunner:
    """The app's runner: the guarded connection handler calling the pipeline straight."""
    return GuardedRunner(
        app,
        handler=outermost,
        edge=Edge(app),
        head_seconds=app[CONFIG_KEY].client_timeout.head,
        **kwargs,
    )


class StartupError(Exception):
    """The proxy cannot start; the message is the one line to print (no traceback)."""


#: How often the ledger's store is asked whether it answers (``gateway_proxy_ledger_up``).
LEDGER_CHECK_SECONDS = 5.0


async def _ledger_ctx(app: web.Application) -> AsyncIterator[None]:
    """Open the ledger (the SQLite file, or a client of ``store``), watch its health, close
    it after the pool. A file that cannot be opened stops the start-up with one line; an
    unreachable Redis does not (keyed requests get LEDGER_UNAVAILABLE until it is back)."""
    from proxy.ledger import LedgerUnavailable  # noqa: PLC0415 - only with a ledger
    from proxy.ledger.store import open_ledger  # noqa: PLC0415 - only with a ledger

    config = app[CONFIG_KEY]
    assert config.ledger is not None
    try:
        ledger = await open_ledger(path=config.ledger.path, store=config.store)
    except LedgerUnavailable as exc:
        where = "store" if config.store else f"ledger.path {config.ledger.path}"
        raise StartupError(f"cannot open the message ledger ({where}): {exc.reason}") from None
    app[LEDGER_KEY] = ledger
    app[LEDGER_STAGES_KEY] = {
        route.name: Stage(ledger, app[LEDGER_METRICS_KEY], route, config.ledger)
        for route in config.routes
    }
    health = asyncio.get_running_loop().create_task(
        _watch_ledger(ledger, app[LEDGER_METRICS_KEY]), name="gateway-proxy-ledger-health"
    )
    yield
    health.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await health
    await ledger.close()


async def _watch_ledger(ledger: "Ledger", metrics: "LedgerMetrics | None") -> None:
    from proxy.ledger import LedgerUnavailable  # noqa: PLC0415 - only with a ledger

    up = True
    while True:
        try:
            await ledger.ping()
            healthy = True
        except LedgerUnavailable as exc:
            healthy = False
            if up:
                _log.warning("ledger_unavailable", operation="ping", reason=exc.reason)
        if healthy and not up:
            _log.info("ledger_available")
        up = healthy
        if metrics is not None:
            metrics.health(healthy)
        await asyncio.sleep(LEDGER_CHECK_SECONDS)


async def _pool_ctx(app: web.Application) -> AsyncIterator[None]:
    app[UPSTREAM_KEY] = UpstreamPool(app[CONFIG_KEY].pool)
    yield
    await app[UPSTREAM_KEY].close()


async def _mark_serving(app: web.Application) -> None:
    app[LOOP_KEY] = asyncio.get_running_loop()
    app[READINESS_KEY].serving = True


async def _mark_shutting_down(app: web.Application) -> None:
    app[READINESS_KEY].shutting_down = True


__all__ = ["StartupError", "create_app", "create_inbound_app", "limits_of", "runner"]
