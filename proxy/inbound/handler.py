"""The inbound route's HTTP side: a relay's callback → one event on the app's webhook.

The relay POSTs a DeliveryReportReq, ReadReplyReq or DeliverReq (``vendor: mm7``), or
Mogreet its incoming-message POST (``vendor: moms``), under an inbound route's
``path_prefix``. ``handle_callback`` then, in order::

    admit      counts against max_in_flight like any request (shed → 4006 / 503, retry)
    check      the relay's checks (proxy.inbound.guard: allow_from, auth.basic): a
               refused callback is answered 403 or 401 with MM7 4001 (Improper
               identification) in its own namespace, logged and counted
               (gateway_proxy_rejected_requests_total), never forwarded
    read       the body, within max_request_bytes and client_timeout.body_idle
    parse      by the route's vendor, hostile-XML-safe: proxy.inbound.parse_callback (MM7:
               2007 / 4003 / 4004 when it cannot be taken) or parse_mogreet (400 / 413):
               never forwarded
    match      a delivery report or read reply, with the message ledger: what its message
               id was sent with (proxy.inbound.correlate: ledger.recall) becomes the
               event's ``submit``; unknown, or the ledger down, leaves it null (the
               event is delivered all the same; a ledger error is counted and logged)
    deliver    POST the JSON event (proxy.inbound.build_event) over the upstream pool
               (proxy.upstream.post: the gateways' pool and error map) to the matched
               send's client's own ``webhook`` when it has one, else to ``deliver_to``;
               with the route's timeouts, ``X-Request-ID`` = the event's id, and
               ``X-Gateway-Proxy-Signature`` with a ``signing_secret``. The route's
               ``headers`` go to ``deliver_to`` only: they are its credentials, not to be
               shown to another app's webhook
    answer     MM7 (build_answer): 1000 only when that webhook answered 2xx; a 4xx is the
               app's refusal (3002, not retried); no answer, a timeout or a 5xx is 4006 in
               a SOAP Fault with HTTP 500, so that the relay retries. Mogreet
               (answer_mogreet): 200 only after a 2xx; 422 for the app's refusal; 503 to
               retry

so a report is never acknowledged and then lost. Each callback gets one log line (no
addresses, no content: events are personal data; the client a report was matched to, by
its configured name) and its metrics, by inbound route (also when a client's webhook got
the event).
"""

import asyncio
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import orjson
from aiohttp import web
from multidict import CIMultiDict
from prometheus_client import CollectorRegistry, Counter, Histogram

from proxy.codes.catalog import Catalog
from proxy.config import InboundRoute
from proxy.inbound import (
    Answer,
    Callback,
    CallbackError,
    answer_code,
    build_answer,
    build_event,
    parse_callback,
    with_submit,
)
from proxy.inbound.correlate import Destination, Match, destination, match
from proxy.inbound.guard import CHALLENGE, RelayRefusal, check_relay
from proxy.inbound.mogreet import parse_mogreet
from proxy.inbound.mogreet_answer import CONTENT_TYPE as MOGREET_CONTENT_TYPE
from proxy.inbound.mogreet_answer import answer_mogreet, refuse_mogreet
from proxy.inbound.types import MogreetCallback, MogreetError
from proxy.ledger import Ledger
from proxy.observability.logs import get_logger
from proxy.observability.metrics import Metrics, expose_without_created
from proxy.upstream import Delivery, Endpoint, UpstreamPool, post
from proxy.vocab import INBOUND_EVENTS, WEBHOOK_FAILURES, WebhookFailure

if TYPE_CHECKING:
    from proxy.observability.ledger_metrics import LedgerMetrics

