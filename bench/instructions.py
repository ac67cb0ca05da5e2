"""``make instructions``: CPU instructions per request of gateway-proxy, A against B.

Wall-clock CPU on a shared VM drifts by more than a change costs. Instructions counted
by valgrind's callgrind do not: the same code and inputs give the same count whatever
the machine is doing. This runs ``gateway-proxy serve`` under callgrind against the
bench's nginx gateway (``bench.targets``), sends ``--requests`` requests of the four-reply
mix over one keep-alive connection, stops it with SIGTERM, and reads callgrind's total.
The same with no request gives the start-up and shutdown; the difference divided by
``--requests`` is the instructions one request costs, the log line and the metrics
included.

A side is ``TREE[:VARIANT]`` as in ``bench.ab`` (a git ref or ``.``, and a config variant
of ``bench.ab.VARIANTS``).

    python -m bench.instructions --a HEAD~3 --b .
"""

import argparse
import http.client
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench import ab, targets
from bench.common import free_port
from bench.procs import wait_until
from bench.replies import REPLIES

_COLLECTED = re.compile(r"Collected : (\d+)")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.instructions", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--a", default="HEAD", help="TREE[:VARIANT]; TREE a git ref or '.'")
    parser.add_argument("--b", default=".", help="TREE[:VARIANT] (default: the working tree)")
    parser.add_argument("--requests", type=int, default=2000, help="requests per counted run")
    return parser.parse_args(argv)


def _send(port: int, count: int, extra: dict[str, str] | None = None) -> None:
    """``count`` requests of the mix over one kept-alive connection, one at a time, with
    the ``extra`` headers (a variant's, e.g. its client key)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        for i in range(count):
            reply = REPLIES[i % len(REPLIES)]
            conn.request(
                "POST", reply.path, body=reply.request_body,
                headers={"Content-Type": reply.request_content_type, **(extra or {})},
            )  # fmt: skip
            response = conn.getresponse()
            response.read()
            if response.status == 407:  # a variant's key refused: the figure would be wrong
                raise RuntimeError("gateway-proxy answered 407: the variant's key is wrong")
    finally:
        conn.close()


def _count(lab: targets.Lab, side: ab.Side, requests: int) -> int:
    """callgrind's total for one run of the proxy serving ``requests`` requests."""
    port, admin = free_port(), free_port()
    instance = lab.root / f"callgrind-{port}"
    instance.mkdir()
    config = instance / "gateway-proxy.yaml"
    config.write_text(
        ab.VARIANTS[side.variant](targets.gateway_proxy_config(port, admin, lab.gateway.port))
    )
    command = [
        "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
        sys.executable, "-m", "proxy", "serve", "--config", str(config),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(side.tree)}
    log = instance / "stderr.log"
    with log.open("wb") as err, (instance / "stdout.log").open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=err, env=env)
        try:
            wait_until(lambda: _ready(proc, admin), timeout=300, interval=0.5)
            _send(port, requests, ab.VARIANT_HEADERS.get(side.variant))
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
    found = _COLLECTED.search(log.read_text(errors="replace"))
    if found is None:
        raise RuntimeError(f"no callgrind total in {log}")
    return int(found.group(1))


def _ready(proc: subprocess.Popen[bytes], admin: int) -> bool:
    if proc.poll() is not None:
        raise RuntimeError(f"gateway-proxy exited with {proc.returncode} under callgrind")
    try:
        conn = http.client.HTTPConnection("127.0.0.1", admin, timeout=5)
        conn.request("GET", "/readyz")
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False


def main(argv: Sequence[str] | None = None) -> int:
    ns = parse_args(argv)
    layout = targets.choose_layout(sorted(os.sched_getaffinity(0)))
    with tempfile.TemporaryDirectory(prefix="gateway-proxy-instructions-") as tmp:
        root = Path(tmp)
        os.chmod(root, 0o711)  # noqa: S103 - nginx workers ("nobody" under root) traverse it
        sides = [ab.side(spec, root / "trees") for spec in (ns.a, ns.b)]
        lab = targets.start_lab(root, layout)
        per_request: list[float] = []
        try:
            for side in sides:
                started = time.perf_counter()
                idle = _count(lab, side, 0)
                busy = _count(lab, side, ns.requests)
                per_request.append((busy - idle) / ns.requests)
                print(
                    f"{side.label}: {per_request[-1]:,.0f} instructions per request"
                    f" ({time.perf_counter() - started:.0f} s)",
                    file=sys.stderr,
                )
        finally:
            targets.stop_lab(lab)
            ab.remove_trees(root / "trees")
    a, b = per_request
    print(f"A = {ns.a}: {a:,.0f} instructions per request")
    print(f"B = {ns.b}: {b:,.0f} instructions per request")
    print(f"B/A = {b / a:.3f} ({(b - a) / a:+.1%})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
