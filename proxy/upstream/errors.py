"""How an exchange fails: ``ExchangeFailure``, and the one map from OS and aiohttp errors.

Everything above the upstream package switches on ``ExchangeFailure.kind`` (vocab.py's
``FailureKind``) and on ``reached``; nothing above it sees an aiohttp or OS error::

    ExchangeFailure(kind, detail, reached)
      connect            refused, DNS, TLS handshake, connect timeout, no pool slot in
                         time: nothing was written, the gateway never had the request;
                         also a TLS 1.3 relay's refusal of the client certificate,
                         which arrives on the first read of a new connection
                         (``certificate_refusal``): its HTTP layer never saw a byte
      timeout            the deadline ran out after the request went out
      connection_lost    closed or reset before the whole answer arrived
      too_large          the answer is over its limit (also once decoded)
      unparseable        the answer is not valid HTTP, or cannot be decoded whole
      request_too_large  the app's body is over max_request_bytes
      client_timeout     the app's body paused longer than client_timeout.body_idle
      bad_request        the app's body ended early or broke its framing

``reached`` says whether any byte of the request may have been written: False only when
none was (or, for the TLS 1.3 refusal, none was decrypted by the relay), so a caller may
send it elsewhere without risking a duplicate. A detail never quotes the gateway's bytes
or names its address: it is sent to the app. A TLS failure's detail says why in fixed
words (``tls_reason``): unknown CA, name mismatch, expired, client certificate refused.
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

# OpenSSL's verify codes of a gateway certificate the proxy refused (x509_vfy.h).
_UNTRUSTED = frozenset({2, 18, 19, 20, 21, 27, 28})
_VERIFY_REASONS = {
    **dict.fromkeys(_UNTRUSTED, "its certificate is not signed by a trusted CA (unknown CA)"),
    9: "its certificate is not valid yet",
    10: "its certificate has expired",
    23: "its certificate is revoked",
    62: "its certificate does not match the name (name mismatch)",
    64: "its certificate does not match the address (name mismatch)",
}
# The alerts a relay answers a client certificate with (RFC 8446 §6.2), by OpenSSL's reason.
_CERTIFICATE_ALERTS = {
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "certificate required",
    "SSLV3_ALERT_BAD_CERTIFICATE": "bad certificate",
    "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE": "unsupported certificate",
    "SSLV3_ALERT_CERTIFICATE_REVOKED": "certificate revoked",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "certificate expired",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": "certificate unknown",
    "TLSV1_ALERT_UNKNOWN_CA": "unknown CA",
    "TLSV1_ALERT_ACCESS_DENIED": "access denied",
}
_HANDSHAKE = "TLS handshake with the gateway failed"


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
        return ExchangeFailure("connect", tls_reason(exc), reached=False)
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


def tls_reason(exc: ssl.SSLError | ssl.CertificateError) -> str:
    """Why a TLS handshake failed, in fixed words (never the certificate's names)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        why = _VERIFY_REASONS.get(getattr(exc, "verify_code", 0), "its certificate was refused")
        return f"{_HANDSHAKE}: {why}"
    if isinstance(exc, ssl.CertificateError):
        return f"{_HANDSHAKE}: its certificate was refused"
    reason = str(getattr(exc, "reason", None) or "")
    alert = _CERTIFICATE_ALERTS.get(reason)
    if alert is not None:
        return f"{_HANDSHAKE}: it refused the proxy's client certificate ({alert})"
    if reason == "SSLV3_ALERT_HANDSHAKE_FAILURE":
        return f"{_HANDSHAKE}: it refused the handshake (handshake failure; a client certificate?)"
    words = reason.replace("_", " ").lower() if reason else type(exc).__name__
    return f"{_HANDSHAKE} ({words})"


def certificate_refusal(exc: BaseException) -> ExchangeFailure | None:
    """The failure when ``exc`` (or what caused it) is a relay's TLS alert refusing the
    client certificate, else None.

    In TLS 1.3 the client's handshake is over before the relay has checked its
    certificate: the relay's refusal is an alert that arrives on the first read, after
    the request was written. The relay's TLS layer refused the connection before it
    decrypted any application data, so its HTTP layer never saw the request: ``reached``
    is False. Only meaningful on a new connection's first exchange (the caller checks).
    """
    seen: BaseException | None = exc
    for _ in range(4):  # aiohttp wraps the SSLError once or twice
        if seen is None:
            return None
        if isinstance(seen, ssl.SSLError) and str(seen.reason) in _CERTIFICATE_ALERTS:
            return ExchangeFailure("connect", tls_reason(seen), reached=False)
        seen = seen.__cause__ or seen.__context__
    return None


__all__ = [
    "TRANSPORT_ERRORS",
    "ExchangeFailure",
    "certificate_refusal",
    "connect_failure",
    "exchange_failure",
    "tls_reason",
]
