"""Endurance: a real ``gateway-proxy serve`` under sustained load stays correct and flat.

Two real processes on loopback: the gateway simulator (``gateway-proxy simulate --mix
config/sim-mix.yaml --seed N``: mostly successes, vendor errors and every transport fault
of the mix, hangs and resets included) and the proxy in front of it with routes ``mm7``
and ``moms`` and a small pool (8 connections) driven by 64 concurrent clients, far more
than the pool. Requests are built like bench/traffic.py builds them.

It checks that every request was answered (no client-side error or timeout), with a valid
envelope; that ``gateway_proxy_responses_total`` summed over all its series and the log's
``request`` lines each equal the requests sent; and that open file descriptors and RSS
(``/proc/PID``) stay flat between half-way and the end (fds +10 at most, RSS +15% at
most). The figures are printed (``pytest -s``, ``make soak``).

It runs GATEWAY_PROXY_SOAK_SECONDS (default 20) or GATEWAY_PROXY_SOAK_REQUESTS (default
50000) requests, whichever ends first.
"""

import asyncio
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import aiohttp
import jsonschema
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from proxy.tools.sim.mm7 import submit_request
from tests.conftest import ROOT, validate_envelope

SECONDS = float(os.environ.get("GATEWAY_PROXY_SOAK_SECONDS", "20"))
MAX_REQUESTS = int(os.environ.get("GATEWAY_PROXY_SOAK_REQUESTS", "50000"))
CONCURRENCY = 64
POOL = 8
SEED = 20261201
START_GUARD_S = 30.0  # hang guards only: a passing run never gets near them
REQUEST_GUARD_S = 30.0
MAX_FD_GROWTH = 10
MAX_RSS_GROWTH = 0.15

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def command(*args: str) -> list[str]:
    """The installed ``gateway-proxy`` command beside this Python, else ``-m proxy``."""
    script = Path(sys.executable).with_name("gateway-proxy")
    if script.exists():
        return [str(script), *args]
    found = shutil.which("gateway-proxy")
    return [found, *args] if found else [sys.executable, "-m", "proxy", *args]


@dataclass(frozen=True)
class Usage:
    """What the proxy process holds: open file descriptors and resident memory."""

    fds: int
    rss_kib: int

    @classmethod
    def of(cls, pid: int) -> "Usage":
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
        rss = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
        return cls(fds, int(rss.split()[1]))

    def __str__(self) -> str:
        return f"{self.fds} fds, {self.rss_kib / 1024:.1f} MiB RSS"


@dataclass
class Tally:
    sent: int = 0
    unanswered: Counter[str] = field(default_factory=Counter)
    invalid: list[str] = field(default_factory=list)
    codes: Counter[str] = field(default_factory=Counter)
    usage: dict[str, Usage] = field(default_factory=dict)


