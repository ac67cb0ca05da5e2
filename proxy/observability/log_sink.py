"""A bounded, never-blocking buffer for log lines, drained by one writer thread.

A log collector that cannot keep up fills the stdout pipe (64 KiB on Linux), and from then
on every write to it blocks. Written from the event loop, that would stall every request.
Here the loop only appends to a bounded in-memory buffer; one daemon thread does the
blocking writes::

    any thread (the event loop)          writer thread "gateway-proxy-log-writer"
    LineSink.put(line) ──▶ [bounded deque] ──▶ LineWriter.write(lines)  (may block)
          │ buffer full: drop the line, count it
          ▼
    LineSink.dropped ──▶ DroppedLinesCollector ──▶ gateway_proxy_log_lines_dropped_total

What it promises:

- ``put`` never blocks and never raises. When the buffer holds ``CAPACITY_LINES`` lines or
  ``CAPACITY_CHARS`` characters, the line is dropped and counted; so is a line whose write
  failed (a closed pipe), and any line put after ``close``.
- Lines are written whole and in order. ``FdWriter`` writes whole lines only, and no more
  per ``os.write`` than the output takes at once: to a pipe, what its free space holds
  (read before each write) or else ``PIPE_BUF`` bytes (4 KiB on Linux), which a pipe
  takes atomically; so a reader never sees part of a line, even if the process exits
  while the writer is blocked. (A line longer than that goes alone and has no such
  promise.) A regular file takes a whole batch per write. Big writes matter: each one
  hands the GIL to the event loop and back, a cost per write, not per line.
- ``flush(timeout)`` and ``close(timeout)`` return within ``timeout``, even while the
  writer is blocked; they say whether everything was written.

``logs.configure_logging`` gets its sink from ``sink_for(stream)`` and plugs it into
structlog (``SinkLoggerFactory``) and stdlib logging (``SinkHandler``). The process keeps
one sink per output file; ``flush_logs``, ``close_logs`` and ``dropped_lines`` act on all
of them, and ``close_logs`` runs at exit.
"""

import array
import atexit
import collections
import fcntl
import logging
import os
import select
import stat
import sys
import termios
import threading
import time
from collections.abc import Callable, Iterator
from typing import IO, Any, Protocol

from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

__all__ = [
    "CAPACITY_CHARS",
    "CAPACITY_LINES",
    "FLUSH_SECONDS",
    "DroppedLinesCollector",
    "FdWriter",
    "LineSink",
    "LineWriter",
    "SinkHandler",
    "SinkLoggerFactory",
    "close_logs",
    "dropped_lines",
    "flush_logs",
    "share_outputs",
    "sink_for",
]

# A few seconds of a busy proxy's lines: enough to ride out a collector's hiccup, small
# enough that a stuck one costs a bounded amount of memory (characters, not bytes: the
# cost is counted without encoding on the loop).
CAPACITY_LINES = 10_000
CAPACITY_CHARS = 16 * 1024 * 1024
# The default bound on waiting for buffered lines: at shutdown, and at exit.
FLUSH_SECONDS = 2.0
# The writer takes up to this many lines per turn: fewer lock round trips, fewer writes.
_BATCH_LINES = 1024
# While lines keep coming the writer looks for more every _POLL_SECONDS, unasked: waking it
# for each line would cost the event loop a futex call and a GIL hand-over per line (each
# look costs a few: rarely enough, they are nothing). After _IDLE_POLLS empty looks it
# sleeps until the next line wakes it (an idle proxy costs none).
_POLL_SECONDS = 0.05
_IDLE_POLLS = 6
# Pipes write this many bytes atomically (POSIX guarantees at least 512).
_PIPE_BUF: int = getattr(select, "PIPE_BUF", 512)
# Shared with other processes (``serve --workers``): a pipe gets PIPE_BUF-sized writes
# only, since another writer may take the free space between the look and the write.
_SHARED = False


