"""Config validation: every error names the key and the reason."""

from pathlib import Path

import pytest
import yaml

from proxy.config import ConfigError, load_config, parse_config, resolve_config_path
from tests import pii

ROOT = Path(__file__).resolve().parents[1]


def route(**kw: object) -> dict[str, object]:
    return {
        "name": "mms",
        "path_prefix": "/mm7",
        "vendor": "mm7",
        "upstream": "https://mms.example.net/mm7/mm7.php",
        **kw,
    }


def errors_for(data: object, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, source="gw.yaml", env=env or {})
    return info.value.errors


def test_the_shipped_configs_are_valid() -> None:
    config = load_config(ROOT / "config" / "gateway-proxy.yaml", env={"MM7_BASIC_AUTH": "x"})
    mms = config.routes[0]
    assert (mms.name, mms.path_prefix, mms.vendor, mms.mode) == ("mms", "/mm7", "mm7", "envelope")
    assert (mms.timeout.connect, mms.timeout.total) == (5, 30)
    assert mms.headers == {"Authorization": "Basic x"}
    assert str(config.listen) == "127.0.0.1:8080"
    assert str(config.admin_listen) == "127.0.0.1:8081"


def test_env_var_is_expanded_and_kept_out_of_repr() -> None:
    config = parse_config(
        {"routes": [route(headers={"Authorization": "Bearer ${TOKEN}"})]},
        env={"TOKEN": pii.SECRETS[0]},
    )
    assert config.routes[0].headers["Authorization"] == f"Bearer {pii.SECRETS[0]}"
    assert pii.SECRETS[0] not in repr(config)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"routes": [route()], "lisen": "x"}, "gw.yaml: lisen: unknown key"),
        ({"routes": [route(timeout={"conect": 1})]}, "gw.yaml: routes[0].timeout.conect: unknown key"),
        ({"routes": [route(upstream="ftp://x/y")]}, "routes[0].upstream: must be an absolute http"),
        ({"routes": [route(upstream="not a url")]}, "routes[0].upstream: must be an absolute http"),
        ({"routes": [route(upstream="http://u:p@x/")]}, "routes[0].upstream: must not embed credentials"),
        ({"routes": [route(upstream="http://x:99999/")]}, "routes[0].upstream: not a valid URL"),
        ({"routes": [route(upstream="http://x/?a=1")]}, "routes[0].upstream: must not have a query"),
        ({"routes": [route(vendor="sms")]}, "routes[0].vendor: must be one of mm7, moms"),
        ({"routes": [route(mode="tee")]}, "routes[0].mode: must be one of envelope, passthrough"),
        ({"routes": [route(path_prefix="mm7")]}, "routes[0].path_prefix: must be an absolute path"),
        ({"routes": [route(path_prefix="/")]}, "routes[0].path_prefix: must be an absolute path"),
        ({"routes": [route(name="MMS!")]}, "routes[0].name: must match"),
        ({"routes": [route(timeout={"total": 0})]}, "routes[0].timeout.total: must be a number"),
        ({"routes": [route(max_response_bytes="1MB")]}, "routes[0].max_response_bytes: must be an integer"),
        ({"routes": [route(headers={"Host": "x"})]}, "routes[0].headers.Host: is set by the proxy"),
        ({"routes": [route(headers={"Bad Name": "x"})]}, "routes[0].headers.Bad Name: is not a valid"),
        ({"routes": [route(headers={"X-A": "${NOPE}"})]}, "routes[0].headers.X-A: environment variable ${NOPE} is not set"),
        ({"routes": [route(upstream="https://${HOST}/x")]}, "routes[0].upstream: environment variable ${HOST} is not set"),
        ({"routes": [route(), route()]}, "routes[1].name: duplicate route name 'mms'"),
        ({"routes": [route(), route(name="b")]}, "routes[1].path_prefix: duplicate prefix '/mm7'"),
        ({"routes": [route(), route(name="b", path_prefix="/mm7/v2")]}, "routes[1].path_prefix: prefix '/mm7/v2' overlaps routes[0]"),
        ({"routes": [route(name="b", path_prefix="/mm7/v2"), route()]}, "routes[1].path_prefix: prefix '/mm7' overlaps routes[0]"),
        ({"routes": []}, "gw.yaml: routes: must be a non-empty list"),
        ({"routes": [route()], "listen": "8080"}, "gw.yaml: listen: must be HOST:PORT"),
        ({"routes": [route()], "listen": "0.0.0.0:80", "admin_listen": "0.0.0.0:80"}, "admin_listen: port 80 is already used"),
        ({"routes": [route()], "log": {"format": "xml"}}, "log.format: must be one of json, console"),
        ({"routes": [route()], "catalog": "nope.yaml"}, "catalog: file not found"),
        ({"routes": [{"name": "x"}]}, "routes[0].upstream: is required"),
        (None, "gw.yaml: (root): the file is empty"),
        (["a"], "gw.yaml: (root): must be a mapping, got a list"),
        ({"routes": [route(timeout={"connect": 10, "total": 5})]}, "routes[0].timeout.connect: 10 s is longer than timeout.total (5 s)"),
        ({"routes": [route()], "listen": "127.0.0.1:99999"}, "gw.yaml: listen: port 99999 is out of range (0..65535)"),
        ({"routes": [route()], "admin_listen": ":8081"}, "gw.yaml: admin_listen: must be HOST:PORT (the host is missing)"),
        ({"routes": [route()], "pool": {"limit": True}}, "gw.yaml: pool.limit: must be an integer >= 1, got True"),
    ],
)  # fmt: skip
def test_errors_name_key_and_reason(data: object, expected: str) -> None:
    errors = errors_for(data)
    assert any(expected in e for e in errors), errors


