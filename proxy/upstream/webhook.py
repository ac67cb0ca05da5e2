"""An event POSTed to an app's webhook, over the same pool and error map as the gateways.

Redirects are never followed and no proxy environment is read: only the configured URL is
contacted. The webhook's answer body is read (so the connection can be reused) up to
``WEBHOOK_ANSWER_CAP`` and dropped.
"""

from dataclasses import dataclass

from multidict import CIMultiDict

from proxy.upstream.connection import Limits, Request
from proxy.upstream.endpoint import Endpoint
from proxy.upstream.errors import ExchangeFailure
from proxy.upstream.exchange import exchange
from proxy.upstream.pool import UpstreamPool
from proxy.vocab import UPSTREAM_FAILURES, FailureKind, UpstreamFailure

WEBHOOK_ANSWER_CAP = 64 * 1024


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
) -> Delivery:
    """POST ``body`` to ``endpoint``'s URL. Never raises for what the webhook does."""
    limits = Limits(connect, total, WEBHOOK_ANSWER_CAP, body_unused=True)
    request = Request("POST", endpoint.target(), headers, body)
    try:
        answer = await exchange(pool, endpoint, request, limits)
    except ExchangeFailure as failure:
        return Delivery(None, _reason(failure.kind), failure.elapsed_s or 0.0)
    return Delivery(answer.status, None, answer.duration_s)


def _reason(kind: FailureKind) -> UpstreamFailure:
    """The failure as the ``reason`` of gateway_proxy_webhook_failures_total: an exchange
    with a finished body and an unused answer fails only with the gateway-side kinds."""
    for reason in UPSTREAM_FAILURES:
        if kind == reason:
            return reason
    return "connection_lost"  # pragma: no cover - the app's own kinds cannot occur here


__all__ = ["WEBHOOK_ANSWER_CAP", "Delivery", "post"]
