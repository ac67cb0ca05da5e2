"""Routing from a table of request lines, in the spirit of mitmproxy's layer tests: no sockets.

Each row is ``(method, raw request-target) → decision``: the route and the encoded rest
of the path and query, or the refusal's kind.
"""

import pytest

from proxy.server.routing import Refusal, RouteMatch, decide, is_safe_path
from tests.conftest import make_config

ROUTES = make_config(
    {"name": "mms", "path_prefix": "/mm7", "upstream": "http://relay.invalid/vasp"},
    {"name": "moms", "vendor": "moms", "path_prefix": "/moms/", "upstream": "http://m.invalid"},
    {"name": "deep", "path_prefix": "/a/b", "upstream": "http://d.invalid"},
).routes

MATCHES = [
    ("POST", "/mm7", "mms", "", ""),
    ("POST", "/mm7/", "mms", "/", ""),
    ("POST", "/mm7/submit", "mms", "/submit", ""),
    ("GET", "/mm7/submit?x=1&y=%20", "mms", "/submit", "x=1&y=%20"),
    ("GET", "/mm7?only=query", "mms", "", "only=query"),
    ("POST", "/moms/transaction.send", "moms", "/transaction.send", ""),
    ("GET", "/moms", "moms", "", ""),
    ("PUT", "/a/b/c%20d", "deep", "/c%20d", ""),
    ("FOO", "/mm7/x", "mms", "/x", ""),  # extension methods route like any other
    ("GET", "/mm7/..x/y", "mms", "/..x/y", ""),  # "..x" is a name, not a dot-segment
    ("GET", "/mm7/a.b/...", "mms", "/a.b/...", ""),
    ("GET", "/mm7/x;jsessionid=1", "mms", "/x;jsessionid=1", ""),
]

REFUSALS = [
    ("CONNECT", "relay.invalid:443", "bad_request", None),
    ("GET", "http://relay.invalid/vasp", "bad_request", None),  # absolute-form
    ("GET", "*", "bad_request", None),
    ("OPTIONS", "*", "bad_request", None),
    ("GET", "", "bad_request", None),
    ("GET", "/", "route_not_found", None),
    ("GET", "/mm7x", "route_not_found", None),  # a prefix only at a segment boundary
    ("GET", "/MM7/submit", "route_not_found", None),
    ("GET", "/a", "route_not_found", None),
    ("GET", "/x/../mm7", "route_not_found", None),
    ("GET", "/mm7/../admin", "bad_request", "mms"),
    ("GET", "/mm7/..", "bad_request", "mms"),
    ("GET", "/mm7/.", "bad_request", "mms"),
    ("GET", "/mm7/./x", "bad_request", "mms"),
    ("GET", "/mm7/%2e%2e/admin", "bad_request", "mms"),
    ("GET", "/mm7/%2E./admin", "bad_request", "mms"),
    ("GET", "/mm7/..;/admin", "bad_request", "mms"),  # Java servlet containers: parent
    ("GET", "/mm7/.;/admin", "bad_request", "mms"),
    ("GET", "/mm7/..;jsessionid=x/admin", "bad_request", "mms"),
    ("GET", "/mm7/%2e%2e;/admin", "bad_request", "mms"),
    ("GET", "/mm7/..%2fadmin", "bad_request", "mms"),
    ("GET", "/mm7/x%2Fy", "bad_request", "mms"),
    ("GET", "/mm7/x%5cy", "bad_request", "mms"),
    ("GET", "/mm7/x\\..\\admin", "bad_request", "mms"),
    ("GET", "/moms/..", "bad_request", "moms"),
]


@pytest.mark.parametrize(("method", "target", "route", "rest", "query"), MATCHES)
def test_request_lines_that_route(
    method: str, target: str, route: str, rest: str, query: str
) -> None:
    decision = decide(ROUTES, method, target)
    assert isinstance(decision, RouteMatch)
    assert (decision.route.name, decision.rest_path, decision.raw_query) == (route, rest, query)


@pytest.mark.parametrize(("method", "target", "kind", "route"), REFUSALS)
def test_request_lines_that_are_refused(
    method: str, target: str, kind: str, route: str | None
) -> None:
    decision = decide(ROUTES, method, target)
    assert isinstance(decision, Refusal)
    assert decision.kind == kind
    assert (decision.route.name if decision.route else None) == route
    assert decision.detail


@pytest.mark.parametrize(
    ("rest", "safe"),
    [("", True), ("/", True), ("/a/b", True), ("/..", False), ("/a/%2E%2e;x", False)],
)
def test_is_safe_path(rest: str, safe: bool) -> None:
    assert is_safe_path(rest) is safe
