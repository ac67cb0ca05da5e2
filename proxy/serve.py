"""Run the proxy: both servers in one event loop, with a graceful shutdown.

On SIGTERM or SIGINT: /readyz turns false at once, the app port stops accepting,
in-flight requests get ``shutdown.drain_seconds`` to finish, then the shared
``ClientSession`` is closed and the admin server stops.
"""

import asyncio
import platform
import signal
import time
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CollectorRegistry

from proxy import __version__
from proxy.admin import create_admin_app
from proxy.catalog import Catalog
from proxy.config import Config
from proxy.logs import get_logger
from proxy.server import READINESS_KEY, REGISTRY_KEY, create_app

_log = get_logger("gateway_proxy")


async def serve(
    config: Config,
    *,
    catalog: Catalog | None = None,
    registry: CollectorRegistry | None = None,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[], None] | None = None,
    metrics_enabled: bool = True,
) -> None:
    """Serve until ``stop`` is set or SIGTERM/SIGINT arrives.

    ``metrics_enabled=False`` exists for the overhead benchmark (bench/overhead.py).
    """
    app = create_app(config, catalog=catalog, registry=registry, metrics_enabled=metrics_enabled)
    admin = create_admin_app(app[REGISTRY_KEY], app[READINESS_KEY])
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, shutdown_timeout=config.shutdown.drain_seconds
    )
    admin_runner = web.AppRunner(admin, access_log=None, handle_signals=False)
    stop = stop or asyncio.Event()
    received: list[str] = []
    loop = asyncio.get_running_loop()

    def on_signal(sig: signal.Signals) -> None:
        received.append(sig.name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    await runner.setup()
    await admin_runner.setup()
    try:
        await web.TCPSite(admin_runner, config.admin_listen.host, config.admin_listen.port).start()
        await web.TCPSite(runner, config.listen.host, config.listen.port).start()
        _log.info(
            "startup",
            version=__version__,
            python=platform.python_version(),
            listen=str(config.listen),
            admin_listen=str(config.admin_listen),
            routes=[f"{r.name}:{r.path_prefix}->{r.vendor}" for r in config.routes],
            config=config.source,
        )
        if on_ready is not None:
            on_ready()
        await stop.wait()
    finally:
        began = time.perf_counter()
        app[READINESS_KEY].shutting_down = True
        await runner.cleanup()
        await admin_runner.cleanup()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        _log.info(
            "shutdown",
            signal=received[0] if received else None,
            drain_seconds=config.shutdown.drain_seconds,
            took_s=round(time.perf_counter() - began, 3),
        )


def run(config: Config, *, metrics_enabled: bool = True) -> None:
    """Blocking entry point for ``gateway-proxy serve``; uses uvloop when installed."""
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up

        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux/macOS
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(serve(config, metrics_enabled=metrics_enabled))
