"""Transport faults on demand: the ways a gateway connection goes wrong.

=========  ==========================================================================
refuse     accept the connection, then close it at once without reading the request or
           answering (a proxy that already sent the request sees CONNECTION_LOST)
hang       never answer: wait until the client gives up (or ``hang_seconds`` pass)
drip       the normal answer, a few bytes at a time with a pause between them
           (``DRIP_BYTES`` per ``DRIP_INTERVAL_MS``; header ``X-Sim-Drip-Ms`` overrides)
reset      headers and the first half of the body, then a TCP reset (RST)
oversize   a valid-looking answer of ``OVERSIZE_BYTES`` (over the proxy's 1 MiB default)
html502    HTTP 502 with a load balancer's HTML error page
empty      HTTP 200 with an empty body (labelled ``text/xml``)
malformed  HTTP 200 with broken XML that holds no status code
=========  ==========================================================================

``refuse`` and ``hang`` need nothing from the request (``IMMEDIATE``); the others distort a
``FaultMaterial``: the answer the simulator would have sent, plus vendor-made bodies.
This is the simulator's aiohttp edge: ``reply_response`` turns a sans-io ``Reply`` into
the response that carries it.
"""

import asyncio
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import assert_never

from aiohttp import web

from proxy.tools.sim.reply import Reply
from proxy.tools.sim.settings import HANG_SECONDS
from proxy.vocab import FaultName

IMMEDIATE: frozenset[FaultName] = frozenset({"refuse", "hang"})
DRIP_BYTES = 16
DRIP_INTERVAL_MS = 250
DRIP_HEADER = "X-Sim-Drip-Ms"
OVERSIZE_BYTES = 2 * 1024 * 1024 + 512 * 1024
_POLL_SECONDS = 0.05

HTML_502 = b"""<html>
<head><title>502 Bad Gateway</title></head>
<body>
<center><h1>502 Bad Gateway</h1></center>
<hr><center>nginx</center>
</body>
</html>
"""


@dataclass(frozen=True, slots=True)
class FaultMaterial:
    """What a fault distorts: the normal ``reply`` and the vendor's odd bodies."""

    reply: Reply
    oversize: Callable[[int], bytes]  # size → a valid-looking body at least that long
    malformed: bytes


def reply_response(reply: Reply) -> web.Response:
    """The aiohttp response carrying ``reply`` unchanged."""
    # Set the raw header: aiohttp's content_type= would drop or re-add parameters.
    return web.Response(status=reply.status, body=reply.body, headers=reply.all_headers())


def _transport_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def refuse(request: web.Request) -> web.StreamResponse:
    """Close the connection without a byte of answer."""
    if request.transport is not None:
        request.transport.close()
    # Nothing reaches the client: the transport is closed before aiohttp writes this.
    return web.Response(status=500)


async def hang(request: web.Request, seconds: float = HANG_SECONDS) -> web.StreamResponse:
    """Never answer. Ends when the client disconnects, the handler is cancelled, or after
    ``seconds`` (then the connection is closed without an answer). Polling the transport
    keeps this cheap even without handler cancellation (aiohttp does not cancel handlers
    on disconnect by default)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    # aiohttp offers no "client went away" event to wait on, hence the cheap poll.
    while not _transport_gone(request) and loop.time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(_POLL_SECONDS)
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=504)


async def drip(request: web.Request, reply: Reply) -> web.StreamResponse:
    """Send ``reply`` in small pieces with pauses; stop quietly if the client leaves."""
    interval_ms = DRIP_INTERVAL_MS
    override = request.headers.get(DRIP_HEADER, "").strip()
    if override.isdigit():
        interval_ms = int(override)
    response = web.StreamResponse(status=reply.status, headers=reply.all_headers())
    response.content_length = len(reply.body)
    await response.prepare(request)
    try:
        for start in range(0, len(reply.body), DRIP_BYTES):
            await response.write(reply.body[start : start + DRIP_BYTES])
            await asyncio.sleep(interval_ms / 1000)
        await response.write_eof()
    except ConnectionError:  # the client gave up first: that is the point of a drip
        pass
    return response


async def reset(request: web.Request, reply: Reply) -> web.StreamResponse:
    """Promise the whole body (Content-Length), send half of it, then reset the connection."""
    response = web.StreamResponse(status=reply.status, headers=reply.all_headers())
    response.content_length = len(reply.body)
    await response.prepare(request)
    transport = request.transport
    try:
        await response.write(reply.body[: max(1, len(reply.body) // 2)])
        # Let the partial body leave the buffer: aborting would discard it.
        while transport is not None and transport.get_write_buffer_size() > 0:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        await asyncio.sleep(_POLL_SECONDS)
    except ConnectionError:
        return response
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # SO_LINGER 0: close() sends RST instead of FIN, like a crashed gateway.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    return response


def html502() -> web.Response:
    """HTTP 502 with nginx's error page, as a load balancer in front of a gateway sends."""
    return web.Response(
        status=502, body=HTML_502, headers={"Content-Type": "text/html", "Server": "nginx"}
    )


def _need(material: FaultMaterial | None, fault: FaultName) -> FaultMaterial:
    if material is None:
        raise ValueError(f"fault {fault} needs the answer it distorts")
    return material


async def apply(
    fault: FaultName,
    request: web.Request,
    material: FaultMaterial | None,
    *,
    hang_seconds: float = HANG_SECONDS,
) -> web.StreamResponse:
    """Carry out ``fault``. ``material`` may be None only for the ``IMMEDIATE`` faults
    (else ``ValueError``); ``hang_seconds`` bounds a ``hang``."""
    match fault:
        case "refuse":
            return await refuse(request)
        case "hang":
            return await hang(request, hang_seconds)
        case "html502":
            return html502()
        case "empty":
            return web.Response(status=200, body=b"", headers={"Content-Type": "text/xml"})
        case "drip":
            return await drip(request, _need(material, fault).reply)
        case "reset":
            return await reset(request, _need(material, fault).reply)
        case "oversize":
            made = _need(material, fault)
            body = made.oversize(OVERSIZE_BYTES)
            return reply_response(Reply(200, made.reply.content_type, body))
        case "malformed":
            made = _need(material, fault)
            return reply_response(Reply(200, made.reply.content_type, made.malformed))
        case _:
            assert_never(fault)


__all__ = [
    "DRIP_BYTES",
    "DRIP_HEADER",
    "DRIP_INTERVAL_MS",
    "HANG_SECONDS",
    "HTML_502",
    "IMMEDIATE",
    "OVERSIZE_BYTES",
    "FaultMaterial",
    "apply",
    "drip",
    "hang",
    "html502",
    "refuse",
    "reply_response",
    "reset",
]
