"""Load and validate the proxy's YAML configuration into frozen, typed objects.

``load_config(path)`` reads the file (proxy.loading: UTF-8, no duplicate keys), expands
``${VAR}`` from the environment, and validates everything at once. Every problem is
reported as ``file: key: reason`` and collected into one ``ConfigError``, so a bad config
never starts a half-working proxy. A reason never quotes a value that came from the
environment: those hold credentials.

``${VAR}`` must be set and non-empty (``Bearer ${TOKEN}`` with an empty TOKEN is a broken
credential, not a value); ``${VAR:-}`` allows empty, ``${VAR:-text}`` gives a default.
"""

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from proxy.loading import Checker, LoadError, read_yaml
from proxy.vocab import (
    LOG_FORMATS,
    LOG_LEVELS,
    MODES,
    VENDOR_NAMES,
    LogFormat,
    LogLevel,
    Mode,
    VendorName,
)

Vendor = VendorName

ENV_CONFIG = "GATEWAY_PROXY_CONFIG"
DEFAULT_CONFIG_PATH = Path("config/gateway-proxy.yaml")

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_PREFIX = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}")
_HOST_PORT = re.compile(r"(?:\[([0-9A-Fa-f:.]+)\]|([^:\s\[\]]*)):([0-9]+)")
# Headers the proxy owns: letting config set them would break framing or forwarding.
_RESERVED_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "x-request-id"}
)


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
        prefix = self.path_prefix
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
    listen_backlog: int = 1024
    max_in_flight: int = 1000
    client_timeout: ClientTimeout = field(default_factory=ClientTimeout)
    source: str = "<config>"


