"""The ``Ledger`` contract, proven on both stores: a real SQLite file and a real redis-server.

Every test of ``TestContract`` runs once per store. Expiry is waited for with short TTLs
(a fraction of a second), polling until the store says so: no test asserts a duration.
"""

import asyncio
import json
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from proxy.ledger import (
    Correlation,
    Done,
    InFlight,
    Ledger,
    LedgerUnavailable,
    Scope,
    Started,
    StoredAnswer,
    fingerprint_of,
    in_flight_ttl,
    utc_now,
)
from proxy.ledger.redis_ledger import RedisLedger
from proxy.ledger.sqlite_ledger import SqliteLedger
from proxy.ledger.store import open_ledger
from tests import pii
from tests.redis_server import RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent
SCOPE = Scope("anonymous", "mms", "8e03978e-40d5-43e8-bc93-6894a57f9324")
FINGERPRINT = fingerprint_of("POST", "/mm7", b"<SubmitReq/>")
OTHER_FINGERPRINT = fingerprint_of("POST", "/mm7", b"<SubmitReq>changed</SubmitReq>")
ANSWER = StoredAnswer(
    504,
    (("Content-Type", "application/problem+json"), ("X-Request-ID", "req-1")),
    b'{"ok":false,"code":"TIMEOUT"}\n\x00\xff',
)
LATER = StoredAnswer(200, (("Content-Type", "application/json"),), b'{"ok":true}')
SHORT = 0.3  # seconds: a TTL the tests wait out
# Seconds a Redis operation may take where the test is not about timeouts: the machine is
# shared, and fifty connections opening at once under load can outlast the 0.5 s default.
PATIENT = 10.0


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(params=["sqlite", "redis"])
async def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Ledger]:
    """Each store, empty: a new SQLite file, or a new key prefix on the shared server."""
    store: Ledger
    if request.param == "sqlite":
        store = await SqliteLedger.open(tmp_path / "ledger.sqlite3")
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        store = RedisLedger.from_url(
            server.url, timeout=PATIENT, prefix=f"test-{uuid.uuid4().hex}:"
        )
    yield store
    await store.close()


async def eventually(check: Callable[[], Awaitable[bool]], attempts: int = 400) -> None:
    """Poll ``check`` until it holds (expiry is the store's clock, not ours)."""
    for _ in range(attempts):
        if await check():
            return
        await asyncio.sleep(0.05)
    pytest.fail("the store never got there")


