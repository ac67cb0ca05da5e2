"""What a process tree costs, read from Linux ``/proc``: CPU time, memory, file descriptors.

A "tree" is a process and all its live descendants (nginx's master and worker; a
gateway-proxy with ``--workers``), so each figure covers the whole target. CPU time is
``utime + stime`` of each member (``/proc/<pid>/stat``); a member that exits between two
readings takes its time with it, which none of the targets do while measured.

``Sampler`` polls a tree's resident memory and open descriptors in a thread while a
scenario runs and keeps the peaks; ``reset_peak_rss`` plus ``peak_rss_kib`` (VmHWM) catch
a spike shorter than the sampling interval.
"""

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

_PROC = Path("/proc")
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name (field 3 onwards)."""
    return (_PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()


def tree_pids(root: int) -> list[int]:
    """``root`` and every live descendant (scans /proc once)."""
    children: dict[int, list[int]] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int(_stat_fields(int(entry.name))[1])
        except (OSError, IndexError, ValueError):
            continue  # exited while scanning
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of ``pids`` (those that still exist)."""
    ticks = 0
    for pid in pids:
        try:
            fields = _stat_fields(pid)
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / _CLK_TCK


def _status_kib(pid: int, key: str) -> int:
    try:
        for line in (_PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_kib(pids: list[int]) -> int:
    """Resident memory of ``pids`` added up (VmRSS), KiB."""
    return sum(_status_kib(pid, "VmRSS:") for pid in pids)


def peak_rss_kib(pids: list[int]) -> int:
    """The high-water marks (VmHWM) of ``pids`` added up, KiB: an upper bound of the peak."""
    return sum(_status_kib(pid, "VmHWM:") for pid in pids)


def reset_peak_rss(pids: list[int]) -> bool:
    """Reset VmHWM to the current RSS (``clear_refs`` 5); False where that is not allowed."""
    done = True
    for pid in pids:
        try:
            (_PROC / str(pid) / "clear_refs").write_text("5")
        except OSError:
            done = False
    return done


def fd_count(pids: list[int]) -> int:
    """Open file descriptors of ``pids`` added up."""
    total = 0
    for pid in pids:
        try:
            total += len(os.listdir(_PROC / str(pid) / "fd"))
        except OSError:
            continue
    return total


def listen_overflows() -> int:
    """The kernel's count of connections dropped because an accept queue was full.

    System-wide (TcpExt ListenOverflows): a rise during a scenario points at a listen
    backlog too small for the burst of connections.
    """
    lines = (_PROC / "net" / "netstat").read_text().splitlines()
    for header, values in zip(lines[::2], lines[1::2], strict=False):
        if header.startswith("TcpExt:"):
            fields = dict(zip(header.split(), values.split(), strict=True))
            return int(fields.get("ListenOverflows", 0))
    return 0


@dataclass
class Peaks:
    """The highest tree RSS (KiB) and descriptor count seen, and how many samples were taken."""

    rss_kib: int = 0
    fds: int = 0
    samples: int = 0


class Sampler:
    """``with Sampler(pid, fds=True) as s: ...``; then ``s.peaks``. Polls in a daemon thread."""

    def __init__(self, root: int, *, interval: float = 0.005, fds: bool = False) -> None:
        self.peaks = Peaks()
        self._root, self._interval, self._fds = root, interval, fds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sampler-{root}", daemon=True)

    def _run(self) -> None:
        pids = tree_pids(self._root)
        while True:
            self.peaks.rss_kib = max(self.peaks.rss_kib, rss_kib(pids))
            if self._fds:
                self.peaks.fds = max(self.peaks.fds, fd_count(pids))
            self.peaks.samples += 1
            if self._stop.wait(self._interval):
                return

    def __enter__(self) -> "Sampler":
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.005) -> None:
    """Call ``check()`` every ``interval`` seconds until it returns True.

    Raises ``TimeoutError`` after ``timeout`` seconds.
    """
    deadline = time.perf_counter() + timeout
    while not check():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"not ready after {timeout:g}s")
        time.sleep(interval)
