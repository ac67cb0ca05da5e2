"""``gateway-proxy serve --workers N``: N proxy processes on one port, one admin port.

One Python process saturates one core; ``--workers`` runs the proxy on several::

    parent (supervises; serves no app traffic)       N workers, forked from the parent
      admin_listen: /metrics /healthz /readyz          listen, each with SO_REUSEPORT: the
        /metrics adds up every worker                    kernel spreads new connections
        (prometheus_client multiprocess mode in a        over them; each is a whole proxy
        private PROMETHEUS_MULTIPROC_DIR it creates      (serve(admin=False)): routes, pool,
        and removes)                                     logs, metrics, drain
        /readyz 200 once every worker listens
      SIGTERM/SIGINT ─── forwarded once ──────────►   each runs the shutdown sequence of
        /readyz 503 at once                              serve.py (delay, drain, 503 for what
      exits 0 once every worker exited 0 (1 if one       outlives it) and exits 0
        failed; a worker dying ends them all)
      a second signal ─── forwarded ──────────────►   each exits at once (128 + signal)
      SIGHUP ──────────── forwarded ──────────────►   each re-reads its TLS files; nothing
                                                         stops

Each worker has its own process group (a terminal's Ctrl-C reaches the parent only, so
a worker never sees one signal twice) and a lifeline pipe from the parent: if the parent
dies, the workers drain and exit as on SIGTERM. Their log writer thread is started in each
worker (``configure_logging`` after the fork); the parent forks with none running.

In multiprocess mode exemplars (trace ids on the counters and histograms) are not
recorded: prometheus_client does not support them there. Gauges add up as their
``multiprocess_mode`` says (metrics.py); ``gateway_proxy_log_lines_dropped_total`` is each
process's count, synced every ``_SYNC_SECONDS``.
"""

import asyncio
import contextlib
import dataclasses
import os
import shutil
import signal
import socket
import tempfile

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, multiprocess, values

from proxy.config import Address, Config, shared_by
from proxy.observability.log_sink import DroppedLinesCollector, share_outputs
from proxy.observability.logs import (
    LogFormat,
    LogLevel,
    close_logs,
    configure_logging,
    dropped_lines,
    flush_logs,
    get_logger,
)
from proxy.process.serve import ListenError, loop_factory, serve
from proxy.server import StartupError
from proxy.server.admin import Readiness, create_admin_app

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_SYNC_SECONDS = 1.0
_POLL_SECONDS = 0.25  # how often worker exits are looked for where there is no pidfd
_log = get_logger("gateway_proxy")


def run_workers(config: Config, count: int, level: LogLevel, fmt: LogFormat) -> int:
    """Fork ``count`` workers on ``config.listen`` and supervise them; the exit status.

    Raises ``ListenError`` when ``listen`` is taken (checked before any fork).
    """
    config = dataclasses.replace(
        config,
        listen=_claim(config.listen),
        inbound_listen=_claim(config.inbound_listen) if config.inbound_listen else None,
    )
    config = shared_by(config, count)  # each worker's bucket gets its share of each rate limit
    metrics_dir = tempfile.mkdtemp(prefix="gateway-proxy-metrics-")
    os.environ[MULTIPROC_ENV] = metrics_dir
    # Chosen when prometheus_client is imported, which happened before the variable was set;
    # no metric exists yet in this process, so choosing again here is in time.
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    try:
        close_logs()  # fork with no writer thread running; each process starts its own
        share_outputs()  # the workers and this process write to one stdout: small writes
        lifeline, ready = os.pipe(), os.pipe()
        pids = [_fork(config, index, lifeline, ready, level, fmt) for index in range(count)]
        os.close(lifeline[0])
        os.close(ready[1])
        configure_logging(level, fmt)
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            return runner.run(_Supervisor(config, pids, ready[0], metrics_dir).run())
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
        flush_logs()


