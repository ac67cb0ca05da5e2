"""Open the configured ledger: the shared Redis when ``store`` is set, else the SQLite file.

The backends are imported here, on first use, so a proxy without a ledger never loads the
``redis`` client or ``sqlite3``.
"""

import os

from proxy.ledger.base import Ledger

#: Seconds a Redis operation may take, connect included, before ``LedgerUnavailable``.
REDIS_TIMEOUT = 0.5


async def open_ledger(
    *, path: str | os.PathLike[str], store: str | None = None, redis_timeout: float = REDIS_TIMEOUT
) -> Ledger:
    """The ledger in ``store`` (a ``redis://`` URL) if given, else in the SQLite file at
    ``path`` (ignored with a store). Raises ``LedgerUnavailable`` (a SQLite file that
    cannot be created or opened; a URL the client cannot use). A Redis is not contacted
    here: an unreachable one fails the first operation, and ``ping`` tells its health."""
    if store is not None:
        from proxy.ledger.redis_ledger import RedisLedger  # noqa: PLC0415 - on first use

        return RedisLedger.from_url(store, timeout=redis_timeout)
    from proxy.ledger.sqlite_ledger import SqliteLedger  # noqa: PLC0415 - on first use

    return await SqliteLedger.open(path)


__all__ = ["REDIS_TIMEOUT", "open_ledger"]