_log = get_logger("gateway_proxy.inbound")
_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class InboundMetrics:
    """Per inbound route: events by delivery status, webhook latency and failures."""

    def __init__(
        self, registry: CollectorRegistry, routes: tuple[InboundRoute, ...], catalog: Catalog
    ):
        own = CollectorRegistry()  # exposed on ``registry`` without _created series
        self.events = Counter(
            "gateway_proxy_inbound_events",
            "Callbacks from relays, by event and canonical delivery status ('none': no status).",
            ["route", "event", "status"],
            registry=own,
        )
        self.webhook_duration = Histogram(
            "gateway_proxy_webhook_duration_seconds",
            "Time the app's webhook took to answer an event.",
            ["route"],
            buckets=_BUCKETS,
            registry=own,
        )
        self.webhook_failures = Counter(
            "gateway_proxy_webhook_failures",
            "Events the app's webhook did not accept, by reason.",
            ["route", "reason"],
            registry=own,
        )
        statuses = [*catalog.inbound.statuses, "none"]
        for route in routes:
            self.webhook_duration.labels(route.name)
            for event in INBOUND_EVENTS:
                for status in statuses:
                    self.events.labels(route.name, event, status)
            for reason in WEBHOOK_FAILURES:
                self.webhook_failures.labels(route.name, reason)
        expose_without_created(registry, own)


async def handle_callback(
    request: web.Request,
    route: InboundRoute,
    *,
    pool: UpstreamPool,
    webhook: Endpoint,
    catalog: Catalog,
    metrics: InboundMetrics | None,
    body_idle: float,
    rejections: Metrics | None = None,
    ledger: Ledger | None = None,
    ledger_metrics: "LedgerMetrics | None" = None,
    client_webhooks: Mapping[str, Endpoint] | None = None,
) -> web.Response:
    """Take one relay callback; see the module docstring for the steps. ``rejections``
    counts the callbacks refused by the relay's checks; ``ledger`` (None: no ledger) is
    asked which send a report is about, ``ledger_metrics`` counts what it said, and
    ``client_webhooks`` are the clients' own webhooks by client name."""
    started = time.perf_counter()
    event_id = uuid.uuid4().hex
    received_at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    refusal = check_relay(route, request.headers.get("Authorization"), request.remote)
    body = await _read_body(request, route.max_request_bytes, body_idle)
    parsed = _parse(route, body, request.headers.get("Content-Type"))
    if refusal is not None:
        return _refused(request, route, refusal, parsed, catalog, rejections, event_id, started)
    if isinstance(parsed, CallbackError | MogreetError):
        answer, answered = _refusal(catalog, parsed)
        _observe(route, metrics, "invalid", "none", None)
        _log.warning("callback", route=route.name, request_id=event_id, kind="invalid",
                     answered=answered, reason=parsed.reason, detail=parsed.detail,
                     duration_s=round(time.perf_counter() - started, 6))  # fmt: skip
        return _response(answer)
    event = build_event(
        parsed, route=route.name, event_id=event_id, received_at=received_at,
        statuses=catalog.inbound,
    )  # fmt: skip
    found = await match(ledger, parsed, route.vendor)
    if found.record is not None:
        event = with_submit(event, found.record.as_submit())
    target = destination(found, webhook, client_webhooks or {})
    delivery = await _deliver(pool, target, route, event, event_id)
    failure = _failure(delivery)
    answer, code = _accepted(catalog, parsed, delivery.status)
    status = str(event.get("status") or "none")
    _observe(route, metrics, str(event["event"]), status, delivery, failure=failure)
    _count(route, ledger_metrics, found)
    _log_delivery(
        route, event_id, parsed, event,
        code=code, delivery=delivery, failure=failure, started=started,
        found=found, target=target,
    )  # fmt: skip
    return _response(answer)


def _refused(  # noqa: PLR0917 - what one refusal reports
    request: web.Request,
    route: InboundRoute,
    refusal: RelayRefusal,
    parsed: Callback | MogreetCallback | CallbackError | MogreetError,
    catalog: Catalog,
    rejections: Metrics | None,
    event_id: str,
    started: float,
) -> web.Response:
    """A callback that failed the relay's checks, never forwarded: 401 or 403, for MM7 with
    StatusCode 4001 (Improper identification) in the request's namespace when it could be
    read; for Mogreet with the status alone (and a short text)."""
    if isinstance(parsed, MogreetCallback | MogreetError):
        answered = refusal.status
        content_type, body = MOGREET_CONTENT_TYPE, f"{refusal.detail}\n".encode()
    else:
        answered = 4001
        text = _text(catalog, 4001) or "Improper identification"
        _, content_type, body = build_answer(
            parsed, 4001, status_text=text, details="", retry=False
        )
    if rejections is not None:
        rejections.relay_rejected(route.name, refusal.reason)
    _log.warning("callback", route=route.name, request_id=event_id, kind="refused",
                 reason=refusal.reason, detail=refusal.detail, peer=request.remote,
                 answered=answered, status=refusal.status,
                 duration_s=round(time.perf_counter() - started, 6))  # fmt: skip
    headers = {"Content-Type": content_type}
    if refusal.status == 401:
        headers["WWW-Authenticate"] = CHALLENGE
    return web.Response(status=refusal.status, body=body, headers=headers)


