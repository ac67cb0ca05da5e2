"""What metrics and logging add to the per-request cost.

Starts the gateway simulator and the proxy as separate processes, drives the same
request mix through the proxy with observability on and off, and reports the proxy
process's CPU time per request and its throughput, each as an on/off ratio.

    python -m bench.overhead [--requests N] [--concurrency C] [--rounds R]

"off" means no Prometheus collectors and logging filtered above the traffic's levels;
"on" is the production setting (metrics + one JSON log line per request, to /dev/null).
Requests go one at a time by default, so both variants see the same per-request work
(with many in flight, batching on a 2-core machine shared with the simulator and the
load generator swamps a difference this size). The end-to-end figures are paired with an
in-process measurement of the two observability calls themselves.
"""

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import (
    cpu_seconds,
    free_port,
    report,
    start_simulator,
    stop_process,
    wait_http,
)
from proxy.tools.sim.mm7 import submit_request

SUBMIT_REQ = submit_request("+15550001000", transaction_id="bench-1").encode()
MOMS_QUERY = "client_id=1&token=t&campaign_id=1&from=21534&to=15550000001&message=hi&format=json"


def _config(sim_port: int, port: int, admin_port: int) -> str:
    return f"""
listen: 127.0.0.1:{port}
admin_listen: 127.0.0.1:{admin_port}
routes:
  - {{name: mms, path_prefix: /mm7, vendor: mm7, upstream: "http://127.0.0.1:{sim_port}/mm7"}}
  - {{name: moms, path_prefix: /moms, vendor: moms, upstream: "http://127.0.0.1:{sim_port}/moms"}}
"""


def _start_proxy(config_path: Path, observe: bool) -> subprocess.Popen[bytes]:
    code = (
        "import sys; from proxy.config import load_config;"
        "from proxy.observability.logs import configure_logging;"
        "from proxy.process.serve import run;"
        "on = sys.argv[2] == 'on'; configure_logging('info' if on else 'error', 'json');"
        "run(load_config(sys.argv[1]), metrics_enabled=on)"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code, str(config_path), "on" if observe else "off"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def _drive(base: str, requests: int, concurrency: int) -> float:
    """Send ``requests`` requests (MM7 submits and MoMS sends, half each); return seconds."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(requests):
        queue.put_nowait(i)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                if i % 2:
                    async with session.post(f"{base}/mm7", data=SUBMIT_REQ) as resp:
                        await resp.read()
                else:
                    url = f"{base}/moms/transaction.send?{MOMS_QUERY}"
                    async with session.get(url) as resp:
                        await resp.read()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started


def measure(requests: int, concurrency: int, rounds: int) -> dict[str, Any]:
    sim_port = free_port()
    sim = start_simulator(sim_port)
    results: dict[str, list[tuple[float, float]]] = {"off": [], "on": []}
    try:
        wait_http(f"http://127.0.0.1:{sim_port}/moms/system.ping")
        with tempfile.TemporaryDirectory() as tmp:
            for _ in range(rounds):
                for variant in ("off", "on"):
                    port, admin = free_port(), free_port()
                    path = Path(tmp) / f"{variant}.yaml"
                    path.write_text(_config(sim_port, port, admin))
                    proc = _start_proxy(path, observe=variant == "on")
                    try:
                        wait_http(f"http://127.0.0.1:{admin}/healthz")
                        base = f"http://127.0.0.1:{port}"
                        asyncio.run(_drive(base, min(500, requests), concurrency))  # warm-up
                        cpu0 = cpu_seconds(proc.pid)
                        wall = asyncio.run(_drive(base, requests, concurrency))
                        cpu = cpu_seconds(proc.pid) - cpu0
                        results[variant].append((cpu / requests, requests / wall))
                    finally:
                        stop_process(proc)
    finally:
        stop_process(sim)
    cpu_off = statistics.median(r[0] for r in results["off"])
    cpu_on = statistics.median(r[0] for r in results["on"])
    rps_off = statistics.median(r[1] for r in results["off"])
    rps_on = statistics.median(r[1] for r in results["on"])
    return {
        "benchmark": "observability_overhead",
        "requests_per_round": requests,
        "concurrency": concurrency,
        "rounds": rounds,
        "cpu_us_per_request_off": round(cpu_off * 1e6, 1),
        "cpu_us_per_request_on": round(cpu_on * 1e6, 1),
        "cpu_per_request_ratio_on_off": round(cpu_on / cpu_off, 3),
        "throughput_rps_off": round(rps_off, 1),
        "throughput_rps_on": round(rps_on, 1),
        "throughput_ratio_on_off": round(rps_on / rps_off, 3),
    }


def micro(calls: int = 20_000) -> dict[str, float]:
    """Microseconds per call of ``Metrics.observe`` and of the request log line."""
    from prometheus_client import CollectorRegistry

    from proxy.codes.catalog import load_catalog
    from proxy.codes.classify import Outcome
    from proxy.config import parse_config
    from proxy.observability.logs import configure_logging
    from proxy.observability.metrics import Metrics
    from proxy.observability.record import RequestRecord, log_request

    catalog = load_catalog()
    config = parse_config(
        {
            "routes": [
                {"name": "mms", "path_prefix": "/mm7", "vendor": "mm7", "upstream": "http://x/"}
            ]
        },
        env={},
    )
    metrics = Metrics(CollectorRegistry(), config.routes, catalog)
    outcome = Outcome(
        code=catalog["RECIPIENT_OPTED_OUT"], vendor="moms", vendor_code="606",
        vendor_code_label="606", message="User opted out.", http_status=200,
        detail="moms status 606: User opted out.",
    )  # fmt: skip
    record = RequestRecord(
        request_id="628426514c0f4bafbcd1915281152b01", trace_id=None, route="mms",
        vendor="moms", method="GET", status=422, outcome=outcome, duration_s=0.0031,
        path=f"/moms/transaction.send?{MOMS_QUERY}", upstream_duration_s=0.0025,
        bytes_in=0, bytes_out=476,
    )  # fmt: skip
    with open(os.devnull, "w") as devnull:
        configure_logging("info", "json", stream=devnull)
        started = time.perf_counter()
        for _ in range(calls):
            metrics.observe(
                "mms", "mm7", outcome, duration_s=0.003, upstream_duration_s=0.002, trace_id=None
            )
        metrics_us = (time.perf_counter() - started) / calls * 1e6
        started = time.perf_counter()
        for _ in range(calls):
            log_request(record)
        log_us = (time.perf_counter() - started) / calls * 1e6
    return {"metrics_us_per_request": round(metrics_us, 1), "log_us_per_request": round(log_us, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    result = measure(args.requests, args.concurrency, args.rounds)
    result.update(micro())
    observe_us = result["metrics_us_per_request"] + result["log_us_per_request"]
    result["observe_share_of_proxy_cpu_off"] = round(
        observe_us / result["cpu_us_per_request_off"], 3
    )
    report(result)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    raise SystemExit(main())