def share_outputs() -> None:
    """From now on, this process and others write to the same outputs (before forking)."""
    global _SHARED  # noqa: PLW0603 - a property of the process, like its stdout
    _SHARED = True


class LineWriter(Protocol):
    """Where a sink's lines go; called from the writer thread only."""

    def write(self, lines: list[str]) -> int:
        """Write ``lines`` (each ends in a newline) in order, blocking as long as it takes.

        Returns how many of them were written; the sink counts the rest as dropped (the
        output failed: a closed pipe). Never raises ``OSError``.
        """

    def close(self) -> None:
        """Release the target; called once, when the writer thread ends."""


class FdWriter:
    """Writes lines to a duplicate of file descriptor ``fd``, whole lines per ``os.write``.

    The duplicate is ours alone, so the number can never be reused by someone else's file
    while a line is in flight. Writing to the descriptor, not to ``sys.stdout``, also means
    a blocked write holds no lock of Python's stdout object, which the interpreter would
    otherwise wait for (and abort on) at exit.
    """

    def __init__(self, fd: int, encoding: str = "utf-8") -> None:
        self._fd = os.dup(fd)
        self._encoding = encoding
        mode = os.fstat(self._fd).st_mode
        self._regular = stat.S_ISREG(mode)
        self._pipe_size: int | None = None
        if stat.S_ISFIFO(mode) and not _SHARED:
            try:
                self._pipe_size = fcntl.fcntl(self._fd, fcntl.F_GETPIPE_SZ)
            except (OSError, AttributeError):  # not Linux: PIPE_BUF writes
                self._pipe_size = None

    def write(self, lines: list[str]) -> int:
        encoded = [line.encode(self._encoding, "backslashreplace") for line in lines]
        written, start = 0, 0
        while start < len(encoded):
            limit, end, size = self._limit(), start + 1, len(encoded[start])
            while end < len(encoded) and size + len(encoded[end]) <= limit:
                size += len(encoded[end])
                end += 1
            if not self._write_all(b"".join(encoded[start:end])):
                return written
            written, start = written + end - start, end
        return written

    def _limit(self) -> int:
        """How many bytes of whole lines the next write may hold (see the module docstring)."""
        if self._regular:
            return sys.maxsize
        if self._pipe_size is None:
            return _PIPE_BUF
        unread = array.array("i", [0])
        try:
            fcntl.ioctl(self._fd, termios.FIONREAD, unread, True)
        except OSError:
            return _PIPE_BUF
        return max(_PIPE_BUF, self._pipe_size - unread[0])

    def _write_all(self, data: bytes) -> bool:
        view = memoryview(data)
        while view:
            try:
                # Short only past PIPE_BUF, or when a signal interrupts the write.
                view = view[os.write(self._fd, view) :]
            except BlockingIOError:  # someone made the descriptor non-blocking
                poller = select.poll()
                poller.register(self._fd, select.POLLOUT)
                poller.poll()
            except OSError:  # a closed pipe or descriptor: the sink counts the loss
                return False
        return True

    def close(self) -> None:
        os.close(self._fd)


