"""Configuration: the YAML an operator writes, checked whole and parsed once.

    loading.py  the one way to read a data file: UTF-8, no duplicate keys, a ``Checker``
                that collects every ``file: key: reason`` (the catalog and the
                simulator's tables use it too)
    check.py    the validator: walks the raw YAML, builds the objects of model.py
    model.py    the frozen, typed objects (Config, Route, InboundRoute, ...)
    load.py     load_config / parse_config: file → environment → validator → Config

Everything a caller needs is importable from here.
"""

from proxy.config.load import (
    DEFAULT_CONFIG_PATH,
    ENV_CONFIG,
    load_config,
    parse_config,
    resolve_config_path,
)
from proxy.config.model import (
    Address,
    CircuitBreaker,
    Client,
    ClientTimeout,
    Config,
    ConfigError,
    InboundRoute,
    LedgerSettings,
    LogSettings,
    Pool,
    RateLimit,
    Route,
    ServerTLS,
    Shutdown,
    Timeout,
    UpstreamTLS,
    Vendor,
    parse_address,
    shared_by,
    under,
)

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "ENV_CONFIG",
    "Address",
    "CircuitBreaker",
    "Client",
    "ClientTimeout",
    "Config",
    "ConfigError",
    "InboundRoute",
    "LedgerSettings",
    "LogSettings",
    "Pool",
    "RateLimit",
    "Route",
    "ServerTLS",
    "Shutdown",
    "Timeout",
    "UpstreamTLS",
    "Vendor",
    "load_config",
    "parse_address",
    "parse_config",
    "resolve_config_path",
    "shared_by",
    "under",
]
