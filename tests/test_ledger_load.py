"""The ledger under a burst: more calls at once than the Redis client has connections,
and a finish that fails once. Neither may let a key be sent twice."""

import asyncio
from pathlib import Path
from typing import Any

from proxy.ledger import Scope, Started, StoredAnswer
from proxy.ledger.redis_ledger import MAX_CONNECTIONS, RedisLedger
from tests.redis_server import RedisServer

BURST = MAX_CONNECTIONS * 4


async def test_a_burst_past_the_pool_waits_for_connections_instead_of_failing(
    tmp_path: Path,
) -> None:
    with RedisServer(tmp_path / "redis") as redis:
        ledger = RedisLedger.from_url(redis.url, timeout=2.0)
        try:
            scopes = [Scope("anonymous", "mms", f"k{i}") for i in range(BURST)]
            begun = await asyncio.gather(*(ledger.begin(s, 30) for s in scopes))
            assert all(isinstance(b, Started) for b in begun)
            answer = StoredAnswer(200, (("Content-Type", "application/json"),), b"{}")
            kept = await asyncio.gather(*(ledger.finish(s, "sha256:x", answer, 30) for s in scopes))
            assert all(kept)
        finally:
            await ledger.close()


async def test_a_finish_that_fails_once_is_tried_again(tmp_path: Path) -> None:
    """The stage's keep(): one failed finish (a blip) is retried, so the answer is kept
    and a resend is replayed instead of sent again when the marker expires."""
    from proxy.config import LedgerSettings
    from proxy.ledger import LedgerUnavailable
    from proxy.ledger.sqlite_ledger import SqliteLedger
    from proxy.server.idempotency import BodyHash, Claim, Stage
    from tests.conftest import make_config

    ledger = await SqliteLedger.open(tmp_path / "ledger.sqlite3")
    real_finish = ledger.finish
    calls: list[int] = []

    async def flaky(*args: Any) -> bool:
        calls.append(1)
        if len(calls) == 1:
            raise LedgerUnavailable("sqlite finish: database is locked")
        return await real_finish(*args)

    ledger.finish = flaky  # type: ignore[method-assign,assignment]
    try:
        route = make_config(
            {"name": "m", "path_prefix": "/m", "upstream": "http://gw.test/"}
        ).routes[0]
        stage = Stage(ledger, None, route, LedgerSettings())
        scope = Scope("anonymous", "m", "k")
        started = await ledger.begin(scope, 30)
        assert isinstance(started, Started)
        claim = Claim(scope, started, BodyHash("POST", "/m"))
        assert await stage.keep(claim, StoredAnswer(504, (), b"{}"))
        assert len(calls) == 2
        again = await ledger.begin(scope, 30)
        assert not isinstance(again, Started)  # answered: replayed, never sent again
    finally:
        await ledger.close()


async def test_the_rate_limit_store_paces_a_burst_past_its_pool(tmp_path: Path) -> None:
    """The flow store's client has the same bounded blocking pool: a burst of takes past its
    connections waits for one, and the store stays in use (no fall back to a share)."""
    from proxy.config import RateLimit
    from proxy.flow.store import MAX_CONNECTIONS as STORE_CONNECTIONS
    from proxy.flow.store import Store

    errors: list[str] = []
    with RedisServer(tmp_path / "redis") as redis:
        store = Store(redis.url, on_error=errors.append)
        try:
            limit = RateLimit(per_second=100_000, burst=100_000)
            waits = await asyncio.gather(
                *(store.call("mms", limit, "take") for _ in range(STORE_CONNECTIONS * 4))
            )
            assert waits == [0.0] * (STORE_CONNECTIONS * 4)
            assert store.up
            assert errors == []
        finally:
            await store.close()
