"""Tests for proxy.observability.log_sink: the bounded line buffer, its writer thread and its metric,
and the buffered output configure_logging builds from them."""

import io
import json
import logging
import os
import re
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
import structlog
from prometheus_client import CollectorRegistry, generate_latest

from proxy.observability.log_sink import (
    CAPACITY_CHARS,
    CAPACITY_LINES,
    DroppedLinesCollector,
    FdWriter,
    LineSink,
    sink_for,
)
from proxy.observability.logs import (
    close_logs,
    configure_logging,
    dropped_lines,
    flush_logs,
    get_logger,
)
from tests.conftest import configure_suite_logging

ROOT = Path(__file__).resolve().parent.parent
# Test data of our own, written only to this file's pipes, never to the suite's log sink.
PHONE = "+13108675309"
MASKED = "********309"
TOKEN = "tkn-8Hq2-secret"

# Generous bounds so a broken sink fails the test instead of hanging it; never asserted.
WAIT = 30.0


class BlockedWriter:
    """A LineWriter that blocks in write() until released, like a pipe nobody reads."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.writing = threading.Event()
        self.release = threading.Event()
        self.closed = threading.Event()

    def write(self, lines: list[str]) -> int:
        self.writing.set()
        assert self.release.wait(WAIT), "the test never released the writer"
        self.lines += lines
        return len(lines)

    def close(self) -> None:
        self.closed.set()


class FailingWriter:
    """A LineWriter whose output has gone away for lines that start with 'lost'."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, lines: list[str]) -> int:
        kept = [line for line in lines if not line.startswith("lost")]
        self.lines += kept
        return len(kept)

    def close(self) -> None:
        pass


@pytest.fixture
def blocked() -> Iterator[BlockedWriter]:
    writer = BlockedWriter()
    yield writer
    writer.release.set()  # let the daemon thread finish


def stuck_sink(
    writer: BlockedWriter, *, lines: int = CAPACITY_LINES, chars: int = CAPACITY_CHARS
) -> LineSink:
    """A sink whose writer has taken line 'first' and is blocked writing it."""
    sink = LineSink(writer, capacity_lines=lines, capacity_chars=chars)
    assert sink.put("first\n")
    assert writer.writing.wait(WAIT)
    return sink


def test_a_full_buffer_drops_and_counts_without_blocking(blocked: BlockedWriter) -> None:
    """With the writer stuck, put() keeps returning: lines past the capacity are counted."""
    sink = stuck_sink(blocked, lines=3)
    assert [sink.put(f"line {i}\n") for i in range(5)] == [True, True, True, False, False]
    assert (sink.dropped, sink.pending) == (2, 4)
    blocked.release.set()
    assert sink.flush(WAIT)
    assert blocked.lines == ["first\n", "line 0\n", "line 1\n", "line 2\n"]
    assert (sink.dropped, sink.pending) == (2, 0)


def test_the_character_budget_bounds_the_buffer_too(blocked: BlockedWriter) -> None:
    """A few huge lines fill the buffer as surely as many small ones."""
    sink = stuck_sink(blocked, chars=11)
    assert sink.put("12345678\n")
    assert not sink.put("123\n")  # 9 + 4 > 11
    assert sink.put("1\n")  # 9 + 2 fits
    assert not sink.put("\n")
    assert sink.dropped == 2


def test_flush_and_close_return_on_timeout_while_the_writer_is_blocked(
    blocked: BlockedWriter,
) -> None:
    """flush(timeout) says False and gives up; the lines stay queued and are written later."""
    sink = stuck_sink(blocked)
    sink.put("second\n")
    assert sink.flush(0.05) is False
    assert sink.close(0.05) is False
    assert sink.pending == 2
    blocked.release.set()
    assert sink.flush(WAIT)
    assert blocked.lines == ["first\n", "second\n"]
    assert blocked.closed.wait(WAIT)  # closed and drained: the thread ends, closing the writer


def test_close_writes_what_was_queued_and_refuses_the_rest() -> None:
    """After close() every earlier line is written; later ones are dropped and counted."""
    writer = BlockedWriter()
    writer.release.set()
    sink = LineSink(writer)
    for i in range(100):
        sink.put(f"{i}\n")
    assert sink.close(WAIT)
    assert writer.lines == [f"{i}\n" for i in range(100)]
    assert sink.closed
    assert not sink.put("late\n")
    assert sink.dropped == 1
    assert writer.closed.wait(WAIT)
    assert sink.close(WAIT)  # idempotent


