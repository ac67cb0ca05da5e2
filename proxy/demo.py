"""``gateway-proxy demo``: the simulator and the proxy together, with a short guide.

``run_demo`` starts two child processes with the same Python interpreter:
``python -m proxy simulate --listen <sim>`` and ``python -m proxy serve --config <demo.yaml>``.
It waits until both answer (the simulator's ``/healthz`` and the proxy's admin ``/healthz``),
prints curl commands for a success, an MM7 address error, a MoMS opt-out and a timeout,
then runs until Ctrl-C or SIGTERM and stops both children (SIGTERM, then SIGKILL after a
grace period). Exit codes: 0 after a clean stop, 1 when a child fails, 2 for a bad config.
"""

import argparse
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from proxy.catalog import load_catalog
from proxy.config import Config, ConfigError, load_config
from proxy.sim.settings import DEFAULT_HOST, DEFAULT_PORT, parse_listen

DEFAULT_DEMO_CONFIG = Path("config/demo.yaml")
READY_TIMEOUT_SECONDS = 30.0
STOP_GRACE_SECONDS = 10.0
_POLL_SECONDS = 0.2

MM7_NS = "http://www.3gpp.org/ftp/Specs/archive/23_series/23.140/schema/REL-6-MM7-1-4"
SUBMIT_TEMPLATE = (
    '<env:Envelope xmlns:env="http://schemas.xmlsoap.org/soap/envelope/">'
    f'<env:Header><TransactionID xmlns="{MM7_NS}">demo-1</TransactionID></env:Header>'
    f'<env:Body><SubmitReq xmlns="{MM7_NS}"><MM7Version>6.8.0</MM7Version>'
    "<Recipients><To><Number>{number}</Number></To></Recipients>"
    "<Subject>hello</Subject></SubmitReq></env:Body></env:Envelope>"
)


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``demo`` options to ``parser``."""
    parser.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_DEMO_CONFIG,
        help=f"proxy config for the demo (default {DEFAULT_DEMO_CONFIG})",
    )
    parser.add_argument(
        "--sim-listen",
        default=f"{DEFAULT_HOST}:{DEFAULT_PORT}",
        metavar="HOST:PORT",
        help="where the simulator listens; the config's upstreams must point there",
    )
    parser.add_argument(
        "--no-sim", action="store_true", help="do not start the simulator (one runs already)"
    )


def _get_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:  # noqa: S310 - loopback URL
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def _spawn(args: Sequence[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "proxy", *args])


def _stop(children: Sequence[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every child still running, wait, then SIGKILL the stragglers."""
    for child in children:
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _wait_ready(
    urls: Sequence[str], children: Sequence[subprocess.Popen[bytes]], stop: threading.Event
) -> bool:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    pending = list(urls)
    while pending and time.monotonic() < deadline and not stop.is_set():
        if any(child.poll() is not None for child in children):
            return False
        pending = [url for url in pending if not _get_ok(url)]
        if pending:
            stop.wait(_POLL_SECONDS)
    return not pending


def guide(config: Config) -> str:
    """The guide printed once both processes answer (curl commands and what they return)."""
    base = f"http://{config.listen}"
    catalog = load_catalog(config.catalog)
    mm7, moms = catalog.vendors["mm7"].codes, catalog.vendors["moms"].codes

    def outcome(code_name: str) -> str:
        code = catalog[code_name]
        return f"HTTP {code.status} {code.name} ({code.category})"

    def mm7_curl(number: str) -> str:
        body = SUBMIT_TEMPLATE.format(number=number)
        return f"curl -s {base}/mm7 -H 'Content-Type: text/xml' --data '{body}'"

    moms_send = f"{base}/moms/transaction.send?campaign_id=1&from=21534&message=hi"
    lines = [
        "",
        "gateway-proxy demo: the proxy on " + base + ", the gateway simulator behind it.",
        "",
        "1. A success (MM7 SubmitReq, recipient +15550001000 -> 1000):",
        "   " + mm7_curl("+15550001000"),
        f"   -> {outcome('OK')}, data.message_id set",
        "",
        "2. An MM7 address error (recipient ending in 2002):",
        "   " + mm7_curl("+15550002002"),
        f"   -> {outcome(mm7['2002'].canonical.name)}, vendor.code 2002 ({mm7['2002'].text})",
        "",
        "3. A MoMS opt-out (recipient ending in 0606):",
        f"   curl -s '{moms_send}&to=15550000606'",
        f"   -> {outcome(moms['606'].canonical.name)}, vendor.code 606 ({moms['606'].text})",
        "",
        "4. A timeout (the simulator never answers; the route gives up after its timeout):",
        f"   curl -s -H 'X-Sim-Fault: hang' '{moms_send}&to=15550001234'",
        f"   -> {outcome(catalog.transport['timeout'].name)}, vendor.name proxy",
        "",
        "Any code on demand: header X-Sim-Code: 4006, or a recipient ending in the code.",
        "Faults: X-Sim-Fault: refuse|hang|drip|reset|oversize|html502|empty|malformed.",
        f"Metrics: http://{config.admin_listen}/metrics   (traffic: make demo-traffic)",
        "Ctrl-C stops both processes.",
        "",
    ]
    return "\n".join(lines)


def run_demo(ns: argparse.Namespace) -> int:
    """Run the demo until Ctrl-C / SIGTERM. Returns the process exit code."""
    config_path = Path(ns.config)
    try:
        config = load_config(config_path)
        sim_host, sim_port = parse_listen(str(getattr(ns, "sim_listen", "")) or ":8090")
    except ConfigError as exc:
        print("\n".join(exc.errors), file=sys.stderr)
        return 2
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    children: list[subprocess.Popen[bytes]] = []
    try:
        urls = [f"http://{config.admin_listen}/healthz"]
        if not getattr(ns, "no_sim", False):
            children.append(_spawn(["simulate", "--listen", f"{sim_host}:{sim_port}"]))
            host = f"[{sim_host}]" if ":" in sim_host else sim_host
            urls.append(f"http://{host}:{sim_port}/healthz")
        children.append(_spawn(["serve", "--config", str(config_path)]))
        if not _wait_ready(urls, children, stop):
            if not stop.is_set():
                print("demo: the simulator or the proxy did not start", file=sys.stderr)
                return 1
            return 0
        print(guide(config), flush=True)
        while not stop.wait(_POLL_SECONDS):
            if any(child.poll() is not None for child in children):
                print("demo: a child process exited; stopping", file=sys.stderr)
                return 1
        return 0
    finally:
        _stop(children)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


__all__ = ["DEFAULT_DEMO_CONFIG", "SUBMIT_TEMPLATE", "add_demo_arguments", "guide", "run_demo"]