class LineSink:
    """A bounded buffer of lines and the one daemon thread that writes them to ``writer``.

    The thread starts here and ends after ``close`` once the buffer is empty (or never, if
    the writer stays blocked; it is a daemon and does not hold up the process's exit).
    """

    def __init__(
        self,
        writer: LineWriter,
        *,
        capacity_lines: int = CAPACITY_LINES,
        capacity_chars: int = CAPACITY_CHARS,
        name: str = "gateway-proxy-log-writer",
    ) -> None:
        self._writer = writer
        self._capacity_lines = capacity_lines
        self._capacity_chars = capacity_chars
        self._lines: collections.deque[str] = collections.deque()
        self._chars = 0
        lock = threading.Lock()
        self._lock = lock
        self._has_work = threading.Condition(lock)  # the writer waits: a line, or close
        self._progress = threading.Condition(lock)  # flush waits: lines done
        self._accepted = 0  # lines taken into the buffer
        self._done = 0  # of those, lines written or failed
        self._dropped = 0
        self._closed = False
        self._writer_waiting = False  # asleep until woken (else it polls: see _POLL_SECONDS)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def dropped(self) -> int:
        """Lines lost so far: buffer full, write failed, or put after close. Only grows."""
        return self._dropped

    @property
    def pending(self) -> int:
        """Lines taken but not yet written (in the buffer or being written)."""
        with self._lock:
            return self._accepted - self._done

    @property
    def closed(self) -> bool:
        """Whether ``close`` was called."""
        return self._closed

    def put(self, line: str) -> bool:
        """Queue ``line`` (ending in a newline) without blocking; ``False`` if dropped."""
        size = len(line)
        with self._lock:
            if (
                self._closed
                or len(self._lines) >= self._capacity_lines
                or self._chars + size > self._capacity_chars
            ):
                self._dropped += 1
                return False
            self._lines.append(line)
            self._chars += size
            self._accepted += 1
            if self._writer_waiting:
                self._writer_waiting = False
                self._has_work.notify()
        return True

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for every line queued so far to be written.

        Returns ``True`` if they all were (or failed and were counted), ``False`` on
        timeout: the writer is blocked, and the lines stay queued.
        """
        with self._lock:
            target = self._accepted
            return self._progress.wait_for(lambda: self._done >= target, timeout)

    def close(self, timeout: float) -> bool:
        """Refuse new lines, then flush for up to ``timeout`` seconds; idempotent.

        Returns what ``flush`` returns. Lines put afterwards are dropped and counted.
        """
        with self._lock:
            self._closed = True
            self._has_work.notify()
        return self.flush(timeout)

    def _run(self) -> None:
        try:
            empty_polls = _IDLE_POLLS
            while True:
                with self._lock:
                    while not self._lines:
                        if self._closed:
                            return
                        if empty_polls < _IDLE_POLLS:
                            empty_polls += 1
                            self._has_work.wait(_POLL_SECONDS)
                            continue
                        self._writer_waiting = True
                        self._has_work.wait()
                        self._writer_waiting = False
                    empty_polls = 0
                    take = min(len(self._lines), _BATCH_LINES)
                    batch = [self._lines.popleft() for _ in range(take)]
                    self._chars -= sum(map(len, batch))
                written = self._writer.write(batch)
                with self._lock:
                    self._done += take
                    self._dropped += take - written
                    self._progress.notify_all()
        finally:
            self._writer.close()


# --- the process's sinks ------------------------------------------------------------------
class _Sinks:
    """The process's sinks, one per output file (stdout, in production).

    Module state on purpose: like stdout itself and structlog's configuration, they belong
    to the process. A sink outlives a reconfiguration, as a plain stream would: loggers
    cached before it keep writing there, and its drops stay in ``dropped_lines()``.
    """

    def __init__(self) -> None:
        self.open: dict[tuple[int, int], LineSink] = {}  # by the file's (st_dev, st_ino)
        self.all: list[LineSink] = []
        self.close_at_exit = False


_SINKS = _Sinks()


def _forget_inherited_sinks() -> None:
    # In a forked child (``serve --workers``) the parent's sinks are not this process's:
    # their writer thread did not come along and their lock may be held by it. The child
    # starts afresh with its next ``configure_logging``; the parent writes its own lines.
    _SINKS.open.clear()
    _SINKS.all.clear()


os.register_at_fork(after_in_child=_forget_inherited_sinks)


def _fileno(stream: IO[str]) -> int | None:
    fileno = getattr(stream, "fileno", None)
    if fileno is None:
        return None
    try:
        return int(fileno())
    except (OSError, ValueError):  # io.UnsupportedOperation is both
        return None


def sink_for(stream: IO[str]) -> LineSink | None:
    """The open sink writing to ``stream``'s file, started on first use.

    ``None`` if ``stream`` has no file descriptor (``StringIO`` and other in-memory
    streams): write to those directly. Calls for the same file share one sink.
    """
    fd = _fileno(stream)
    if fd is None:
        return None
    stat = os.fstat(fd)
    key = (stat.st_dev, stat.st_ino)
    sink = _SINKS.open.get(key)
    if sink is None or sink.closed:
        stream.flush()  # what was written through the stream before goes out first
        sink = LineSink(FdWriter(fd, getattr(stream, "encoding", None) or "utf-8"))
        _SINKS.open[key] = sink
        _SINKS.all.append(sink)
    if not _SINKS.close_at_exit:
        _SINKS.close_at_exit = True
        atexit.register(close_logs, FLUSH_SECONDS)
    return sink


def flush_logs(timeout: float = FLUSH_SECONDS) -> bool:
    """Wait up to ``timeout`` seconds in all for every sink's queued lines to be written.

    Blocks the calling thread: call it after the event loop, or in a thread. Returns
    ``True`` if every line logged before the call was written (or dropped and counted),
    ``False`` if an output stayed blocked; ``True`` at once when nothing is buffered.
    """
    deadline = time.monotonic() + timeout
    done = True
    for sink in list(_SINKS.all):
        done = sink.flush(max(0.0, deadline - time.monotonic())) and done
    return done


def close_logs(timeout: float = FLUSH_SECONDS) -> bool:
    """Close every sink (``LineSink.close``) within ``timeout`` seconds in all.

    Runs at exit anyway. Lines logged afterwards through loggers already in use are dropped
    and counted; ``configure_logging`` again starts a new sink. Returns what
    ``flush_logs`` would.
    """
    deadline = time.monotonic() + timeout
    done = True
    for sink in list(_SINKS.all):
        done = sink.close(max(0.0, deadline - time.monotonic())) and done
    _SINKS.open.clear()
    return done


def dropped_lines() -> int:
    """Log lines this process has dropped so far, over all its sinks; only grows."""
    return sum(sink.dropped for sink in _SINKS.all)


# --- adapters: what structlog and stdlib logging write to ------------------------------
class _SinkLogger:
    """structlog's wrapped logger: each rendered line goes to the sink, whole."""

    __slots__ = ("_put",)

    def __init__(self, sink: LineSink) -> None:
        self._put = sink.put

    def msg(self, message: str) -> None:
        self._put(message + "\n")

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