def test_a_failed_write_is_counted_and_the_writer_carries_on() -> None:
    """Lines the output refuses are dropped and counted; the writer goes on."""
    writer = FailingWriter()
    sink = LineSink(writer)
    for line in ("one\n", "lost\n", "two\n"):
        sink.put(line)
    assert sink.flush(WAIT)
    assert writer.lines == ["one\n", "two\n"]
    assert sink.dropped == 1


def read_lines(fd: int, count: int) -> list[bytes]:
    """Read ``count`` newline-terminated lines from ``fd``."""
    data = b""
    while data.count(b"\n") < count:
        readable, _, _ = select.select([fd], [], [], WAIT)
        assert readable, f"{count} lines never arrived; got {data[-200:]!r}"
        data += os.read(fd, 65536)
    assert data.endswith(b"\n")
    return data.splitlines()


@pytest.mark.parametrize("blocking", [True, False])
def test_fd_writer_writes_every_line_whole_through_a_full_pipe(blocking: bool) -> None:
    """More than a pipe's worth of lines arrive whole and in order, blocking fd or not."""
    read_end, write_end = os.pipe()
    try:
        os.set_blocking(write_end, blocking)
        sink = LineSink(FdWriter(write_end))
        os.close(write_end)  # the writer has its own duplicate
        write_end = -1
        lines = [json.dumps({"i": i, "pad": "é" * 200}) for i in range(1000)]  # ~400 KB
        lines[500] = json.dumps({"i": 500, "pad": "x" * 20_000})  # longer than PIPE_BUF
        for line in lines:
            assert sink.put(line + "\n")
        assert [json.loads(raw) for raw in read_lines(read_end, len(lines))] == [
            json.loads(line) for line in lines
        ]
        assert sink.close(WAIT)
        assert sink.dropped == 0
    finally:
        os.close(read_end)
        if write_end != -1:
            os.close(write_end)


class _CountedWrites:
    """Wraps ``os.write``: the size of every write to the descriptors in ``fds``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.fds: set[int] = set()
        self.all: list[tuple[int, int]] = []
        real = os.write

        def write(fd: int, data: bytes | memoryview) -> int:
            self.all.append((fd, len(data)))
            return real(fd, data)

        monkeypatch.setattr(os, "write", write)

    def writer(self, fd: int) -> FdWriter:
        writer = FdWriter(fd)
        self.fds.add(writer._fd)  # its own duplicate
        return writer

    @property
    def sizes(self) -> list[int]:
        return [size for fd, size in self.all if fd in self.fds]


_LINES = [json.dumps({"i": i, "pad": "p" * 580}) + "\n" for i in range(80)]  # ~48 KB


def test_a_regular_file_takes_a_whole_batch_in_one_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counted = _CountedWrites(monkeypatch)
    with (tmp_path / "out.log").open("wb") as out:
        writer = counted.writer(out.fileno())
        assert writer.write(_LINES) == len(_LINES)
        writer.close()
    assert counted.sizes == [sum(len(line) for line in _LINES)]
    assert (tmp_path / "out.log").read_text() == "".join(_LINES)


def test_a_pipe_with_room_takes_what_fits_in_one_write(monkeypatch: pytest.MonkeyPatch) -> None:
    read_end, write_end = os.pipe()
    try:
        counted = _CountedWrites(monkeypatch)
        writer = counted.writer(write_end)
        assert writer.write(_LINES) == len(_LINES)  # 48 KB: a 64 KiB pipe has room
        writer.close()
        assert counted.sizes == [sum(len(line) for line in _LINES)]
        assert read_lines(read_end, len(_LINES)) == [line.rstrip("\n").encode() for line in _LINES]
    finally:
        os.close(read_end)
        os.close(write_end)


def test_a_filling_pipe_gets_whole_lines_of_at_most_pipe_buf(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, b"x" * (65536 - 1024) + b"\n")  # unread: 1 KiB of room left
        counted = _CountedWrites(monkeypatch)
        writer = counted.writer(write_end)
        done = threading.Thread(target=writer.write, args=(_LINES[:20],))
        done.start()
        # Read only once the first write went out: a reader that drains the pipe sooner
        # gives that first write a whole empty pipe, and the test would measure nothing.
        deadline = time.monotonic() + WAIT
        while not counted.sizes and time.monotonic() < deadline:
            time.sleep(0.001)
        received = read_lines(read_end, 21)  # the filler, then every line, whole
        done.join(WAIT)
        writer.close()
        assert received[1:] == [line.rstrip("\n").encode() for line in _LINES[:20]]
        # With 1 KiB of room the first write is one a pipe takes atomically; later ones hold
        # what the room (read again before each) holds once the reader has drained it.
        assert counted.sizes[0] <= select.PIPE_BUF
        assert len(counted.sizes) > 1
    finally:
        os.close(read_end)
        os.close(write_end)


def test_a_pipe_shared_with_other_processes_gets_pipe_buf_writes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``serve --workers``: another worker may take the room between the look and the write."""
    monkeypatch.setattr("proxy.observability.log_sink._SHARED", True)
    read_end, write_end = os.pipe()
    try:
        counted = _CountedWrites(monkeypatch)
        writer = counted.writer(write_end)
        assert writer.write(_LINES) == len(_LINES)
        writer.close()
        assert len(counted.sizes) > 1
        assert max(counted.sizes) <= select.PIPE_BUF
        assert read_lines(read_end, len(_LINES)) == [line.rstrip("\n").encode() for line in _LINES]
    finally:
        os.close(read_end)
        os.close(write_end)


