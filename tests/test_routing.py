"""Routing from a table of request lines, in the spirit of mitmproxy's layer tests: no sockets.

Each row is ``(method, raw request-target) → decision``: the route and the encoded rest
of the path and query, or the refusal's kind.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st

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
    ("GET", "/mm7/50%25/caf%C3%A9", "mms", "/50%25/caf%C3%A9", ""),  # encoded, harmless
    ("GET", "/mm7/%2e%2ex/%3b", "mms", "/%2e%2ex/%3b", ""),  # "..x" and ";" are names
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
    # Every encoding of the parameters' ";" on a dot segment (issue 20: "..%3B" passed).
    ("GET", "/mm7/..%3B/admin", "bad_request", "mms"),
    ("GET", "/mm7/..%3b/admin", "bad_request", "mms"),
    ("GET", "/mm7/.%2E%3bx/admin", "bad_request", "mms"),
    ("GET", "/mm7/%2e%3B/admin", "bad_request", "mms"),
    ("GET", "/mm7/..%3B", "bad_request", "mms"),
    ("GET", "/mm7/x%5Cy", "bad_request", "mms"),
    ("GET", "/mm7/..%5C..%5Cadmin", "bad_request", "mms"),
    # Double encoding: a server that decodes twice would see a dot segment.
    ("GET", "/mm7/%252e%252e/admin", "bad_request", "mms"),
    ("GET", "/mm7/..%253b/admin", "bad_request", "mms"),
    ("GET", "/mm7/x%255cy", "bad_request", "mms"),
    ("GET", "/mm7/x%252Fy", "bad_request", "mms"),
    ("GET", "/mm7/%25252e%25252e/admin", "bad_request", "mms"),
    # What no path needs: control characters, bytes that are not UTF-8 (overlong dots).
    ("GET", "/mm7/..%00/admin", "bad_request", "mms"),
    ("GET", "/mm7/..;%0a/admin", "bad_request", "mms"),
    ("GET", "/mm7/%c0%ae%c0%ae/admin", "bad_request", "mms"),
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


# --- every encoding, generated ------------------------------------------------------------
def _encodings(char: str) -> st.SearchStrategy[str]:
    """``char`` as itself or percent-encoded, in either case of each hex digit."""
    code = f"{ord(char):02x}"
    variants = {char, f"%{code}", f"%{code.upper()}", f"%{code[0]}{code[1].upper()}"}
    variants.add(f"%{code[0].upper()}{code[1]}")
    return st.sampled_from(sorted(variants))


def _encoded(text: str) -> st.SearchStrategy[str]:
    """``text`` with each character independently left alone or percent-encoded."""
    return st.tuples(*(_encodings(c) for c in text)).map("".join)


_NAME = st.text(alphabet="abcxyz019-_~", min_size=1, max_size=6)
_PARAMS = st.one_of(st.just(""), _NAME.map(lambda n: ";" + n), st.just(";"))
# A dot segment with or without ";params", every character of it in any encoding.
_DOT_SEGMENTS = st.tuples(st.sampled_from([".", ".."]), _PARAMS).flatmap(
    lambda parts: _encoded(parts[0] + parts[1])
)


def _in_a_path(segment: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """``segment`` between ordinary segments: ``/a/<segment>/b``, ``/<segment>``, ..."""
    return st.tuples(st.lists(_NAME, max_size=2), segment, st.lists(_NAME, max_size=2)).map(
        lambda p: "/" + "/".join([*p[0], p[1], *p[2]])
    )


@given(_in_a_path(_DOT_SEGMENTS))
def test_every_encoding_of_a_dot_segment_is_refused(path: str) -> None:
    assert not is_safe_path(path)
    decision = decide(ROUTES, "GET", "/mm7" + path)
    assert isinstance(decision, Refusal)
    assert decision.kind == "bad_request"


@given(_in_a_path(st.tuples(_NAME, _encoded("\\"), _NAME).map("".join)))
def test_every_encoding_of_a_backslash_is_refused(path: str) -> None:
    assert not is_safe_path(path)


@given(_in_a_path(st.tuples(_NAME, st.sampled_from(["%2f", "%2F"]), _NAME).map("".join)))
def test_every_encoded_slash_is_refused(path: str) -> None:
    assert not is_safe_path(path)


@given(_in_a_path(_DOT_SEGMENTS.map(lambda s: s.replace("%", "%25"))))
def test_double_encoding_of_a_dot_segment_is_refused(path: str) -> None:
    """Encoded once more: one decoding leaves an encoded dot (or ";") a server may decode."""
    assert not is_safe_path(path)


@given(st.lists(st.tuples(_NAME, _PARAMS).map("".join), max_size=4))
def test_paths_without_a_dot_segment_stay_safe(segments: list[str]) -> None:
    """The check refuses what could climb, not names: ordinary segments always pass."""
    assert is_safe_path("/" + "/".join(segments))
