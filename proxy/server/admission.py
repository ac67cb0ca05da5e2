"""Requests inside the proxy: admission against ``max_in_flight``, and the shutdown drain.

``Traffic`` counts the requests being proxied, all routes together and per route, and
keeps their handler tasks; ``drain`` waits for them at shutdown and then cancels what is
left, flagged so that each answers for itself. ``admitted`` is the one way in, for app
requests and relay callbacks alike: admit (or answer shed), track the task for the drain,
answer for itself when the drain cut it short, and leave.
"""

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

_T = TypeVar("_T")


class Traffic:
    """In-flight requests. Single-threaded: lives on the event loop."""

    def __init__(self, limit: int, route_limits: Mapping[str, int | None]) -> None:
        """``route_limits``: each route's own limit by name (None: only the global one)."""
        self.limit = limit
        self._route_limits = dict(route_limits)
        self._by_route = dict.fromkeys(self._route_limits, 0)
        self.total = 0
        self.tasks: set[asyncio.Task[object]] = set()
        #: Set once the drain ran out: handlers cancelled after it answer 503 themselves.
        self.drain_expired = False

    def in_flight(self, route: str) -> int:
        return self._by_route[route]

    def admit(self, route: str) -> bool:
        """Count one more request of ``route`` if it fits; False means shed it."""
        route_limit = self._route_limits[route]
        if self.total >= self.limit or (
            route_limit is not None and self._by_route[route] >= route_limit
        ):
            return False
        self.total += 1
        self._by_route[route] += 1
        return True

    def leave(self, route: str) -> None:
        self.total -= 1
        self._by_route[route] -= 1

    async def drain(self, seconds: float, grace: float = 0.5) -> int:
        """Wait up to ``seconds`` for the handlers; cancel the rest. Returns how many.

        Cancelled handlers see ``drain_expired`` and answer 503 (or, when their answer
        was already under way, close): ``grace`` bounds the wait for them to do so.
        """
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=seconds)
        left = [task for task in self.tasks if not task.done()]
        self.drain_expired = True
        for task in left:
            task.cancel("shutdown: the drain ran out")
        if left:
            await asyncio.wait(left, timeout=grace)
        return len(left)


async def admitted(
    traffic: Traffic,
    route: str,
    work: Callable[[], Awaitable[_T]],
    *,
    shed: Callable[[], _T],
    cut: Callable[[], _T],
    gone: Callable[[], object],
    loop: asyncio.AbstractEventLoop | None = None,
) -> _T:
    """Run ``work`` as one admitted request of ``route``; every request enters here.

    Over ``max_in_flight`` the answer is ``shed()``, and ``work`` never runs. While it
    runs, its task is kept for the drain. When the drain runs out and cancels it, the
    answer is ``cut()`` (a 503 of the caller's kind); when the app or relay went away,
    ``gone()`` observes it and the cancellation goes on. ``loop`` spares a look-up.
    """
    if not traffic.admit(route):
        return shed()
    # With the loop given, current_task skips get_running_loop (a getpid call in 3.11).
    task = asyncio.current_task(loop)
    if task is not None:  # the drain waits for it
        traffic.tasks.add(task)
    try:
        return await work()
    except asyncio.CancelledError:
        if traffic.drain_expired and task is not None:
            task.uncancel()  # answer 503 ourselves, then let the runner close
            return cut()
        gone()
        raise
    finally:
        traffic.tasks.discard(task)  # discarding None is harmless
        traffic.leave(route)


__all__ = ["Traffic", "admitted"]
