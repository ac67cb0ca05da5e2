"""One racer of the ledger race tests: ``python -m tests.ledger_racer``, in its own process.

It opens the ledger (``--sqlite PATH`` or ``--redis URL``), waits until the file ``--go``
exists (so that every racer starts at once), calls ``begin`` on each of ``--keys`` keys as
fast as it can, and prints one JSON object: key → "started" | "in_flight" | "done".
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


async def race(ns: argparse.Namespace) -> dict[str, str]:
    ledger: Ledger
    if ns.sqlite:
        ledger = await SqliteLedger.open(ns.sqlite, busy_timeout=10.0)
    else:
        ledger = RedisLedger.from_url(ns.redis, timeout=5.0, prefix=ns.prefix)
    try:
        await ledger.ping()
        await asyncio.to_thread(_wait_for, Path(ns.go))
        outcomes: dict[str, str] = {}
        for i in range(ns.keys):
            result = await ledger.begin(Scope("anonymous", "mms", f"key-{i}"), 60.0)
            kinds = {Started: "started", InFlight: "in_flight", Done: "done"}
            outcomes[f"key-{i}"] = kinds[type(result)]
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
    print(json.dumps(asyncio.run(race(parser.parse_args()))), flush=True)


if __name__ == "__main__":
    main()
