"""Routing: which configured upstream a request goes to, or why it goes nowhere.

``decide(routes, method, raw_target)`` is a pure function of the request line. It returns
a ``RouteMatch`` (the route, the still-encoded rest of the path, the raw query) or a
``Refusal`` (a failure kind and a detail). Only configured upstreams are reachable:

* only origin-form targets (``/path?query``): absolute-form (``http://host/...``),
  authority-form and ``*`` would make this an open forward proxy, and ``CONNECT`` a tunnel;
* an inbound route (a relay's callbacks) whose ``path_prefix`` holds the path, for a
  POST, else the route whose ``path_prefix`` holds the path (prefixes never overlap: config.py
  refuses that), else ``route_not_found``;
* a rest of the path whose segments could climb out of the upstream's path once some
  server decodes them is refused: ``..`` and ``.`` (also percent-encoded, and with ``;``
  parameters, which Java servlet containers strip: ``..;``), encoded slashes (``%2F``)
  and backslashes (``\\``, ``%5C``).
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass

from proxy.config import InboundRoute, Route
from proxy.vocab import FailureKind

# A segment that is "." or ".." once decoded, with or without ";params".
_DOT_SEGMENT = re.compile(r"(?:\.|%2e){1,2}(?:;.*)?", re.IGNORECASE)
_ENCODED_SEPARATOR = re.compile(r"%2f|%5c", re.IGNORECASE)
_UNSAFE = "dot-segments, encoded slashes and backslashes are not allowed in the path"


@dataclass(frozen=True, slots=True)
class RouteMatch:
    """The request goes to ``route``; ``rest_path`` and ``raw_query`` stay encoded."""

    route: Route
    rest_path: str
    raw_query: str


@dataclass(frozen=True, slots=True)
class InboundMatch:
    """A relay's callback for ``route`` (proxy/inbound/handler.py takes it from here)."""

    route: InboundRoute


@dataclass(frozen=True, slots=True)
class Refusal:
    """The proxy answers the request itself, without contacting any gateway.

    ``route`` is the route the path fell under, when it did (its name labels the answer).
    """

    kind: FailureKind
    detail: str
    route: Route | None = None


def decide(
    routes: Sequence[Route],
    method: str,
    raw_target: str,
    inbound: Sequence[InboundRoute] = (),
) -> RouteMatch | InboundMatch | Refusal:
    """Route one request line; see the module docstring for the rules."""
    if method == "CONNECT" or not raw_target.startswith("/"):
        return Refusal("bad_request", "absolute-URI and CONNECT requests are refused")
    path, _, query = raw_target.partition("?")
    for callback in inbound:
        if callback.matches(path):
            if method != "POST":
                return Refusal("bad_request", f"{callback.path_prefix} takes a relay's POST")
            return InboundMatch(callback)
    for route in routes:
        if route.matches(path):
            rest = path[len(route.path_prefix) :]
            if not is_safe_path(rest):
                return Refusal("bad_request", _UNSAFE, route)
            return RouteMatch(route, rest, query)
    return Refusal("route_not_found", f"no route is configured for {path}")


def is_safe_path(path: str) -> bool:
    """False when a segment of ``path`` could climb out of the upstream's path."""
    if "\\" in path or _ENCODED_SEPARATOR.search(path):
        return False
    return not any(_DOT_SEGMENT.fullmatch(segment) for segment in path.split("/"))


__all__ = ["InboundMatch", "Refusal", "RouteMatch", "decide", "is_safe_path"]
