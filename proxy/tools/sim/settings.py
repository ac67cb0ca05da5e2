"""The simulator's settings and its command-line options.

``add_simulate_arguments`` adds ``--listen --latency --seed --mix --client-id --token
--callback-url --moms-callback-url --callback-delay`` to an ``argparse`` parser;
``settings_from_args`` turns the parsed namespace into a frozen ``SimSettings``. A bad
``--listen``, ``--latency``, ``--callback-url``, ``--moms-callback-url`` or
``--callback-delay`` is an argparse usage error (exit 2); ``settings_from_args`` raises
``ValueError`` with a one-line reason for what argparse cannot check alone (only one of
``--client-id``/``--token``, or values set on the namespace by hand).
"""

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from proxy.config import parse_address
from proxy.tools.sim.moms import MAX_MEDIA_BYTES

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8090
HANG_SECONDS = 3600.0  # how long a ``hang`` fault waits before closing, by default
MAX_MM7_REQUEST_BYTES = 8 * 1024 * 1024
CALLBACK_DELAY_MS = 500  # how long after the SubmitRsp the delivery report goes out
CALLBACK_ATTEMPTS = 3  # a report is sent at most this many times
CALLBACK_BACKOFF_MS = 500  # the pause before the 2nd attempt; it doubles after that
CALLBACK_TIMEOUT_SECONDS = 10.0  # one attempt, connect to the end of the answer


@dataclass(frozen=True, slots=True)
class SimSettings:
    """How the simulator listens and behaves.

    ``client_id``/``token`` set: MoMS requests must carry exactly these credentials
    (else the live API's 403 answer); unset: any credentials are accepted.
    ``mix_path`` names a weighted outcome mix (``config/sim-mix.yaml``); ``seed``
    makes its draws repeatable. ``latency_ms`` is added to every answer.
    ``max_mm7_request_bytes``: a longer MM7 request is answered 2004; ``hang_seconds``:
    how long a ``hang`` fault waits before closing; ``max_media_bytes``: a larger CM upload
    is answered 461 (tests lower these; there are no command-line options for them).

    ``tps`` set: the relay enforces that many requests a second (``tps`` at once at most)
    and answers throttling above it, each vendor its own way (throttle.py).

    ``callback_url`` set: after each accepted SubmitReq the relay posts a DeliveryReportReq
    there, ``callback_delay_ms`` after its answer (callback.py); a retryable failure is
    retried up to ``callback_attempts`` attempts in all, ``callback_backoff_ms`` apart
    (doubling), each bounded by ``callback_timeout_s``. Unset: no callbacks.
    ``moms_callback_url`` set: ``POST /sim/mogreet/incoming`` makes the simulator, as
    Mogreet, POST an incoming message there (incoming.py), with the same retries.
    """

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    latency_ms: int = 0
    seed: int | None = None
    mix_path: Path | None = None
    client_id: str | None = None
    # A credential: keep it out of repr (logs, tracebacks).
    token: str | None = field(default=None, repr=False)
    max_mm7_request_bytes: int = MAX_MM7_REQUEST_BYTES
    hang_seconds: float = HANG_SECONDS
    max_media_bytes: int = MAX_MEDIA_BYTES
    callback_url: str | None = None
    callback_delay_ms: int = CALLBACK_DELAY_MS
    callback_attempts: int = CALLBACK_ATTEMPTS
    callback_backoff_ms: int = CALLBACK_BACKOFF_MS
    callback_timeout_s: float = CALLBACK_TIMEOUT_SECONDS
    moms_callback_url: str | None = None
    # The relay's contracted throughput (requests a second; None: unlimited): past it,
    # requests get the vendor's throttling answer (throttle.py).
    tps: float | None = None


def parse_listen(value: str, option: str = "--listen") -> tuple[str, int]:
    """``HOST:PORT`` (or ``[v6]:PORT``, or ``:PORT`` for the default host) → (host, port).

    The proxy's own address parser (``proxy.config.parse_address``), with the simulator's
    default host. Raises ``ValueError`` naming ``option`` (the flag the value came from).
    """
    try:
        address = parse_address(value, default_host=DEFAULT_HOST)
    except ValueError as exc:
        raise ValueError(f"{option}: {exc}") from None
    return address.host, address.port


def _listen_arg(value: str) -> str:
    try:
        parse_listen(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def _millis_arg(value: str) -> int:
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"expected milliseconds >= 0, got {value!r}")
    return int(value)


