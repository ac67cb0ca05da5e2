"""The config validator: walks the raw YAML and builds proxy.config's frozen objects.

Every problem is recorded as ``file: key: reason`` (proxy.config.loading's ``Checker``), so a
config is reported in full. Reasons never quote values that came from the environment.
"""

import ipaddress
import re
import ssl
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from proxy.config import tls as tls_files
from proxy.config.loading import Checker
from proxy.config.model import (
    Address,
    CircuitBreaker,
    Client,
    ClientTimeout,
    Config,
    InboundRoute,
    LedgerSettings,
    LogSettings,
    Network,
    Pool,
    RateLimit,
    Route,
    ServerTLS,
    Shutdown,
    Timeout,
    UpstreamTLS,
    parse_address,
)
from proxy.vocab import BALANCES, LOG_FORMATS, LOG_LEVELS, MODES, VENDOR_NAMES

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_PREFIX = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}")
# Headers the proxy owns: letting config set them would break framing or forwarding.
_RESERVED_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "x-request-id"}
)

_TOP_KEYS = {
    "listen", "admin_listen", "catalog", "log", "shutdown", "pool", "routes",
    "listen_backlog", "max_in_flight", "client_timeout", "inbound", "store",
    "clients", "listen_tls", "inbound_listen", "ledger",
}  # fmt: skip
_INBOUND_KEYS = {
    "name", "path_prefix", "vendor", "deliver_to", "timeout", "max_request_bytes", "headers",
    "auth", "allow_from", "signing_secret",
}  # fmt: skip
_ROUTE_KEYS = {
    "name", "path_prefix", "vendor", "upstream", "mode", "timeout",
    "max_response_bytes", "max_request_bytes", "headers", "max_in_flight", "client_timeout",
    "upstreams", "balance", "circuit_breaker", "rate_limit",
    "tls", "query", "require_idempotency_key",
}  # fmt: skip
_TLS_KEYS = {"ca_file", "cert_file", "key_file", "server_name"}
# A client key is a shared secret: long enough that guessing it is hopeless.
_MIN_KEY_LENGTH = 16
_QUERY_NAME = re.compile(r"^[A-Za-z0-9._~-]+$")
_SERVER_NAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
_STORE_SCHEMES = ("redis", "rediss")