def test_all_errors_are_reported_at_once() -> None:
    errors = errors_for({"routes": [route(vendor="x", mode="y")], "bogus": 1})
    assert len(errors) == 3


def test_prefixes_that_merely_share_characters_do_not_overlap() -> None:
    config = parse_config({"routes": [route(), route(name="b", path_prefix="/mm77")]}, env={})
    assert [r.matches("/mm77/x") for r in config.routes] == [False, True]
    assert [r.matches("/mm7") for r in config.routes] == [True, False]


def test_load_config_reports_file_problems(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("routes: [")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_catalog_path_is_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "codes.yaml").write_text((ROOT / "config" / "codes.yaml").read_text())
    path = tmp_path / "gw.yaml"
    path.write_text(yaml.safe_dump({"catalog": "codes.yaml", "routes": [route()]}))
    assert load_config(path, env={}).catalog == tmp_path / "codes.yaml"


def test_config_path_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GATEWAY_PROXY_CONFIG", raising=False)
    assert resolve_config_path(None) == Path("config/gateway-proxy.yaml")
    monkeypatch.setenv("GATEWAY_PROXY_CONFIG", "/etc/gp.yaml")
    assert resolve_config_path(None) == Path("/etc/gp.yaml")
    assert resolve_config_path("x.yaml") == Path("x.yaml")


@pytest.mark.parametrize(
    ("env", "header", "expected"),
    [
        ({"TOKEN": ""}, "Bearer ${TOKEN}", "environment variable ${TOKEN} is empty (write ${TOKEN:-} to allow that)"),
        ({}, "Bearer ${TOKEN}", "environment variable ${TOKEN} is not set"),
    ],
)  # fmt: skip
def test_an_empty_or_unset_variable_is_refused(
    env: dict[str, str], header: str, expected: str
) -> None:
    errors = errors_for({"routes": [route(headers={"Authorization": header})]}, env)
    assert errors == [f"gw.yaml: routes[0].headers.Authorization: {expected}"]