def test_a_closed_pipe_drops_and_counts_every_line() -> None:
    """With the reader gone, writes fail (EPIPE): each line is counted, none is fatal."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        sink = LineSink(FdWriter(write_end))
        for i in range(100):
            sink.put(f"{i:0100}\n")  # batches span several writes
        assert sink.close(WAIT)
        assert sink.dropped == 100
    finally:
        os.close(write_end)


def test_dropped_lines_collector_exposes_the_count() -> None:
    """The collector reads the count on every scrape, as gateway_proxy_..._total."""
    count = 0
    registry = CollectorRegistry()
    registry.register(DroppedLinesCollector(lambda: count))
    name = "gateway_proxy_log_lines_dropped_total"
    assert registry.get_sample_value(name) == 0.0
    count = 7
    assert registry.get_sample_value(name) == 7.0
    text = generate_latest(registry).decode()
    assert re.search(r"^# TYPE gateway_proxy_log_lines_dropped(_total)? counter$", text, re.M)
    assert f"\n{name} 7.0\n" in text
    with pytest.raises(ValueError, match="Duplicated"):
        registry.register(DroppedLinesCollector(lambda: 0))


def test_dropped_lines_collector_defaults_to_the_process_count() -> None:
    """Without a count, the collector reports proxy.observability.logs.dropped_lines()."""
    registry = CollectorRegistry()
    registry.register(DroppedLinesCollector())
    value = registry.get_sample_value("gateway_proxy_log_lines_dropped_total")
    assert value == float(dropped_lines())


# --- configure_logging's buffered output ------------------------------------------------
@pytest.fixture
def pipe() -> Iterator[tuple[int, IO[str]]]:
    """A pipe: its read end, and its write end as a text stream; logging restored after."""
    read_end, write_end = os.pipe()
    stream = os.fdopen(write_end, "w", encoding="utf-8")
    yield read_end, stream
    close_logs(WAIT)
    structlog.reset_defaults()
    configure_suite_logging()
    stream.close()
    os.close(read_end)


def test_buffered_lines_are_redacted_before_they_are_queued(pipe: tuple[int, IO[str]]) -> None:
    """structlog events and stdlib records reach a real descriptor redacted, via the sink."""
    read_end, stream = pipe
    configure_logging("debug", "json", stream=stream)
    get_logger("test").info("sent", to=PHONE, path=f"/x?token={TOKEN}")
    logging.getLogger("aiohttp.server").error("bad request from %s", PHONE)
    assert flush_logs(WAIT)
    first, second = (json.loads(raw) for raw in read_lines(read_end, 2))
    assert (first["event"], first["to"], first["path"]) == ("sent", MASKED, "/x?token=[REDACTED]")
    assert (second["logger"], second["event"]) == ("aiohttp.server", f"bad request from {MASKED}")


def test_unbuffered_output_is_written_before_the_call_returns(
    pipe: tuple[int, IO[str]],
) -> None:
    """buffered=False writes a real descriptor directly, as in-memory streams always are."""
    read_end, stream = pipe
    configure_logging("info", "json", stream=stream, buffered=False)
    get_logger().info("direct")
    readable, _, _ = select.select([read_end], [], [], 0)
    assert readable
    assert json.loads(os.read(read_end, 65536))["event"] == "direct"


def test_in_memory_streams_cannot_be_buffered() -> None:
    """A StringIO has no descriptor: it is written directly, and buffered=True is an error."""
    assert sink_for(io.StringIO()) is None
    with pytest.raises(ValueError, match="file descriptor"):
        configure_logging(stream=io.StringIO(), buffered=True)


def test_one_sink_per_file(pipe: tuple[int, IO[str]]) -> None:
    """Configuring the same file again reuses its sink, so cached loggers keep working."""
    _, stream = pipe
    sink = sink_for(stream)
    assert sink is not None
    assert sink_for(stream) is sink
    with os.fdopen(os.dup(stream.fileno()), "w") as same_pipe:
        assert sink_for(same_pipe) is sink


CHILD = """
import asyncio, json, sys
from proxy.observability.logs import close_logs, configure_logging, dropped_lines, get_logger

