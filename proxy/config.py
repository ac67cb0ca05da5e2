"""Load and validate the proxy's YAML configuration into frozen, typed objects.

``load_config(path)`` reads the file, expands ``${VAR}`` from the environment, and
validates everything at once. Every problem is reported as ``file: key: reason`` and
collected into one ``ConfigError``, so a bad config never starts a half-working proxy.
"""

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast, get_args
from urllib.parse import urlsplit

import yaml

from proxy.logs import LogFormat, LogLevel
from proxy.vendors.base import VENDOR_NAMES, VendorName

Vendor = VendorName
Mode = Literal["envelope", "passthrough"]

ENV_CONFIG = "GATEWAY_PROXY_CONFIG"
DEFAULT_CONFIG_PATH = Path("config/gateway-proxy.yaml")

_MODES: tuple[Mode, ...] = get_args(Mode)
_LOG_FORMATS: tuple[LogFormat, ...] = get_args(LogFormat)
_LOG_LEVELS: tuple[LogLevel, ...] = get_args(LogLevel)
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_PREFIX = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Headers the proxy owns: letting config set them would break framing or forwarding.
_RESERVED_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "x-request-id"}
)


class ConfigError(Exception):
    """The configuration is invalid. ``errors`` holds one ``file: key: reason`` per problem."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclass(frozen=True, slots=True)
class Address:
    """A ``host:port`` to listen on."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Timeout:
    """Seconds allowed to connect (pool wait included) and for the whole exchange."""

    connect: float = 5.0
    total: float = 30.0


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
    """After SIGTERM: /readyz turns false, then in-flight requests get ``drain_seconds``."""

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
    source: str = "<config>"


def resolve_config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """``--config`` wins, then ``$GATEWAY_PROXY_CONFIG``, then ``config/gateway-proxy.yaml``."""
    if explicit:
        return Path(explicit)
    from_env = os.environ.get(ENV_CONFIG)
    return Path(from_env) if from_env else DEFAULT_CONFIG_PATH


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Read and validate the YAML file at ``path``. Raises ``ConfigError``."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{source}: cannot read: {exc.strerror or exc}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{source}: not valid YAML: {exc}"]) from None
    return parse_config(data, source=source, env=os.environ if env is None else env)


def parse_config(data: object, *, source: str = "<config>", env: Mapping[str, str]) -> Config:
    """Validate already-loaded YAML ``data``. Raises ``ConfigError`` listing every problem."""
    v = _Validator(source, env)
    config = v.config(data)
    if v.errors or config is None:
        raise ConfigError(v.errors or [f"{source}: empty configuration"])
    return config