def _claim(address: Address) -> Address:
    """``address`` with its port chosen (for port 0), once nobody else listens there.

    Every worker binds with SO_REUSEPORT, which would share a port with another process
    doing the same: a plain bind first makes sure the port is free.
    """
    family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address.host, address.port))
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise ListenError(f"cannot listen on {address}: {reason.lower()}") from None
        return Address(address.host, int(probe.getsockname()[1]))


def _fork(  # noqa: PLR0917 - what a worker needs, all of it positional
    config: Config,
    index: int,
    lifeline: tuple[int, int],
    ready: tuple[int, int],
    level: LogLevel,
    fmt: LogFormat,
) -> int:
    pid = os.fork()
    if pid:
        return pid
    status = 1
    try:
        with contextlib.suppress(OSError):  # own group: the terminal's signals go to the parent
            os.setpgid(0, 0)
        # A SIGHUP forwarded before serve() handles it must not end the worker.
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        os.close(lifeline[1])
        os.close(ready[0])
        configure_logging(level, fmt)
        status = _work(config, index, lifeline[0], ready[1])
    except BaseException:  # noqa: BLE001 - the worker's outermost edge: say why, then exit 1
        _log.exception("worker_failed", worker=index)
    finally:
        flush_logs()
        os._exit(status)  # never the parent's cleanup: it is the parent's


def _work(config: Config, index: int, lifeline: int, ready: int) -> int:
    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def parent_gone() -> None:  # the lifeline's end is readable: EOF
            loop.remove_reader(lifeline)
            _log.warning("parent_gone", worker=index)
            stop.set()

        def listening() -> None:
            os.write(ready, b"r")

        loop.add_reader(lifeline, parent_gone)
        dropped = _DroppedLines()
        sync = loop.create_task(dropped.run(), name="gateway-proxy-dropped-lines")
        try:
            await serve(
                config,
                stop=stop,
                on_ready=listening,
                admin=False,
                reuse_port=True,
                worker=index,
            )
        finally:
            sync.cancel()
            dropped.sync()

    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            runner.run(main())
    except StartupError as exc:
        event = "listen_error" if isinstance(exc, ListenError) else "startup_error"
        _log.error(event, worker=index, error=str(exc))
        return 1
    return 0


class _DroppedLines:
    """This process's dropped log lines as a multiprocess counter, which the parent's
    /metrics adds up with the other processes' (one per process)."""

    def __init__(self) -> None:
        # Not registered anywhere: in multiprocess mode its value lives in this process's
        # file of the metrics directory, which MultiProcessCollector reads.
        self._counter = Counter(
            DroppedLinesCollector.NAME, DroppedLinesCollector.HELP, registry=None
        )
        self._synced = 0

    def sync(self) -> None:
        dropped = dropped_lines()
        if dropped > self._synced:
            self._counter.inc(dropped - self._synced)
            self._synced = dropped

    async def run(self) -> None:
        while True:
            await asyncio.sleep(_SYNC_SECONDS)
            self.sync()


