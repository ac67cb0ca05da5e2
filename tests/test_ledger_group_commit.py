"""The SQLite ledger's group commit: message ids remembered at once share transactions,
each caller returns only once its record is committed, and a failed batch fails each."""

import asyncio
from pathlib import Path

import pytest

from proxy.ledger import Correlation, LedgerUnavailable
from proxy.ledger.sqlite_ledger import SqliteLedger

SENDS = 200


def record(i: int) -> Correlation:
    return Correlation(f"req-{i}", "anonymous", None, f"ref-{i}", "2026-12-07T00:00:00Z", "mms")


async def test_concurrent_sends_share_transactions_and_each_is_kept(tmp_path: Path) -> None:
    ledger = await SqliteLedger.open(tmp_path / "ledger.sqlite3")
    hops: list[str] = []
    original = ledger._in_thread

    async def counted(operation: str, work):  # type: ignore[no-untyped-def]
        hops.append(operation)
        return await original(operation, work)

    ledger._in_thread = counted  # type: ignore[method-assign]
    try:
        await asyncio.gather(
            *(ledger.remember(f"mid-{i}", "mm7", record(i), 60) for i in range(SENDS))
        )
        assert 1 <= hops.count("remember") < SENDS / 10  # batched, not one per send
        ledger._in_thread = original  # type: ignore[method-assign]
        for i in range(SENDS):
            found = await ledger.recall(f"mid-{i}", "mm7")
            assert found is not None
            assert found.callback_data == f"ref-{i}"
    finally:
        await ledger.close()


async def test_a_failed_batch_fails_every_send_in_it(tmp_path: Path) -> None:
    ledger = await SqliteLedger.open(tmp_path / "ledger.sqlite3")

    async def broken(operation: str, work):  # type: ignore[no-untyped-def]
        raise LedgerUnavailable(f"sqlite {operation}: disk I/O error")

    ledger._in_thread = broken  # type: ignore[method-assign]
    try:
        results = await asyncio.gather(
            *(ledger.remember(f"mid-{i}", "mm7", record(i), 60) for i in range(20)),
            return_exceptions=True,
        )
        assert all(isinstance(r, LedgerUnavailable) for r in results), results
    finally:
        ledger._in_thread = SqliteLedger._in_thread.__get__(ledger)  # type: ignore[method-assign]
        await ledger.close()


async def test_a_closed_ledger_refuses_at_once(tmp_path: Path) -> None:
    ledger = await SqliteLedger.open(tmp_path / "ledger.sqlite3")
    await ledger.close()
    with pytest.raises(LedgerUnavailable):
        await ledger.remember("mid", "mm7", record(0), 60)
