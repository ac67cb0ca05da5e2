"""The flow-control config: ``upstreams``, ``balance``, ``circuit_breaker``, ``rate_limit``,
``store``, and the catalog's ``throttling`` and ``circuit_failures``; every bad value is
one ``file: key: reason`` line, and check-config never connects to the store."""

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from proxy.cli import main
from proxy.codes.catalog import CatalogError, builtin_catalog_path, parse_catalog
from proxy.config import CircuitBreaker, ConfigError, RateLimit, parse_config
from tests.redis_server import free_port


def config(**route: Any) -> dict[str, Any]:
    base = {"name": "mms", "path_prefix": "/mm7", "vendor": "mm7"}
    return {"routes": [{**base, **route}]}


def errors(data: dict[str, Any], env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, source="gw.yaml", env=env or {})
    return caught.value.errors


def test_the_issue_s_example_parses() -> None:
    parsed = parse_config(
        {
            "store": "redis://redis.messaging.svc:6379/0",
            **config(
                upstreams=[
                    "https://relay-a.carrier.example/mm7",
                    "https://relay-b.carrier.example/mm7",
                ],
                balance="failover",
                circuit_breaker={"failures": 5, "open_seconds": 10},
                rate_limit={"per_second": 20, "burst": 20, "max_wait": 5},
            ),
        },
        env={},
    )
    route = parsed.routes[0]
    assert route.upstream == "https://relay-a.carrier.example/mm7"  # the first, as before
    assert route.endpoints == route.upstreams
    assert len(route.upstreams) == 2
    assert route.circuit_breaker == CircuitBreaker(5, 10.0)
    assert route.rate_limit == RateLimit(20.0, 20.0, 5.0)
    assert parsed.store == "redis://redis.messaging.svc:6379/0"


def test_defaults_keep_a_route_as_it_was() -> None:
    route = parse_config(config(upstream="http://gw:1/a"), env={}).routes[0]
    assert (route.upstreams, route.balance) == (("http://gw:1/a",), "failover")
    assert (route.circuit_breaker, route.rate_limit) == (None, None)
    filled = parse_config(
        config(upstream="http://gw:1/a", rate_limit={"per_second": 0.5}, circuit_breaker={}), env={}
    )
    assert filled.routes[0].rate_limit == RateLimit(0.5, 1.0, 5.0)  # burst: max(1, rate)
    assert filled.routes[0].circuit_breaker == CircuitBreaker(5, 10.0)


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        ({"upstream": "http://a:1/x", "upstreams": ["http://b:1/x"]},
         "gw.yaml: routes[0].upstreams: give either upstream or upstreams, not both"),
        ({}, "gw.yaml: routes[0].upstream: is required (or upstreams: a list of URLs)"),
        ({"upstreams": []}, "gw.yaml: routes[0].upstreams: must be a non-empty list of http(s) URLs"),
        ({"upstreams": "http://a:1/x"}, "gw.yaml: routes[0].upstreams: must be a non-empty list of http(s) URLs"),
        ({"upstreams": ["http://a:1/x", "http://A:1/y"]},
         "gw.yaml: routes[0].upstreams[1]: duplicate endpoint (also upstreams[0]): each must have its own host:port"),
        ({"upstreams": ["http://a/x", "http://a:80/y"]},
         "gw.yaml: routes[0].upstreams[1]: duplicate endpoint (also upstreams[0]): each must have its own host:port"),
        ({"upstreams": ["http://a:1/x", "ftp://b/x"]},
         "gw.yaml: routes[0].upstreams[1]: must be an absolute http:// or https:// URL, got 'ftp://b/x'"),
        ({"upstream": "http://a:1/x", "balance": "random"},
         "gw.yaml: routes[0].balance: must be one of failover, round_robin, got 'random'"),
        ({"upstream": "http://a:1/x", "rate_limit": {"per_second": 0}},
         "gw.yaml: routes[0].rate_limit.per_second: must be a number > 0, got 0"),
        ({"upstream": "http://a:1/x", "rate_limit": {"per_second": -2}},
         "gw.yaml: routes[0].rate_limit.per_second: must be a number > 0, got -2"),
        ({"upstream": "http://a:1/x", "rate_limit": {"burst": 2}},
         "gw.yaml: routes[0].rate_limit.per_second: is required"),
        ({"upstream": "http://a:1/x", "rate_limit": {"per_second": 5, "burst": 0.5}},
         "gw.yaml: routes[0].rate_limit.burst: must be a number >= 1, got 0.5"),
        ({"upstream": "http://a:1/x", "rate_limit": {"per_second": 5, "max_wait": -1}},
         "gw.yaml: routes[0].rate_limit.max_wait: must be a number >= 0, got -1"),
        ({"upstream": "http://a:1/x", "rate_limit": {"per_second": 5, "queue": 3}},
         "gw.yaml: routes[0].rate_limit.queue: unknown key (expected one of burst, max_wait, per_second)"),
        ({"upstream": "http://a:1/x", "circuit_breaker": {"failures": 0}},
         "gw.yaml: routes[0].circuit_breaker.failures: must be an integer >= 1, got 0"),
        ({"upstream": "http://a:1/x", "circuit_breaker": {"open_seconds": 0}},
         "gw.yaml: routes[0].circuit_breaker.open_seconds: must be a number > 0, got 0"),
    ],
)  # fmt: skip
def test_bad_flow_settings_are_one_precise_line_each(route: dict[str, Any], expected: str) -> None:
    assert expected in errors(config(**route))