def _host_port(url: str) -> str:
    """How an (already checked) upstream URL's endpoint is named: host:port."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{(parts.hostname or '').lower()}:{port}"


class Validator(Checker):
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
        inbound_listen = (
            self.address("inbound_listen", raw["inbound_listen"])
            if raw.get("inbound_listen") is not None
            else None
        )
        if inbound_listen and inbound_listen.port != 0:
            for other, address in (("listen", listen), ("admin_listen", admin)):
                if address and address.port == inbound_listen.port:
                    self.add(
                        "inbound_listen", f"port {inbound_listen.port} is already used by {other}"
                    )
        config = Config(
            listen=listen or Address("127.0.0.1", 8080),
            admin_listen=admin or Address("127.0.0.1", 8081),
            routes=(routes := self.routes(raw.get("routes"))),
            inbound=self.inbound(raw.get("inbound", []), routes),
            catalog=self.catalog(raw.get("catalog")),
            log=self.log(raw.get("log", {})),
            shutdown=self.shutdown(raw.get("shutdown", {})),
            pool=self.pool(raw.get("pool", {})),
            listen_backlog=self.integer("listen_backlog", raw.get("listen_backlog", 1024), 1)
            or 1024,
            max_in_flight=self.integer("max_in_flight", raw.get("max_in_flight", 1000), 1) or 1000,
            client_timeout=self.client_defaults,
            source=self.source,
            store=self.store(raw.get("store")),
            clients=self.clients(raw.get("clients"), routes),
            listen_tls=self.server_tls("listen_tls", raw["listen_tls"])
            if raw.get("listen_tls") is not None
            else None,
            inbound_listen=inbound_listen,
            ledger=self.ledger(raw["ledger"]) if raw.get("ledger") is not None else None,
        )
        if config.ledger is None:
            for i, client in enumerate(config.clients):
                if client.webhook is not None:
                    self.add(
                        f"clients[{i}].webhook",
                        "needs a ledger (the top-level ledger: section): a report finds its "
                        "client through the send the ledger remembers",
                    )
            for i, route in enumerate(config.routes):
                if route.require_idempotency_key:
                    self.add(
                        f"routes[{i}].require_idempotency_key",
                        "needs a ledger (the top-level ledger: section) to keep the keys in",
                    )
        return None if self.errors else config

    def ledger(self, value: object) -> LedgerSettings:
        """``{path, idempotency_ttl, correlation_ttl}``; the path is relative to the file."""
        allowed = {"path", "idempotency_ttl", "correlation_ttl"}
        raw = self.mapping("ledger", value, allowed=allowed) or {}
        defaults = LedgerSettings()
        path = defaults.path
        if "path" in raw:
            if not isinstance(raw["path"], str) or not raw["path"].strip():
                self.add("ledger.path", "must be a file path (the SQLite database)")
            else:
                path = Path(self.expand("ledger.path", raw["path"]))
                path = path if path.is_absolute() else self._base / path
        ttls = {
            name: self.number(f"ledger.{name}", raw.get(name, getattr(defaults, name)), 1)
            for name in ("idempotency_ttl", "correlation_ttl")
        }
        return LedgerSettings(
            path=path,
            idempotency_ttl=ttls["idempotency_ttl"] or defaults.idempotency_ttl,
            correlation_ttl=ttls["correlation_ttl"] or defaults.correlation_ttl,
        )

    def clients(self, value: object, routes: tuple[Route, ...]) -> tuple[Client, ...]:
        """The apps allowed to send: unique names and keys, known routes."""
        if value is None:
            return ()
        if not isinstance(value, list) or not value:
            self.add("clients", "must be a non-empty list of clients (or left out: no check)")
            return ()
        route_names = {r.name for r in routes}
        clients: list[Client] = []
        names: dict[str, str] = {}
        keys: dict[str, str] = {}
        for i, item in enumerate(value):
            key = f"clients[{i}]"
            raw = self.mapping(
                key, item, allowed={"name", "key", "routes", "webhook"}, required=("name", "key")
            )
            if raw is None:
                continue
            name = self.name(key, raw)
            if name in names:
                self.add(f"{key}.name", f"duplicate client name {name!r} (also {names[name]})")
            names.setdefault(name, key)
            secret = (
                self.expand(f"{key}.key", raw["key"]) if isinstance(raw.get("key"), str) else ""
            )
            if "key" in raw and not isinstance(raw["key"], str):
                self.add(f"{key}.key", "must be a string (write it as ${VAR}: it is a secret)")
            elif secret and len(secret) < _MIN_KEY_LENGTH:
                self.add(f"{key}.key", f"must be at least {_MIN_KEY_LENGTH} characters long")
            elif secret in keys:  # never quote it: it is a secret
                self.add(
                    f"{key}.key", f"is the same key as {keys[secret]}: each client needs its own"
                )
            elif any(c in secret for c in "\r\n\t ,"):
                self.add(f"{key}.key", "must not contain spaces, commas or line breaks")
            if secret:
                keys.setdefault(secret, key)
            allowed = None
            if "routes" in raw:
                listed = self.strings(f"{key}.routes", raw["routes"])
                for j, route in enumerate(listed or ()):
                    if route not in route_names:
                        known = ", ".join(sorted(route_names))
                        self.add(
                            f"{key}.routes[{j}]", f"no route is named {route!r} (routes: {known})"
                        )
                allowed = frozenset(listed or ())
            webhook = self.upstream(f"{key}.webhook", raw["webhook"]) if "webhook" in raw else None
            clients.append(Client(name=name, key=secret, routes=allowed, webhook=webhook))
        return tuple(clients)

    def tls_file(self, key: str, value: object) -> Path | None:
        """A readable file (relative to the config file); its content is checked by the
        context it goes into."""
        if not isinstance(value, str) or not value.strip():
            self.add(key, "must be a file path")
            return None
        path = Path(self.expand(key, value))
        path = path if path.is_absolute() else self._base / path
        try:
            with path.open("rb"):
                pass
        except OSError as exc:
            self.add(key, f"cannot read {path}: {tls_files.problem(exc)}")
            return None
        return path

    def server_tls(self, key: str, value: object) -> ServerTLS | None:
        raw = self.mapping(
            key, value, allowed={"cert_file", "key_file"}, required=("cert_file", "key_file")
        )
        if raw is None or "cert_file" not in raw or "key_file" not in raw:
            return None
        cert, private = (
            self.tls_file(f"{key}.cert_file", raw["cert_file"]),
            self.tls_file(f"{key}.key_file", raw["key_file"]),
        )
        if cert is None or private is None:
            return None
        tls = ServerTLS(cert, private)
        try:
            tls_files.server_context(tls)
        except OSError as exc:
            self.add(f"{key}.cert_file", tls_files.problem(exc))
        return tls

    def upstream_tls(
        self, key: str, value: object, upstreams: tuple[str, ...]
    ) -> UpstreamTLS | None:
        if value is None:
            return None
        raw = self.mapping(key, value, allowed=_TLS_KEYS)
        if raw is None:
            return None
        if any(not url.lower().startswith("https://") for url in upstreams):
            every = " on every endpoint" if len(upstreams) > 1 else ""
            self.add(key, f"needs an https:// upstream{every}")
        files = {
            name: self.tls_file(f"{key}.{name}", raw[name])
            for name in ("ca_file", "cert_file", "key_file")
            if name in raw
        }
        if "key_file" in raw and "cert_file" not in raw:
            self.add(f"{key}.key_file", "needs cert_file (the client certificate it belongs to)")
        server_name = raw.get("server_name")
        if server_name is not None and not (
            isinstance(server_name, str) and _SERVER_NAME.match(server_name)
        ):
            self.add(f"{key}.server_name", f"must be a DNS name, got {server_name!r}")
            server_name = None
        if any(raw.get(n) is not None and files.get(n) is None for n in files):
            return None  # already reported
        tls = UpstreamTLS(
            ca_file=files.get("ca_file"),
            cert_file=files.get("cert_file"),
            key_file=files.get("key_file"),
            server_name=server_name,
        )
        try:
            tls_files.client_context(tls)
        except OSError as exc:
            which = "ca_file" if tls.ca_file and _fails_as_ca(tls.ca_file) else "cert_file"
            self.add(f"{key}.{which}", tls_files.problem(exc))
        return tls

    def query(self, key: str, value: object) -> dict[str, str]:
        """Query parameters set on every forwarded request (values may use ${VAR})."""
        if not isinstance(value, dict) or not value:
            self.add(key, "must be a mapping of query parameter name to value")
            return {}
        result: dict[str, str] = {}
        for raw_name, raw in value.items():
            name = str(raw_name)
            if not _QUERY_NAME.match(name):
                self.add(f"{key}.{name}", "must be a plain parameter name (letters, digits, ._~-)")
            if not isinstance(raw, str | int):
                self.add(f"{key}.{name}", "must be a string (write credentials as ${VAR})")
                continue
            result[name] = self.expand(f"{key}.{name}", str(raw))
        return result

    def relay_auth(self, key: str, value: object) -> str | None:
        raw = self.mapping(key, value, allowed={"basic"}, required=("basic",))
        if raw is None or "basic" not in raw:
            return None
        if not isinstance(raw["basic"], str):
            self.add(f"{key}.basic", 'must be "user:password" (write it as ${USER}:${PASSWORD})')
            return None
        basic = self.expand(f"{key}.basic", raw["basic"])
        user, colon, password = basic.partition(":")
        if not colon or not user or not password:
            self.add(f"{key}.basic", 'must be "user:password", both non-empty')
        elif any(c in basic for c in "\r\n"):
            self.add(f"{key}.basic", "must not contain line breaks")
        return basic

    def networks(self, key: str, value: object) -> tuple[Network, ...]:
        if not isinstance(value, list) or not value:
            self.add(key, "must be a non-empty list of networks (CIDR: 198.51.100.0/24)")
            return ()
        found: list[Network] = []
        for i, item in enumerate(value):
            try:
                found.append(ipaddress.ip_network(str(item), strict=True))
            except ValueError as exc:
                self.add(f"{key}[{i}]", f"not a network in CIDR notation ({exc})")
        return tuple(found)

    def secret(self, key: str, value: object) -> str | None:
        if not isinstance(value, str) or not value:
            self.add(key, "must be a non-empty string (write it as ${VAR})")
            return None
        secret = self.expand(key, value)
        if secret and len(secret) < _MIN_KEY_LENGTH:
            self.add(key, f"must be at least {_MIN_KEY_LENGTH} characters long")
        return secret

    def store(self, value: object) -> str | None:
        """A ``redis://`` or ``rediss://`` URL (its password may come from ``${VAR}``).

        Only its form is checked: an unreachable store is valid config (the proxy then
        falls back to its own buckets). Reasons never quote it: it may hold a password.
        """
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            self.add("store", "must be a redis:// or rediss:// URL")
            return None
        text = self.expand("store", value)
        try:
            parts = urlsplit(text)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError as exc:
            self.add("store", f"not a valid URL ({exc})")
            return None
        if parts.scheme not in _STORE_SCHEMES:
            scheme = repr(parts.scheme) if parts.scheme.isalnum() else "none"
            self.add("store", f"must be a redis:// or rediss:// URL, got scheme {scheme}")
        elif not parts.hostname:
            self.add("store", "must name a host: redis://HOST:PORT/DB")
        elif parts.path.strip("/") and not parts.path.strip("/").isdigit():
            self.add("store", "the path must be a database number (redis://HOST:PORT/0)")
        elif parts.query or parts.fragment:
            self.add("store", "must not have a query or fragment")
        return text

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
        try:
            found = path.is_file()
        except OSError as exc:  # a name the OS refuses (too long, ...)
            self.add("catalog", f"cannot use {path}: {exc.strerror or exc}")
            return path
        if not found:
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
        self.check_unique([(f"routes[{i}]", r) for i, r in enumerate(routes)])
        return tuple(routes)

    def check_unique(self, routes: list[tuple[str, Route | InboundRoute]]) -> None:
        """Route names and prefixes are unique, and prefixes never overlap (both kinds)."""
        seen_names: dict[str, str] = {}
        for i, (key, route) in enumerate(routes):
            if route.name in seen_names:
                self.add(f"{key}.name", f"duplicate route name {route.name!r}")
            seen_names.setdefault(route.name, key)
            for other_key, other in routes[:i]:
                if route.path_prefix == other.path_prefix:
                    self.add(
                        f"{key}.path_prefix",
                        f"duplicate prefix {route.path_prefix!r} (also {other_key})",
                    )
                elif route.matches(other.path_prefix) or other.matches(route.path_prefix):
                    self.add(
                        f"{key}.path_prefix",
                        f"prefix {route.path_prefix!r} overlaps {other_key} "
                        f"({other.path_prefix!r})",
                    )

    def inbound(self, value: object, routes: tuple[Route, ...]) -> tuple[InboundRoute, ...]:
        if not isinstance(value, list):
            self.add("inbound", "must be a list of inbound routes")
            return ()
        inbound = [
            r for i, item in enumerate(value) if (r := self.inbound_route(f"inbound[{i}]", item))
        ]
        named: list[tuple[str, Route | InboundRoute]] = [
            (f"routes[{i}]", r) for i, r in enumerate(routes)
        ]
        self.check_unique(named + [(f"inbound[{i}]", r) for i, r in enumerate(inbound)])
        return tuple(inbound)

    def inbound_route(self, key: str, value: object) -> InboundRoute | None:
        required = ("name", "path_prefix", "deliver_to")
        raw = self.mapping(key, value, allowed=_INBOUND_KEYS, required=required)
        if raw is None:
            return None
        vendor = self.choice(f"{key}.vendor", raw.get("vendor", "mm7"), VENDOR_NAMES) or "mm7"
        timeout = self.timeout(f"{key}.timeout", raw.get("timeout", {"connect": 2, "total": 10}))
        max_request = self.integer(
            f"{key}.max_request_bytes", raw.get("max_request_bytes", 2_097_152), 1
        )
        return InboundRoute(
            name=self.name(key, raw),
            path_prefix=self.prefix(key, raw),
            deliver_to=self.upstream(f"{key}.deliver_to", raw.get("deliver_to")),
            vendor=vendor,
            timeout=timeout,
            max_request_bytes=max_request or 2_097_152,
            headers=self.headers(f"{key}.headers", raw.get("headers", {})),
            auth_basic=self.relay_auth(f"{key}.auth", raw["auth"]) if "auth" in raw else None,
            allow_from=self.networks(f"{key}.allow_from", raw["allow_from"])
            if "allow_from" in raw
            else (),
            signing_secret=self.secret(f"{key}.signing_secret", raw["signing_secret"])
            if "signing_secret" in raw
            else None,
        )

    def name(self, key: str, raw: Mapping[str, object]) -> str:
        name = str(raw.get("name", ""))
        if "name" in raw and not _NAME.match(name):
            self.add(f"{key}.name", f"must match {_NAME.pattern}, got {name!r}")
        return name

    def prefix(self, key: str, raw: Mapping[str, object]) -> str:
        prefix = str(raw.get("path_prefix", "/"))
        if "path_prefix" in raw and (not _PREFIX.match(prefix) or prefix == "/"):
            self.add(f"{key}.path_prefix", f"must be an absolute path below '/', got {prefix!r}")
        return prefix.rstrip("/") or "/"

    def route(self, key: str, value: object) -> Route | None:
        required = ("name", "path_prefix", "vendor")
        raw = self.mapping(key, value, allowed=_ROUTE_KEYS, required=required)
        if raw is None:
            return None
        name, prefix = self.name(key, raw), self.prefix(key, raw)
        upstreams = self.upstreams(key, raw)
        max_request = raw.get("max_request_bytes")
        max_response = self.integer(
            f"{key}.max_response_bytes", raw.get("max_response_bytes", 1_048_576), 1
        )
        return Route(
            name=name,
            path_prefix=prefix,
            vendor=self.choice(f"{key}.vendor", raw.get("vendor"), VENDOR_NAMES) or "mm7"
            if "vendor" in raw
            else "mm7",
            upstream=upstreams[0] if upstreams else "",
            upstreams=upstreams,
            balance=self.choice(f"{key}.balance", raw.get("balance", "failover"), BALANCES)
            or "failover",
            circuit_breaker=self.circuit_breaker(
                f"{key}.circuit_breaker", raw.get("circuit_breaker")
            ),
            rate_limit=self.rate_limit(f"{key}.rate_limit", raw.get("rate_limit")),
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
            tls=self.upstream_tls(f"{key}.tls", raw.get("tls"), upstreams),
            query=self.query(f"{key}.query", raw["query"]) if "query" in raw else {},
            require_idempotency_key=self.boolean(
                f"{key}.require_idempotency_key", raw.get("require_idempotency_key", False)
            )
            or False,
        )

    def upstreams(self, key: str, raw: Mapping[str, object]) -> tuple[str, ...]:
        """``upstream`` (one URL) or ``upstreams`` (a list, tried in order): exactly one.

        Endpoints are told apart by host:port (how metrics, logs and envelopes name
        them), so two URLs on one host:port are duplicates.
        """
        if "upstream" in raw and "upstreams" in raw:
            self.add(f"{key}.upstreams", "give either upstream or upstreams, not both")
            return ()
        if "upstream" in raw:
            return (self.upstream(f"{key}.upstream", raw["upstream"]),)
        if "upstreams" not in raw:
            self.add(f"{key}.upstream", "is required (or upstreams: a list of URLs)")
            return ()
        value = raw["upstreams"]
        if not isinstance(value, list) or not value:
            self.add(f"{key}.upstreams", "must be a non-empty list of http(s) URLs")
            return ()
        urls: list[str] = []
        seen: dict[str, int] = {}
        for i, item in enumerate(value):
            where = f"{key}.upstreams[{i}]"
            before = len(self.errors)
            url = self.upstream(where, item)
            urls.append(url)
            if len(self.errors) > before or not url:
                continue
            endpoint = _host_port(url)
            if endpoint in seen:
                self.add(
                    where,
                    f"duplicate endpoint (also upstreams[{seen[endpoint]}]): each must have "
                    "its own host:port",
                )
            seen.setdefault(endpoint, i)
        return tuple(urls)

    def circuit_breaker(self, key: str, value: object) -> CircuitBreaker | None:
        if value is None:
            return None
        raw = self.mapping(key, value, allowed={"failures", "open_seconds"}) or {}
        defaults = CircuitBreaker()
        failures = self.integer(f"{key}.failures", raw.get("failures", defaults.failures), 1)
        seconds = self.positive(f"{key}.open_seconds", raw.get("open_seconds", 10.0))
        return CircuitBreaker(
            failures=failures or defaults.failures, open_seconds=seconds or defaults.open_seconds
        )

    def rate_limit(self, key: str, value: object) -> RateLimit | None:
        if value is None:
            return None
        allowed = {"per_second", "burst", "max_wait"}
        raw = self.mapping(key, value, allowed=allowed, required=("per_second",)) or {}
        rate = None
        if "per_second" in raw:
            rate = self.positive(f"{key}.per_second", raw["per_second"])
        burst = self.number(f"{key}.burst", raw.get("burst", max(1.0, rate or 1.0)), 1)
        max_wait = self.number(f"{key}.max_wait", raw.get("max_wait", 5.0), 0)
        return RateLimit(
            per_second=rate or 1.0,
            burst=burst or 1.0,
            max_wait=5.0 if max_wait is None else max_wait,
        )

    def positive(self, key: str, value: object) -> float | None:
        """A finite number > 0."""
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not value > 0
            or value == float("inf")
        ):
            self.add(key, f"must be a number > 0, got {value!r}")
            return None
        return float(value)

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
        """An absolute http(s) URL. Reasons quote the value as written (``${VAR}`` and
        all), never as expanded: the environment holds credentials."""
        if value is None:
            return ""
        if not isinstance(value, str):
            self.add(key, f"must be an http:// or https:// URL, got {type(value).__name__}")
            return ""
        text = self.expand(key, value)
        try:
            parts = urlsplit(text)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError as exc:
            self.add(key, f"not a valid URL ({exc}): {value!r}")
            return text
        if parts.scheme not in ("http", "https") or not parts.hostname:
            self.add(key, f"must be an absolute http:// or https:// URL, got {value!r}")
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


def _fails_as_ca(path: Path) -> bool:
    """Whether ``path`` alone is refused as a CA bundle (to name the right key)."""
    try:
        ssl.create_default_context(cafile=str(path))
    except OSError:
        return True
    return False