class _Supervisor:
    """The parent's event loop: the admin port, the workers' readiness, exits and signals."""

    def __init__(self, config: Config, pids: list[int], ready: int, metrics_dir: str) -> None:
        self._config = config
        self._pids = pids
        self._ready_fd = ready
        self._metrics_dir = metrics_dir
        self._readiness = Readiness()
        self._ready_count = 0
        self._exits: dict[int, int] = {}
        self._received: list[str] = []
        self._all_exited = asyncio.Event()
        self._failed = False

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=self._metrics_dir)  # type: ignore[no-untyped-call]
        runner = web.AppRunner(
            create_admin_app(registry, self._readiness), access_log=None, handle_signals=False
        )
        await runner.setup()
        self._watch_exits()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)
        loop.add_signal_handler(signal.SIGHUP, self._on_hangup)
        loop.add_reader(self._ready_fd, self._on_ready)
        dropped = _DroppedLines()
        sync = loop.create_task(dropped.run(), name="gateway-proxy-dropped-lines")
        try:
            admin = self._config.admin_listen
            try:
                await web.TCPSite(runner, admin.host, admin.port).start()
            except OSError as exc:
                reason = os.strerror(exc.errno) if exc.errno else str(exc)
                _log.error("listen_error", error=f"cannot listen on {admin}: {reason.lower()}")
                self._failed = True
                self._forward(signal.SIGTERM)
            self._reap()  # a worker may have gone before the handler was in place
            await self._all_exited.wait()
        finally:
            sync.cancel()
            dropped.sync()
            with contextlib.suppress(OSError):
                loop.remove_reader(self._ready_fd)
            await runner.cleanup()
        _log.info("shutdown", workers=len(self._pids), exits=list(self._exits.values()))
        return 1 if self._failed or any(self._exits.values()) else 0

    def _on_ready(self) -> None:
        data = os.read(self._ready_fd, 64)
        if not data:  # every worker has closed its end
            asyncio.get_running_loop().remove_reader(self._ready_fd)
            return
        self._ready_count += len(data)
        if self._ready_count == len(self._pids) and not self._readiness.shutting_down:
            self._readiness.serving = True
            _log.info(
                "startup",
                workers=len(self._pids),
                pids=self._pids,
                listen=str(self._config.listen),
                admin_listen=str(self._config.admin_listen),
                routes=[f"{r.name}:{r.path_prefix}->{r.vendor}" for r in self._config.routes],
                config=self._config.source,
            )

    def _watch_exits(self) -> None:
        """Call ``_reap`` when a worker exits: its pidfd turns readable (Linux), else poll.

        (SIGCHLD is not ours to handle: uvloop keeps it for its own subprocesses.)
        """
        loop = asyncio.get_running_loop()
        pidfd_open = getattr(os, "pidfd_open", None)
        try:
            fds = [pidfd_open(pid) for pid in self._pids] if pidfd_open else None
        except OSError:  # an old kernel
            fds = None
        if fds is None:

            def poll() -> None:
                self._reap()
                if self._live():
                    loop.call_later(_POLL_SECONDS, poll)

            loop.call_later(_POLL_SECONDS, poll)
            return
        for fd in fds:

            def exited(fd: int = fd) -> None:
                loop.remove_reader(fd)
                os.close(fd)
                self._reap()

            loop.add_reader(fd, exited)

    def _reap(self) -> None:
        while self._live():
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            code = os.waitstatus_to_exitcode(status)
            self._exits[pid] = code
            multiprocess.mark_process_dead(pid, self._metrics_dir)  # type: ignore[no-untyped-call]
            if not self._readiness.shutting_down:  # not asked to stop: take the rest down
                _log.error("worker_exited", pid=pid, status=code)
                self._failed = True
                self._begin_shutdown(None)
        if not self._live():
            self._all_exited.set()

    def _live(self) -> list[int]:
        return [pid for pid in self._pids if pid not in self._exits]

    def _on_signal(self, sig: signal.Signals) -> None:
        if self._received:
            _log.warning("shutdown_forced", signal=sig.name)
            self._forward(sig)  # each worker's second signal: it exits at once
            flush_logs(0.2)
            os._exit(128 + sig.value)
        self._received.append(sig.name)
        self._begin_shutdown(sig.name)

    def _on_hangup(self) -> None:
        """SIGHUP: each worker re-reads its TLS files; nothing stops."""
        _log.info("sighup", workers=len(self._live()))
        self._forward(signal.SIGHUP)

    def _begin_shutdown(self, reason: str | None) -> None:
        if self._readiness.shutting_down:
            return
        self._readiness.shutting_down = True
        _log.info("shutdown_begins", signal=reason, workers=len(self._live()))
        self._forward(signal.SIGTERM)

    def _forward(self, sig: signal.Signals) -> None:
        for pid in self._live():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)


__all__ = ["MULTIPROC_ENV", "run_workers"]