def _parse(
    route: InboundRoute, body: bytes | None, content_type: str | None
) -> Callback | MogreetCallback | CallbackError | MogreetError:
    """The callback read by the route's vendor; ``body`` None: over the cap, or stalled."""
    over = "the request body is over the route's limit"
    if route.vendor == "moms":
        if body is None:
            return MogreetError("oversize", over)
        return parse_mogreet(body, content_type, route.max_request_bytes)
    if body is None:
        return CallbackError(2007, "oversize", over)
    return parse_callback(body, content_type, route.max_request_bytes)


def _refusal(catalog: Catalog, error: CallbackError | MogreetError) -> tuple[Answer, int]:
    """(the answer to a callback that cannot be taken, the status it carries)."""
    if isinstance(error, MogreetError):
        answer = refuse_mogreet(error)
        return answer, answer.status
    return build_answer(error, error.code, status_text=_text(catalog, error.code)), error.code


def _accepted(
    catalog: Catalog, callback: Callback | MogreetCallback, webhook_status: int | None
) -> tuple[Answer, int]:
    """(the answer once the webhook answered ``webhook_status``, the status it carries:
    the MM7 StatusCode, or Mogreet's HTTP status)."""
    if isinstance(callback, MogreetCallback):
        answer = answer_mogreet(webhook_status)
        return answer, answer.status
    code = answer_code(webhook_status)
    return build_answer(callback, code, status_text=_text(catalog, code)), code


async def _read_body(request: web.Request, limit: int, idle: float) -> bytes | None:
    """The whole body, or None when it is over ``limit`` or pauses longer than ``idle``."""
    if (request.content_length or 0) > limit:
        return None
    buffer = bytearray()
    while True:
        try:
            async with asyncio.timeout(idle):
                chunk = await request.content.readany()
        except TimeoutError:
            return None
        if not chunk:
            return bytes(buffer)
        buffer += chunk
        if len(buffer) > limit:
            return None


async def _deliver(
    pool: UpstreamPool,
    target: Destination,
    route: InboundRoute,
    event: dict[str, object],
    event_id: str,
) -> Delivery:
    """POST the event to ``target``; never raises for what the webhook does. The route's
    ``headers`` (the credentials of its ``deliver_to``) go to ``deliver_to`` only."""
    headers: CIMultiDict[str] = CIMultiDict(route.headers if target.client is None else {})
    headers["Content-Type"] = "application/json"
    headers["X-Request-ID"] = event_id
    return await post(
        pool, target.endpoint, orjson.dumps(event), headers,
        connect=route.timeout.connect, total=route.timeout.total,
        signing_secret=route.signing_secret,
    )  # fmt: skip


def _failure(delivery: Delivery) -> WebhookFailure | None:
    """Why the webhook did not take the event, or None when it answered 2xx."""
    if delivery.failure is not None:
        return "unparseable" if delivery.failure == "too_large" else delivery.failure
    status = delivery.status or 0
    return None if 200 <= status < 300 else _status_reason(status)


def _status_reason(status: int) -> WebhookFailure:
    if 300 <= status < 400:
        return "redirect"
    return "refused" if 400 <= status < 500 else "server_error"


def _text(catalog: Catalog, code: int) -> str | None:
    entry = catalog.vendors["mm7"].codes.get(str(code))
    return entry.text if entry is not None else None


