"""A route's rate limit: a FIFO queue of requests waiting for the tokens of one bucket.

``Limiter.acquire`` is the one way a request of a rate-limited route gets to send::

    a token at once (nobody waiting) ──────────────────────────────► send
    else its expected wait <= what is left of max_wait ──► queue ──► send (in arrival order)
    else ─────────────────────────────────────────────────────────► Refused (RATE_LIMITED)

Waiters are served in arrival order by one pump task, which takes a token from the
source (``Source``: the process's own bucket, or the store shared by every process,
store.py) for the head of the queue, or sleeps until one will be there. A waiter whose
``max_wait`` runs out is refused; one whose app hangs up (its task is cancelled) leaves
the queue without spending a token, or gives back the token it had just been granted.

A gateway's throttling answer ``pause``s the source (every process's, with a store);
the throttled request then comes back to the *head* of the queue
(``acquire(front=True)``) with what is left of its own ``max_wait``, and waiters that can
no longer be served in time are refused at once.
"""

import asyncio
import collections
import math
from collections.abc import Callable
from typing import Protocol

from proxy.config import RateLimit
from proxy.flow.bucket import TokenBucket

# How late past its max_wait a waiter may still be served: the pump's wake-ups jitter by
# a few milliseconds, and a waiter granted at its very deadline should still go.
_GRACE_SECONDS = 0.02


class Source(Protocol):
    """Where tokens come from; every time is the loop's clock (``loop.time()``).

    ``latency`` bounds one ``take``: a waiter's own timer allows for it past its max_wait
    (a shared store's round trip is not the queue's wait).
    """

    latency: float

    def take_now(self) -> float | None:
        """A token taken at once (0.0), the seconds until one can be, or None when the
        answer needs a round trip (then ``take``)."""

    async def take(self) -> float:
        """Take a token: 0.0, or (nothing taken) the seconds until one can be."""

    def give_back(self) -> None:
        """A taken token was not used."""

    def pause(self, seconds: float) -> None:
        """The gateway throttled: take nothing for ``seconds``."""

    def estimate(self, ahead: int) -> float:
        """Seconds a newcomer would wait behind ``ahead`` waiters."""


class Refused(Exception):
    """The queue cannot give the request a token within its ``max_wait``.

    ``retry_after`` is the whole seconds after which the app may try again.
    """

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after


class _Waiter:
    __slots__ = ("deadline", "future")

    def __init__(self, future: asyncio.Future[None], deadline: float) -> None:
        self.future = future
        self.deadline = deadline


