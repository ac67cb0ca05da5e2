"""Header policy: hop-by-hop removal, X-Forwarded-*, request and trace ids."""

from multidict import CIMultiDict, CIMultiDictProxy

from proxy.headers import (
    downstream_response_headers,
    request_id_from,
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