def _response(answer: tuple[int, str, bytes]) -> web.Response:
    status, content_type, body = answer
    return web.Response(status=status, body=body, headers={"Content-Type": content_type})


def _observe(
    route: InboundRoute,
    metrics: InboundMetrics | None,
    event: str,
    status: str,
    delivery: Delivery | None,
    *,
    failure: WebhookFailure | None = None,
) -> None:
    if metrics is None:
        return
    metrics.events.labels(route.name, event, status).inc()
    if delivery is not None and delivery.status is not None:
        metrics.webhook_duration.labels(route.name).observe(delivery.duration_s)
    if failure is not None:
        metrics.webhook_failures.labels(route.name, failure).inc()


def _count(route: InboundRoute, metrics: "LedgerMetrics | None", found: Match) -> None:
    """Matched and unmatched reports, and the ledger's failures, by inbound route."""
    if metrics is None:
        return
    if found.result is not None:
        metrics.event(route.name, found.result)
    if found.error is not None:
        metrics.error(route.name, "recall")


def _log_delivery(
    route: InboundRoute,
    event_id: str,
    callback: Callback | MogreetCallback,
    event: dict[str, object],
    *,
    code: int,
    delivery: Delivery,
    failure: WebhookFailure | None,
    started: float,
    found: Match,
    target: Destination,
) -> None:
    """The callback's one line: what came in, which send it reports on (the client by its
    configured name; the ledger's failure by its reason), where it went, what the app did
    and what the relay got."""
    if failure is None:
        outcome, level = "accepted by the app", "info"
    elif failure == "refused":
        outcome, level = "refused by the app (not retried)", "warning"
    else:
        outcome, level = f"webhook failed ({failure}): the relay will retry", "error"
    if found.error is not None and level == "info":
        level = "warning"  # delivered without its submit: the ledger is down
    getattr(_log, level)(
        "callback",
        route=route.name,
        request_id=event_id,
        kind=event["event"],
        status=event.get("status"),
        final=event.get("final"),
        **_vendor_fields(callback),
        **_correlation_fields(found, target),
        webhook_status=delivery.status,
        webhook_duration_s=round(delivery.duration_s, 6),
        answered=code,
        outcome=outcome,
        duration_s=round(time.perf_counter() - started, 6),
    )


def _correlation_fields(found: Match, target: Destination) -> dict[str, str]:
    """``correlation`` (matched, unmatched or ledger_unavailable, with ``ledger_error``:
    fixed text), the matched send's ``client`` and ``delivered_to`` (client_webhook or
    deliver_to); nothing for a callback the ledger was not asked about."""
    fields: dict[str, str] = {}
    if found.result is not None:
        fields["correlation"] = found.result
    elif found.error is not None:
        fields["correlation"], fields["ledger_error"] = "ledger_unavailable", found.error
    if found.record is not None:
        fields["client"] = found.record.client
    if target.client is not None:
        fields["delivered_to"] = "client_webhook"
    elif fields:
        fields["delivered_to"] = "deliver_to"
    return fields


def _vendor_fields(callback: Callback | MogreetCallback) -> dict[str, str | None]:
    """The vendor's own word for what came in: MM7's MMStatus (None for a DeliverReq), or
    Mogreet's event word ("message-in", "stop": the vendor's, not the subscriber's)."""
    if isinstance(callback, MogreetCallback):
        return {"vendor_event": callback.event}
    return {"mm_status": getattr(callback, "mm_status", None)}


def unavailable(route: InboundRoute, why: str) -> web.Response:
    """The answer when the proxy cannot take a callback now (shed, shutting down): 4006 in
    a SOAP Fault with HTTP 500 (Mogreet: 503), so that the relay retries. Logged; the
    body is not read."""
    if route.vendor == "moms":
        answer = refuse_mogreet(MogreetError("unavailable", why))
    else:
        answer = build_answer(CallbackError(4006, "unavailable", why), 4006)
    answered = answer.status if route.vendor == "moms" else 4006
    _log.warning("callback", route=route.name, kind="unavailable", answered=answered, reason=why)
    return _response(answer)


__all__ = ["InboundMetrics", "handle_callback", "unavailable"]