def resolve_config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """``--config`` wins, then ``$GATEWAY_PROXY_CONFIG``, then ``config/gateway-proxy.yaml``."""
    if explicit:
        return Path(explicit)
    from_env = os.environ.get(ENV_CONFIG)
    return Path(from_env) if from_env else DEFAULT_CONFIG_PATH


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Read and validate the YAML file at ``path``. Raises ``ConfigError``."""
    data = read_yaml(Path(path), ConfigError)
    return parse_config(data, source=str(path), env=os.environ if env is None else env)


def parse_config(data: object, *, source: str = "<config>", env: Mapping[str, str]) -> Config:
    """Validate already-loaded YAML ``data``. Raises ``ConfigError`` listing every problem."""
    v = _Validator(source, env)
    config = v.config(data)
    v.raise_if_any(ConfigError)
    if config is None:
        raise ConfigError([f"{source}: (root): empty configuration"])
    return config


_TOP_KEYS = {
    "listen", "admin_listen", "catalog", "log", "shutdown", "pool", "routes",
    "listen_backlog", "max_in_flight", "client_timeout",
}  # fmt: skip
_ROUTE_KEYS = {
    "name", "path_prefix", "vendor", "upstream", "mode", "timeout",
    "max_response_bytes", "max_request_bytes", "headers", "max_in_flight", "client_timeout",
}  # fmt: skip


class _Validator(Checker):
    """Walks the raw YAML, building typed objects and collecting ``file: key: reason``."""

    def __init__(self, source: str, env: Mapping[str, str]) -> None:
        super().__init__(source)
        self.env = env
        self._base = Path(source).parent if not source.startswith("<") else Path()

    def config(self, data: object) -> Config | None:
        if data is None:
            self.add("(root)", "the file is empty")
            return None
        raw = self.mapping("", data, allowed=_TOP_KEYS)
        if raw is None:
            return None
        self.client_defaults = self.client_timeout("client_timeout", raw.get("client_timeout", {}))
        listen = self.address("listen", raw.get("listen", "127.0.0.1:8080"))
        admin = self.address("admin_listen", raw.get("admin_listen", "127.0.0.1:8081"))
        if listen and admin and listen.port == admin.port and listen.port != 0:
            self.add("admin_listen", f"port {admin.port} is already used by listen")
        config = Config(
            listen=listen or Address("127.0.0.1", 8080),
            admin_listen=admin or Address("127.0.0.1", 8081),
            routes=self.routes(raw.get("routes")),
            catalog=self.catalog(raw.get("catalog")),
            log=self.log(raw.get("log", {})),
            shutdown=self.shutdown(raw.get("shutdown", {})),
            pool=self.pool(raw.get("pool", {})),
            listen_backlog=self.integer("listen_backlog", raw.get("listen_backlog", 1024), 1)
            or 1024,
            max_in_flight=self.integer("max_in_flight", raw.get("max_in_flight", 1000), 1) or 1000,
            client_timeout=self.client_defaults,
            source=self.source,
        )
        return None if self.errors else config

    def shutdown(self, value: object) -> Shutdown:
        raw = self.mapping("shutdown", value, allowed={"delay_seconds", "drain_seconds"}) or {}
        delay = self.number("shutdown.delay_seconds", raw.get("delay_seconds", 0.0), 0)
        drain = self.number("shutdown.drain_seconds", raw.get("drain_seconds", 20.0), 0)
        return Shutdown(
            delay_seconds=0.0 if delay is None else delay,
            drain_seconds=20.0 if drain is None else drain,
        )

    def client_timeout(
        self, key: str, value: object, base: ClientTimeout | None = None, *, head: bool = True
    ) -> ClientTimeout:
        """``{head, body_idle}`` seconds; a route's may only set ``body_idle``."""
        base = base or ClientTimeout()
        allowed = {"head", "body_idle"} if head else {"body_idle"}
        raw = self.mapping(key, value, allowed=allowed) or {}
        head_s = self.number(f"{key}.head", raw.get("head", base.head), 0.001)
        idle = self.number(f"{key}.body_idle", raw.get("body_idle", base.body_idle), 0.001)
        return ClientTimeout(head=head_s or base.head, body_idle=idle or base.body_idle)

    def address(self, key: str, value: object) -> Address | None:
        try:
            return parse_address(str(value))
        except ValueError as exc:
            self.add(key, str(exc))
            return None

    def catalog(self, value: object) -> Path | None:
        if value is None:
            return None
        path = Path(str(value))
        path = path if path.is_absolute() else self._base / path
        if not path.is_file():
            self.add("catalog", f"file not found: {path}")
        return path

    def log(self, value: object) -> LogSettings:
        raw = self.mapping("log", value, allowed={"level", "format"}) or {}
        level = self.choice("log.level", raw.get("level", "info"), LOG_LEVELS)
        fmt = self.choice("log.format", raw.get("format", "json"), LOG_FORMATS)
        return LogSettings(level=level or "info", format=fmt or "json")

    def pool(self, value: object) -> Pool:
        allowed = {"limit", "limit_per_host", "keepalive_seconds"}
        raw = self.mapping("pool", value, allowed=allowed) or {}
        limit = self.integer("pool.limit", raw.get("limit", 200), 1)
        per_host = self.integer("pool.limit_per_host", raw.get("limit_per_host", 100), 0)
        keepalive = self.number("pool.keepalive_seconds", raw.get("keepalive_seconds", 30.0), 0)
        defaults = Pool()
        return Pool(
            limit=defaults.limit if limit is None else limit,
            limit_per_host=defaults.limit_per_host if per_host is None else per_host,
            keepalive_seconds=defaults.keepalive_seconds if keepalive is None else keepalive,
        )

    def routes(self, value: object) -> tuple[Route, ...]:
        if not isinstance(value, list) or not value:
            self.add("routes", "must be a non-empty list of routes")
            return ()
        routes = [r for i, item in enumerate(value) if (r := self.route(f"routes[{i}]", item))]
        self.check_unique(routes)
        return tuple(routes)

    def check_unique(self, routes: list[Route]) -> None:
        seen_names: dict[str, int] = {}
        for i, route in enumerate(routes):
            if route.name in seen_names:
                self.add(f"routes[{i}].name", f"duplicate route name {route.name!r}")
            seen_names.setdefault(route.name, i)
            for j, other in enumerate(routes[:i]):
                if route.path_prefix == other.path_prefix:
                    self.add(
                        f"routes[{i}].path_prefix",
                        f"duplicate prefix {route.path_prefix!r} (also routes[{j}])",
                    )
                elif route.matches(other.path_prefix) or other.matches(route.path_prefix):
                    self.add(
                        f"routes[{i}].path_prefix",
                        f"prefix {route.path_prefix!r} overlaps routes[{j}] "
                        f"({other.path_prefix!r})",
                    )

    def route(self, key: str, value: object) -> Route | None:
        required = ("name", "path_prefix", "vendor", "upstream")
        raw = self.mapping(key, value, allowed=_ROUTE_KEYS, required=required)
        if raw is None:
            return None
        name = str(raw.get("name", ""))
        if "name" in raw and not _NAME.match(name):
            self.add(f"{key}.name", f"must match {_NAME.pattern}, got {name!r}")
        prefix = str(raw.get("path_prefix", "/"))
        if "path_prefix" in raw and (not _PREFIX.match(prefix) or prefix == "/"):
            self.add(f"{key}.path_prefix", f"must be an absolute path below '/', got {prefix!r}")
        max_request = raw.get("max_request_bytes")
        max_response = self.integer(
            f"{key}.max_response_bytes", raw.get("max_response_bytes", 1_048_576), 1
        )
        return Route(
            name=name,
            path_prefix=prefix.rstrip("/") or "/",
            vendor=self.choice(f"{key}.vendor", raw.get("vendor"), VENDOR_NAMES) or "mm7"
            if "vendor" in raw
            else "mm7",
            upstream=self.upstream(f"{key}.upstream", raw.get("upstream")),
            mode=self.choice(f"{key}.mode", raw.get("mode", "envelope"), MODES) or "envelope",
            timeout=self.timeout(f"{key}.timeout", raw.get("timeout", {})),
            max_response_bytes=max_response or 1_048_576,
            max_request_bytes=None
            if max_request is None
            else self.integer(f"{key}.max_request_bytes", max_request, 1),
            headers=self.headers(f"{key}.headers", raw.get("headers", {})),
            max_in_flight=None
            if raw.get("max_in_flight") is None
            else self.integer(f"{key}.max_in_flight", raw["max_in_flight"], 1),
            client_timeout=self.client_timeout(
                f"{key}.client_timeout",
                raw.get("client_timeout", {}),
                self.client_defaults,
                head=False,
            ),
        )

    def timeout(self, key: str, value: object) -> Timeout:
        raw = self.mapping(key, value, allowed={"connect", "total"}) or {}
        total = self.number(f"{key}.total", raw.get("total", 30), 0.001)
        # Unset, connect defaults to 5 s, or the total when that is shorter.
        connect_default = min(5.0, total) if total is not None else 5.0
        connect = self.number(f"{key}.connect", raw.get("connect", connect_default), 0.001)
        if connect is not None and total is not None and connect > total:
            self.add(
                f"{key}.connect",
                f"{connect:g} s is longer than timeout.total ({total:g} s), which bounds it",
            )
        return Timeout(connect=connect or 5.0, total=total or 30.0)

    def upstream(self, key: str, value: object) -> str:
        if value is None:
            return ""
        text = self.expand(key, str(value))
        try:
            parts = urlsplit(text)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError as exc:
            self.add(key, f"not a valid URL ({exc}): {text!r}")
            return text
        if parts.scheme not in ("http", "https") or not parts.hostname:
            self.add(key, f"must be an absolute http:// or https:// URL, got {text!r}")
        elif parts.username or parts.password:
            self.add(key, "must not embed credentials; use headers with ${VAR} instead")
        elif parts.query or parts.fragment:
            self.add(key, "must not have a query or fragment (the app's query is appended)")
        return text.rstrip("/")

    def headers(self, key: str, value: object) -> dict[str, str]:
        if not isinstance(value, dict):
            self.add(key, "must be a mapping of header name to value")
            return {}
        result: dict[str, str] = {}
        for raw_name, raw in value.items():
            name = str(raw_name)
            if not _HEADER_NAME.match(name):
                self.add(f"{key}.{name}", "is not a valid header name")
            elif name.lower() in _RESERVED_HEADERS:
                self.add(f"{key}.{name}", "is set by the proxy and cannot be configured")
            expanded = self.expand(f"{key}.{name}", str(raw))
            if "\r" in expanded or "\n" in expanded:
                self.add(f"{key}.{name}", "value must not contain line breaks")
            result[name] = expanded
        return result

    def expand(self, key: str, text: str) -> str:
        """Replace ``${VAR}`` (and ``${VAR:-default}``) with the environment's value.

        An unset or empty VAR without a default is an error: its reason names the
        variable, never a value.
        """

        def sub(match: re.Match[str]) -> str:
            var, has_default, default = match.group(1), match.group(2), match.group(3)
            value = self.env.get(var, "")
            if value:
                return value
            if has_default is not None:
                return default or ""
            if var in self.env:
                self.add(
                    key,
                    f"environment variable ${{{var}}} is empty (write ${{{var}:-}} to allow that)",
                )
            else:
                self.add(key, f"environment variable ${{{var}}} is not set")
            return ""

        return _VAR.sub(sub, text)
