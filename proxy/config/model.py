"""The configuration's frozen, typed objects: what ``proxy.config.check`` builds from YAML.

Every value here was validated before it was built; header values and keys hold
credentials and are kept out of ``repr``.
"""

import dataclasses
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from proxy.config.loading import LoadError
from proxy.vocab import (
    Balance,
    LogFormat,
    LogLevel,
    Mode,
    VendorName,
)

Vendor = VendorName

_HOST_PORT = re.compile(r"(?:\[([0-9A-Fa-f:.]+)\]|([^:\s\[\]]*)):([0-9]+)")


class ConfigError(LoadError):
    """The configuration is invalid. ``errors`` holds one ``file: key: reason`` per problem."""


@dataclass(frozen=True, slots=True)
class Address:
    """A ``host:port`` to listen on."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_address(text: str, default_host: str | None = None) -> Address:
    """``HOST:PORT`` or ``[v6]:PORT`` (``:PORT`` too, with a ``default_host``).

    The one parser of listen addresses (config, simulator, demo). Raises ``ValueError``
    with the reason.
    """
    match = _HOST_PORT.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"must be HOST:PORT, got {text!r}")
    host = match.group(1) or match.group(2) or default_host
    if not host:
        raise ValueError(f"must be HOST:PORT (the host is missing), got {text!r}")
    port = int(match.group(3))
    if port > 65535:
        raise ValueError(f"port {port} is out of range (0..65535), in {text!r}")
    return Address(host, port)


@dataclass(frozen=True, slots=True)
class Timeout:
    """Seconds allowed to connect (pool wait included) and for the whole exchange."""

    connect: float = 5.0
    total: float = 30.0


@dataclass(frozen=True, slots=True)
class ClientTimeout:
    """Seconds the app gets: to send its request head, and the longest pause in its body."""

    head: float = 10.0
    body_idle: float = 10.0


@dataclass(frozen=True, slots=True)
class CircuitBreaker:
    """Per endpoint: ``failures`` counted outcomes in a row open its circuit for
    ``open_seconds``; then one request probes it (README "Flow control and failover")."""

    failures: int = 5
    open_seconds: float = 10.0


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A route's token bucket: ``per_second`` tokens a second, at most ``burst`` saved.

    A request waits in arrival order for a token, at most ``max_wait`` seconds (one that
    would wait longer is answered RATE_LIMITED at once). ``processes`` is how many
    processes share the budget without a store (``--workers N``): each gets its share
    (``local_rate``, ``local_burst``).
    """

    per_second: float
    burst: float
    max_wait: float = 5.0
    processes: int = 1

    @property
    def local_rate(self) -> float:
        """This process's tokens per second: ``per_second / processes``."""
        return self.per_second / self.processes

    @property
    def local_burst(self) -> float:
        """This process's bucket size: ``burst / processes``, at least 1."""
        return max(1.0, self.burst / self.processes)


@dataclass(frozen=True, slots=True)
class UpstreamTLS:
    """How the proxy speaks TLS to one route's gateway. Verification is always on.

    ``ca_file``: the CA bundle to verify the gateway against (None: the system store);
    ``cert_file``/``key_file``: the client certificate the proxy presents (mTLS);
    ``server_name``: the name sent as SNI and verified in the gateway's certificate
    (None: the upstream's host). The files are re-read when they change (rotation).
    """

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    server_name: str | None = None


@dataclass(frozen=True, slots=True)
class ServerTLS:
    """TLS on a listener: its certificate chain and key (re-read when they change)."""

    cert_file: Path
    key_file: Path


@dataclass(frozen=True, slots=True)
class Client:
    """An app allowed to send: its ``key`` (kept out of ``repr``) and the routes it may
    use (None: every route)."""

    name: str
    key: str = field(repr=False)
    routes: frozenset[str] | None = None
    # This client's own events (delivery reports of its sends) go here instead of the
    # inbound route's deliver_to (None: the route's).
    webhook: str | None = None


#: Where the embedded ledger lives when the config does not say (``ledger.path``).
DEFAULT_LEDGER_PATH = Path("/tmp/gateway-proxy/ledger.sqlite3")  # noqa: S108 - documented default


