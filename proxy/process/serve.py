"""Run the proxy: both servers in one event loop, with a shutdown that keeps its budget.

On the first SIGTERM or SIGINT:

1. ``/readyz`` turns 503 at once;
2. requests are still served for ``shutdown.delay_seconds`` (Kubernetes keeps routing
   to a pod for a moment after it starts terminating);
3. the app listener closes, and idle kept-alive connections with it;
4. in-flight requests get up to ``shutdown.drain_seconds`` to finish;
5. those still running then answer a 503 envelope themselves (``OVERLOADED``, reason
   ``shutdown``), or, when their answer was already under way, their connection is closed;
   each is logged;
6. the session and the admin server close, and the process exits 0.

Signal to exit takes at most ``delay_seconds + drain_seconds`` plus about one second. A
second SIGTERM or SIGINT exits at once, with 143 or 130 (128 + the signal number).

SIGHUP never stops the proxy: it re-reads the TLS files (the routes' CA bundles and
client certificates, ``listen_tls``'s chain) at once. Without it they are re-read when
they change: the routes' when a connection opens, ``listen_tls``'s every
``_TLS_CHECK_SECONDS`` (proxy/config/tls.py).

With ``inbound_listen`` the relays' callbacks have their own listener (an application on
the same state: server/app.py ``create_inbound_app``), drained with the app listener.

``--workers N`` runs N such processes on one port (proxy/process/workers.py): each is ``serve``
with ``admin=False`` and ``reuse_port=True``, and the supervising parent serves the admin
port for all of them.
"""

import asyncio
import ctypes
import gc
import os
import platform
import signal
import time
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CollectorRegistry

from proxy import __version__
from proxy.codes.catalog import Catalog
from proxy.config import Address, Config
from proxy.config.tls import ServerContext
from proxy.observability.logs import flush_logs, get_logger
from proxy.server import (
    READINESS_KEY,
    REGISTRY_KEY,
    TRAFFIC_KEY,
    UPSTREAM_KEY,
    StartupError,
    create_app,
    create_inbound_app,
    runner,
)
from proxy.server.admin import create_admin_app

_log = get_logger("gateway_proxy")
# What is left for the runner once the drain is over: answers being written, idle sockets.
_CLOSE_SECONDS = 0.25
# How often listen_tls's files are looked at (a stat each): rotation without SIGHUP.
_TLS_CHECK_SECONDS = 5.0


class ListenError(StartupError):
    """An address could not be listened on; the message is the one line to print."""


async def serve(
    config: Config,
    *,
    catalog: Catalog | None = None,
    registry: CollectorRegistry | None = None,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[], None] | None = None,
    metrics_enabled: bool = True,
    admin: bool = True,
    reuse_port: bool = False,
    worker: int | None = None,
) -> None:
    """Serve until ``stop`` is set or SIGTERM/SIGINT arrives. Raises ``ListenError``.

    ``metrics_enabled=False`` exists for the overhead benchmark (bench/overhead.py).
    ``admin=False`` serves no admin port and ``reuse_port=True`` shares ``listen`` with
    other processes (SO_REUSEPORT): a worker of ``--workers`` (proxy/process/workers.py), whose
    number ``worker`` its log lines carry.
    """
    app = create_app(config, catalog=catalog, registry=registry, metrics_enabled=metrics_enabled)
    app_runner = runner(app, access_log=None, handle_signals=False, shutdown_timeout=_CLOSE_SECONDS)
    inbound_runner = (
        runner(
            create_inbound_app(app),
            access_log=None,
            handle_signals=False,
            shutdown_timeout=_CLOSE_SECONDS,
        )
        if config.inbound_listen is not None
        else None
    )
    server_tls = _server_tls(config)
    admin_runner = (
        web.AppRunner(
            create_admin_app(app[REGISTRY_KEY], app[READINESS_KEY]),
            access_log=None,
            handle_signals=False,
        )
        if admin
        else None
    )
    stop = stop or asyncio.Event()
    received = _install_signals(stop)
    await app_runner.setup()
    if inbound_runner is not None:
        await inbound_runner.setup()  # after the app's: it shares the pool its start-up made
    if admin_runner is not None:
        await admin_runner.setup()
    _install_reload(app, server_tls)
    watch = (
        asyncio.get_running_loop().create_task(_watch(server_tls), name="gateway-proxy-tls")
        if server_tls is not None
        else None
    )
    try:
        if admin_runner is not None:
            admin_site = web.TCPSite(admin_runner, *_host_port(config.admin_listen))
            await _listen(admin_site, config.admin_listen)
        site = web.TCPSite(
            app_runner,
            *_host_port(config.listen),
            backlog=config.listen_backlog,
            reuse_port=reuse_port or None,
            ssl_context=server_tls.context if server_tls is not None else None,
        )
        await _listen(site, config.listen)
        inbound_site = None
        if inbound_runner is not None and config.inbound_listen is not None:
            inbound_site = web.TCPSite(
                inbound_runner,
                *_host_port(config.inbound_listen),
                backlog=config.listen_backlog,
                reuse_port=reuse_port or None,
            )
            await _listen(inbound_site, config.inbound_listen)
        _trim_heap()
        _log.info(
            "startup" if worker is None else "worker_startup",
            **({} if worker is None else {"worker": worker, "pid": os.getpid()}),
            version=__version__,
            python=platform.python_version(),
            listen=str(config.listen),
            listen_tls=server_tls is not None,
            inbound_listen=str(config.inbound_listen) if config.inbound_listen else None,
            admin_listen=str(config.admin_listen) if admin else None,
            routes=[f"{r.name}:{r.path_prefix}->{r.vendor}" for r in config.routes],
            clients=[c.name for c in config.clients],
            config=config.source,
        )
        if on_ready is not None:
            on_ready()
        await stop.wait()
        inbound = (inbound_runner, inbound_site) if inbound_runner and inbound_site else None
        await _drain(app, app_runner, site, config, received, worker=worker, inbound=inbound)
    finally:
        if watch is not None:
            watch.cancel()
        if inbound_runner is not None:
            await inbound_runner.cleanup()
        await app_runner.cleanup()
        if admin_runner is not None:
            await admin_runner.cleanup()
        _remove_signals()


