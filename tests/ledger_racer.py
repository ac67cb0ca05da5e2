"""One racer of the ledger race tests: ``python -m tests.ledger_racer``, in its own process.

It opens the ledger (``--sqlite PATH`` or ``--redis URL``), waits until the file ``--go``
exists (so that every racer starts at once), calls ``begin`` on each of ``--keys`` keys as
fast as it can (``--copies`` at once per key, a resend storm), and prints one JSON object:
key → ["started" | "in_flight" | "done", ...].
"""

import argparse
import asyncio
import json
import time
from pathlib import Path

from proxy.ledger import Done, InFlight, Ledger, Scope, Started
from proxy.ledger.redis_ledger import RedisLedger
from proxy.ledger.sqlite_ledger import SqliteLedger


def _wait_for(go: Path) -> None:
    deadline = time.monotonic() + 30
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.001)


async def race(ns: argparse.Namespace) -> dict[str, list[str]]:
    ledger: Ledger
    if ns.sqlite:
        ledger = await SqliteLedger.open(ns.sqlite, busy_timeout=10.0)
    else:
        ledger = RedisLedger.from_url(ns.redis, timeout=5.0, prefix=ns.prefix)
    try:
        await ledger.ping()
        await asyncio.to_thread(_wait_for, Path(ns.go))
        kinds = {Started: "started", InFlight: "in_flight", Done: "done"}
        outcomes: dict[str, list[str]] = {}
        for i in range(ns.keys):
            scope = Scope("anonymous", "mms", f"key-{i}")
            results = await asyncio.gather(*(ledger.begin(scope, 60.0) for _ in range(ns.copies)))
            outcomes[f"key-{i}"] = [kinds[type(result)] for result in results]
        return outcomes
    finally:
        await ledger.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sqlite")
    parser.add_argument("--redis")
    parser.add_argument("--prefix", default="race:")
    parser.add_argument("--go", required=True)
    parser.add_argument("--keys", type=int, default=100)
    parser.add_argument("--copies", type=int, default=1, help="concurrent begins per key")
    print(json.dumps(asyncio.run(race(parser.parse_args()))), flush=True)


if __name__ == "__main__":
    main()
