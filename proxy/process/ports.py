"""Listening addresses: bind them up front, or say in one line why they can't be had.

``bind(address)`` returns a listening socket (for ``web.run_app(sock=...)``) or raises
``PortError`` whose message is the line to print, e.g. ``cannot listen on
127.0.0.1:8081: address already in use``. ``check_free`` does the same for addresses that
child processes will bind (the demo checks them all before it prints its guide, so that a
second demo never mistakes the first one's processes for its own).
"""

import os
import socket
from collections.abc import Iterable

from proxy.config import Address


class PortError(Exception):
    """An address cannot be listened on; the message is the one line to print."""


def explain(address: Address, exc: OSError) -> str:
    """``cannot listen on HOST:PORT: reason``, with the OS's own words for the errno."""
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    return f"cannot listen on {address}: {reason.lower()}"


def bind(address: Address, backlog: int = 1024) -> socket.socket:
    """A listening TCP socket on ``address``. Raises ``PortError``."""
    family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address.host, address.port))
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise PortError(explain(address, exc)) from None
    return sock


def check_free(addresses: Iterable[Address]) -> None:
    """Raise ``PortError`` for the first of ``addresses`` that is taken (port 0 is free)."""
    for address in addresses:
        if address.port != 0:
            bind(address, backlog=1).close()


__all__ = ["PortError", "bind", "check_free", "explain"]
