"""Header policy: hop-by-hop removal, X-Forwarded-*, request and trace ids, Location."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from proxy.server.headers import (
    downstream_response_headers,
    request_id_from,
    rewrite_location,
    rewrite_locations,
    trace_id_from,
    upstream_request_headers,
)


def proxy_of(**headers: str) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict({k.replace("_", "-"): v for k, v in headers.items()}))


def test_hop_by_hop_and_connection_tokens_are_dropped() -> None:
    incoming = proxy_of(
        Connection="close, X-Secret-Hop", X_Secret_Hop="1", Upgrade="h2c", Trailer="x",
        Transfer_Encoding="chunked", Host="app.local", X_Keep="yes", Content_Length="3",
    )  # fmt: skip
    out = upstream_request_headers(
        incoming, request_id="r1", client_ip="10.0.0.9", scheme="https", host="app.local",
        configured={},
    )  # fmt: skip
    assert set(out) == {
        "X-Keep", "Content-Length", "X-Forwarded-For", "X-Forwarded-Proto",
        "X-Forwarded-Host", "X-Request-ID", "Accept-Encoding",
    }  # fmt: skip
    assert out["Accept-Encoding"] == "identity"  # the proxy must read the answer
    assert out["X-Forwarded-Proto"] == "https"
    assert out["X-Forwarded-Host"] == "app.local"


def test_forwarded_for_is_appended() -> None:
    out = upstream_request_headers(
        proxy_of(X_Forwarded_For="1.2.3.4"), request_id="r", client_ip="10.0.0.9",
        scheme="http", host=None, configured={"Authorization": "Basic x"},
    )  # fmt: skip
    assert out["X-Forwarded-For"] == "1.2.3.4, 10.0.0.9"
    assert out["Authorization"] == "Basic x"
    assert "X-Forwarded-Host" not in out


def test_request_id() -> None:
    assert request_id_from({"X-Request-ID": "abc-1"}) == "abc-1"
    generated = request_id_from({})
    assert len(generated) == 32
    assert request_id_from({"X-Request-ID": "bad id\r\nX: y"}) != "bad id\r\nX: y"
    assert len(request_id_from({"X-Request-ID": "x" * 500})) == 32


def test_trace_id() -> None:
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert trace_id_from({"traceparent": tp}) == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert trace_id_from({"traceparent": "garbage"}) is None
    assert trace_id_from({}) is None


def test_response_headers_for_passthrough() -> None:
    out = downstream_response_headers(
        proxy_of(
            Content_Type="text/xml",
            Content_Length="9",
            Connection="close",
            Server="relay",
            X_Vendor="v",
        )
    )
    assert dict(out) == {"Content-Type": "text/xml", "X-Vendor": "v"}
    encoded = downstream_response_headers(proxy_of(Content_Encoding="gzip"))
    assert dict(encoded) == {"Content-Encoding": "gzip"}  # the body is passed as it came


def test_request_ids_that_look_like_phone_numbers_are_replaced() -> None:
    for phone_like in ("+13108675309", "13108675309", "order-13108675309", "4915112345678"):
        assert request_id_from({"X-Request-ID": phone_like}) != phone_like
    for fine in ("abc-123", "0af7651916cd43dd8448eb211c80319c", "order-42", "2026-11-23"):
        assert request_id_from({"X-Request-ID": fine}) == fine


# The route "/gw" -> "http://gw.example:8080/mm7/api"; the app asked for "/gw/submit/one".
UPSTREAM = "http://gw.example:8080/mm7/api"
REQUEST_URL = UPSTREAM + "/submit/one"
HTTPS_UPSTREAM = "https://gw.example/mm7/api"


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        # relative references, resolved against the upstream request first
        ("/mm7/api/other", "/gw/other"),
        ("other", "/gw/submit/other"),
        ("./other/", "/gw/submit/other/"),
        ("../x", "/gw/x"),
        ("..", "/gw/"),
        ("?page=2", "/gw/submit/one?page=2"),
        ("//gw.example:8080/mm7/api/x", "/gw/x"),
        ("/mm7/api", "/gw"),
        ("/mm7/api/", "/gw/"),
        # absolute, on the upstream's origin
        ("http://gw.example:8080/mm7/api/status/7", "/gw/status/7"),
        ("HTTP://GW.Example:8080/mm7/api/x", "/gw/x"),
        ("http://gw.example:8080/mm7/api/a/../b", "/gw/b"),
        # query and fragment are kept
        ("/mm7/api/x?a=1&b=%2F#top", "/gw/x?a=1&b=%2F#top"),
        ("http://gw.example:8080/mm7/api/x?q#f", "/gw/x?q#f"),
        # another origin: untouched
        ("http://gw.example:9090/mm7/api/x", "http://gw.example:9090/mm7/api/x"),
        ("https://gw.example:8080/mm7/api/x", "https://gw.example:8080/mm7/api/x"),
        ("http://other.example:8080/mm7/api/x", "http://other.example:8080/mm7/api/x"),
        ("//other.example/mm7/api/x", "//other.example/mm7/api/x"),
        ("mailto:ops@example.com", "mailto:ops@example.com"),
        # outside the upstream's base path, relative: the absolute URL on the gateway's
        # origin (resolved against the upstream request, dot segments removed)
        ("/mm7/other", "http://gw.example:8080/mm7/other"),
        ("/mm7/apix", "http://gw.example:8080/mm7/apix"),
        ("../../../admin", "http://gw.example:8080/admin"),
        # outside it, absolute: as sent
        ("http://gw.example:8080/mm7/api/../admin", "http://gw.example:8080/mm7/api/../admin"),
        ("http://gw.example:8080/", "http://gw.example:8080/"),
        # userinfo, same-document references and garbage: untouched
        ("http://u@gw.example:8080/mm7/api/x", "http://u@gw.example:8080/mm7/api/x"),
        ("#section", "#section"),
        ("", ""),
        ("http://[::1/x", "http://[::1/x"),
        ("http://gw.example:port/mm7/api/x", "http://gw.example:port/mm7/api/x"),
        ("http://gw.example:99999/mm7/api/x", "http://gw.example:99999/mm7/api/x"),
        ("/mm7/api/a b", "/mm7/api/a b"),
        ("/mm7/api/\tx", "/mm7/api/\tx"),
        ("/mm7/api/caf\u00e9", "/mm7/api/caf\u00e9"),
    ],
)
def test_location_into_the_upstream_is_mapped_under_the_prefix(
    location: str, expected: str
) -> None:
    got = rewrite_location(location, request_url=REQUEST_URL, upstream=UPSTREAM, path_prefix="/gw")
    assert got == expected


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("https://gw.example/mm7/api/x", "/gw/x"),
        ("https://gw.example:443/mm7/api/x", "/gw/x"),
        ("http://gw.example/mm7/api/x", "http://gw.example/mm7/api/x"),
        ("https://gw.example:8443/mm7/api/x", "https://gw.example:8443/mm7/api/x"),
    ],
)
def test_a_default_port_equals_no_port(location: str, expected: str) -> None:
    got = rewrite_location(
        location, request_url=HTTPS_UPSTREAM + "/", upstream=HTTPS_UPSTREAM, path_prefix="/gw"
    )
    assert got == expected


@pytest.mark.parametrize(
    ("upstream", "prefix", "location", "expected"),
    [
        ("http://127.0.0.1:8080", "/gw", "/x?y", "/gw/x?y"),
        ("http://127.0.0.1:8080", "/gw", "http://127.0.0.1:8080", "/gw/"),
        ("http://[::1]:8080/api", "/v1/mm7", "http://[::1]:8080/api/x", "/v1/mm7/x"),
        # no path-absolute form: the absolute URL on the gateway's origin
        ("http://127.0.0.1:8080/api", "//gw", "/api/x", "http://127.0.0.1:8080/api/x"),
    ],
)
def test_location_for_other_route_shapes(
    upstream: str, prefix: str, location: str, expected: str
) -> None:
    got = rewrite_location(location, request_url=upstream, upstream=upstream, path_prefix=prefix)
    assert got == expected


@given(st.text())
def test_any_location_gives_a_string_and_never_raises(location: str) -> None:
    got = rewrite_location(location, request_url=REQUEST_URL, upstream=UPSTREAM, path_prefix="/gw")
    assert got == location or got.startswith(("/gw", "http://gw.example:8080/"))


def test_only_location_fields_are_rewritten() -> None:
    headers = CIMultiDict(
        [("Location", "/mm7/api/a"), ("X-Next", "/mm7/api/b"), ("content-location", "c")]
    )
    out = rewrite_locations(headers, request_url=REQUEST_URL, upstream=UPSTREAM, path_prefix="/gw")
    assert list(out.items()) == [
        ("Location", "/gw/a"), ("X-Next", "/mm7/api/b"), ("content-location", "/gw/submit/c"),
    ]  # fmt: skip
