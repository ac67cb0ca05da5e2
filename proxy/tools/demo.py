"""``gateway-proxy demo``: the simulator, the proxy and a demo webhook, with a short guide.

``run_demo`` starts its child processes with the same Python interpreter::

    python -m proxy.tools.demo_webhook --listen <webhook>      the app's webhook: prints events
    python -m proxy simulate --listen <sim> --callback-url <proxy>/<inbound prefix>
    python -m proxy serve --config <demo.yaml>

The config defaults to the shipped ``demo.yaml`` (``builtin_demo_config_path``: the wheel's
copy, else the source tree's ``config/demo.yaml``), so the demo runs from any directory.
The simulator listens where the config's upstreams point; ``--sim-listen`` must agree
with them (a mismatch is refused, exit 2), and ``--no-sim`` uses a simulator already running.
When the config has ``inbound`` routes, the webhook listens where their ``deliver_to``
point (``webhook_address``) and the simulator, playing the relay, posts a delivery report
of each accepted MM7 submit to the first MM7 inbound route (``callback_url``), and,
playing Mogreet, an incoming message to the first MoMS inbound route when asked
(``moms_callback_url``); ``--no-webhook`` leaves the events to a webhook of your own.
It waits until every child answers (the simulator's and the webhook's ``/healthz``, the
proxy's admin ``/healthz``), prints curl commands for a success (and the event the
webhook prints a moment later), an MM7 address error, a MoMS opt-out, a timeout, a
burst over the simulator's contract (``--tps DEMO_TPS``) with and without a rate limit
and, with a MoMS inbound route, a subscriber's message posted by the simulator as Mogreet,
and, with a ``ledger``, a safe retry with an Idempotency-Key, then runs until Ctrl-C or
SIGTERM and stops the children (SIGTERM, then SIGKILL after a grace period). Exit codes:
0 after a clean stop, 1 when a child fails, 2 for a bad config.
"""

import argparse
import secrets
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

from proxy.codes.catalog import load_catalog
from proxy.config import Address, Config, ConfigError, InboundRoute, load_config, parse_address
from proxy.process.ports import PortError, check_free
from proxy.tools.demo_webhook import PREFIX as WEBHOOK_PREFIX
from proxy.tools.sim.mm7 import submit_request
from proxy.tools.sim.settings import parse_listen

READY_TIMEOUT_SECONDS = 30.0
#: The simulator's contract in the demo (``simulate --tps``): the guide's burst exceeds it.
DEMO_TPS = 20
BURST = 40
STOP_GRACE_SECONDS = 10.0
_POLL_SECONDS = 0.2
_WILDCARD_TO_LOOPBACK = {"0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104 - not bound here


def builtin_demo_config_path() -> Path:
    """The demo config shipped with the proxy: the wheel's copy, else the source tree's."""
    packaged = resources.files("proxy").joinpath("demo.yaml")
    if packaged.is_file():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "config" / "demo.yaml"


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
    parser.add_argument(
        "--no-webhook",
        action="store_true",
        help="do not start the demo webhook (the inbound routes deliver to your own)",
    )


def _get_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:  # noqa: S310 - loopback URL
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def _spawn(args: Sequence[str]) -> subprocess.Popen[bytes]:
    """``python -m <args>``: ``["proxy", "serve", ...]`` or
    ``["proxy.tools.demo_webhook", ...]``."""
    return subprocess.Popen([sys.executable, "-m", *args])


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
    """The guide printed once every child answers (curl commands and what they return).

    The step the simulator plays as Mogreet is sent to the simulator itself: where the
    upstreams point (``simulator_address`` makes the demo's simulator listen there).
    """
    base = f"http://{config.listen}"
    upstreams = _upstream_addresses(config)
    sim_base = f"http://{Address(*next(iter(upstreams)))}" if len(upstreams) == 1 else None
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
        *_report_lines(config),
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
        *_burst_lines(config, base),
        *_mogreet_lines(config, sim_base),
        *_retry_lines(config, base),
        "Any code on demand: header X-Sim-Code: 4006, or a recipient ending in the code.",
        "Faults: X-Sim-Fault: refuse|hang|drip|reset|oversize|html502|empty|malformed.",
        f"Metrics: http://{config.admin_listen}/metrics   (traffic: make demo-traffic)",
        "Ctrl-C stops every process of the demo.",
        "",
    ]
    return "\n".join(lines)