LINES, TICKS = 100_000, 200


async def produce(log):
    for i in range(LINES):
        log.info("line", i=i, pad="x" * 100)
        if i % 1000 == 999:
            await asyncio.sleep(0)


async def tick(log):
    ticks = 0
    for _ in range(TICKS):
        await asyncio.sleep(0.001)
        ticks += 1
        log.info("tick", n=ticks)
    return ticks


async def main():
    log = get_logger("child")
    _, ticks = await asyncio.gather(produce(log), tick(log))
    return ticks


configure_logging("info", "json")  # stdout: the parent's pipe, which nobody reads yet
ticks = asyncio.run(main())
report = {"ticks": ticks, "logged": LINES + ticks, "dropped": dropped_lines()}
print(json.dumps(report), file=sys.stderr, flush=True)
sys.exit(0 if close_logs(120) else 1)  # drains once the parent reads
"""


def read_report(stderr: IO[bytes]) -> dict[str, int]:
    """The child's one-line report from its stderr, read without buffering past it."""
    data = b""
    while not data.endswith(b"\n"):
        readable, _, _ = select.select([stderr], [], [], 120)
        assert readable, "the child never reported: its event loop is stuck"
        chunk = os.read(stderr.fileno(), 65536)
        assert chunk, "the child exited without a report"
        data += chunk
    try:
        report: dict[str, int] = json.loads(data)
    except json.JSONDecodeError:
        pytest.fail(f"the child failed: {data.decode(errors='replace')}")
    return report


def test_an_unread_stdout_pipe_never_stalls_the_event_loop() -> None:
    """Logging 100,000 lines into a pipe nobody reads: the loop keeps ticking, lines past
    the buffer are dropped and counted, and every line that is written is whole JSON."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert child.stderr is not None
        report = read_report(child.stderr)
        assert report["ticks"] == 200  # the loop went on while stdout was blocked
        assert report["dropped"] > 0  # the buffer filled up, and the drops were counted
        out, err = child.communicate(timeout=120)  # now read the pipe
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, err.decode(errors="replace")
    assert out.endswith(b"\n")
    events = [json.loads(raw) for raw in out.splitlines()]  # none partial, none garbled
    assert len(events) + report["dropped"] == report["logged"]  # every line accounted for
    numbers = [event["i"] for event in events if event["event"] == "line"]
    assert numbers == sorted(numbers)


EXITING_CHILD = """
import sys
from proxy.observability.logs import configure_logging, get_logger

configure_logging("info", "json")
log = get_logger("child")
for i in range(int(sys.argv[1])):
    log.info("line", i=i, pad="x" * 100)
"""


def test_lines_still_buffered_at_exit_are_written() -> None:
    """A short-lived process (a CLI error) loses nothing: the sink is flushed at exit."""
    result = subprocess.run(
        [sys.executable, "-c", EXITING_CHILD, "3"],
        cwd=ROOT,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert [json.loads(raw)["i"] for raw in result.stdout.splitlines()] == [0, 1, 2]


def test_exit_with_a_blocked_stdout_is_bounded_and_leaves_whole_lines() -> None:
    """With nobody reading stdout the process still exits, cleanly, mid-way through its
    lines; what reached the pipe is whole JSON lines only."""
    child = subprocess.Popen(
        [sys.executable, "-c", EXITING_CHILD, "20000"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert child.wait(timeout=120) == 0  # exited without anyone reading its stdout
        out, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert err == b""  # no "could not acquire lock ... at interpreter shutdown"
    assert out.endswith(b"\n")
    numbers = [json.loads(raw)["i"] for raw in out.splitlines()]
    assert 0 < len(numbers) < 20000
    assert numbers == list(range(len(numbers)))
