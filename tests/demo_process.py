"""Run ``python -m proxy demo`` as a real process tree on free ports, for tests.

Used by the demo's own tests and by the README quickstart test, so both drive the very
same entry point a newcomer runs.
"""

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEMO_CONFIG = ROOT / "config" / "demo.yaml"
GUIDE_END = "Ctrl-C stops both processes."


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class DemoProcess:
    process: subprocess.Popen[str]
    lines: list[str]  # everything it printed so far
    guide_done: threading.Event  # set once the guide is printed (or the process ended)
    app: str
    admin: str
    sim_port: int


@contextmanager
def running_demo(
    tmp_path: Path, *, total_timeout: float | None = None, pass_sim_listen: bool = False
) -> Iterator[DemoProcess]:
    """The shipped demo config moved to free ports; the tree is stopped on exit."""
    app_port, admin_port, sim_port = free_port(), free_port(), free_port()
    data = yaml.safe_load(DEMO_CONFIG.read_text(encoding="utf-8"))
    data["listen"] = f"127.0.0.1:{app_port}"
    data["admin_listen"] = f"127.0.0.1:{admin_port}"
    for route in data["routes"]:
        route["upstream"] = route["upstream"].replace(":8090/", f":{sim_port}/")
        if total_timeout is not None:
            route["timeout"]["total"] = total_timeout
            route["timeout"]["connect"] = min(route["timeout"]["connect"], total_timeout)
    config = tmp_path / "demo.yaml"
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    argv = [sys.executable, "-m", "proxy", "demo", "--config", str(config)]
    if pass_sim_listen:
        argv += ["--sim-listen", f"127.0.0.1:{sim_port}"]
    process = subprocess.Popen(
        argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []
    done = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if line.strip() == GUIDE_END:
                done.set()
        done.set()  # the process ended: stop waiting either way

    reader = threading.Thread(target=read, name="demo-stdout", daemon=True)
    reader.start()
    try:
        yield DemoProcess(
            process, lines, done, f"http://127.0.0.1:{app_port}",
            f"http://127.0.0.1:{admin_port}", sim_port,
        )  # fmt: skip
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        process.wait()
        reader.join(timeout=5)
        if process.stdout is not None:
            process.stdout.close()