@contextmanager
def process(argv: list[str], log: IO[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``argv`` with its output to ``log``; SIGTERM it (then SIGKILL) on the way out."""
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=START_GUARD_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def wait_until_up(
    session: aiohttp.ClientSession, url: str, procs: list[subprocess.Popen[bytes]]
) -> None:
    async with asyncio.timeout(START_GUARD_S):
        while True:
            assert all(p.poll() is None for p in procs), "a process exited during start-up"
            try:
                async with session.get(url) as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)


def proxy_config(path: Path, app: int, admin: int, sim: int) -> None:
    timeout = {"connect": 0.5, "total": 0.5}  # short: the mix's hangs hold a connection
    routes = [
        {"name": name, "path_prefix": f"/{name}", "vendor": name, "timeout": timeout,
         "upstream": f"http://127.0.0.1:{sim}/{name}"}
        for name in ("mm7", "moms")
    ]  # fmt: skip
    config = {
        "listen": f"127.0.0.1:{app}",
        "admin_listen": f"127.0.0.1:{admin}",
        "log": {"level": "info", "format": "json"},
        "shutdown": {"drain_seconds": 2},
        "pool": {"limit": POOL, "limit_per_host": POOL},
        "routes": routes,
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")


# Like bench/traffic.py: recipients the mix decides for (their last four digits are no
# vendor code), and some that name a code of their own.
MM7_RECIPIENTS = ("+15550009999", "+15550009999", "+15550009999", "+15550002002")
MOMS_RECIPIENTS = ("15550009999", "15550009999", "15550009999", "15550000606")


async def one_request(
    session: aiohttp.ClientSession, base: str, rng: random.Random, seq: int, tally: Tally
) -> None:
    headers = {"X-Request-ID": f"soak-{seq}"}
    if rng.random() < 0.5:
        body = submit_request(rng.choice(MM7_RECIPIENTS), transaction_id=f"t{seq}")
        headers["Content-Type"] = "text/xml"
        request = session.post(f"{base}/mm7", data=body, headers=headers)
    else:
        params = {"campaign_id": "1", "from": "21534", "to": rng.choice(MOMS_RECIPIENTS),
                  "message": "hello", "format": "json"}  # fmt: skip
        request = session.get(f"{base}/moms/transaction.send", params=params, headers=headers)
    try:
        async with request as response:
            raw = await response.read()
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        tally.unanswered[type(exc).__name__] += 1
        return
    try:
        envelope = json.loads(raw)
        validate_envelope(envelope)
        assert envelope["status"] == status, f"HTTP {status}, envelope {envelope['status']}"
    except (ValueError, AssertionError, jsonschema.ValidationError) as exc:
        tally.invalid.append(f"soak-{seq}: {exc}"[:300])
        return
    tally.codes[envelope["code"]] += 1


async def drive(base: str, pid: int, tally: Tally) -> None:
    """CONCURRENCY workers send requests until the time or the request budget runs out."""
    started = time.monotonic()
    rng = random.Random(SEED)
    timeout = aiohttp.ClientTimeout(total=REQUEST_GUARD_S)
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:

        async def worker() -> None:
            while time.monotonic() - started < SECONDS and tally.sent < MAX_REQUESTS:
                progress = max((time.monotonic() - started) / SECONDS, tally.sent / MAX_REQUESTS)
                if progress >= 0.5 and "half-way" not in tally.usage:
                    tally.usage["half-way"] = Usage.of(pid)
                tally.sent += 1
                await one_request(session, base, rng, tally.sent, tally)

        async with asyncio.TaskGroup() as workers:
            for i in range(CONCURRENCY):
                workers.create_task(worker(), name=f"soak-worker-{i}")
        tally.usage["end"] = Usage.of(pid)  # client connections still open, as half-way


async def responses_total(session: aiohttp.ClientSession, admin: str) -> float:
    async with session.get(f"{admin}/metrics") as resp:
        text = await resp.text()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "gateway_proxy_responses_total"
    )


def report(tally: Tally, elapsed: float, metric_total: float, log_total: int) -> str:
    usage = tally.usage
    lines = [
        f"soak: {tally.sent} requests in {elapsed:.1f} s ({tally.sent / elapsed:.0f}/s), "
        f"concurrency {CONCURRENCY}, pool {POOL}",
        f"  unanswered {sum(tally.unanswered.values())} {dict(tally.unanswered)}, "
        f"invalid envelopes {len(tally.invalid)}, "
        f"responses_total {metric_total:.0f}, request log lines {log_total}",
        f"  start:    {usage['start']}",
        f"  half-way: {usage['half-way']}",
        f"  end:      {usage['end']}",
        "  codes: " + ", ".join(f"{code} {n}" for code, n in tally.codes.most_common()),
    ]
    return "\n".join(lines)


async def test_a_soak_through_a_real_proxy_stays_correct_and_flat(tmp_path: Path) -> None:
    app, admin, sim = free_port(), free_port(), free_port()
    config = tmp_path / "soak.yaml"
    proxy_config(config, app, admin, sim)
    sim_argv = command("simulate", "--listen", f"127.0.0.1:{sim}", "--mix",
                       str(ROOT / "config" / "sim-mix.yaml"), "--seed", str(SEED))  # fmt: skip
    proxy_log = tmp_path / "proxy.log"
    tally = Tally()
    with (
        (tmp_path / "sim.log").open("wb") as sim_out,
        proxy_log.open("wb") as proxy_out,
        process(sim_argv, sim_out) as simulator,
        process(command("serve", "--config", str(config)), proxy_out) as proxy,
    ):
        async with aiohttp.ClientSession() as http:
            await wait_until_up(http, f"http://127.0.0.1:{sim}/healthz", [simulator, proxy])
            await wait_until_up(http, f"http://127.0.0.1:{admin}/readyz", [simulator, proxy])
            tally.usage["start"] = Usage.of(proxy.pid)
            began = time.monotonic()
            async with asyncio.timeout(SECONDS + 120):  # a hang guard
                await drive(f"http://127.0.0.1:{app}", proxy.pid, tally)
            elapsed = time.monotonic() - began
            metric_total = await responses_total(http, f"http://127.0.0.1:{admin}")
        proxy.send_signal(signal.SIGTERM)
        assert proxy.wait(timeout=START_GUARD_S) == 0
    with proxy_log.open(encoding="utf-8") as lines:
        log_total = sum('"event":"request"' in line for line in lines)
    print("\n" + report(tally, elapsed, metric_total, log_total))
    half, end = tally.usage["half-way"], tally.usage["end"]
    assert tally.sent >= 1000, "too few requests for a soak"
    assert not tally.unanswered, tally.unanswered
    assert not tally.invalid, tally.invalid[:5]
    assert metric_total == tally.sent
    assert log_total == tally.sent
    assert end.fds - half.fds <= MAX_FD_GROWTH, (half, end)
    assert end.rss_kib <= half.rss_kib * (1 + MAX_RSS_GROWTH), (half, end)
