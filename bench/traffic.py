"""``make demo-traffic``: a realistic mix of gateway traffic through the demo proxy.

Sends MM7 submits and MoMS calls to the proxy started by ``make demo`` (default
``http://127.0.0.1:8080``) at a modest rate for ``--duration`` seconds, so that
``/metrics`` and the dashboard have something to show: mostly successes, some vendor errors
(chosen by recipient number, so the simulator answers them deterministically) and a few
transport faults (``X-Sim-Fault``). It stops by itself after ``--duration`` seconds or
``--max-requests`` requests, whichever comes first, and prints the envelope codes it got.
Only loopback targets are accepted. With ``--keyed 0.5`` half of the requests carry a
fresh ``Idempotency-Key`` and an ``X-Callback-Data``, as apps that retry safely send them
(for a proxy with a ``ledger:``; README "Safe retries and delivery reports").

    python -m bench.traffic --duration 60 [--rate 10] [--proxy http://127.0.0.1:8080]
"""

import argparse
import asyncio
import random
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp

from proxy.tools.sim.mm7 import submit_request

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
MAX_IN_FLIGHT = 20


@dataclass(frozen=True)
class Scenario:
    """One kind of request and how often it is sent (relative weight)."""

    name: str
    weight: int
    vendor: str  # mm7 | moms
    recipient: str
    headers: dict[str, str] = field(default_factory=dict)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("mm7 success", 40, "mm7", "+15550001000"),
    Scenario("mm7 address error", 4, "mm7", "+15550002002"),
    Scenario("mm7 unknown recipient", 3, "mm7", "+15550002003"),
    Scenario("mm7 content refused", 2, "mm7", "+15550002004"),
    Scenario("mm7 rejected", 1, "mm7", "+15550003002"),
    Scenario("mm7 unavailable", 3, "mm7", "+15550004006"),
    Scenario("mm7 partial success", 1, "mm7", "+15550001100"),
    Scenario("moms success", 30, "moms", "15550001001"),
    Scenario("moms opted out", 4, "moms", "15550000606"),
    Scenario("moms invalid to", 3, "moms", "15550000436"),
    Scenario("moms blacklisted", 2, "moms", "15550000604"),
    Scenario("moms internal error", 1, "moms", "15550000500"),
    Scenario("html 502 page", 1, "mm7", "+15550001000", {"X-Sim-Fault": "html502"}),
    Scenario("reset mid-body", 1, "moms", "15550001001", {"X-Sim-Fault": "reset"}),
    Scenario("empty body", 1, "moms", "15550001001", {"X-Sim-Fault": "empty"}),
    Scenario("malformed xml", 1, "mm7", "+15550001000", {"X-Sim-Fault": "malformed"}),
    Scenario("gateway hangs", 1, "mm7", "+15550001000", {"X-Sim-Fault": "hang"}),
)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.traffic", description=__doc__)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds (default 60)")
    parser.add_argument("--rate", type=float, default=10.0, help="requests/second (default 10)")
    parser.add_argument("--max-requests", type=int, default=None, help="default duration*rate")
    parser.add_argument("--proxy", default="http://127.0.0.1:8080", help="the proxy's base URL")
    parser.add_argument("--seed", type=int, default=None, help="repeat the same sequence")
    parser.add_argument(
        "--keyed", type=float, default=0.0, help="share of requests with an Idempotency-Key"
    )
    ns = parser.parse_args(argv)
    host = urlsplit(ns.proxy).hostname or ""
    if host not in LOOPBACK:
        parser.error(f"--proxy must be a loopback address (got {host!r})")
    if ns.duration <= 0 or ns.rate <= 0:
        parser.error("--duration and --rate must be positive")
    if not 0 <= ns.keyed <= 1:
        parser.error("--keyed is a share: 0 to 1")
    return ns


async def send(
    session: aiohttp.ClientSession,
    base: str,
    scenario: Scenario,
    seq: int,
    key: str | None = None,
) -> str:
    """Send one request (under ``key`` when given); returns the envelope code (or the
    client-side error name)."""
    headers = {"X-Request-ID": f"traffic-{seq}", **scenario.headers}
    if key is not None:
        headers["Idempotency-Key"] = key
        headers["X-Callback-Data"] = f"traffic seq={seq}"
    try:
        if scenario.vendor == "mm7":
            body = submit_request(scenario.recipient, transaction_id=f"t{seq}")
            headers["Content-Type"] = "text/xml"
            request = session.post(f"{base}/mm7", data=body, headers=headers)
        else:
            params = {"campaign_id": "1", "from": "21534", "to": scenario.recipient,
                      "message": "hello", "format": "json"}  # fmt: skip
            request = session.get(f"{base}/moms/transaction.send", params=params, headers=headers)
        async with request as response:
            envelope = await response.json(content_type=None)
            return str(envelope.get("code", "?"))
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return f"client:{type(exc).__name__}"


async def run(ns: argparse.Namespace) -> Counter[str]:
    rng = random.Random(ns.seed)
    limit = ns.max_requests or int(ns.duration * ns.rate)
    weights = [s.weight for s in SCENARIOS]
    results: Counter[str] = Counter()
    gate = asyncio.Semaphore(MAX_IN_FLIGHT)
    base = ns.proxy.rstrip("/")
    run_id = uuid.uuid4().hex[:12]  # keys of another run (on the same ledger) never collide

    async def one(scenario: Scenario, seq: int, keyed: bool) -> None:
        key = f"traffic-{run_id}-{seq}" if keyed else None
        try:
            results[await send(session, base, scenario, seq, key)] += 1
        finally:
            gate.release()

    timeout = aiohttp.ClientTimeout(total=30)
    start = time.monotonic()
    async with aiohttp.ClientSession(timeout=timeout) as session, asyncio.TaskGroup() as tasks:
        for seq in range(limit):
            due = start + seq / ns.rate
            if due - start >= ns.duration:
                break
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            await gate.acquire()  # bounded in flight: a hanging gateway cannot pile up work
            scenario = rng.choices(SCENARIOS, weights)[0]
            keyed = ns.keyed > 0 and rng.random() < ns.keyed  # no draw: seeds keep their mix
            tasks.create_task(one(scenario, seq, keyed), name=f"req-{seq}")
    return results


def main(argv: Sequence[str] | None = None) -> int:
    ns = parse_args(argv)
    print(f"sending traffic to {ns.proxy} for {ns.duration:g}s at {ns.rate:g} req/s ...")
    try:
        results = asyncio.run(run(ns))
    except KeyboardInterrupt:
        return 130
    total = sum(results.values())
    print(f"{total} requests; envelope codes:")
    for code, count in results.most_common():
        print(f"  {code:<28} {count}")
    if total and all(code.startswith("client:") for code in results):
        print("no answer from the proxy: is `make demo` running?", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