class SinkLoggerFactory:
    """A structlog ``logger_factory`` writing to ``sink``; one stateless logger serves all."""

    def __init__(self, sink: LineSink) -> None:
        self._logger = _SinkLogger(sink)

    def __call__(self, *_: Any) -> _SinkLogger:
        return self._logger


class SinkHandler(logging.Handler):
    """A stdlib ``logging`` handler that puts each formatted record into ``sink``."""

    def __init__(self, sink: LineSink) -> None:
        super().__init__()
        self._sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # noqa: BLE001 - logging.Handler's contract: report, never raise
            self.handleError(record)
            return
        self._sink.put(line + "\n")


# --- metrics ----------------------------------------------------------------------------
class DroppedLinesCollector(Collector):
    """A Prometheus collector for ``gateway_proxy_log_lines_dropped_total``.

    ``count`` returns the number of lines dropped so far (default: ``dropped_lines``,
    the whole process's); it is read on every scrape.
    """

    NAME = "gateway_proxy_log_lines_dropped"
    HELP = "Log lines dropped because the log output could not keep up or failed."

    def __init__(self, count: Callable[[], int] = dropped_lines) -> None:
        self._count = count

    def describe(self) -> Iterator[Metric]:
        # Lets the registry reject a duplicate name without reading the count.
        yield CounterMetricFamily(self.NAME, self.HELP)

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.NAME, self.HELP)
        family.add_metric([], float(self._count()))
        yield family
