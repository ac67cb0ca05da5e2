"""Requests inside the proxy: admission against ``max_in_flight``, and the shutdown drain.

``Traffic`` counts the requests being proxied, all routes together and per route, and
keeps their handler tasks. ``admit`` says whether one more fits (else the request is shed
at once, without contacting the gateway); ``drain`` waits for the tasks at shutdown and
then cancels what is left, flagged so that each answers for itself (server.py).
"""

import asyncio
from collections.abc import Iterator, Mapping
from contextlib import contextmanager


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

    @contextmanager
    def tracking(self) -> Iterator[None]:
        """Keep the current handler task for the drain while the block runs."""
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - handlers always run in a task
            yield
            return
        self.tasks.add(task)
        try:
            yield
        finally:
            self.tasks.discard(task)

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


__all__ = ["Traffic"]