class Limiter:
    """One route's queue and token source. Single-threaded: lives on the event loop.

    ``on_queue`` is told the queue's length whenever it changes (the metrics' gauge).
    """

    def __init__(
        self,
        route: str,
        settings: RateLimit,
        source: Source,
        *,
        on_queue: Callable[[int], None] | None = None,
    ) -> None:
        self.route = route
        self.max_wait = settings.max_wait
        self.rate = settings.per_second
        self._source = source
        self._queue: collections.deque[_Waiter] = collections.deque()
        self._on_queue = on_queue
        self._pump_task: asyncio.Task[None] | None = None
        self.now = LoopClock()  # the clock of every deadline here: loop.time()

    @property
    def queued(self) -> int:
        """Requests waiting for a token now."""
        return len(self._queue)

    async def acquire(self, deadline: float | None = None, *, front: bool = False) -> float:
        """Wait for a token; return the seconds waited. Raises ``Refused``.

        ``deadline`` (``now()`` seconds; default ``max_wait`` from now) is when the token
        must have come; ``front`` puts the request at the head of the queue (a throttled
        request's resend). Cancelled (the app went away), the request leaves the queue and
        no token is spent.
        """
        now = self.now()
        if deadline is None:
            deadline = now + self.max_wait
        if not self._queue and self._source.take_now() == 0.0:
            return 0.0  # the usual case under the limit: no queue, no task switch
        expected = self._source.estimate(0 if front else len(self._queue))
        if now + expected > deadline + _GRACE_SECONDS:
            raise self._refused(expected)
        loop = asyncio.get_running_loop()
        waiter = _Waiter(loop.create_future(), deadline)
        if front:
            self._queue.appendleft(waiter)
        else:
            self._queue.append(waiter)
        self._changed()
        if self._pump_task is None:
            self._pump_task = loop.create_task(
                self._pump(), name=f"gateway-proxy-rate-limit-{self.route}"
            )
        try:
            async with asyncio.timeout_at(deadline + _GRACE_SECONDS + self._source.latency):
                await waiter.future
        except TimeoutError:
            if not self._leave(waiter):
                return self.now() - now  # granted at its deadline: it goes
            raise self._refused(self._source.estimate(len(self._queue))) from None
        except asyncio.CancelledError:
            if not self._leave(waiter):
                self._source.give_back()  # granted, but its app is gone: not spent
            raise
        return self.now() - now

    def throttled(self, seconds: float) -> None:
        """The gateway answered throttling: pause for ``seconds``, and refuse at once the
        waiters that can no longer get a token within their ``max_wait``."""
        self._source.pause(seconds)
        now = self.now()
        kept: collections.deque[_Waiter] = collections.deque()
        for waiter in self._queue:
            if now + self._source.estimate(len(kept)) > waiter.deadline:
                if not waiter.future.done():
                    waiter.future.set_exception(self._refused(self._source.estimate(0)))
            else:
                kept.append(waiter)
        if len(kept) != len(self._queue):
            self._queue = kept
            self._changed()

    async def close(self) -> None:
        """Stop the pump (the app is shutting down; the drain answered every waiter)."""
        task, self._pump_task = self._pump_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    # --- the pump --------------------------------------------------------------------
    async def _pump(self) -> None:
        """Serve the queue's head, in order, while anyone waits."""
        try:
            while self._queue:
                wait = self._source.take_now()
                if wait is None:
                    wait = await self._source.take()
                if wait > 0.0:
                    await asyncio.sleep(wait)
                    continue
                self._grant()
        finally:
            if self._pump_task is asyncio.current_task():
                self._pump_task = None

    def _grant(self) -> None:
        """Give the token just taken to the first waiter still waiting (else back)."""
        while self._queue:
            waiter = self._queue.popleft()
            if not waiter.future.done():
                waiter.future.set_result(None)
                self._changed()
                return
        self._changed()
        self._source.give_back()

    def _leave(self, waiter: _Waiter) -> bool:
        """Take ``waiter`` out of the queue; False when it had been granted a token."""
        future = waiter.future
        if future.done() and not future.cancelled() and future.exception() is None:
            return False
        try:
            self._queue.remove(waiter)
        except ValueError:
            return True  # refused by ``throttled``: already out
        self._changed()
        return True

    def _refused(self, expected: float) -> Refused:
        # When the app may come back: once it could be served within max_wait.
        retry_after = max(1, math.ceil(expected - self.max_wait))
        detail = (
            f"the route's rate limit ({self.rate:g}/s) would keep the request waiting "
            f"longer than max_wait ({self.max_wait:g} s); the gateway was not contacted"
        )
        return Refused(detail, retry_after)

    def _changed(self) -> None:
        if self._on_queue is not None:
            self._on_queue(len(self._queue))


class LoopClock:
    """``loop.time()`` of the running loop, looked up once (``asyncio.timeout_at`` keeps
    its deadlines in that clock; ``get_running_loop`` costs a system call in 3.11)."""

    __slots__ = ("_loop",)

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None

    def __call__(self) -> float:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        return loop.time()


class LocalSource:
    """The process's own bucket (``RateLimit.local_rate``/``local_burst``: its share)."""

    latency = 0.0

    def __init__(self, settings: RateLimit, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.bucket = TokenBucket(settings.local_rate, settings.local_burst)

    def take_now(self) -> float:
        return self.bucket.take(self._clock())

    async def take(self) -> float:
        return self.bucket.take(self._clock())

    def give_back(self) -> None:
        self.bucket.give_back(self._clock())

    def pause(self, seconds: float) -> None:
        self.bucket.pause(self._clock(), seconds)

    def estimate(self, ahead: int) -> float:
        return self.bucket.estimate(self._clock(), ahead)


__all__ = ["Limiter", "LocalSource", "LoopClock", "Refused", "Source"]
