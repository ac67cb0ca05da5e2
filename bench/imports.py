"""Where gateway-proxy's idle RSS goes: the resident memory each import adds.

A fresh interpreter imports what ``gateway-proxy serve`` imports (the CLI, ``proxy.process.serve``,
uvloop), loads a config and builds the app, recording the RSS before and after each
module's body runs. A module's **own** cost is its growth minus that of the imports it
triggered; costs are added up per top-level package (``proxy`` modules one by one).
Shared libraries count when a module loads them (``ssl`` brings libcrypto).

    python -m bench.imports [--top 25]

RSS grows in pages and allocator arenas, so one module's figure is rough (a few hundred
KiB either way); the package sums and the total are what to read.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

# Runs in the fresh interpreter: a meta-path finder wraps each module's exec_module.
_PROBE = r"""
import importlib.abc, json, sys

def rss_kib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4

stack, own = [], {}

class Recorder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is None:
                continue
            loader = spec.loader
            if loader is not None and hasattr(loader, "exec_module"):
                run = loader.exec_module
                def exec_module(module, run=run, name=name):
                    stack.append([name, rss_kib(), 0])
                    try:
                        run(module)
                    finally:
                        name_, start, children = stack.pop()
                        grew = rss_kib() - start
                        own[name_] = own.get(name_, 0) + grew - children
                        if stack:
                            stack[-1][2] += grew
                try:
                    loader.exec_module = exec_module
                except (AttributeError, TypeError):
                    pass
            return spec
        return None

start = rss_kib()
sys.meta_path.insert(0, Recorder())
from proxy import cli
cli.build_parser("serve")
import proxy.process.serve, uvloop
from proxy.config import load_config
from proxy.server import create_app
imported = rss_kib()
create_app(load_config(sys.argv[1]))
print(json.dumps({"interpreter_kib": start, "imports_kib": imported - start,
                  "app_kib": rss_kib() - imported, "own_kib": own}))
"""

_CONFIG = """\
routes:
  - {name: mms, path_prefix: /mm7, vendor: mm7, upstream: "http://127.0.0.1:9/mm7"}
  - {name: moms, path_prefix: /moms, vendor: moms, upstream: "http://127.0.0.1:9/moms"}
"""


def by_package(own_kib: dict[str, int]) -> dict[str, int]:
    """Modules' own KiB added up per top-level package; ``proxy`` modules stay apart."""
    totals: dict[str, int] = {}
    for name, kib in own_kib.items():
        key = name if name.startswith("proxy.") or name == "proxy" else name.split(".")[0]
        totals[key] = totals.get(key, 0) + kib
    return dict(sorted(totals.items(), key=lambda item: (-item[1], item[0])))


def measure(config_text: str = _CONFIG) -> dict[str, object]:
    """Run the probe in a fresh interpreter; its figures with ``packages`` added."""
    with tempfile.TemporaryDirectory(prefix="gateway-proxy-imports-") as tmp:
        config = Path(tmp) / "proxy.yaml"
        config.write_text(config_text)
        done = subprocess.run(
            [sys.executable, "-c", _PROBE, str(config)],
            capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
    figures: dict[str, object] = json.loads(done.stdout)
    own = figures.pop("own_kib")
    assert isinstance(own, dict)
    figures["packages_kib"] = by_package(own)
    return figures


def render(figures: dict[str, object], top: int) -> str:
    packages = figures["packages_kib"]
    assert isinstance(packages, dict)
    lines = [
        f"interpreter {_mb(figures['interpreter_kib'])}, imports {_mb(figures['imports_kib'])},"
        f" config + catalog + app {_mb(figures['app_kib'])}",
        "",
        f"{'MB':>6}  import (own RSS, summed per package)",
    ]
    lines += [f"{kib / 1024:>6.2f}  {name}" for name, kib in list(packages.items())[:top]]
    return "\n".join(lines)


def _mb(kib: object) -> str:
    assert isinstance(kib, int)
    return f"{kib / 1024:.1f} MB"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.imports", description=__doc__)
    parser.add_argument("--top", type=int, default=25)
    ns = parser.parse_args(argv)
    print(render(measure(), ns.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