def _burst_lines(config: Config, base: str) -> list[str]:
    """Step 5: one burst over the relay's contract, without and with a rate limit."""
    paced = next((r for r in config.routes if r.rate_limit is not None and r.vendor == "mm7"), None)
    plain = next((r for r in config.routes if r.rate_limit is None and r.vendor == "mm7"), None)
    if paced is None or plain is None or paced.rate_limit is None:
        return []
    limit = paced.rate_limit
    body = submit_request("+15550001000")

    def burst(prefix: str) -> str:
        curl = (
            f"curl -s -o /dev/null -w '%{{http_code}}\\n' {base}{prefix} "
            f"-H 'Content-Type: text/xml' --data '{body}'"
        )
        return f"   (for i in $(seq {BURST}); do {curl} & done; wait) | sort | uniq -c"

    return [
        f"5. A throttled burst: the simulator keeps a contract of {DEMO_TPS} requests a second.",
        f"   {BURST} at once to {plain.path_prefix} (no rate limit): the relay throttles",
        "   what is over its contract, and the app sees it:",
        burst(plain.path_prefix),
        f"   -> about {DEMO_TPS} x 200 OK and the rest 429 RATE_LIMITED (vendor.name mm7)",
        f"   The same burst to {paced.path_prefix} (rate_limit: {limit.per_second:g}/s, burst "
        f"{limit.burst:g}, max_wait {limit.max_wait:g} s):",
        burst(paced.path_prefix),
        f"   -> {BURST} x 200 OK, each after a short wait in the proxy's queue",
        "",
    ]


def _report_lines(config: Config) -> list[str]:
    """Step 1's round trip: the event the webhook prints (nothing without inbound routes)."""
    url = callback_url(config)
    route = _mm7_inbound(config)
    if url is None or route is None:
        return []
    return [
        "   A moment later the simulator, as the relay, reports the delivery: it POSTs a",
        f"   DeliveryReportReq to {url}, the proxy posts the event to",
        f"   {route.deliver_to}, and the demo webhook prints it here:",
        f"     {WEBHOOK_PREFIX} {{",
        '       "event": "delivery_report",',
        '       "message_id": "<the data.message_id above>",',
        '       "recipient": {"type": "number", "value": "+15550001000"},',
        '       "status": "DELIVERED",',
        '       "final": true,',
        "       ...",
        "     }",
        "   (X-Sim-MMStatus: Expired, or a recipient ending in 9001, reports EXPIRED instead.)",
    ]


#: What the guide's Mogreet step posts: a made-up subscriber and message.
MOGREET_SUBSCRIBER = "15550001000"
MOGREET_MESSAGE = "hello"


def _mogreet_lines(config: Config, sim_base: str | None) -> list[str]:
    """Step 6: the simulator, as Mogreet, posts a subscriber's message (needs a MoMS
    inbound route and a simulator)."""
    route = _moms_inbound(config)
    if route is None or sim_base is None:
        return []
    trigger = (
        f"{sim_base}/sim/mogreet/incoming?msisdn={MOGREET_SUBSCRIBER}&message={MOGREET_MESSAGE}"
    )
    return [
        "6. A subscriber texts in (Mogreet's incoming-message POST, played by the simulator):",
        f"   curl -s -X POST '{trigger}'",
        '   -> {"verdict": "accepted", "http_status": 200, ...}: the simulator, as Mogreet,',
        f"   POSTed a <mogreet> document to {moms_callback_url(config)}; the proxy posted the",
        f"   event to {route.deliver_to} and answered 200 once the webhook had. It prints:",
        f"     {WEBHOOK_PREFIX} {{",
        '       "event": "message",',
        f'       "sender": {{"type": "number", "value": "{MOGREET_SUBSCRIBER}"}},',
        f'       "parts": [{{"content_type": "text/plain", ..., "text": "{MOGREET_MESSAGE}"}}],',
        "       ...",
        "     }",
        "   (&event=stop makes it an opt_out event.)",
        "",
    ]


def _retry_lines(config: Config, base: str) -> list[str]:
    """Step 7: a safe retry with an Idempotency-Key, and the report tied to its send
    (needs ``ledger``). The key is new for each demo: the ledger outlives it."""
    if config.ledger is None:
        return []
    key = f"order-{secrets.token_hex(4)}"
    body = submit_request("+15550001000")
    curl = (
        f"curl -s {base}/mm7 -H 'Content-Type: text/xml' -H 'Idempotency-Key: {key}' "
        f"-H 'X-Callback-Data: {key}' --data '{body}'"
    )
    lines = [
        "7. A safe retry: one message sent twice with the same Idempotency-Key:",
        f"   {curl}",
        "   -> HTTP 200 OK both times, with the same data.message_id: the second never",
        "   reached the relay, its answer says Idempotent-Replayed: true (curl -i shows it).",
        "   The same key for another message is 422; while the first is unanswered, 409.",
    ]
    if callback_url(config) is not None:
        lines += [
            "   The delivery report's event names the send it belongs to:",
            '     "submit": {"request_id": ..., "client": "anonymous",',
            f'                "idempotency_key": "{key}", "callback_data": "{key}",',
            '                "route": "mms", "submitted_at": ...}',
        ]
    return [*lines, ""]


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


def _shown(addresses: set[tuple[str, int]]) -> str:
    return ", ".join(sorted(str(Address(h, p)) for h, p in addresses))


def _upstream_addresses(config: Config) -> set[tuple[str, int]]:
    """The (host, port) every route's upstream points at."""
    return {_host_port(route.upstream) for route in config.routes}