class TestContract:
    async def test_a_new_key_starts_and_is_then_in_flight(self, ledger: Ledger) -> None:
        first = await ledger.begin(SCOPE, 30)
        assert isinstance(first, Started)
        assert await ledger.begin(SCOPE, 30) == InFlight()

    async def test_a_finished_key_replays_its_answer_byte_for_byte(self, ledger: Ledger) -> None:
        assert isinstance(await ledger.begin(SCOPE, 30), Started)
        assert await ledger.finish(SCOPE, FINGERPRINT, ANSWER, 30) is True
        done = await ledger.begin(SCOPE, 30)
        assert done == Done(FINGERPRINT, ANSWER)

    async def test_the_caller_tells_a_mismatch_by_the_fingerprint(self, ledger: Ledger) -> None:
        await ledger.begin(SCOPE, 30)
        await ledger.finish(SCOPE, FINGERPRINT, ANSWER, 30)
        done = await ledger.begin(SCOPE, 30)
        assert isinstance(done, Done)
        assert done.fingerprint != OTHER_FINGERPRINT  # the caller answers 422

    async def test_the_first_answer_is_kept(self, ledger: Ledger) -> None:
        await ledger.begin(SCOPE, 30)
        assert await ledger.finish(SCOPE, FINGERPRINT, ANSWER, 30) is True
        assert await ledger.finish(SCOPE, OTHER_FINGERPRINT, LATER, 30) is False
        assert await ledger.begin(SCOPE, 30) == Done(FINGERPRINT, ANSWER)

    async def test_release_lets_a_retry_execute(self, ledger: Ledger) -> None:
        started = await ledger.begin(SCOPE, 30)
        assert isinstance(started, Started)
        assert await ledger.release(SCOPE, started) is True
        again = await ledger.begin(SCOPE, 30)
        assert isinstance(again, Started)
        assert again.token != started.token

    async def test_a_stale_token_cannot_release_another_request_s_marker(
        self, ledger: Ledger
    ) -> None:
        old = await ledger.begin(SCOPE, SHORT)
        assert isinstance(old, Started)
        await eventually(lambda: _is_started(ledger, SCOPE, 30))  # old expired; new holds
        assert await ledger.release(SCOPE, old) is False
        assert await ledger.begin(SCOPE, 30) == InFlight()

    async def test_release_never_drops_an_answer(self, ledger: Ledger) -> None:
        started = await ledger.begin(SCOPE, 30)
        assert isinstance(started, Started)
        await ledger.finish(SCOPE, FINGERPRINT, ANSWER, 30)
        assert await ledger.release(SCOPE, started) is False
        assert await ledger.begin(SCOPE, 30) == Done(FINGERPRINT, ANSWER)

    async def test_a_key_is_scoped_to_client_and_route(self, ledger: Ledger) -> None:
        await ledger.begin(SCOPE, 30)
        for other in (
            Scope("checkout", SCOPE.route, SCOPE.key),
            Scope(SCOPE.client, "moms", SCOPE.key),
            Scope(SCOPE.client, SCOPE.route, "another-key"),
        ):
            assert isinstance(await ledger.begin(other, 30), Started), other

    async def test_an_in_flight_marker_expires(self, ledger: Ledger) -> None:
        assert isinstance(await ledger.begin(SCOPE, SHORT), Started)
        assert await ledger.begin(SCOPE, SHORT) == InFlight()
        await eventually(lambda: _is_started(ledger, SCOPE, 30))

    async def test_a_stored_answer_expires(self, ledger: Ledger) -> None:
        await ledger.begin(SCOPE, 30)
        await ledger.finish(SCOPE, FINGERPRINT, ANSWER, SHORT)
        assert isinstance(await ledger.begin(SCOPE, 30), Done)
        await eventually(lambda: _is_started(ledger, SCOPE, 30))

    async def test_a_message_id_is_remembered_per_namespace(self, ledger: Ledger) -> None:
        record = Correlation("req-1", "checkout", "key-1", "order-4711", utc_now(), "mms")
        assert await ledger.recall("msg-1", "mm7") is None
        await ledger.remember("msg-1", "mm7", record, 30)
        assert await ledger.recall("msg-1", "mm7") == record
        assert await ledger.recall("msg-1", "moms") is None
        assert await ledger.recall("msg-2", "mm7") is None
        newer = Correlation("req-2", "anonymous", None, None, utc_now(), "mms")
        await ledger.remember("msg-1", "mm7", newer, 30)
        assert await ledger.recall("msg-1", "mm7") == newer

    async def test_a_remembered_message_id_expires(self, ledger: Ledger) -> None:
        record = Correlation("req-1", "anonymous", None, None, utc_now(), "mms")
        await ledger.remember("msg-1", "mm7", record, SHORT)
        assert await ledger.recall("msg-1", "mm7") == record

        async def forgotten() -> bool:
            return await ledger.recall("msg-1", "mm7") is None

        await eventually(forgotten)

    async def test_ping_says_the_store_is_up(self, ledger: Ledger) -> None:
        await ledger.ping()

    async def test_concurrent_begins_start_exactly_once(self, ledger: Ledger) -> None:
        results = await asyncio.gather(*(ledger.begin(SCOPE, 30) for _ in range(20)))
        assert sum(isinstance(r, Started) for r in results) == 1
        assert sum(r == InFlight() for r in results) == 19


async def _is_started(ledger: Ledger, scope: Scope, ttl: float) -> bool:
    return isinstance(await ledger.begin(scope, ttl), Started)


def test_the_in_flight_marker_outlives_the_route_s_total_timeout() -> None:
    assert in_flight_ttl(30) > 30
    assert in_flight_ttl(5, margin=2) == 7


# --- racing processes -------------------------------------------------------------------


def race(
    tmp_path: Path, store: list[str], *, copies: int = 1, racers: int = 2, keys: int = 100
) -> list[dict[str, list[str]]]:
    """``racers`` processes calling begin on the same ``keys`` keys at once, ``copies``
    concurrent calls per key in each."""
    go = tmp_path / "go"
    argv = [sys.executable, "-m", "tests.ledger_racer", *store, "--go", str(go),
            "--keys", str(keys), "--copies", str(copies)]  # fmt: skip
    procs = [
        subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(racers)
    ]
    go.touch()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    return results


def assert_each_key_started_once(results: list[dict[str, list[str]]], keys: int = 100) -> None:
    for i in range(keys):
        outcomes = sorted(o for result in results for o in result[f"key-{i}"])
        assert outcomes == ["in_flight"] * (len(outcomes) - 1) + ["started"], (i, outcomes)