@dataclass(frozen=True, slots=True)
class LedgerSettings:
    """The message ledger (README "Safe retries and delivery reports"): the SQLite file
    (ignored when ``store`` is set: the ledger then lives in that Redis), how long an
    answer is kept for its ``Idempotency-Key`` and a message id for its reports (s)."""

    path: Path = DEFAULT_LEDGER_PATH
    idempotency_ttl: float = 86400.0
    correlation_ttl: float = 604800.0


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Route:
    """One gateway: requests under ``path_prefix`` go to ``upstream``.

    ``upstreams`` are every endpoint of the route in the configured order (the validator
    always fills it; ``upstream`` is its first); ``balance``, ``circuit_breaker`` and
    ``rate_limit`` are the route's flow control (None: off).
    """

    name: str
    path_prefix: str
    vendor: Vendor
    upstream: str
    mode: Mode = "envelope"
    timeout: Timeout = field(default_factory=Timeout)
    max_response_bytes: int = 1_048_576
    max_request_bytes: int | None = None
    # Requests of this route inside the proxy at once (None: only the global limit).
    max_in_flight: int | None = None
    # The route's own body_idle (head is global: no route is known before the head).
    client_timeout: ClientTimeout = field(default_factory=ClientTimeout)
    # Header values may hold credentials: keep them out of repr (logs, tracebacks).
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    upstreams: tuple[str, ...] = ()
    balance: Balance = "failover"
    circuit_breaker: CircuitBreaker | None = None
    rate_limit: RateLimit | None = None
    # TLS to the gateway: a private CA, a client certificate, a name (None: the defaults).
    tls: UpstreamTLS | None = None
    # Query parameters set on every forwarded request, replacing the app's (MoMS
    # credentials): kept out of repr like the headers.
    query: Mapping[str, str] = field(default_factory=dict, repr=False)
    # True: a send without an Idempotency-Key is refused (400), needs ``ledger``.
    require_idempotency_key: bool = False

    def matches(self, path: str) -> bool:
        """True when ``path`` is this route's prefix or lies under it."""
        return under(self.path_prefix, path)

    @property
    def endpoints(self) -> tuple[str, ...]:
        """Every upstream URL of the route, in the configured order."""
        return self.upstreams or (self.upstream,)


@dataclass(frozen=True, slots=True)
class InboundRoute:
    """Callbacks from a relay: requests under ``path_prefix`` become events for the app.

    The relay POSTs its DeliveryReportReq / ReadReplyReq / DeliverReq here (``vendor:
    mm7``), or Mogreet its incoming-message POST (``vendor: moms``); the proxy posts one
    JSON event to ``deliver_to`` (the app's webhook, with ``headers``) and answers the
    sender once the webhook has.
    """

    name: str
    path_prefix: str
    deliver_to: str
    vendor: Vendor = "mm7"
    timeout: Timeout = field(default_factory=lambda: Timeout(connect=2.0, total=10.0))
    max_request_bytes: int = 2_097_152
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    # The relay's checks: HTTP Basic credentials ("user:password", kept out of repr) and
    # the networks its address must be in (empty: any). Failing either is refused.
    auth_basic: str | None = field(default=None, repr=False)
    allow_from: tuple[Network, ...] = ()
    # Signs every event (X-Gateway-Proxy-Signature) with HMAC-SHA256 when set.
    signing_secret: str | None = field(default=None, repr=False)

    def matches(self, path: str) -> bool:
        return under(self.path_prefix, path)


def under(prefix: str, path: str) -> bool:
    """True when ``path`` is ``prefix`` or lies under it (at a segment boundary)."""
    return path == prefix or path.startswith(prefix if prefix.endswith("/") else prefix + "/")


@dataclass(frozen=True, slots=True)
class LogSettings:
    level: LogLevel = "info"
    format: LogFormat = "json"


@dataclass(frozen=True, slots=True)
class Shutdown:
    """After SIGTERM: /readyz turns false and requests are still served for
    ``delay_seconds``; then the listener closes and in-flight requests get
    ``drain_seconds`` to finish."""

    delay_seconds: float = 0.0
    drain_seconds: float = 20.0


@dataclass(frozen=True, slots=True)
class Pool:
    """The shared upstream connection pool."""

    limit: int = 200
    limit_per_host: int = 100
    keepalive_seconds: float = 30.0


@dataclass(frozen=True, slots=True)
class Config:
    listen: Address
    admin_listen: Address
    routes: tuple[Route, ...]
    catalog: Path | None = None
    log: LogSettings = field(default_factory=LogSettings)
    shutdown: Shutdown = field(default_factory=Shutdown)
    pool: Pool = field(default_factory=Pool)
    inbound: tuple[InboundRoute, ...] = ()
    listen_backlog: int = 1024
    max_in_flight: int = 1000
    client_timeout: ClientTimeout = field(default_factory=ClientTimeout)
    source: str = "<config>"
    # The apps allowed to send (empty: anyone who reaches ``listen``), TLS on ``listen``,
    # and the callbacks' own listener (None: they share ``listen``).
    clients: tuple[Client, ...] = ()
    listen_tls: ServerTLS | None = None
    inbound_listen: Address | None = None
    # Where rate limits are shared by every process and replica (redis:// or rediss://);
    # None: each process keeps its own bucket. Holds a password: kept out of repr.
    store: str | None = field(default=None, repr=False)
    # The message ledger (None: no Idempotency-Key handling, no correlation).
    ledger: LedgerSettings | None = None


def shared_by(config: Config, processes: int) -> Config:
    """``config`` as one of ``processes`` processes serving it (``--workers N``) runs it:
    each rate limit's own bucket gets ``1/processes`` of the rate and of the burst (at least
    1), so that together they keep the contract. A ``store`` shares the whole budget
    instead; the share is then the fallback while the store cannot be reached."""
    routes = tuple(
        dataclasses.replace(
            route, rate_limit=dataclasses.replace(route.rate_limit, processes=processes)
        )
        if route.rate_limit is not None
        else route
        for route in config.routes
    )
    return dataclasses.replace(config, routes=routes)
