"""One exchange with an upstream, within a deadline: take or open a connection, run the
round trip on it, give it back, and decode the answer. Raises only ``ExchangeFailure``."""

import asyncio
import time
from dataclasses import dataclass

from multidict import CIMultiDictProxy

from proxy.upstream.connection import Connection, Limits, Progress, Request
from proxy.upstream.decode import decode_content
from proxy.upstream.endpoint import Endpoint
from proxy.upstream.errors import (
    TRANSPORT_ERRORS,
    ExchangeFailure,
    certificate_refusal,
    connect_failure,
    exchange_failure,
)
from proxy.upstream.pool import UpstreamPool


@dataclass(slots=True)  # built per request: frozen=True costs a call per field
class Answer:
    """A complete answer. ``body`` is as received (passthrough returns it); ``content`` is
    the same body with every content coding undone (the parsers read it)."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    content: bytes
    duration_s: float
    bytes_out: int
    endpoint: Endpoint


async def exchange(
    pool: UpstreamPool,
    endpoint: Endpoint,
    request: Request,
    limits: Limits,
    progress: Progress | None = None,
    *,
    deadline: float | None = None,
) -> Answer:
    """Send ``request`` to ``endpoint`` and read the answer. Raises only ``ExchangeFailure``.

    ``deadline`` (``loop.time()`` seconds; default ``limits.total`` from now) bounds it all:
    the connection is aborted when it passes. ``limits.connect`` bounds the wait for a
    connection within it. ``progress`` (optional) counts the body bytes sent, as they go.
    ``ExchangeFailure.reached`` is False only when no byte of the request was written.
    """
    counter = progress or Progress()
    started = time.perf_counter()
    deadlines = pool.deadlines
    if deadline is None:
        deadline = deadlines.now() + limits.total
    conn: Connection | None = None
    fresh = False  # a new connection: its first exchange may meet a TLS 1.3 refusal
    try:
        conn = pool.take(endpoint)
        if conn is None:
            fresh = True
            conn = await _connect(pool, endpoint, limits, deadline)
        deadlines.start(conn, deadline)
        status, headers, body = await conn.round_trip(request, limits, counter)
    except ExchangeFailure as failure:
        failure.reached = failure.reached and (conn is not None and conn.sent)
        raise _measured(failure, started, counter) from None
    except (TimeoutError, *TRANSPORT_ERRORS) as exc:
        refused = certificate_refusal(exc) if fresh and endpoint.scheme == "https" else None
        if refused is not None:
            raise _measured(refused, started, counter) from exc
        sent = conn is not None and conn.sent
        mapped = exchange_failure(TimeoutError() if conn and conn.expired else exc, reached=sent)
        if mapped.kind == "timeout" and counter.awaiting_app:  # the app stalled, not the gateway
            mapped = ExchangeFailure(
                "client_timeout", "the app's body stalled past the route's timeout"
            )
        raise _measured(mapped, started, counter) from exc
    finally:
        if conn is not None:
            deadlines.stop(conn)
            pool.release(conn)
    content = body
    codings = headers.getall("Content-Encoding", None)
    if codings and not limits.body_unused:
        try:
            content = decode_content(body, ", ".join(codings), limits.max_response_bytes)
        except ExchangeFailure as failure:
            raise _measured(failure, started, counter) from None
    return Answer(
        status=status,
        headers=headers,
        body=body,
        content=content,
        duration_s=time.perf_counter() - started,
        bytes_out=counter.bytes_sent,
        endpoint=endpoint,
    )


def _measured(failure: ExchangeFailure, started: float, counter: Progress) -> ExchangeFailure:
    failure.elapsed_s = time.perf_counter() - started
    failure.bytes_sent = counter.bytes_sent
    return failure


async def _connect(
    pool: UpstreamPool, endpoint: Endpoint, limits: Limits, deadline: float
) -> Connection:
    """A new connection within ``limits.connect`` seconds (the pool wait included) and the
    deadline: the connect phase. Nothing is written yet, whatever fails."""
    left = deadline - pool.deadlines.now()
    try:
        async with asyncio.timeout(min(limits.connect, left)):
            return await pool.connect(endpoint)
    except TimeoutError:
        if left < limits.connect:
            raise ExchangeFailure(
                "timeout", "the gateway did not answer in time", reached=False
            ) from None
        raise ExchangeFailure(
            "connect", "timed out connecting to the gateway", reached=False
        ) from None
    except OSError as exc:
        raise connect_failure(exc) from exc


__all__ = ["Answer", "exchange"]