@pytest.mark.slow
def test_two_processes_on_one_sqlite_file_start_each_key_once(tmp_path: Path) -> None:
    results = race(tmp_path, ["--sqlite", str(tmp_path / "shared" / "ledger.sqlite3")])
    assert_each_key_started_once(results)


@pytest.mark.slow
def test_a_resend_storm_on_one_sqlite_file_starts_each_key_once(tmp_path: Path) -> None:
    """100 keys × 10 concurrent begins, over 2 processes: exactly 100 would be sent."""
    results = race(tmp_path, ["--sqlite", str(tmp_path / "ledger.sqlite3")], copies=5)
    assert_each_key_started_once(results)


@pytest.mark.slow
def test_a_resend_storm_on_one_redis_starts_each_key_once(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    prefix = f"storm-{uuid.uuid4().hex}:"
    results = race(tmp_path, ["--redis", redis_server.url, "--prefix", prefix], copies=5)
    assert_each_key_started_once(results)


@pytest.mark.slow
def test_two_processes_on_one_redis_start_each_key_once(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    prefix = f"race-{uuid.uuid4().hex}:"
    results = race(tmp_path, ["--redis", redis_server.url, "--prefix", prefix])
    assert_each_key_started_once(results)


async def test_two_redis_clients_racing_start_each_key_once(redis_server: RedisServer) -> None:
    prefix = f"race-{uuid.uuid4().hex}:"
    one = RedisLedger.from_url(redis_server.url, timeout=PATIENT, prefix=prefix)
    two = RedisLedger.from_url(redis_server.url, timeout=PATIENT, prefix=prefix)
    try:
        scopes = [Scope("anonymous", "mms", f"k{i}") for i in range(50)]
        results = await asyncio.gather(
            *(ledger.begin(scope, 30) for scope in scopes for ledger in (one, two))
        )
        for i in range(50):
            pair = results[2 * i : 2 * i + 2]
            assert sorted(type(r).__name__ for r in pair) == ["InFlight", "Started"]
    finally:
        await one.close()
        await two.close()


# --- SQLite: the file -------------------------------------------------------------------


async def test_sqlite_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    first = await SqliteLedger.open(path)
    await first.begin(SCOPE, 60)
    await first.finish(SCOPE, FINGERPRINT, ANSWER, 60)
    in_flight = Scope("anonymous", "mms", "still-in-flight")
    await first.begin(in_flight, 60)
    record = Correlation("req-1", "anonymous", None, "cb", utc_now(), "mms")
    await first.remember("msg-1", "mm7", record, 60)
    await first.close()

    second = await SqliteLedger.open(path)  # "the proxy restarted"
    try:
        assert await second.begin(SCOPE, 60) == Done(FINGERPRINT, ANSWER)
        assert await second.begin(in_flight, 60) == InFlight()
        assert await second.recall("msg-1", "mm7") == record
    finally:
        await second.close()


async def test_sqlite_makes_private_directories_and_file(tmp_path: Path) -> None:
    existing = tmp_path / "existing"
    existing.mkdir(mode=0o755)
    existing.chmod(0o755)
    path = existing / "a" / "b" / "ledger.sqlite3"
    old = os.umask(0o022)
    try:
        ledger = await SqliteLedger.open(path)
    finally:
        os.umask(old)
    await ledger.close()
    for directory in (existing / "a", existing / "a" / "b"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(existing.stat().st_mode) == 0o755  # what existed is left alone


async def test_sqlite_uses_wal(tmp_path: Path) -> None:
    import sqlite3

    ledger = await SqliteLedger.open(tmp_path / "ledger.sqlite3")
    await ledger.begin(SCOPE, 30)
    with sqlite3.connect(tmp_path / "ledger.sqlite3") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    await ledger.close()


async def test_a_locked_sqlite_file_is_unavailable_not_a_hang(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "ledger.sqlite3"
    ledger = await SqliteLedger.open(path, busy_timeout=0.1)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        with pytest.raises(LedgerUnavailable, match="locked"):
            await ledger.begin(SCOPE, 30)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert isinstance(await ledger.begin(SCOPE, 30), Started)  # and usable again
    await ledger.close()


async def test_an_unreadable_sqlite_record_is_unavailable(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "ledger.sqlite3"
    ledger = await SqliteLedger.open(path)
    await ledger.begin(SCOPE, 30)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE idempotency SET record = x'00', token = NULL")
    with pytest.raises(LedgerUnavailable, match="unreadable"):
        await ledger.begin(SCOPE, 30)
    await ledger.close()


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "ledger.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(LedgerUnavailable, match="schema version 99"):
        await SqliteLedger.open(path)


async def test_a_path_that_cannot_be_created_is_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(LedgerUnavailable, match="cannot create"):
        await SqliteLedger.open(blocker / "ledger.sqlite3")


async def test_a_closed_sqlite_ledger_is_unavailable(tmp_path: Path) -> None:
    ledger = await SqliteLedger.open(tmp_path / "ledger.sqlite3")
    await ledger.close()
    await ledger.close()  # idempotent
    with pytest.raises(LedgerUnavailable, match="closed"):
        await ledger.begin(SCOPE, 30)


async def test_expired_rows_are_purged(tmp_path: Path) -> None:
    now = [1_000_000.0]
    ledger = await SqliteLedger.open(
        tmp_path / "ledger.sqlite3", clock=lambda: now[0], purge_every=3600
    )
    record = Correlation("req-1", "anonymous", None, None, utc_now(), "mms")
    for i in range(5):
        await ledger.begin(Scope("anonymous", "mms", f"k{i}"), 10)
        await ledger.remember(f"msg-{i}", "mm7", record, 10 if i < 3 else 100)
    assert await ledger.purge() == 0
    now[0] += 50
    assert await ledger.purge() == 5 + 3  # every marker, three correlation records
    assert await ledger.recall("msg-4", "mm7") == record
    now[0] += 3600  # an operation past purge_every purges on its own
    await ledger.ping()
    assert await ledger.purge() == 0
    assert await ledger.recall("msg-4", "mm7") is None
    await ledger.close()


# --- Redis: when it is not there ------------------------------------------------------


async def test_an_unreachable_redis_is_unavailable_and_names_no_secret() -> None:
    url = f"redis://:{pii.SECRETS[3]}@127.0.0.1:{free_port()}/0"
    ledger = RedisLedger.from_url(url, timeout=0.2)
    try:
        for call in (
            ledger.begin(SCOPE, 30),
            ledger.finish(SCOPE, FINGERPRINT, ANSWER, 30),
            ledger.release(SCOPE, Started("t")),
            ledger.remember("m", "mm7", Correlation("r", "c", None, None, "t", "mms"), 30),
            ledger.recall("m", "mm7"),
            ledger.ping(),
        ):
            with pytest.raises(LedgerUnavailable) as error:
                await call
            assert not pii.leaks(error.value.reason)
            assert "127.0.0.1" not in error.value.reason
    finally:
        await ledger.close()


async def test_a_redis_that_never_answers_is_unavailable_not_a_hang() -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # reads nothing, answers nothing

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    ledger = RedisLedger.from_url(f"redis://127.0.0.1:{port}/0", timeout=0.2)
    try:
        with pytest.raises(LedgerUnavailable, match="redis begin"):
            await ledger.begin(SCOPE, 30)
    finally:
        await ledger.close()
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_a_redis_that_goes_away_is_unavailable_then_usable_again(tmp_path: Path) -> None:
    with RedisServer(tmp_path / "one") as server:
        ledger = RedisLedger.from_url(server.url, timeout=PATIENT)
        assert isinstance(await ledger.begin(SCOPE, 30), Started)
        server.stop()
        with pytest.raises(LedgerUnavailable):
            await ledger.begin(SCOPE, 30)
        await ledger.close()


async def test_an_unreadable_redis_record_is_unavailable(redis_server: RedisServer) -> None:
    import redis.asyncio as aioredis

    prefix = f"test-{uuid.uuid4().hex}:"
    client: Any = aioredis.Redis.from_url(redis_server.url)
    await client.set(f"{prefix}idem:{SCOPE.storage_id}", b"X what is this")
    await client.aclose()
    ledger = RedisLedger.from_url(redis_server.url, timeout=PATIENT, prefix=prefix)
    with pytest.raises(LedgerUnavailable, match="unreadable"):
        await ledger.begin(SCOPE, 30)
    await ledger.close()


async def test_open_ledger_picks_the_store(tmp_path: Path, redis_server: RedisServer) -> None:
    sqlite = await open_ledger(path=tmp_path / "l.sqlite3")
    assert isinstance(sqlite, SqliteLedger)
    await sqlite.close()
    shared = await open_ledger(path=tmp_path / "unused.sqlite3", store=redis_server.url)
    assert isinstance(shared, RedisLedger)
    await shared.ping()
    await shared.close()
    assert not (tmp_path / "unused.sqlite3").exists()
    with pytest.raises(LedgerUnavailable, match="URL"):
        await open_ledger(path=tmp_path / "x", store="nonsense://nowhere")
