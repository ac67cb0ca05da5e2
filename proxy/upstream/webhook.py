"""An event POSTed to an app's webhook, over the same pool and error map as the gateways.

Redirects are never followed and no proxy environment is read: only the configured URL is
contacted. The webhook's answer body is read (so the connection can be reused) up to
``WEBHOOK_ANSWER_CAP`` and dropped.

With a ``signing_secret`` each event carries ``X-Gateway-Proxy-Signature: t=<unix
seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`` (``sign``), as Stripe and GitHub sign
webhooks: the app checks the body came from the proxy, and the time that it is fresh.
"""

import hashlib
import hmac
import time
from dataclasses import dataclass

from multidict import CIMultiDict

from proxy.upstream.connection import Limits, Request
from proxy.upstream.endpoint import Endpoint
from proxy.upstream.errors import ExchangeFailure
from proxy.upstream.exchange import exchange
from proxy.upstream.pool import UpstreamPool
from proxy.vocab import UPSTREAM_FAILURES, FailureKind, UpstreamFailure

WEBHOOK_ANSWER_CAP = 64 * 1024
SIGNATURE_HEADER = "X-Gateway-Proxy-Signature"


@dataclass(frozen=True, slots=True)
class Delivery:
    """What the webhook did: its status, or why there was none; and how long it took."""

    status: int | None
    failure: UpstreamFailure | None
    duration_s: float


async def post(
    pool: UpstreamPool,
    endpoint: Endpoint,
    body: bytes,
    headers: CIMultiDict[str],
    *,
    connect: float,
    total: float,
    signing_secret: str | None = None,
) -> Delivery:
    """POST ``body`` to ``endpoint``'s URL, signed with ``signing_secret`` when given.
    Never raises for what the webhook does."""
    if signing_secret is not None:
        headers[SIGNATURE_HEADER] = sign(signing_secret, body, int(time.time()))
    limits = Limits(connect, total, WEBHOOK_ANSWER_CAP, body_unused=True)
    request = Request("POST", endpoint.target(), headers, body)
    try:
        answer = await exchange(pool, endpoint, request, limits)
    except ExchangeFailure as failure:
        return Delivery(None, _reason(failure.kind), failure.elapsed_s or 0.0)
    return Delivery(answer.status, None, answer.duration_s)


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The ``X-Gateway-Proxy-Signature`` value of ``body`` sent at ``timestamp``."""
    signed = b"%d.%b" % (timestamp, body)
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def _reason(kind: FailureKind) -> UpstreamFailure:
    """The failure as the ``reason`` of gateway_proxy_webhook_failures_total: an exchange
    with a finished body and an unused answer fails only with the gateway-side kinds."""
    for reason in UPSTREAM_FAILURES:
        if kind == reason:
            return reason
    return "connection_lost"  # pragma: no cover - the app's own kinds cannot occur here


__all__ = ["SIGNATURE_HEADER", "WEBHOOK_ANSWER_CAP", "Delivery", "post", "sign"]
