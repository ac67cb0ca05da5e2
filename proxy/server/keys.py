"""The app's process-wide state, in typed ``web.AppKey``s (created in ``app.create_app``
and its ``cleanup_ctx``; read by the pipeline, the runner and the process layer)."""

import asyncio
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CollectorRegistry

from proxy.codes.catalog import Catalog
from proxy.config import Config, InboundRoute, Route
from proxy.flow.limiter import Limiter
from proxy.observability.flow_metrics import FlowMetrics
from proxy.observability.metrics import Metrics
from proxy.server.admin import Readiness
from proxy.server.admission import Traffic
from proxy.server.clients import Clients
from proxy.upstream import Endpoint, Limits, UpstreamPool
from proxy.upstream.balance import Endpoints

if TYPE_CHECKING:  # the inbound side is imported only by a config that has inbound routes
    from proxy.flow.store import Store
    from proxy.inbound.handler import InboundMetrics
    from proxy.ledger import Ledger
    from proxy.observability.ledger_metrics import LedgerMetrics
    from proxy.server.idempotency import Stage

CONFIG_KEY = web.AppKey("config", Config)
CATALOG_KEY = web.AppKey("catalog", Catalog)
REGISTRY_KEY = web.AppKey("registry", CollectorRegistry)
METRICS_KEY: web.AppKey[Metrics | None] = web.AppKey("metrics")
READINESS_KEY = web.AppKey("readiness", Readiness)
#: The one upstream pool: the gateways and the apps' webhooks.
UPSTREAM_KEY = web.AppKey("upstream", UpstreamPool)
#: Each route's endpoint and limits, and each inbound route's webhook, by name.
ENDPOINTS_KEY = web.AppKey("endpoints", dict[str, Endpoint])
LIMITS_KEY = web.AppKey("limits", dict[str, Limits])
WEBHOOKS_KEY = web.AppKey("webhooks", dict[str, Endpoint])
LOOP_KEY = web.AppKey("loop", asyncio.AbstractEventLoop)
TRAFFIC_KEY = web.AppKey("traffic", Traffic)
INBOUND_METRICS_KEY: web.AppKey["InboundMetrics | None"] = web.AppKey("inbound_metrics")
#: Flow control (proxy/server/flow.py): each route's endpoints in try order with their
#: circuits, each rate-limited route's queue, their metrics, and the shared store (None:
#: no ``store``; the redis client is imported only with one).
BALANCERS_KEY = web.AppKey("balancers", dict[str, Endpoints])
LIMITERS_KEY = web.AppKey("limiters", dict[str, Limiter])
FLOW_METRICS_KEY: web.AppKey[FlowMetrics | None] = web.AppKey("flow_metrics")
STORE_KEY: web.AppKey["Store | None"] = web.AppKey("store")
#: The apps allowed to send (``clients``), ready to identify one.
CLIENTS_KEY = web.AppKey("clients", Clients)
#: What this app's listener serves: its send routes and its inbound routes. With
#: ``inbound_listen`` the send listener serves no inbound route and the inbound one no
#: send route; without it, ``listen`` serves both.
SERVED_KEY = web.AppKey("served", tuple[tuple[Route, ...], tuple[InboundRoute, ...]])
#: The message ledger (None: no ``ledger``), opened at start-up, and its metrics.
LEDGER_KEY: web.AppKey["Ledger | None"] = web.AppKey("ledger")
LEDGER_METRICS_KEY: web.AppKey["LedgerMetrics | None"] = web.AppKey("ledger_metrics")
#: Each send route's ledger stage, made once the ledger is open (empty: no ``ledger``).
LEDGER_STAGES_KEY: web.AppKey["dict[str, Stage]"] = web.AppKey("ledger_stages")
#: The clients' own webhooks (``clients[].webhook``) by client name: a report matched to
#: one of their sends goes there instead of its inbound route's ``deliver_to``.
CLIENT_WEBHOOKS_KEY = web.AppKey("client_webhooks", dict[str, Endpoint])

__all__ = [
    "BALANCERS_KEY",
    "CATALOG_KEY",
    "CLIENTS_KEY",
    "CLIENT_WEBHOOKS_KEY",
    "CONFIG_KEY",
    "ENDPOINTS_KEY",
    "FLOW_METRICS_KEY",
    "INBOUND_METRICS_KEY",
    "LEDGER_KEY",
    "LEDGER_METRICS_KEY",
    "LEDGER_STAGES_KEY",
    "LIMITERS_KEY",
    "LIMITS_KEY",
    "LOOP_KEY",
    "METRICS_KEY",
    "READINESS_KEY",
    "REGISTRY_KEY",
    "SERVED_KEY",
    "STORE_KEY",
    "TRAFFIC_KEY",
    "UPSTREAM_KEY",
    "WEBHOOKS_KEY",
]
