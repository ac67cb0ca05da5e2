"""Property tests of the config loader: any input gives a Config or precise errors.

``parse_config`` gets mutated valid configs and random YAML values; ``load_config`` gets
the same written out as YAML, mutated YAML text, and random bytes. Whatever it is given,
the loader returns a ``Config`` or raises ``ConfigError`` whose errors are each one line
``file: key: reason`` (or ``file: reason`` for a file that is not UTF-8 YAML at all), and
never names a value that came from the environment (those hold credentials). Any other
exception is a bug. The catalog loader has the same property in tests/test_catalog_load.py.

The examples per test follow GATEWAY_PROXY_FUZZ_EXAMPLES (``make fuzz`` raises it).
"""

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from proxy.config import Config, ConfigError, load_config, parse_config
from tests import pii
from tests.test_vendors_fuzz import FUZZ

ROOT = Path(__file__).resolve().parent.parent
# Environment values are secrets: none may be quoted back in an error.
ENV = {
    "MM7_BASIC_AUTH": pii.SECRETS[2],
    "GW_TOKEN": pii.SECRETS[0],
    "GW_URL": f"ftp://user:{pii.SECRETS[3]}@gw.invalid/x",
    "GW_QUERY": f"?token={pii.SECRETS[1]}",
    "EMPTY": "",
}
ENV_SECRETS = (pii.SECRETS[2], pii.SECRETS[0], pii.SECRETS[3], pii.SECRETS[1])
# A valid config using every section, with ${VAR}s like a deployment has.
BASE: dict[str, Any] = {
    **yaml.safe_load((ROOT / "config" / "gateway-proxy.yaml").read_text(encoding="utf-8")),
    "pool": {"limit": 8, "limit_per_host": 8, "keepalive_seconds": 15},
    "shutdown": {"drain_seconds": 5},
}
BASE["routes"][1]["headers"] = {"X-Token": "${GW_TOKEN}", "X-Opt": "${EMPTY:-none}"}
# Where a file-level problem has no key: what read_yaml reports.
FILE_REASONS = ("not UTF-8 text", "not valid YAML", "cannot read")

interesting_text = st.sampled_from(
    [
        "${MM7_BASIC_AUTH}", "${GW_TOKEN}", "${GW_URL}", "http://${GW_TOKEN}/x",
        "https://gw.invalid/${GW_QUERY}", "${EMPTY}", "${NOPE}", "${NOPE:-d}", "${",
        "http://gw.invalid:99999/", "[::1]:80", "127.0.0.1:65536", ":8080", "0.0.0.0:0",
        "a" * 300, "/" + "a/" * 200, "\x00", "a\nb", "nan", "mm7", "moms", "passthrough",
        "/mm7", "/", "", " ", "-1", "1e309",
    ]
)  # fmt: skip
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | interesting_text
)
yaml_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=8) | interesting_text, inner, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def mutated_configs(draw: st.DrawFn) -> Any:
    """The base config with a few values anywhere in it replaced, removed or added."""
    data: Any = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 4))):
        node: Any = data
        while isinstance(node, dict | list) and node:
            keys = list(node) if isinstance(node, dict) else list(range(len(node)))
            key = draw(st.sampled_from(keys))
            if not isinstance(node[key], dict | list) or draw(st.integers(0, 3)) == 0:
                action = draw(st.sampled_from(["replace", "delete", "add"]))
                if action == "delete" and isinstance(node, dict):
                    del node[key]
                elif action == "add" and isinstance(node, dict):
                    node[draw(st.text(max_size=8) | interesting_text)] = draw(yaml_values)
                elif action == "add" and isinstance(node, list):
                    node.append(draw(yaml_values))
                else:
                    node[key] = draw(yaml_values)
                break
            node = node[key]
    return data


def check_errors(errors: list[str], source: str) -> None:
    """Each error is one line, ``source: key: reason`` or ``source: <file reason>``."""
    assert errors, "a ConfigError must list its problems"
    for error in errors:
        assert "\n" not in error, f"an error spans lines: {error!r}"
        assert error.startswith(f"{source}: "), error
        rest = error[len(source) + 2 :]
        assert rest.startswith(FILE_REASONS) or ": " in rest, error
        assert not [s for s in ENV_SECRETS if s in error], f"a secret in: {error!r}"


def check(source: str, load: Any) -> None:
    try:
        config = load()
    except ConfigError as exc:
        check_errors(exc.errors, source)
    else:
        assert isinstance(config, Config)
        assert not [s for s in ENV_SECRETS if s in repr(config)]


@FUZZ
@given(data=mutated_configs() | yaml_values)
@example(data={**BASE, "catalog": "a" * 300})
@example(data={**BASE, "routes": [{**BASE["routes"][0], "upstream": "${GW_URL}"}]})
@example(data={**BASE, "routes": [{**BASE["routes"][0], "upstream": "http://x/${GW_QUERY}"}]})
@example(data={**BASE, "a\nb": 1})
def test_any_config_data_parses_or_gets_precise_errors(data: Any) -> None:
    check("gw.yaml", lambda: parse_config(data, source="gw.yaml", env=ENV))


@st.composite
def mutated_text(draw: st.DrawFn) -> bytes:
    """A config dumped as YAML, cut short and with a few bytes overwritten or inserted."""
    text = yaml.safe_dump(draw(mutated_configs()), allow_unicode=True).encode()
    text = text[: draw(st.integers(0, len(text)))] if draw(st.booleans()) else text
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(text)))
        piece = draw(st.sampled_from([b":", b"- ", b"{", b"[", b"\t", b"&a", b"*a", b"!!python/name:os.system", b"\xff", b"\n  ", b"'", b'"', b"%", b"---\n"]))  # fmt: skip
        text = text[:at] + piece + text[at + draw(st.integers(0, 2)) :]
    return text


@pytest.fixture(scope="module")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "gw.yaml"


@FUZZ
@given(
    raw=mutated_text() | st.binary(max_size=256) | yaml_values.map(yaml.safe_dump).map(str.encode)
)
@example(raw=b"\xff\xfe\x00")
@example(raw=b"routes: [\n")
@example(raw=b"routes: []\nroutes: []\n")
@example(raw=b"!!python/object/apply:os.system ['true']\n")
def test_any_config_file_loads_or_gets_precise_errors(config_file: Path, raw: bytes) -> None:
    config_file.write_bytes(raw)
    check(str(config_file), lambda: load_config(config_file, env=ENV))
