"""The embedded ledger: one SQLite file, shared by ``--workers`` processes, kept across
restarts.

``await SqliteLedger.open(path)`` creates the missing parent directories (mode 0700) and
the file (0600; SQLite gives its ``-wal`` and ``-shm`` files the same mode), switches it
to WAL (readers never wait for the writer; one writer at a time, across processes) and
creates the tables. Each process opens its own connection.

**Off the event loop.** The connection lives in one dedicated thread (a one-thread
executor) and every operation is one function run there: a whole ``BEGIN IMMEDIATE …
COMMIT`` transaction per thread hop. That is what aiosqlite does too (a thread per
connection), minus a dependency and minus a hop per statement, which matters on a path
budgeted at 1 ms.

**Atomic across processes.** ``begin`` reads and writes the key's row inside one
``BEGIN IMMEDIATE`` transaction (the database's write lock), so of two processes racing
on one key exactly one inserts the marker. A writer that waits longer than
``busy_timeout`` seconds for the lock gets ``LedgerUnavailable`` (never a hang).

**Expiry.** Rows carry ``expires_at`` (wall-clock seconds: the file outlives processes,
so a monotonic clock cannot be shared); reads ignore expired rows, ``begin`` replaces
them, and at most every ``purge_every`` seconds an operation also deletes up to
``PURGE_BATCH`` expired rows per table (``purge()`` does it on demand).

Durability: ``synchronous=NORMAL`` in WAL mode keeps every committed transaction across
a crash of the proxy; a power loss may lose the last ones.

Tables (``user_version`` 1)::

    idempotency(scope PK, token, record, expires_at)   token set: in flight; record set:
                                                        the encoded answer (records.py)
    correlation(namespace, message_id, record, expires_at), PK (namespace, message_id)
"""

import asyncio
import contextlib
import os
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from proxy.ledger.base import Begin, Done, InFlight, Ledger, LedgerUnavailable, Started
from proxy.ledger.key import Scope
from proxy.ledger.records import (
    Correlation,
    RecordError,
    StoredAnswer,
    decode_answer,
    decode_correlation,
    encode_answer,
    encode_correlation,
)
from proxy.observability.logs import get_logger

T = TypeVar("T")

SCHEMA_VERSION = 1
PURGE_BATCH = 1000
_SCHEMA = """
CREATE TABLE IF NOT EXISTS idempotency (
    scope TEXT PRIMARY KEY,
    token TEXT,
    record BLOB,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idempotency_expiry ON idempotency (expires_at);
CREATE TABLE IF NOT EXISTS correlation (
    namespace TEXT NOT NULL,
    message_id TEXT NOT NULL,
    record BLOB NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (namespace, message_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS correlation_expiry ON correlation (expires_at);
"""
_log = get_logger("gateway_proxy.ledger")


