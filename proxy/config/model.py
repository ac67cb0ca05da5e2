"""The configuration's frozen, typed objects: what ``proxy.config.check`` builds from YAML.

Every value here was validated before it was built; header values and keys hold
credentials and are kept out of ``repr``.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from proxy.config.loading import LoadError
from proxy.vocab import (
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
class Route:
    """One gateway: requests under ``path_prefix`` go to ``upstream``."""

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

    def matches(self, path: str) -> bool:
        """True when ``path`` is this route's prefix or lies under it."""
        return under(self.path_prefix, path)


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
