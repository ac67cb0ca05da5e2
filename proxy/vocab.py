"""The shared vocabulary: every closed set of names the modules agree on, defined once.

Each set is a ``Literal`` type, and its runtime tuple is derived with ``get_args``, never
retyped. The config, the catalog, classification, forwarding, metrics, the simulator and
the CLI's choices all import from here, so adding a name is a change in one place (and
mypy then points at every ``match`` that must learn it).
"""

from typing import Literal, get_args

VendorName = Literal["mm7", "moms"]
VENDOR_NAMES: tuple[VendorName, ...] = get_args(VendorName)

Category = Literal["success", "client", "auth", "recipient", "content", "upstream", "network"]
CATEGORIES: tuple[Category, ...] = get_args(Category)

Mode = Literal["envelope", "passthrough"]
MODES: tuple[Mode, ...] = get_args(Mode)

#: Why the proxy answered on its own, without a (complete, valid) gateway answer.
#: The first group is the gateway's failure; the second the app's or the proxy's.
UpstreamFailure = Literal["connect", "timeout", "connection_lost", "too_large", "unparseable"]
OwnFailure = Literal[
    "request_too_large", "route_not_found", "bad_request", "internal", "client_closed",
    "client_timeout", "header_too_large", "uri_too_long", "shed", "shutdown",
    "rate_limit", "circuit_open",
    "client_unauthenticated", "client_forbidden",
    "idempotency_in_flight", "idempotency_mismatch", "idempotency_key_missing",
    "idempotency_key_invalid", "callback_data_invalid", "ledger_unavailable",
]  # fmt: skip
FailureKind = UpstreamFailure | OwnFailure
FAILURE_KINDS: tuple[FailureKind, ...] = (*get_args(UpstreamFailure), *get_args(OwnFailure))
#: The ``reason`` label of ``gateway_proxy_upstream_failures_total``.
UPSTREAM_FAILURES: tuple[UpstreamFailure, ...] = get_args(UpstreamFailure)

#: ``reason`` of ``gateway_proxy_rejected_requests_total``: the proxy refused a request on
#: its own account (``head_timeout``: a connection whose head never arrived, no request;
#: ``client_*``: an app without a valid key, or on a route its key does not allow).
RejectionReason = Literal[
    "shed", "shutdown", "client_timeout", "header_too_large", "uri_too_long", "bad_request",
    "head_timeout", "rate_limit", "circuit_open", "client_unauthenticated",
    "client_forbidden",
]  # fmt: skip
REJECTION_REASONS: tuple[RejectionReason, ...] = get_args(RejectionReason)
#: ... and of a relay's callback that failed its inbound route's checks: ``auth.basic``
#: (``relay_unauthenticated``, 401) or ``allow_from`` (``relay_forbidden``, 403).
RelayRejection = Literal["relay_unauthenticated", "relay_forbidden"]
RELAY_REJECTIONS: tuple[RelayRejection, ...] = get_args(RelayRejection)

#: How a route with several ``upstreams`` picks the first endpoint to try (README "Flow
#: control and failover"): the configured order, or a start that rotates per request.
Balance = Literal["failover", "round_robin"]
BALANCES: tuple[Balance, ...] = get_args(Balance)

#: An endpoint's circuit breaker; the value of ``gateway_proxy_circuit_state`` is the index.
CircuitState = Literal["closed", "open", "half_open"]
CIRCUIT_STATES: tuple[CircuitState, ...] = get_args(CircuitState)

#: ``result`` of ``gateway_proxy_endpoint_requests_total``: how one send to an endpoint
#: went for its circuit breaker (``abandoned``: the app went away, no verdict).
EndpointResult = Literal["success", "failure", "neutral", "abandoned"]
ENDPOINT_RESULTS: tuple[EndpointResult, ...] = get_args(EndpointResult)

#: ``gateway_proxy_store_errors_total{reason}``: why a call to the shared store failed.
StoreError = Literal["connect", "timeout", "error"]
STORE_ERRORS: tuple[StoreError, ...] = get_args(StoreError)

