"""How an exchange fails: ``ExchangeFailure``, and the one map from OS and aiohttp errors.

Everything above the upstream package switches on ``ExchangeFailure.kind`` (vocab.py's
``FailureKind``) and on ``reached``; nothing above it sees an aiohttp or OS error::

    ExchangeFailure(kind, detail, reached)
      connect            refused, DNS, TLS handshake, connect timeout, no pool slot in
                         time: nothing was written, the gateway never had the request
      timeout            the deadline ran out after the request went out
      connection_lost    closed or reset before the whole answer arrived
      too_large          the answer is over its limit (also once decoded)
      unparseable        the answer is not valid HTTP, or cannot be decoded whole
      request_too_large  the app's body is over max_request_bytes
      client_timeout     the app's body paused longer than client_timeout.body_idle
      bad_request        the app's body ended early or broke its framing

``reached`` says whether any byte of the request may have been written: False only when
none was, so a caller may send it elsewhere without risking a duplicate. A detail never
quotes the gateway's bytes or names its address: it is sent to the app.
"""

import asyncio
import os
import socket
import ssl

import aiohttp

from proxy.aio.client import HttpProcessingError
from proxy.vocab import FailureKind

#: What reading or writing an upstream connection can raise, past the connect phase.
TRANSPORT_ERRORS = (OSError, aiohttp.ClientError, HttpProcessingError, aiohttp.EofStream)


class ExchangeFailure(Exception):
    """No complete, valid answer came back (or none was sought); see the module docstring.

    ``elapsed_s`` and ``bytes_sent`` say how far the exchange got.
    """

    def __init__(self, kind: FailureKind, detail: str, *, reached: bool = True) -> None:
        super().__init__(detail)
        self.kind: FailureKind = kind
        self.detail = detail
        self.reached = reached
        self.elapsed_s: float | None = None
        self.bytes_sent = 0


def connect_failure(exc: OSError) -> ExchangeFailure:
    """A connect-phase error: nothing reached the gateway."""
    if isinstance(exc, socket.gaierror):
        return ExchangeFailure(
            "connect", "could not resolve the gateway's host name", reached=False
        )
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        detail = f"TLS handshake with the gateway failed ({type(exc).__name__})"
        return ExchangeFailure("connect", detail, reached=False)
    reason = os.strerror(exc.errno).lower() if exc.errno else type(exc).__name__
    detail = f"could not connect to the gateway ({reason})"
    return ExchangeFailure("connect", detail, reached=False)


def exchange_failure(exc: BaseException, *, reached: bool) -> ExchangeFailure:
    """An error after the connect phase, as the failure it is. The detail names the error's
    type, never its message: that may quote the gateway's bytes or its address."""
    name = type(exc).__name__
    if isinstance(exc, TimeoutError | asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return ExchangeFailure("timeout", "the gateway did not answer in time", reached=reached)
    if isinstance(exc, aiohttp.ClientResponseError | HttpProcessingError):
        cause = exc.__cause__ if isinstance(exc.__cause__, HttpProcessingError) else exc
        detail = f"the gateway's answer is not valid HTTP ({type(cause).__name__})"
        return ExchangeFailure("unparseable", detail, reached=reached)
    if not reached and isinstance(exc, OSError):
        return connect_failure(exc)  # a pooled connection found gone before a byte went out
    detail = f"the connection to the gateway was lost ({name})"
    return ExchangeFailure("connection_lost", detail, reached=reached)


__all__ = ["TRANSPORT_ERRORS", "ExchangeFailure", "connect_failure", "exchange_failure"]
