"""``gateway-proxy demo``: the simulator and the proxy together, with a short guide.

``run_demo`` starts two child processes with the same Python interpreter:
``python -m proxy simulate --listen <sim>`` and ``python -m proxy serve --config <demo.yaml>``.
The config defaults to the shipped ``demo.yaml`` (``builtin_demo_config_path``: the wheel's
copy, else the source tree's ``config/demo.yaml``), so the demo runs from any directory.
The simulator listens where the config's upstreams point; ``--sim-listen`` must agree
with them (a mismatch is refused, exit 2), and ``--no-sim`` uses a simulator already running.
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
from importlib import resources
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit

from proxy.catalog import load_catalog
from proxy.config import Config, ConfigError, load_config
from proxy.sim.mm7 import submit_request
from proxy.sim.settings import parse_listen

READY_TIMEOUT_SECONDS = 30.0
STOP_GRACE_SECONDS = 10.0
_POLL_SECONDS = 0.2


def builtin_demo_config_path() -> Path:
    """The demo config shipped with the proxy: the wheel's copy, else the source tree's."""
    packaged = resources.files("proxy").joinpath("demo.yaml")
    if packaged.is_file():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "config" / "demo.yaml"


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``demo`` options to ``parser``."""
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="proxy config for the demo (default: the shipped demo.yaml)",
    )
    parser.add_argument(
        "--sim-listen",
        default=None,
        metavar="HOST:PORT",
        help="where the simulator listens (default: where the config's upstreams point; "
        "it must agree with them)",
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


def _stop(children: Sequence[subprocess.Popen[bytes]], grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM every child still running, wait up to ``grace`` s, then SIGKILL stragglers."""
    for child in children:
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + grace
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
        body = submit_request(number)
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


def _upstream_addresses(config: Config) -> set[tuple[str, int]]:
    """The (host, port) every route's upstream points at."""
    addresses = set()
    for route in config.routes:
        url = urlsplit(route.upstream)
        default = 443 if url.scheme == "https" else 80
        addresses.add((url.hostname or "", url.port or default))
    return addresses


def simulator_address(config: Config, sim_listen: str | None) -> tuple[str, int]:
    """Where the simulator must listen for ``config``'s routes to reach it.

    ``sim_listen`` (``--sim-listen``) must agree with every upstream; None takes the one
    address the upstreams share. Raises ``ValueError`` with a one-line reason otherwise.
    """
    upstreams = _upstream_addresses(config)
    shown = ", ".join(sorted(f"{h}:{p}" for h, p in upstreams))
    if sim_listen is not None:
        wanted = parse_listen(sim_listen, option="--sim-listen")
        if upstreams != {wanted}:
            raise ValueError(
                f"--sim-listen {sim_listen}: the config's upstreams point at {shown}; "
                "make them agree (or use --no-sim with a simulator of your own)"
            )
        return wanted
    if len(upstreams) != 1:
        raise ValueError(
            f"the config's upstreams point at several addresses ({shown}); the demo starts "
            "one simulator: point them all at it, or use --no-sim"
        )
    return next(iter(upstreams))


def run_demo(ns: argparse.Namespace) -> int:
    """Run the demo until Ctrl-C / SIGTERM. Returns the process exit code."""
    config_path = Path(ns.config) if ns.config is not None else builtin_demo_config_path()
    no_sim = bool(getattr(ns, "no_sim", False))
    try:
        config = load_config(config_path)
        if not no_sim:
            sim_host, sim_port = simulator_address(config, getattr(ns, "sim_listen", None))
    except ConfigError as exc:
        print("\n".join(exc.errors), file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"gateway-proxy demo: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    children: list[subprocess.Popen[bytes]] = []
    try:
        urls = [f"http://{config.admin_listen}/healthz"]
        if not no_sim:
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


__all__ = [
    "READY_TIMEOUT_SECONDS",
    "STOP_GRACE_SECONDS",
    "add_demo_arguments",
    "builtin_demo_config_path",
    "guide",
    "run_demo",
    "simulator_address",
]
