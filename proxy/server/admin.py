"""The admin server on ``admin_listen``: /metrics, /healthz and /readyz, nothing else.

App traffic never reaches these endpoints: they live on their own port and their own
``web.Application``.
"""

from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.aiohttp import make_aiohttp_handler


@dataclass(slots=True)
class Readiness:
    """Ready once the app serves; false again as soon as shutdown begins."""

    serving: bool = False
    shutting_down: bool = False

    @property
    def ready(self) -> bool:
        return self.serving and not self.shutting_down


ADMIN_READINESS_KEY = web.AppKey("admin_readiness", Readiness)


def create_admin_app(registry: CollectorRegistry, readiness: Readiness) -> web.Application:
    """The admin application, sharing the proxy's registry and readiness flag."""
    app = web.Application()
    app[ADMIN_READINESS_KEY] = readiness
    # prometheus_client's own handler: text or OpenMetrics (with exemplars) by Accept,
    # ``name[]`` filters, and gzip when the scraper asks for it.
    app.router.add_get("/metrics", make_aiohttp_handler(registry))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process is serving. It never checks the gateways."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: config loaded and accepting; false once shutdown begins."""
    readiness = request.app[ADMIN_READINESS_KEY]
    if readiness.ready:
        return web.json_response({"status": "ready"})
    reason = "shutting down" if readiness.shutting_down else "starting"
    return web.json_response({"status": reason}, status=503)
