"""bench/targets.py: core layout, the correctness gate and gateway-proxy's bench config."""

import json

from bench.replies import MM7_FAULT_2002, MOMS_JSON_OK
from bench.targets import check_answer, choose_layout, gateway_proxy_config
from proxy.config import parse_config


def test_the_client_side_and_the_proxy_get_a_core_each() -> None:
    layout = choose_layout([0, 1])
    assert (layout.client_cpus, layout.proxy_cpus, layout.all_cpus) == ("0", "1", "0,1")
    assert choose_layout([3]).proxy_cpus == "3"
    assert "idle" in choose_layout([0, 1, 2, 3]).note


def test_the_gateway_and_nginx_must_pass_the_reply_through() -> None:
    reply = MM7_FAULT_2002
    assert check_answer("nginx", reply, reply.status, reply.body) is None
    assert check_answer("direct", reply, 200, reply.body) is not None


def test_the_proxies_must_read_the_code() -> None:
    reply = MOMS_JSON_OK
    minimal = json.dumps({"ok": True, "vendor": "moms", "code": "1", "http_status": 200})
    assert check_answer("minimal", reply, 200, minimal.encode()) is None
    envelope = {"ok": True, "code": "OK", "vendor": {"name": "moms", "code": "1"}}
    assert check_answer("gateway-proxy", reply, 200, json.dumps(envelope).encode()) is None
    wrong = {"ok": False, "code": "INVALID_UPSTREAM_RESPONSE", "vendor": {"code": None}}
    problem = check_answer("gateway-proxy", reply, 502, json.dumps(wrong).encode())
    assert problem is not None
    assert "expected code 1 ok=True" in problem
    assert check_answer("minimal", reply, 502, b"<html>") is not None


def test_the_gateway_proxy_config_is_valid() -> None:
    """The config the bench writes passes the proxy's own validation."""
    import yaml

    config = parse_config(yaml.safe_load(gateway_proxy_config(8480, 8481, 8490)), env={})
    assert [r.upstream for r in config.routes] == [
        "http://127.0.0.1:8490/mm7", "http://127.0.0.1:8490/moms", "http://127.0.0.1:8490/cm",
    ]  # fmt: skip
    assert config.log.level == "info"
    assert config.pool.limit_per_host == 0