@pytest.mark.parametrize(
    ("env", "header", "value"),
    [
        ({"TOKEN": ""}, "x${TOKEN:-}", "x"),
        ({}, "x${TOKEN:-}", "x"),
        ({}, "${TOKEN:-anonymous}", "anonymous"),
        ({"TOKEN": "t1"}, "${TOKEN:-anonymous}", "t1"),
    ],
)
def test_explicit_defaults_allow_empty_variables(
    env: dict[str, str], header: str, value: str
) -> None:
    config = parse_config({"routes": [route(headers={"X-Key": header})]}, env=env)
    assert config.routes[0].headers["X-Key"] == value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"routes: []\nroutes: []\n", "not valid YAML: line 2, column 1: duplicate key 'routes'"),
        (b"listen: \xff\xfe127.0.0.1:80\n", "not UTF-8 text (byte 8 is 0xff)"),
        (b"routes: [\n  {name: a\n", "not valid YAML: line 3"),
    ],
)
def test_file_problems_name_the_file(tmp_path: Path, text: bytes, expected: str) -> None:
    path = tmp_path / "gw.yaml"
    path.write_bytes(text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    (error,) = info.value.errors
    assert error.startswith(f"{path}: ")
    assert expected in error
    assert "<unicode string>" not in error


# --- issue 20: listen_tls, inbound_listen, query, the relay's checks ------------------------
def inbound(**kw: object) -> dict[str, object]:
    return {"name": "ev", "path_prefix": "/inbound", "deliver_to": "http://127.0.0.1:9/", **kw}


SECRET_ENV = {"RELAY": f"{pii.RELAY_USER}:{pii.RELAY_PASSWORD}", "SIGN": pii.SIGNING_SECRET,
              "SHORT": "short", "TOKEN": pii.MOMS_TOKEN}  # fmt: skip


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"listen_tls": {"cert_file": "/nope/tls.crt", "key_file": "/nope/tls.key"}},
         "gw.yaml: listen_tls.cert_file: cannot read /nope/tls.crt: no such file or directory"),
        ({"listen_tls": {"cert_file": "/nope/tls.crt"}}, "gw.yaml: listen_tls.key_file: is required"),
        ({"inbound_listen": "127.0.0.1:8080"}, "gw.yaml: inbound_listen: port 8080 is already used by listen"),
        ({"inbound_listen": "nowhere"}, "gw.yaml: inbound_listen: must be HOST:PORT, got 'nowhere'"),
        ({"routes": [route(query={"client_id": "${NOPE}"})]},
         "gw.yaml: routes[0].query.client_id: environment variable ${NOPE} is not set"),
        ({"routes": [route(query={"to ken": "x"})]},
         "gw.yaml: routes[0].query.to ken: must be a plain parameter name (letters, digits, ._~-)"),
        ({"routes": [route(query=[])]}, "gw.yaml: routes[0].query: must be a mapping of query parameter name to value"),
        ({"inbound": [inbound(auth={"basic": "no-colon"})]},
         'gw.yaml: inbound[0].auth.basic: must be "user:password", both non-empty'),
        ({"inbound": [inbound(auth={"token": "x"})]},
         "gw.yaml: inbound[0].auth.token: unknown key (expected one of basic)"),
        ({"inbound": [inbound(allow_from=["198.51.100.1/24"])]},
         "gw.yaml: inbound[0].allow_from[0]: not a network in CIDR notation "
         "(198.51.100.1/24 has host bits set)"),
        ({"inbound": [inbound(allow_from=[])]},
         "gw.yaml: inbound[0].allow_from: must be a non-empty list of networks (CIDR: 198.51.100.0/24)"),
        ({"inbound": [inbound(signing_secret="${SHORT}")]},
         "gw.yaml: inbound[0].signing_secret: must be at least 16 characters long"),
    ],
)  # fmt: skip
def test_issue20_errors_name_key_and_reason(data: dict[str, object], expected: str) -> None:
    errors = errors_for({"routes": [route()], **data}, SECRET_ENV)
    assert expected in errors, errors
    assert not pii.leaks("\n".join(errors))


def test_issue20_settings_build_and_stay_out_of_repr() -> None:
    config = parse_config(
        {
            "routes": [route(query={"token": "${TOKEN}"})],
            "inbound_listen": "0.0.0.0:8082",
            "inbound": [
                inbound(
                    auth={"basic": "${RELAY}"},
                    allow_from=["198.51.100.0/24"],
                    signing_secret="${SIGN}",
                )
            ],
        },
        source="gw.yaml",
        env=SECRET_ENV,
    )
    assert str(config.inbound_listen) == "0.0.0.0:8082"
    (ev,) = config.inbound
    assert ev.auth_basic == SECRET_ENV["RELAY"]
    assert [str(n) for n in ev.allow_from] == ["198.51.100.0/24"]
    assert config.routes[0].query == {"token": pii.MOMS_TOKEN}
    assert not pii.leaks(repr(config))
