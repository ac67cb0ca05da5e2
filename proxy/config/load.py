"""Load the proxy's YAML configuration into frozen, typed objects (proxy.config.model).

``load_config(path)`` reads the file (proxy.config.loading: UTF-8, no duplicate keys),
expands ``${VAR}`` from the environment, and validates everything at once
(proxy.config.check). Every problem is reported as ``file: key: reason`` and collected
into one ``ConfigError``, so a bad config never starts a half-working proxy. A reason
never quotes a value that came from the environment: those hold credentials.

``${VAR}`` must be set and non-empty (``Bearer ${TOKEN}`` with an empty TOKEN is a broken
credential, not a value); ``${VAR:-}`` allows empty, ``${VAR:-text}`` gives a default.
"""

import os
from collections.abc import Mapping
from pathlib import Path

from proxy.config.check import Validator
from proxy.config.loading import read_yaml
from proxy.config.model import Config, ConfigError

ENV_CONFIG = "GATEWAY_PROXY_CONFIG"
DEFAULT_CONFIG_PATH = Path("config/gateway-proxy.yaml")


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
    v = Validator(source, env)
    config = v.config(data)
    v.raise_if_any(ConfigError)
    if config is None:
        raise ConfigError([f"{source}: (root): empty configuration"])
    return config