def _make_parents(path: Path) -> None:
    """Create ``path``'s missing parent directories, each 0700 (whatever the umask)."""
    missing: list[Path] = []
    parent = path.parent
    while not parent.exists():
        missing.append(parent)
        parent = parent.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another worker made it first
            directory.mkdir(mode=0o700)
            os.chmod(directory, 0o700)


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` (the write lock, waited for up to the busy timeout) … COMMIT."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


class SqliteLedger(Ledger):
    """The ledger in one SQLite file; make it with ``await SqliteLedger.open(path)``."""

    def __init__(
        self,
        path: Path,
        *,
        busy_timeout: float,
        purge_every: float,
        clock: Callable[[], float],
    ) -> None:
        self.path = path
        self._busy_timeout = busy_timeout
        self._purge_every = purge_every
        self._clock = clock
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger-sqlite")
        self._db: sqlite3.Connection | None = None  # used only on the executor's thread
        self._last_purge = clock()
        self._closed = False
        # Group commit of ``remember``: records wait here while a batch is being written,
        # and the next batch takes them all in one transaction (one hop to the thread).
        self._pending: list[tuple[tuple[str, str, bytes, float], asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        *,
        busy_timeout: float = 2.0,
        purge_every: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> "SqliteLedger":
        """Open (creating) the ledger at ``path``. Raises ``LedgerUnavailable``."""
        ledger = cls(Path(path), busy_timeout=busy_timeout, purge_every=purge_every, clock=clock)
        try:
            await ledger._in_thread("open", ledger._connect)
        except LedgerUnavailable:
            await ledger.close()
            raise
        return ledger

    # --- the thread side -------------------------------------------------------------

    def _connect(self) -> None:
        try:
            _make_parents(self.path)
            # The file first, 0600: sqlite3 would create it with the umask's mode.
            os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))
        except OSError as exc:
            raise LedgerUnavailable(
                f"cannot create the ledger file ({exc.strerror or type(exc).__name__})"
            ) from None
        db = sqlite3.connect(
            self.path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
        )
        self._db = db
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()
        if mode is None or str(mode[0]).lower() != "wal":
            raise LedgerUnavailable("the ledger file cannot use WAL mode")
        db.execute("PRAGMA synchronous=NORMAL")
        with _transaction(db):
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise LedgerUnavailable(
                    f"the ledger file has schema version {version}, newer than "
                    f"{SCHEMA_VERSION}: written by a newer proxy"
                )
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise LedgerUnavailable("the SQLite ledger is closed")
        return self._db

    def _call(self, operation: str, work: Callable[[], T]) -> T:
        """Run ``work`` here, on the thread; every failure becomes ``LedgerUnavailable``."""
        try:
            result = work()
        except sqlite3.Error as exc:
            raise _unavailable(operation, exc) from None
        except RecordError:
            raise LedgerUnavailable(f"sqlite {operation}: a stored record is unreadable") from None
        if self._db is not None:
            self._maybe_purge(self._db)
        return result

    def _maybe_purge(self, db: sqlite3.Connection) -> None:
        now = self._clock()
        if now - self._last_purge < self._purge_every:
            return
        self._last_purge = now
        try:
            self._purge(db)
        except sqlite3.Error as exc:  # housekeeping: the operation itself succeeded
            _log.warning("ledger_purge_failed", store="sqlite", error=type(exc).__name__)

    def _purge(self, db: sqlite3.Connection) -> int:
        now = self._clock()
        removed = 0
        for table, key in (("idempotency", "scope"), ("correlation", "namespace, message_id")):
            with _transaction(db):
                cursor = db.execute(
                    f"DELETE FROM {table} WHERE ({key}) IN "  # noqa: S608 - fixed names
                    f"(SELECT {key} FROM {table} WHERE expires_at <= ? LIMIT ?)",
                    (now, PURGE_BATCH),
                )
                removed += max(cursor.rowcount, 0)
        return removed

    async def _in_thread(self, operation: str, work: Callable[[], T]) -> T:
        if self._closed:
            raise LedgerUnavailable("the SQLite ledger is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, self._call, operation, work)
        except RuntimeError:  # the executor was shut down under us
            raise LedgerUnavailable("the SQLite ledger is closed") from None

    # --- the interface -----------------------------------------------------------------

    async def begin(self, scope: Scope, ttl: float) -> Begin:
        sid = scope.storage_id

        def work() -> Begin:
            db, now = self._conn(), self._clock()
            with _transaction(db):
                row = db.execute(
                    "SELECT token, record, expires_at FROM idempotency WHERE scope = ?", (sid,)
                ).fetchone()
                if row is not None and row[2] > now:
                    if row[1] is not None:
                        return Done(*decode_answer(row[1]))
                    return InFlight()
                token = secrets.token_hex(16)
                db.execute(
                    "INSERT OR REPLACE INTO idempotency (scope, token, record, expires_at) "
                    "VALUES (?, ?, NULL, ?)",
                    (sid, token, now + ttl),
                )
                return Started(token)

        return await self._in_thread("begin", work)

    async def finish(
        self, scope: Scope, fingerprint: str, answer: StoredAnswer, ttl: float
    ) -> bool:
        sid, record = scope.storage_id, encode_answer(fingerprint, answer)

        def work() -> bool:
            db, now = self._conn(), self._clock()
            with _transaction(db):
                row = db.execute(
                    "SELECT record, expires_at FROM idempotency WHERE scope = ?", (sid,)
                ).fetchone()
                if row is not None and row[0] is not None and row[1] > now:
                    return False  # the first answer stays
                db.execute(
                    "INSERT OR REPLACE INTO idempotency (scope, token, record, expires_at) "
                    "VALUES (?, NULL, ?, ?)",
                    (sid, record, now + ttl),
                )
                return True

        return await self._in_thread("finish", work)

    async def release(self, scope: Scope, started: Started) -> bool:
        sid = scope.storage_id

        def work() -> bool:
            cursor = self._conn().execute(
                "DELETE FROM idempotency WHERE scope = ? AND token = ? AND record IS NULL",
                (sid, started.token),
            )
            return cursor.rowcount > 0

        return await self._in_thread("release", work)

    async def remember(
        self, message_id: str, namespace: str, record: Correlation, ttl: float
    ) -> None:
        """Kept once the batch it joined is committed: every record that arrives while a
        batch is written goes into the next one, so under load many sends share one
        transaction and one hand-off to the thread (a group commit)."""
        if self._closed:
            raise LedgerUnavailable("the SQLite ledger is closed")
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        done.add_done_callback(_retrieved)  # a cancelled caller's failure is not "lost"
        self._pending.append(((namespace, message_id, encode_correlation(record), ttl), done))
        if self._writer is None or self._writer.done():
            self._writer = loop.create_task(self._write_pending(), name="ledger-sqlite-remember")
        await asyncio.shield(done)  # a cancelled caller leaves its record to the batch

    async def _write_pending(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            rows = [entry for entry, _ in batch]

            def work(rows: list[tuple[str, str, bytes, float]] = rows) -> None:
                db, now = self._conn(), self._clock()
                with _transaction(db):
                    db.executemany(
                        "INSERT OR REPLACE INTO correlation "
                        "(namespace, message_id, record, expires_at) VALUES (?, ?, ?, ?)",
                        [(ns, mid, raw, now + ttl) for ns, mid, raw, ttl in rows],
                    )

            try:
                await self._in_thread("remember", work)
            except LedgerUnavailable as exc:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(LedgerUnavailable(exc.reason))
            else:
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)

    async def recall(self, message_id: str, namespace: str) -> Correlation | None:
        def work() -> Correlation | None:
            row = (
                self._conn()
                .execute(
                    "SELECT record FROM correlation "
                    "WHERE namespace = ? AND message_id = ? AND expires_at > ?",
                    (namespace, message_id, self._clock()),
                )
                .fetchone()
            )
            return None if row is None else decode_correlation(row[0])

        return await self._in_thread("recall", work)

    async def ping(self) -> None:
        await self._in_thread("ping", lambda: self._conn().execute("SELECT 1").fetchone())

    async def purge(self) -> int:
        """Delete up to ``PURGE_BATCH`` expired rows per table now; how many went."""
        return await self._in_thread("purge", lambda: self._purge(self._conn()))

    async def close(self) -> None:
        if self._closed:
            return
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)
        self._closed = True
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._disconnect)
        self._executor.shutdown(wait=True)

    def _disconnect(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def _retrieved(future: "asyncio.Future[None]") -> None:
    if not future.cancelled():
        future.exception()


def _unavailable(operation: str, exc: sqlite3.Error) -> LedgerUnavailable:
    # SQLite's messages name the problem ("database is locked", "disk I/O error"), never
    # a value bound to a statement.
    return LedgerUnavailable(f"sqlite {operation}: {exc}")


__all__ = ["PURGE_BATCH", "SCHEMA_VERSION", "SqliteLedger"]