@pytest.mark.parametrize(
    ("store", "expected"),
    [
        ("http://redis:6379", "gw.yaml: store: must be a redis:// or rediss:// URL, got scheme 'http'"),
        ("redis://", "gw.yaml: store: must name a host: redis://HOST:PORT/DB"),
        ("redis://r:6379/db", "gw.yaml: store: the path must be a database number (redis://HOST:PORT/0)"),
        ("redis://r:99999/0", "gw.yaml: store: not a valid URL (Port out of range 0-65535)"),
        (7, "gw.yaml: store: must be a redis:// or rediss:// URL"),
    ],
)  # fmt: skip
def test_a_bad_store_is_one_line(store: object, expected: str) -> None:
    assert expected in errors({"store": store, **config(upstream="http://a:1/x")})


def test_a_store_password_from_the_environment_is_never_quoted() -> None:
    secret = "s3cr3t-pa55"
    parsed = parse_config(
        {"store": "rediss://:${REDIS_PASSWORD}@r:6380/1", **config(upstream="http://a:1/x")},
        env={"REDIS_PASSWORD": secret},
    )
    assert parsed.store == f"rediss://:{secret}@r:6380/1"
    assert secret not in repr(parsed)
    bad = errors({"store": "http://:${REDIS_PASSWORD}@r", **config(upstream="http://a:1/x")},
                 env={"REDIS_PASSWORD": secret})  # fmt: skip
    assert not any(secret in line for line in bad)


def test_check_config_never_connects_to_the_store(tmp_path: Path, capsys: Any) -> None:
    """Nothing listens where the store points: the config is still valid."""
    path = tmp_path / "gw.yaml"
    path.write_text(
        f"store: redis://127.0.0.1:{free_port()}/0\n"
        "routes:\n"
        "  - {name: mms, path_prefix: /mm7, vendor: mm7,\n"
        "     upstreams: ['http://127.0.0.1:9/a', 'http://127.0.0.1:10/a'],\n"
        "     rate_limit: {per_second: 20, burst: 20, max_wait: 5}}\n"
    )
    assert main(["check-config", str(path)]) == 0
    assert ": ok: 1 route(s)" in capsys.readouterr().out


def catalog_data() -> dict[str, Any]:
    return dict(yaml.safe_load(builtin_catalog_path().read_text(encoding="utf-8")))


def test_the_catalog_names_throttling_and_circuit_failures() -> None:
    catalog = parse_catalog(catalog_data())
    assert catalog.throttling == {"RATE_LIMITED"}
    assert catalog.circuit_failures == {
        "CONNECTION_ERROR", "TIMEOUT", "CONNECTION_LOST", "UPSTREAM_UNAVAILABLE",
    }  # fmt: skip
    assert catalog.transport["rate_limit"].name == "RATE_LIMITED"
    assert catalog.transport["circuit_open"].name == "UPSTREAM_UNAVAILABLE"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d.pop("throttling"), "throttling: is required (a list of canonical codes)"),
        (lambda d: d.update(throttling=["NOPE"]), "throttling[0]: unknown canonical code 'NOPE'"),
        (lambda d: d.update(throttling=["OK"]), "throttling: OK is a success, not throttling"),
        (lambda d: d.update(circuit_failures=["RATE_LIMITED"]),
         "circuit_failures: RATE_LIMITED is throttling, which never counts"),
    ],
)  # fmt: skip
def test_bad_flow_catalog_keys_are_one_line(change: Any, expected: str) -> None:
    data = copy.deepcopy(catalog_data())
    change(data)
    with pytest.raises(CatalogError) as caught:
        parse_catalog(data, source="codes.yaml")
    assert f"codes.yaml: {expected}" in caught.value.errors