#: ``result`` of ``gateway_proxy_idempotency_requests_total``: what the ledger did with a
#: request that carried an ``Idempotency-Key`` (README "Safe retries and delivery reports").
#: ``stored``: answered and kept for replay; ``released``: a retryable answer, not kept;
#: ``replayed``: the kept answer again; ``in_flight``: 409; ``mismatch``: 422;
#: ``unavailable``: the ledger failed before forwarding (503); ``abandoned``: the app went
#: away before an answer (the marker is released, or expires when the send may have gone).
IdempotencyResult = Literal[
    "stored", "released", "replayed", "in_flight", "mismatch", "unavailable", "abandoned"
]
IDEMPOTENCY_RESULTS: tuple[IdempotencyResult, ...] = get_args(IdempotencyResult)

#: ``operation`` of ``gateway_proxy_ledger_errors_total``: the ledger call that failed.
LedgerOperation = Literal["begin", "finish", "release", "remember", "recall"]
LEDGER_OPERATIONS: tuple[LedgerOperation, ...] = get_args(LedgerOperation)

#: ``result`` of ``gateway_proxy_correlated_events_total``: an event whose message id the
#: ledger knew (``matched``: it carries ``submit``) or did not (``unmatched``: ``submit``
#: is null; it is delivered all the same).
CorrelationResult = Literal["matched", "unmatched"]
CORRELATION_RESULTS: tuple[CorrelationResult, ...] = get_args(CorrelationResult)

#: ``reason`` of ``gateway_proxy_webhook_failures_total``: the app's webhook answered
#: 4xx (``refused``: not retried), 5xx or 3xx; or the exchange with it failed.
WebhookRefusal = Literal["refused", "server_error", "redirect"]
WebhookFailure = WebhookRefusal | Literal["connect", "timeout", "connection_lost", "unparseable"]
WEBHOOK_FAILURES: tuple[WebhookFailure, ...] = (
    *get_args(WebhookRefusal),
    "connect",
    "timeout",
    "connection_lost",
    "unparseable",
)

#: What a Mogreet incoming-message POST becomes (``inbound.moms`` of the catalog maps its
#: ``event`` words to these): a message, or the subscriber opting out or in.
MomsEvent = Literal["message", "opt_out", "opt_in"]
MOMS_EVENTS: tuple[MomsEvent, ...] = get_args(MomsEvent)

#: ``event`` label of ``gateway_proxy_inbound_events_total``: the events a callback
#: becomes, and ``invalid`` for one the proxy could not take.
InboundEvent = Literal["delivery_report", "read_reply", "message", "opt_out", "opt_in", "invalid"]
INBOUND_EVENTS: tuple[InboundEvent, ...] = get_args(InboundEvent)

#: HTTP facts several modules rely on: answers that carry no body (RFC 9110 §6.4.1, §15.4.5)
#: and methods a request body is not expected with.
BODILESS_STATUSES = frozenset({204, 304})
METHODS_WITHOUT_BODY = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})

#: Transport faults the gateway simulator can play (``X-Sim-Fault``, the mix).
FaultName = Literal["refuse", "hang", "drip", "reset", "oversize", "html502", "empty", "malformed"]
FAULT_NAMES: tuple[FaultName, ...] = get_args(FaultName)

LogLevel = Literal["debug", "info", "warning", "error"]
LOG_LEVELS: tuple[LogLevel, ...] = get_args(LogLevel)
LogFormat = Literal["json", "console"]
LOG_FORMATS: tuple[LogFormat, ...] = get_args(LogFormat)

__all__ = [
    "BALANCES",
    "BODILESS_STATUSES",
    "CATEGORIES",
    "CIRCUIT_STATES",
    "CORRELATION_RESULTS",
    "ENDPOINT_RESULTS",
    "FAILURE_KINDS",
    "FAULT_NAMES",
    "IDEMPOTENCY_RESULTS",
    "INBOUND_EVENTS",
    "LEDGER_OPERATIONS",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "METHODS_WITHOUT_BODY",
    "MODES",
    "MOMS_EVENTS",
    "REJECTION_REASONS",
    "RELAY_REJECTIONS",
    "STORE_ERRORS",
    "UPSTREAM_FAILURES",
    "VENDOR_NAMES",
    "WEBHOOK_FAILURES",
    "Balance",
    "Category",
    "CircuitState",
    "CorrelationResult",
    "EndpointResult",
    "FailureKind",
    "FaultName",
    "IdempotencyResult",
    "InboundEvent",
    "LedgerOperation",
    "LogFormat",
    "LogLevel",
    "Mode",
    "MomsEvent",
    "OwnFailure",
    "RejectionReason",
    "RelayRejection",
    "StoreError",
    "UpstreamFailure",
    "VendorName",
    "WebhookFailure",
    "WebhookRefusal",
]
