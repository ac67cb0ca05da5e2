"""The bench's own clients: a 100 MB upload and a wave of requests to a slow gateway.

Both run in the bench process (pinned to the client core) on an event loop of their
own, uvloop when installed, while a ``Sampler`` watches the target's process tree.

* ``upload``: one POST of ``size`` bytes, generated chunk by chunk (never held whole),
  with a Content-Length as an app would send it, to ``UPLOAD_PATH``, where the gateway
  reads the whole body before it answers. Peak RSS is the larger of the sampled tree
  RSS and the tree's VmHWM after a reset (``clear_refs``), so a short spike still counts.
* ``slow_wave``: ``count`` requests sent at once to ``SLOW_PATH`` (the gateway answers
  after ``SLOW_SECONDS``), each on its own connection; all must answer 200 within
  ``WAVE_TIMEOUT_S``. The kernel's ListenOverflows count is read before and after: a
  listen backlog too small for the burst shows there (and as timeouts).
"""

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import aiohttp
from yarl import URL

from bench.procs import (
    Sampler,
    listen_overflows,
    peak_rss_kib,
    reset_peak_rss,
    rss_kib,
    tree_pids,
)
from bench.replies import MM7_SUBMIT_OK, SLOW_PATH, UPLOAD_PATH
from bench.results import SlowRun, TargetName, UploadRun

_T = TypeVar("_T")
_CHUNK = 256 * 1024
WAVE_TIMEOUT_S = 30.0


def run_async(factory: Callable[[], Awaitable[_T]]) -> _T:
    """Run a coroutine on a fresh loop (uvloop when installed)."""
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:
        pass

    async def main() -> _T:
        return await factory()

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(main())


async def _body(size: int) -> AsyncIterator[bytes]:
    block = b"\0" * _CHUNK
    left = size
    while left > 0:
        yield block[: min(left, _CHUNK)]
        left -= _CHUNK


async def _post_upload(url: str, size: int) -> tuple[float, int]:
    timeout = aiohttp.ClientTimeout(total=300)
    headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
    async with aiohttp.ClientSession(timeout=timeout) as session:
        started = time.perf_counter()
        async with session.post(url, data=_body(size), headers=headers) as response:
            await response.read()
            return time.perf_counter() - started, response.status


def upload(target: TargetName, rep: int, base_url: str, pid: int, size: int) -> UploadRun:
    """Upload ``size`` bytes through the target whose tree is rooted at ``pid``."""
    pids = tree_pids(pid)
    before = rss_kib(pids)
    hwm_reset = reset_peak_rss(pids)
    with Sampler(pid) as sampler:
        wall_s, status = run_async(lambda: _post_upload(base_url + UPLOAD_PATH, size))
    peak = max(sampler.peaks.rss_kib, peak_rss_kib(pids) if hwm_reset else 0)
    return UploadRun(target, rep, wall_s, status, before, peak)


def _raw_request(host: str, port: int, path: str) -> bytes:
    body = MM7_SUBMIT_OK.request_body
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: {MM7_SUBMIT_OK.request_content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


async def _wave(base_url: str, count: int) -> tuple[int, Counter[str], float, int]:
    """Raw HTTP/1.1 over asyncio streams: far cheaper per connection than a full client,
    so the client core is not what limits how fast the wave goes out."""
    url = URL(base_url)
    host, port = url.host or "127.0.0.1", url.port or 80
    request = _raw_request(host, port, SLOW_PATH)
    failures: Counter[str] = Counter()
    in_flight = most = ok = 0

    async def one() -> None:
        nonlocal in_flight, most, ok
        in_flight += 1
        most = max(most, in_flight)
        try:
            async with asyncio.timeout(WAVE_TIMEOUT_S):
                reader, writer = await asyncio.open_connection(host, port)
                try:
                    writer.write(request)
                    answer = await reader.read()  # until the server closes (Connection: close)
                finally:
                    writer.close()
            status = answer.split(b" ", 2)[1] if answer.startswith(b"HTTP/1.") else b"none"
            if status == b"200":
                ok += 1
            else:
                failures[f"http_{status.decode(errors='replace')}"] += 1
        except (OSError, TimeoutError) as exc:
            failures[type(exc).__name__] += 1
        finally:
            in_flight -= 1

    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for i in range(count):
            group.create_task(one(), name=f"slow-{i}")
    return ok, failures, time.perf_counter() - started, most


def slow_wave(target: TargetName, base_url: str, pid: int, count: int) -> SlowRun:
    """``count`` concurrent requests to the slow path through the target rooted at ``pid``."""
    before, overflows = rss_kib(tree_pids(pid)), listen_overflows()
    with Sampler(pid, interval=0.02, fds=True) as sampler:
        ok, failures, wall_s, most = run_async(lambda: _wave(base_url, count))
    return SlowRun(
        target=target,
        requests=count,
        ok=ok,
        failures=dict(failures),
        wall_s=wall_s,
        rss_before_kib=before,
        peak_rss_kib=sampler.peaks.rss_kib,
        peak_fds=sampler.peaks.fds,
        max_in_flight=most,
        listen_overflows=listen_overflows() - overflows,
    )
