"""The resend storm: every message resent at once, many times, through several proxies.

``keys`` messages, each with its own ``Idempotency-Key``, are each sent ``resends`` times
at the same moment, the copies spread over the proxies' URLs (two ``serve`` processes on
one Redis, or one ``serve --workers 2`` on one SQLite file: the ``serve`` processes are
the caller's). Each copy behaves as an app's retry loop: while the answer is retryable
(409 while the key's first request is in flight, or a shed 503) it waits for its
``Retry-After`` and sends again. The counting relay answers each send after a delay, so
the copies overlap the first one.

The verdict: the relay saw exactly ``keys`` sends; every copy of a message ended with the
same success (one message id per key); and every copy but the one sent got the kept
answer back (``Idempotent-Replayed: true``). A ``StormResult`` says each, ``ok`` all three.
"""

import asyncio
import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp

from bench.flow import ADMINS, Connection, split_url
from proxy.tools.sim.mm7 import submit_request


def split_base(url: str) -> str:
    """The proxy's base URL (``http://host:port``) of a URL under it."""
    host, port, _ = split_url(url)
    return f"http://{host}:{port}"


#: The longest one copy keeps retrying (a storm that cannot settle is a failure).
MAX_SECONDS = 120.0


@dataclass(frozen=True, slots=True)
class Final:
    """How one copy ended: its status, code, message id and whether it was a replay."""

    status: int
    code: str
    message_id: str | None
    replayed: bool
    attempts: int


@dataclass(slots=True)
class StormResult:
    """The storm's figures and verdict."""

    keys: int
    resends: int
    processes: str
    seconds: float = 0.0
    relay_sends: int = 0
    # A control run (no ledger): its figures show what the storm does without one; it has
    # no verdict.
    control: bool = False
    # The proxies' own count of failed ledger calls, by operation (their /metrics).
    ledger_errors: dict[str, float] = field(default_factory=dict)
    finals: list[tuple[int, Final]] = field(default_factory=list)  # (key index, final)

    @property
    def codes(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for _, final in self.finals:
            out[final.code] = out.get(final.code, 0) + 1
        return out

    @property
    def one_message_per_key(self) -> bool:
        ids: dict[int, set[str | None]] = {}
        for key, final in self.finals:
            ids.setdefault(key, set()).add(final.message_id)
        return len(ids) == self.keys and all(len(s) == 1 and None not in s for s in ids.values())

    @property
    def replays(self) -> int:
        return sum(final.replayed for _, final in self.finals)

    @property
    def ok(self) -> bool:
        return (
            self.relay_sends == self.keys
            and self.codes == {"OK": self.keys * self.resends}
            and self.one_message_per_key
            and self.replays == self.keys * (self.resends - 1)
        )

    def line(self) -> str:
        verdict = "figure only" if self.control else "ok" if self.ok else "FAILED"
        attempts = sum(f.attempts for _, f in self.finals)
        errors = {op: int(n) for op, n in self.ledger_errors.items() if n}
        return (
            f"{self.processes}: {self.keys} keys x {self.resends} resends -> relay saw "
            f"{self.relay_sends} sends (want {self.keys}); answers {json.dumps(self.codes)}, "
            f"{self.replays} replayed, {attempts} attempts in {self.seconds:.1f} s, "
            f"ledger errors {json.dumps(errors)}: {verdict}"
        )


async def ledger_errors(admins: Sequence[str]) -> dict[str, float]:
    """``gateway_proxy_ledger_errors_total`` by operation, added up over the proxies'
    admin URLs."""
    out: dict[str, float] = {}
    async with aiohttp.ClientSession() as http:
        for admin in admins:
            async with http.get(f"{admin}/metrics") as resp:
                text = await resp.text()
            for line in text.splitlines():
                if line.startswith("gateway_proxy_ledger_errors_total{"):
                    operation = line.split('operation="', 1)[1].split('"', 1)[0]
                    out[operation] = out.get(operation, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


async def one_copy(url: str, body: bytes, key: str) -> Final:
    """One app's copy of a message: send under ``key``, again while the answer is retryable."""
    host, port, path = split_url(url)
    conn = Connection(host, port)
    deadline = time.monotonic() + MAX_SECONDS
    attempts = 0
    try:
        while True:
            attempts += 1
            status, headers, content = await conn.exchange(path, body, {"Idempotency-Key": key})
            envelope = json.loads(content)
            if not envelope["retryable"] or time.monotonic() > deadline:
                return Final(
                    status,
                    envelope["code"],
                    envelope.get("data", {}).get("message_id"),
                    headers.get("idempotent-replayed") == "true",
                    attempts,
                )
            await asyncio.sleep(float(headers.get("retry-after", "1")))
    finally:
        if conn.writer is not None:
            conn.writer.close()


async def storm(urls: Sequence[str], keys: int, resends: int, processes: str) -> StormResult:
    """Send every key ``resends`` times at once over ``urls``. The caller fills
    ``relay_sends`` from the relay's count once its process has ended."""
    run = uuid.uuid4().hex[:12]
    result = StormResult(keys, resends, processes)
    copies = []
    for k in range(keys):
        body = submit_request("+15550001000", transaction_id=f"storm-{k}").encode()
        for r in range(resends):
            url = urls[(k + r) % len(urls)]
            copies.append((k, one_copy(url, body, f"storm-{run}-{k}")))
    began = time.perf_counter()
    finals = await asyncio.gather(*(copy for _, copy in copies))
    result.seconds = time.perf_counter() - began
    result.finals = [(k, final) for (k, _), final in zip(copies, finals, strict=True)]
    result.ledger_errors = await ledger_errors([ADMINS[split_base(url)] for url in set(urls)])
    return result


__all__ = ["Final", "StormResult", "one_copy", "storm"]