def check_callback_url(value: str, option: str = "--callback-url") -> str:
    """``value`` if it is an absolute http(s) URL with a host. Raises ``ValueError``."""
    try:
        url = urlsplit(value)
        _ = url.port  # raises ValueError for a bad port
    except ValueError:
        raise ValueError(f"{option}: not a URL: {value!r}") from None
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ValueError(f"{option}: expected http://HOST[:PORT]/PATH, got {value!r}")
    return value


def _tps_arg(value: str) -> float:
    try:
        tps = float(value)
    except ValueError:
        tps = 0.0
    if not 0 < tps < float("inf"):
        raise argparse.ArgumentTypeError(f"expected requests per second > 0, got {value!r}")
    return tps


def _callback_url_arg(value: str) -> str:
    try:
        return check_callback_url(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _moms_callback_url_arg(value: str) -> str:
    try:
        return check_callback_url(value, "--moms-callback-url")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_simulate_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``simulate`` options to ``parser`` (bad values are argparse usage errors)."""
    parser.add_argument(
        "--listen",
        type=_listen_arg,
        default=f"{DEFAULT_HOST}:{DEFAULT_PORT}",
        metavar="HOST:PORT",
        help=f"where to listen (default {DEFAULT_HOST}:{DEFAULT_PORT})",
    )
    parser.add_argument(
        "--latency",
        type=_millis_arg,
        default=0,
        metavar="MS",
        help="add MS milliseconds to every answer",
    )
    parser.add_argument(
        "--seed", type=int, default=None, metavar="N", help="seed the --mix draws (repeatable)"
    )
    parser.add_argument(
        "--mix",
        type=Path,
        default=None,
        metavar="PATH",
        help="weighted outcome mix, e.g. config/sim-mix.yaml (default: always success)",
    )
    parser.add_argument(
        "--client-id", default=None, metavar="X", help="MoMS: require this client_id"
    )
    parser.add_argument("--token", default=None, metavar="Y", help="MoMS: require this token")
    parser.add_argument(
        "--callback-url",
        type=_callback_url_arg,
        default=None,
        metavar="URL",
        help="MM7: post a DeliveryReportReq here after each accepted SubmitReq "
        "(default: no callbacks)",
    )
    parser.add_argument(
        "--moms-callback-url",
        type=_moms_callback_url_arg,
        default=None,
        metavar="URL",
        help="MoMS: where POST /sim/mogreet/incoming makes the simulator, as Mogreet, post an "
        "incoming message (default: nowhere)",
    )
    parser.add_argument(
        "--tps",
        type=_tps_arg,
        default=None,
        metavar="N",
        help="enforce N requests per second (N at once at most) and answer throttling above "
        "it: MM7 HTTP 429 with a Server.Throttled fault, MoMS HTTP 429 (default: unlimited)",
    )
    parser.add_argument(
        "--callback-delay",
        type=_millis_arg,
        default=CALLBACK_DELAY_MS,
        metavar="MS",
        help=f"how long after the SubmitRsp the report goes out (default {CALLBACK_DELAY_MS})",
    )


def settings_from_args(ns: argparse.Namespace) -> SimSettings:
    """Build ``SimSettings`` from parsed ``simulate`` options. Raises ``ValueError``."""
    host, port = parse_listen(str(ns.listen))
    latency = int(ns.latency or 0)
    if latency < 0:
        raise ValueError(f"--latency: must be >= 0, got {latency}")
    client_id = getattr(ns, "client_id", None)
    token = getattr(ns, "token", None)
    if (client_id is None) != (token is None):
        raise ValueError("--client-id and --token go together: give both or neither")
    callback_url = getattr(ns, "callback_url", None)
    if callback_url is not None:
        check_callback_url(str(callback_url))
    moms_callback_url = getattr(ns, "moms_callback_url", None)
    if moms_callback_url is not None:
        check_callback_url(str(moms_callback_url), "--moms-callback-url")
    delay = int(getattr(ns, "callback_delay", CALLBACK_DELAY_MS))
    if delay < 0:
        raise ValueError(f"--callback-delay: must be >= 0, got {delay}")
    return SimSettings(
        host=host,
        port=port,
        latency_ms=latency,
        seed=ns.seed,
        mix_path=ns.mix,
        client_id=client_id,
        token=token,
        callback_url=callback_url,
        callback_delay_ms=delay,
        moms_callback_url=moms_callback_url,
        tps=getattr(ns, "tps", None),
    )


__all__ = [
    "CALLBACK_ATTEMPTS",
    "CALLBACK_BACKOFF_MS",
    "CALLBACK_DELAY_MS",
    "CALLBACK_TIMEOUT_SECONDS",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "HANG_SECONDS",
    "MAX_MM7_REQUEST_BYTES",
    "SimSettings",
    "add_simulate_arguments",
    "check_callback_url",
    "parse_listen",
    "settings_from_args",
]