async def _drain(
    app: web.Application,
    app_runner: web.AppRunner,
    site: web.TCPSite,
    config: Config,
    received: list[str],
    *,
    worker: int | None = None,
    inbound: tuple[web.AppRunner, web.TCPSite] | None = None,
) -> None:
    """Steps 1 to 5 of the module docstring (for both listeners, with ``inbound``)."""
    began = time.perf_counter()
    app[READINESS_KEY].shutting_down = True
    named = {} if worker is None else {"worker": worker}
    _log.info(
        "shutdown_begins",
        **named,
        signal=received[0] if received else None,
        delay_seconds=config.shutdown.delay_seconds,
        drain_seconds=config.shutdown.drain_seconds,
    )
    await asyncio.sleep(config.shutdown.delay_seconds)
    await site.stop()  # no new connections
    if inbound is not None:
        await inbound[1].stop()
    for each in (app_runner, inbound[0] if inbound else None):
        if each is not None and each.server is not None:
            each.server.pre_shutdown()  # idle kept-alive connections close now
    traffic = app[TRAFFIC_KEY]
    in_flight = len(traffic.tasks)
    cut = await traffic.drain(config.shutdown.drain_seconds)
    _log.info(
        "shutdown",
        **named,
        signal=received[0] if received else None,
        in_flight=in_flight,
        cut_short=cut,
        drain_seconds=config.shutdown.drain_seconds,
        took_s=round(time.perf_counter() - began, 3),
    )


def _trim_heap() -> None:
    """Hand the memory start-up used and freed (reading the config and the catalog) back to
    the OS: glibc keeps freed heap pages resident until asked. A no-op elsewhere."""
    gc.collect()
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        return
    trim(0)


def _install_signals(stop: asyncio.Event) -> list[str]:
    """First signal: set ``stop``. Second: exit at once with 128 + the signal number."""
    loop = asyncio.get_running_loop()
    received: list[str] = []

    def on_signal(sig: signal.Signals) -> None:
        if received:
            _log.warning("shutdown_forced", signal=sig.name)
            flush_logs(0.2)
            os._exit(128 + sig.value)
        received.append(sig.name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    return received


def _server_tls(config: Config) -> ServerContext | None:
    """``listen_tls``'s context (its files were checked with the config). Raises
    ``ListenError`` when they can no longer be read."""
    if config.listen_tls is None:
        return None
    try:
        return ServerContext(config.listen_tls)
    except OSError as exc:
        from proxy.config.tls import problem  # noqa: PLC0415 - only on this rare failure

        raise ListenError(f"cannot use listen_tls: {problem(exc)}") from None


def _install_reload(app: web.Application, server_tls: ServerContext | None) -> None:
    """SIGHUP: re-read every TLS file now; never stop."""

    def on_hangup() -> None:
        _log.info("sighup", action="re-reading the TLS files")
        app[UPSTREAM_KEY].tls.reload()
        if server_tls is not None:
            server_tls.check(force=True)

    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, on_hangup)


async def _watch(server_tls: ServerContext) -> None:
    """Load ``listen_tls``'s chain again whenever its files change (rotation)."""
    while True:
        await asyncio.sleep(_TLS_CHECK_SECONDS)
        server_tls.check()


def _remove_signals() -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.remove_signal_handler(sig)


def _host_port(address: Address) -> tuple[str, int]:
    return address.host, address.port


async def _listen(site: web.TCPSite, address: Address) -> None:
    try:
        await site.start()
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise ListenError(f"cannot listen on {address}: {reason.lower()}") from None


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed, else None (asyncio's own)."""
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux/macOS
        return None
    return uvloop.new_event_loop


def run(config: Config, *, metrics_enabled: bool = True) -> None:
    """Blocking entry point for ``gateway-proxy serve``; uses uvloop when installed.

    Raises ``ListenError``. Buffered log lines are flushed before it returns.
    """
    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            runner.run(serve(config, metrics_enabled=metrics_enabled))
    finally:
        flush_logs()