def simulator_address(config: Config, sim_listen: str | None) -> tuple[str, int]:
    """Where the simulator must listen for ``config``'s routes to reach it.

    ``sim_listen`` (``--sim-listen``) must agree with every upstream; None takes the one
    address the upstreams share. Raises ``ValueError`` with a one-line reason otherwise.
    """
    upstreams = _upstream_addresses(config)
    shown = _shown(upstreams)
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


def webhook_address(config: Config) -> tuple[str, int] | None:
    """Where the demo webhook must listen for ``config``'s inbound routes to reach it.

    None when the config has no inbound routes. Raises ``ValueError`` when their
    ``deliver_to`` point at several addresses (the demo starts one webhook).
    """
    targets = {_host_port(route.deliver_to) for route in config.inbound}
    if len(targets) > 1:
        raise ValueError(
            f"the config's inbound routes deliver to several addresses ({_shown(targets)}); "
            "the demo starts one webhook: point them all at it, or use --no-webhook"
        )
    return next(iter(targets), None)


def _mm7_inbound(config: Config) -> InboundRoute | None:
    return next((route for route in config.inbound if route.vendor == "mm7"), None)


def _moms_inbound(config: Config) -> InboundRoute | None:
    return next((route for route in config.inbound if route.vendor == "moms"), None)


def _proxy_url(config: Config, route: InboundRoute) -> str:
    host = _WILDCARD_TO_LOOPBACK.get(config.listen.host, config.listen.host)
    return f"http://{Address(host, config.listen.port)}{route.path_prefix}"


def moms_callback_url(config: Config) -> str | None:
    """Where the simulator, as Mogreet, posts incoming messages: the proxy's first MoMS
    inbound route (a wildcard listen address is reached on loopback). None without one."""
    route = _moms_inbound(config)
    return None if route is None else _proxy_url(config, route)


def callback_url(config: Config) -> str | None:
    """Where the simulator posts its delivery reports: the proxy's first MM7 inbound route
    (a wildcard listen address is reached on loopback). None without one."""
    route = _mm7_inbound(config)
    return None if route is None else _proxy_url(config, route)


def _children(
    ns: argparse.Namespace, config_path: Path, config: Config
) -> list[tuple[list[str], str]]:
    """The children to start, in order: (``python -m`` arguments, the URL that says it is up).

    Raises ``ValueError`` when the config's addresses disagree (see ``simulator_address``,
    ``webhook_address``).
    """
    children: list[tuple[list[str], str]] = []
    hook = None if getattr(ns, "no_webhook", False) else webhook_address(config)
    if hook is not None:
        listen = str(Address(*hook))
        children.append(
            (["proxy.tools.demo_webhook", "--listen", listen], f"http://{listen}/healthz")
        )
    if not getattr(ns, "no_sim", False):
        listen = str(Address(*simulator_address(config, getattr(ns, "sim_listen", None))))
        reports, incoming = callback_url(config), moms_callback_url(config)
        # The MM7 reports' option, then --tps, last: tests read them there.
        callback = [
            *(["--moms-callback-url", incoming] if incoming is not None else []),
            *(["--callback-url", reports] if reports is not None else []),
        ]
        tps = ["--tps", str(DEMO_TPS)]
        children.append(
            (["proxy", "simulate", "--listen", listen, *callback, *tps], f"http://{listen}/healthz")
        )
    serve = ["proxy", "serve", "--config", str(config_path)]
    children.append((serve, f"http://{config.admin_listen}/healthz"))
    return children


def _addresses(planned: list[tuple[list[str], str]], config: Config) -> list[Address]:
    """Every address the demo's children will listen on (from their readiness URLs)."""
    addresses = [config.listen]
    for _, url in planned:
        host_port = url.split("://", 1)[1].split("/", 1)[0]
        addresses.append(parse_address(host_port))
    return addresses


def run_demo(ns: argparse.Namespace) -> int:
    """Run the demo until Ctrl-C / SIGTERM. Returns the process exit code."""
    config_path = Path(ns.config) if ns.config is not None else builtin_demo_config_path()
    try:
        config = load_config(config_path)
        planned = _children(ns, config_path, config)
    except ConfigError as exc:
        print("\n".join(exc.errors), file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"gateway-proxy demo: {exc}", file=sys.stderr)
        return 2
    try:
        check_free(_addresses(planned, config))
    except PortError as exc:
        print(f"gateway-proxy demo: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    children: list[subprocess.Popen[bytes]] = []
    try:
        children.extend(_spawn(args) for args, _ in planned)
        if not _wait_ready([url for _, url in planned], children, stop):
            if not stop.is_set():
                print("demo: a child process did not start", file=sys.stderr)
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
    "BURST",
    "DEMO_TPS",
    "READY_TIMEOUT_SECONDS",
    "STOP_GRACE_SECONDS",
    "add_demo_arguments",
    "builtin_demo_config_path",
    "callback_url",
    "guide",
    "moms_callback_url",
    "run_demo",
    "simulator_address",
    "webhook_address",
]