class _Validator:
    """Walks the raw YAML, building typed objects and collecting ``file: key: reason``."""

    def __init__(self, source: str, env: Mapping[str, str]) -> None:
        self.source = source
        self.env = env
        self.errors: list[str] = []
        self._base = Path(source).parent if not source.startswith("<") else Path()

    def error(self, key: str, reason: str) -> None:
        self.errors.append(f"{self.source}: {key}: {reason}")

    def mapping(self, key: str, value: object, allowed: set[str]) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.error(key, f"must be a mapping, got {type(value).__name__}")
            return None
        for unknown in sorted(set(map(str, value)) - allowed):
            self.error(f"{key}.{unknown}" if key else unknown, "unknown key")
        return {str(k): v for k, v in value.items()}

    def config(self, data: object) -> Config | None:
        if data is None:
            self.error("(root)", "the file is empty")
            return None
        allowed = {"listen", "admin_listen", "catalog", "log", "shutdown", "pool", "routes"}
        raw = self.mapping("", data, allowed)
        if raw is None:
            return None
        listen = self.address("listen", raw.get("listen", "127.0.0.1:8080"))
        admin = self.address("admin_listen", raw.get("admin_listen", "127.0.0.1:8081"))
        if listen and admin and listen.port == admin.port and listen.port != 0:
            self.error("admin_listen", f"port {admin.port} is already used by listen")
        routes = self.routes(raw.get("routes"))
        config = Config(
            listen=listen or Address("127.0.0.1", 8080),
            admin_listen=admin or Address("127.0.0.1", 8081),
            routes=routes,
            catalog=self.catalog(raw.get("catalog")),
            log=self.log(raw.get("log", {})),
            shutdown=self.shutdown(raw.get("shutdown", {})),
            pool=self.pool(raw.get("pool", {})),
            source=self.source,
        )
        return None if self.errors else config

    def shutdown(self, value: object) -> Shutdown:
        raw = self.mapping("shutdown", value, {"drain_seconds"}) or {}
        drain = self.number("shutdown.drain_seconds", raw.get("drain_seconds", 20.0), minimum=0)
        return Shutdown(drain_seconds=drain)

    def address(self, key: str, value: object) -> Address | None:
        text = str(value)
        host, sep, port = text.rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            self.error(key, f"must be HOST:PORT, got {text!r}")
            return None
        return Address(host, int(port))

    def number(self, key: str, value: object, *, minimum: float, integer: bool = False) -> float:
        ok_type = int if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, ok_type) or value < minimum:
            kind = "an integer" if integer else "a number"
            self.error(key, f"must be {kind} >= {minimum:g}, got {value!r}")
            return minimum
        return float(value)

    def choice(self, key: str, value: object, options: tuple[str, ...]) -> str:
        if value not in options:
            self.error(key, f"must be one of {', '.join(options)}, got {value!r}")
            return options[0]
        return value

    def catalog(self, value: object) -> Path | None:
        if value is None:
            return None
        path = Path(str(value))
        path = path if path.is_absolute() else self._base / path
        if not path.is_file():
            self.error("catalog", f"file not found: {path}")
        return path

    def log(self, value: object) -> LogSettings:
        raw = self.mapping("log", value, {"level", "format"}) or {}
        level = self.choice("log.level", raw.get("level", "info"), _LOG_LEVELS)
        fmt = self.choice("log.format", raw.get("format", "json"), _LOG_FORMATS)
        return LogSettings(level=cast(LogLevel, level), format=cast(LogFormat, fmt))

    def pool(self, value: object) -> Pool:
        raw = self.mapping("pool", value, {"limit", "limit_per_host", "keepalive_seconds"}) or {}
        return Pool(
            limit=int(self.number("pool.limit", raw.get("limit", 200), minimum=1, integer=True)),
            limit_per_host=int(
                self.number(
                    "pool.limit_per_host", raw.get("limit_per_host", 100), minimum=0, integer=True
                )
            ),
            keepalive_seconds=self.number(
                "pool.keepalive_seconds", raw.get("keepalive_seconds", 30.0), minimum=0
            ),
        )

    def routes(self, value: object) -> tuple[Route, ...]:
        if not isinstance(value, list) or not value:
            self.error("routes", "must be a non-empty list of routes")
            return ()
        routes = [r for i, item in enumerate(value) if (r := self.route(f"routes[{i}]", item))]
        self.check_unique(routes)
        return tuple(routes)

    def check_unique(self, routes: list[Route]) -> None:
        seen_names: dict[str, int] = {}
        for i, route in enumerate(routes):
            if route.name in seen_names:
                self.error(f"routes[{i}].name", f"duplicate route name {route.name!r}")
            seen_names.setdefault(route.name, i)
            for j, other in enumerate(routes[:i]):
                if route.path_prefix == other.path_prefix:
                    self.error(
                        f"routes[{i}].path_prefix",
                        f"duplicate prefix {route.path_prefix!r} (also routes[{j}])",
                    )
                elif route.matches(other.path_prefix) or other.matches(route.path_prefix):
                    self.error(
                        f"routes[{i}].path_prefix",
                        f"prefix {route.path_prefix!r} overlaps routes[{j}] "
                        f"({other.path_prefix!r})",
                    )

    def route(self, key: str, value: object) -> Route | None:
        allowed = {
            "name", "path_prefix", "vendor", "upstream", "mode", "timeout",
            "max_response_bytes", "max_request_bytes", "headers",
        }  # fmt: skip
        raw = self.mapping(key, value, allowed)
        if raw is None:
            return None
        for required in ("name", "path_prefix", "vendor", "upstream"):
            if required not in raw:
                self.error(f"{key}.{required}", "is required")
        name = str(raw.get("name", ""))
        if "name" in raw and not _NAME.match(name):
            self.error(f"{key}.name", f"must match {_NAME.pattern}, got {name!r}")
        prefix = str(raw.get("path_prefix", "/"))
        if "path_prefix" in raw and (not _PREFIX.match(prefix) or prefix == "/"):
            self.error(f"{key}.path_prefix", f"must be an absolute path below '/', got {prefix!r}")
        prefix = prefix.rstrip("/") or "/"
        timeout = self.mapping(f"{key}.timeout", raw.get("timeout", {}), {"connect", "total"}) or {}
        max_request = raw.get("max_request_bytes")
        return Route(
            name=name,
            path_prefix=prefix,
            vendor=cast(Vendor, self.choice(f"{key}.vendor", raw.get("vendor"), VENDOR_NAMES))
            if "vendor" in raw
            else "mm7",
            upstream=self.upstream(f"{key}.upstream", raw.get("upstream")),
            mode=cast(Mode, self.choice(f"{key}.mode", raw.get("mode", "envelope"), _MODES)),
            timeout=Timeout(
                connect=self.number(
                    f"{key}.timeout.connect", timeout.get("connect", 5), minimum=0.001
                ),
                total=self.number(f"{key}.timeout.total", timeout.get("total", 30), minimum=0.001),
            ),
            max_response_bytes=int(
                self.number(
                    f"{key}.max_response_bytes",
                    raw.get("max_response_bytes", 1_048_576),
                    minimum=1,
                    integer=True,
                )
            ),
            max_request_bytes=None
            if max_request is None
            else int(self.number(f"{key}.max_request_bytes", max_request, minimum=1, integer=True)),
            headers=self.headers(f"{key}.headers", raw.get("headers", {})),
        )

    def upstream(self, key: str, value: object) -> str:
        text = self.expand(key, str(value)) if value is not None else ""
        if value is None:
            return ""
        try:
            parts = urlsplit(text)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError as exc:
            self.error(key, f"not a valid URL ({exc}): {text!r}")
            return text
        if parts.scheme not in ("http", "https") or not parts.hostname:
            self.error(key, f"must be an absolute http:// or https:// URL, got {text!r}")
        elif parts.username or parts.password:
            self.error(key, "must not embed credentials; use headers with ${VAR} instead")
        elif parts.query or parts.fragment:
            self.error(key, "must not have a query or fragment (the app's query is appended)")
        return text.rstrip("/")

    def headers(self, key: str, value: object) -> dict[str, str]:
        if not isinstance(value, dict):
            self.error(key, "must be a mapping of header name to value")
            return {}
        result: dict[str, str] = {}
        for raw_name, raw in value.items():
            name = str(raw_name)
            if not _HEADER_NAME.match(name):
                self.error(f"{key}.{name}", "is not a valid header name")
            elif name.lower() in _RESERVED_HEADERS:
                self.error(f"{key}.{name}", "is set by the proxy and cannot be configured")
            expanded = self.expand(f"{key}.{name}", str(raw))
            if "\r" in expanded or "\n" in expanded:
                self.error(f"{key}.{name}", "value must not contain line breaks")
            result[name] = expanded
        return result

    def expand(self, key: str, text: str) -> str:
        """Replace ``${VAR}`` with the environment's value; an unset VAR is an error."""

        def sub(match: re.Match[str]) -> str:
            var = match.group(1)
            if var not in self.env:
                self.error(key, f"environment variable ${{{var}}} is not set")
                return ""
            return self.env[var]

        return _VAR.sub(sub, text)
