"""``serve`` keeps out of memory what it does not run (idle RSS is a sidecar's cost).

Each check runs in a fresh interpreter: the test process has imported everything already.
"""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

_SERVE_PATH = """
import sys
from proxy import cli
args = cli.build_parser("serve").parse_args(["serve", "--config", sys.argv[1]])
from proxy.config import load_config
from proxy.server import create_app
create_app(load_config(args.config))
print("\\n".join(sorted(sys.modules)))
"""

# Neither the simulator, the demo, nor (without inbound routes) the callback side.
_NOT_FOR_SERVE = (
    "proxy.tools.sim",
    "proxy.tools.demo",
    "proxy.tools.demo_webhook",
    "proxy.inbound.handler",
    "proxy.inbound.mm7",
    "proxy.inbound.event",
    "proxy.inbound.answer",
    # Without a store: neither the store nor the redis client.
    "proxy.flow.store",
    "redis",
)


def _modules_after_serve_setup(config: Path) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", _SERVE_PATH, str(config)],
        capture_output=True, text=True, timeout=60, check=True, cwd=REPO,
    )  # fmt: skip
    return set(done.stdout.split())


def test_serve_without_inbound_routes_loads_no_simulator_demo_or_callback_code(
    tmp_path: Path,
) -> None:
    config = tmp_path / "proxy.yaml"
    config.write_text(
        "routes:\n"
        "  - {name: mms, path_prefix: /mm7, vendor: mm7, upstream: 'http://127.0.0.1:9/mm7'}\n"
        "  - {name: moms, path_prefix: /moms, vendor: moms, upstream: 'http://127.0.0.1:9/moms'}\n"
    )
    loaded = _modules_after_serve_setup(config)
    assert "proxy.server" in loaded  # the probe really built the app
    assert "proxy.inbound.tables" in loaded  # the catalog's delivery-status tables
    assert sorted(loaded & set(_NOT_FOR_SERVE)) == []


def test_a_config_with_inbound_routes_loads_the_callback_side() -> None:
    loaded = _modules_after_serve_setup(REPO / "config" / "demo.yaml")
    assert {"proxy.inbound.handler", "proxy.inbound.mm7", "proxy.inbound.event"} <= loaded
    assert "proxy.tools.sim" not in loaded


@pytest.mark.parametrize("name", ["build_event", "parse_callback", "Echo", "RETRY_CODES"])
def test_the_inbound_package_still_exports_each_name(name: str) -> None:
    import proxy.inbound

    assert getattr(proxy.inbound, name) is not None


def test_an_unknown_inbound_name_is_an_attribute_error() -> None:
    import proxy.inbound

    with pytest.raises(AttributeError, match="no_such_name"):
        _ = proxy.inbound.no_such_name


def test_a_config_with_a_store_loads_the_redis_client(tmp_path: Path) -> None:
    config = tmp_path / "proxy.yaml"
    config.write_text(
        "store: redis://127.0.0.1:9/0\n"
        "routes:\n"
        "  - {name: mms, path_prefix: /mm7, vendor: mm7, upstream: 'http://127.0.0.1:9/mm7',\n"
        "     rate_limit: {per_second: 5}}\n"
    )
    loaded = _modules_after_serve_setup(config)
    assert {"proxy.flow.store", "redis"} <= loaded
