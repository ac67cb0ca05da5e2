"""Shared plumbing for benchmarks: processes, ports, CPU time, reporting."""

import asyncio
import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

RESULTS = Path(__file__).resolve().parent / "results"
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def start_simulator(port: int, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "proxy", "simulate", "--listen", f"127.0.0.1:{port}", *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_http(url: str, timeout: float = 20.0) -> None:
    """Poll ``url`` until it answers (any status), or raise after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).close()  # noqa: S310 - loopback only
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def stop_process(proc: subprocess.Popen[Any]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def report(result: dict[str, Any]) -> None:
    """Print a result and keep it under bench/results/ (not committed)."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{result['benchmark']}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


class Recorder(Protocol):
    """A fake gateway on raw asyncio streams that records what it saw."""

    def serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> Awaitable[None]: ...

    def record(self) -> Any:
        """What it saw, as JSON-able data (written out when it stops)."""


def _run_recorder(make: Callable[[], Recorder], port: int, out: str) -> None:
    """Serve ``make()`` until SIGTERM, then write its record to ``out`` (``out.ready``
    says it listens)."""
    recorder = make()

    async def main() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        server = await asyncio.start_server(recorder.serve, "127.0.0.1", port, backlog=4096)
        Path(out + ".ready").write_text("ready")  # noqa: ASYNC240 - once, before any load
        await stop.wait()
        server.close()

    asyncio.run(main())
    Path(out).write_text(json.dumps(recorder.record()))


@contextmanager
def recorder_process(
    directory: Path, make: Callable[[], Recorder], seen: Callable[[Any], None], name: str
) -> Iterator[str]:
    """``make()`` (picklable: a class or a ``functools.partial``) served in a process of its
    own, so the client's loop stays free; its base URL. When the block ends it is stopped
    and ``seen`` gets its record."""
    port = free_port()
    out = directory / f"{name}-{port}.json"
    process = multiprocessing.get_context("spawn").Process(
        target=_run_recorder, args=(make, port, str(out)), name=name
    )
    process.start()
    try:
        ready = Path(str(out) + ".ready")
        deadline = time.monotonic() + 30
        while not ready.exists():
            if time.monotonic() > deadline or not process.is_alive():
                raise RuntimeError(f"bench: {name} did not start")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        if process.pid is not None and process.is_alive():
            os.kill(process.pid, signal.SIGTERM)
        process.join(timeout=30)
        if out.exists():
            seen(json.loads(out.read_text()))
