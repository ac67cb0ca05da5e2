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
  server decodes them is refused: ``..`` and ``.`` (also with ``;`` parameters, which
  Java servlet containers strip: ``..;``), encoded slashes (``%2F``) and backslashes
  (``\\``, ``%5C``). The check reads the path percent-decoded once, so every encoding of
  a dot, a ``;`` or a backslash, in any case and any mix (``%2e.%3B``), is what it
  decodes to; what is still encoded after that (``%252e``: double encoding), control
  characters and bytes that are not UTF-8 (overlong ``%c0%ae``) are refused too.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from proxy.config import InboundRoute, Route
from proxy.vocab import FailureKind

# A decoded segment that is "." or "..", with or without ";params".
_DOT_SEGMENT = re.compile(r"\.{1,2}(?:;.*)?", re.DOTALL)
_ENCODED_SEPARATOR = re.compile(r"%2f|%5c", re.IGNORECASE)
# Once decoded, still an encoded dot, slash, backslash, ";" or "%": double encoding, which
# a server that decodes twice would turn into one of those. And characters no path needs.
_STILL_ENCODED = re.compile(r"%(?:2e|2f|5c|3b|25)", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
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
    """False when a segment of ``path`` (still encoded, as the app sent it) could climb
    out of the upstream's path once a server decodes it; see the module docstring."""
    if "%" in path:
        if _ENCODED_SEPARATOR.search(path):
            return False
        try:
            path = unquote_to_bytes(path).decode("utf-8")
        except UnicodeDecodeError:
            return False
        if _STILL_ENCODED.search(path) or _CONTROL.search(path):
            return False
    if "\\" in path:
        return False
    if "." not in path:
        return True
    return not any(_DOT_SEGMENT.fullmatch(segment) for segment in path.split("/"))


__all__ = ["InboundMatch", "Refusal", "RouteMatch", "decide", "is_safe_path"]
