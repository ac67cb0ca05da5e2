"""Run ``python -m proxy demo`` as a real process tree on free ports, for tests.

Used by the demo's own tests and by the README quickstart test, so both drive the very
same entry point a newcomer runs. ``webhook_events`` reads back the events the demo
webhook printed.
"""

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml

from proxy.tools.demo_webhook import PREFIX

ROOT = Path(__file__).resolve().parent.parent
DEMO_CONFIG = ROOT / "config" / "demo.yaml"
GUIDE_END = "Ctrl-C stops every process of the demo."


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
    webhook_port: int


def _moved(url: str, port: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.hostname}:{port}"))


def webhook_events(lines: list[str]) -> list[dict[str, Any]]:
    """Every event the demo webhook printed (``webhook received: {...}`` blocks)."""
    events = []
    for i, line in enumerate(lines):
        if not line.startswith(PREFIX):
            continue
        block = [line[len(PREFIX) :]]
        for following in lines[i + 1 :]:
            block.append(following)
            if following == "}":
                break
        events.append(json.loads("\n".join(block)))
    return events


def _wait(demo: DemoProcess, find: Callable[[list[str]], list[Any]], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = find(list(demo.lines))
        if found:
            return found[0]
        assert time.monotonic() < deadline, "not printed:\n" + "\n".join(demo.lines)
        time.sleep(0.1)


def wait_for_event(
    demo: DemoProcess, match: Callable[[dict[str, Any]], bool], timeout: float = 30
) -> dict[str, Any]:
    """The first printed event ``match`` accepts, waiting up to ``timeout`` s for it."""
    return dict(_wait(demo, lambda lines: [e for e in webhook_events(lines) if match(e)], timeout))


def wait_for_line(demo: DemoProcess, match: Callable[[str], bool], timeout: float = 30) -> str:
    """The first line the demo printed that ``match`` accepts, waiting up to ``timeout`` s."""
    return str(_wait(demo, lambda lines: [line for line in lines if match(line)], timeout))


@contextmanager
def running_demo(
    tmp_path: Path, *, total_timeout: float | None = None, pass_sim_listen: bool = False
) -> Iterator[DemoProcess]:
    """The shipped demo config moved to free ports; the tree is stopped on exit."""
    app_port, admin_port, sim_port = free_port(), free_port(), free_port()
    webhook_port = free_port()
    data = yaml.safe_load(DEMO_CONFIG.read_text(encoding="utf-8"))
    data["listen"] = f"127.0.0.1:{app_port}"
    data["admin_listen"] = f"127.0.0.1:{admin_port}"
    for inbound in data.get("inbound", []):
        inbound["deliver_to"] = _moved(inbound["deliver_to"], webhook_port)
    for route in data["routes"]:
        route["upstream"] = route["upstream"].replace(":8090/", f":{sim_port}/")
        if total_timeout is not None:
            route["timeout"]["total"] = total_timeout
            route["timeout"]["connect"] = min(route["timeout"]["connect"], total_timeout)
    if "ledger" in data:  # each demo its own ledger: a key of another run is not replayed
        data["ledger"]["path"] = str(tmp_path / "ledger.sqlite3")
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
            f"http://127.0.0.1:{admin_port}", sim_port, webhook_port,
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
