"""Run a real ``redis-server`` (Debian's package, scripts/install-redis.sh) for tests.

``RedisServer(tmp_path).start()`` starts one on a free loopback port with its own
directory, no persistence and no config file of the machine's, and waits until it answers
``PING``; ``stop()`` terminates it. ``url`` is what a config's ``store`` takes. Use it as
a context manager::

    with RedisServer(tmp_path) as redis:
        config = {..., "store": redis.url}

What can fail: ``AssertionError`` when the binary is missing (the message says how to
install it) or the server does not answer in time.
"""

import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Self

INSTALL_HINT = "run scripts/install-redis.sh (make test runs it)"
START_SECONDS = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One redis-server process on loopback, for one test."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Self:
        binary = shutil.which("redis-server")
        assert binary, f"redis-server is not installed: {INSTALL_HINT}"
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory), "--protected-mode", "yes",
             "--daemonize", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        deadline = time.monotonic() + START_SECONDS
        while not self.ping():
            if self.process.poll() is not None:
                _, err = self.process.communicate()
                raise AssertionError(f"redis-server exited: {err.decode(errors='replace')}")
            assert time.monotonic() < deadline, "redis-server did not answer PING in time"
            time.sleep(0.05)
        return self

    def ping(self) -> bool:
        """Whether the server answers PING (one inline command over a plain socket)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


__all__ = ["INSTALL_HINT", "RedisServer"]
