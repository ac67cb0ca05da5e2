"""The answer to the app: one pure decision between passthrough and the envelope.

``decide_reply`` takes what the request produced (its ``Outcome``, and the gateway's
answer when one arrived) and returns the ``Reply`` to send: status, headers and body.
It knows no request object, so every rule is testable from plain values:

* **passthrough** (a route with ``mode: passthrough``, a complete gateway answer whose
  status can be relayed): the gateway's status, headers (hop-by-hop and framing dropped,
  ``Location`` resolved against the upstream request and mapped under the prefix of the
  route whose upstream holds it, else made absolute on the gateway's origin) and body
  bytes, plus ``X-Gateway-*`` (one with no value to carry is left out);
* **envelope** otherwise: the uniform JSON (RFC 9457 problem details on errors) with
  ``X-Request-ID`` and the gateway's ``Retry-After`` (the proxy's own when it shed the
  request or shut down under it), and ``Proxy-Authenticate`` on a 407 (no client key).
  The proxy's own answers (no gateway answer, or a half-handled one after an internal
  error) are always envelopes.

Whether the app receives the body at all is HTTP's business: aiohttp sends none to a
HEAD request.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from multidict import CIMultiDict

from proxy.codes.classify import Outcome
from proxy.codes.envelope import build_envelope, passthrough_headers, render
from proxy.config import Route
from proxy.server import headers as hdrs
from proxy.server.clients import CHALLENGES
from proxy.upstream import Answer

# The proxy's own retryable refusals: when to come back, in seconds.
_RETRY = {"shed": "1", "shutdown": "1", "idempotency_in_flight": "1", "ledger_unavailable": "1"}


@dataclass(slots=True)  # built per request: frozen=True costs a call per field
class Reply:
    """What goes back to the app."""

    status: int
    headers: CIMultiDict[str]
    body: bytes


def decide_reply(
    outcome: Outcome,
    *,
    request_id: str,
    route: Route | None,
    rest_path: str = "",
    answer: Answer | None = None,
    routes: Sequence[Route] = (),
    endpoint: str | None = None,
    retry_after: str | None = None,
) -> Reply:
    """The reply for ``outcome``; see the module docstring for the rules.

    ``routes`` are every configured route: a ``Location`` into another route's upstream
    is mapped under that route's prefix. ``endpoint`` (host:port) is the envelope's
    ``vendor.endpoint``; ``retry_after`` the proxy's own Retry-After, when it computed one
    (a rate limit's, an open circuit's).
    """
    if (
        route is not None
        and route.mode == "passthrough"
        and answer is not None
        and 200 <= answer.status <= 599  # anything else can't be relayed as it is
    ):
        relayed = hdrs.rewrite_locations(
            hdrs.downstream_response_headers(answer.headers),
            # Without the query: it only matters to same-document references ("#x"),
            # and those are left for the client to resolve.
            request_url=answer.endpoint.url(rest_path),
            upstream=route.upstream,
            path_prefix=route.path_prefix,
            others=[(r.upstream, r.path_prefix) for r in routes if r is not route],
        )
        relayed.update(passthrough_headers(outcome, request_id))
        return Reply(answer.status, relayed, answer.body)
    status, content_type, body = render(
        build_envelope(
            outcome, request_id=request_id, route=route.name if route else None, endpoint=endpoint
        )
    )
    headers = CIMultiDict({"Content-Type": content_type, "X-Request-ID": request_id})
    if answer is not None:
        retry_after = answer.headers.get("Retry-After")
    elif retry_after is None:
        retry_after = _RETRY.get(outcome.failure or "")
    if retry_after:
        headers["Retry-After"] = retry_after
    if outcome.failure == "client_unauthenticated":  # 407 names how to authenticate
        for challenge in CHALLENGES:
            headers.add("Proxy-Authenticate", challenge)
    return Reply(status, headers, body)


__all__ = ["Reply", "decide_reply"]
