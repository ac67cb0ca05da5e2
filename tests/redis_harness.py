"""A real ``redis-server`` for tests: a free loopback port, a temporary directory, no disk.

``running_redis(tmp_path)`` starts ``redis-server --port N --save "" --appendonly no``
(installed by scripts/install-redis.sh, which ``make test`` runs) and yields its URL once
it answers PING; it is stopped (SIGTERM, then SIGKILL) on exit.
"""

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT_SECONDS = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class RedisServer:
    url: str
    port: int
    process: subprocess.Popen[bytes]


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextmanager
def running_redis(directory: Path) -> Iterator[RedisServer]:
    """A fresh redis-server in ``directory``; see the module docstring."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is missing: run scripts/install-redis.sh (make test does)"
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
         "no", "--dir", str(directory), "--logfile", str(directory / "redis.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not _answers_ping(port):
            assert process.poll() is None, "redis-server exited at start-up"
            assert time.monotonic() < deadline, "redis-server did not answer PING"
            time.sleep(0.05)
        yield RedisServer(f"redis://127.0.0.1:{port}/0", port, process)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
