"""The reply decision (passthrough, envelope, the proxy's own answers) from plain values."""

import orjson
import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from proxy.codes.catalog import Catalog
from proxy.codes.classify import Outcome, classify_failure, classify_reply
from proxy.config import Route
from proxy.server.respond import decide_reply
from proxy.upstream import Answer, endpoint_of
from proxy.vendors import parse_reply
from tests.conftest import make_config, validate_envelope

ROUTES = make_config(
    {"name": "env", "path_prefix": "/e", "upstream": "http://relay.invalid/api"},
    {
        "name": "raw",
        "path_prefix": "/p",
        "upstream": "http://relay.invalid/api",
        "mode": "passthrough",
    },
).routes
ENVELOPE_ROUTE, PASSTHROUGH_ROUTE = ROUTES
FAULT = (
    b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body><e:Fault>'
    b"<faultcode>e:Client</faultcode><detail><RSErrorRsp><Status><StatusCode>2002"
    b"</StatusCode></Status></RSErrorRsp></detail></e:Fault></e:Body></e:Envelope>"
)


def answer(status: int, body: bytes, **headers: str) -> Answer:
    h = CIMultiDictProxy(CIMultiDict({k.replace("_", "-"): v for k, v in headers.items()}))
    endpoint = endpoint_of("http://relay.invalid/api")
    return Answer(status, h, body, body, duration_s=0.01, bytes_out=3, endpoint=endpoint)


def outcome_for(catalog: Catalog, route: Route, ans: Answer) -> Outcome:
    reply = parse_reply(route.vendor, ans.content, ans.headers.get("Content-Type"))
    return classify_reply(catalog, route.vendor, reply, ans.status, headers=ans.headers)


def test_envelope_route_answers_with_the_envelope(catalog: Catalog) -> None:
    ans = answer(500, FAULT, Content_Type="text/xml", Retry_After="7", Server="relay/1")
    out = outcome_for(catalog, ENVELOPE_ROUTE, ans)
    reply = decide_reply(out, request_id="r-1", route=ENVELOPE_ROUTE, answer=ans)
    envelope = orjson.loads(reply.body)
    validate_envelope(envelope)
    assert (reply.status, envelope["code"], envelope["route"]) == (400, "INVALID_ADDRESS", "env")
    assert reply.headers["Content-Type"] == "application/problem+json"
    assert reply.headers["X-Request-ID"] == "r-1"
    assert reply.headers["Retry-After"] == "7"
    assert "Server" not in reply.headers


def test_passthrough_relays_the_gateway_answer(catalog: Catalog) -> None:
    ans = answer(500, FAULT, Content_Type="text/xml", Connection="close", X_Relay="1")
    out = outcome_for(catalog, PASSTHROUGH_ROUTE, ans)
    reply = decide_reply(out, request_id="r-2", route=PASSTHROUGH_ROUTE, answer=ans)
    assert (reply.status, reply.body) == (500, FAULT)
    assert reply.headers["Content-Type"] == "text/xml"
    assert reply.headers["X-Relay"] == "1"
    assert "Connection" not in reply.headers
    assert reply.headers["X-Gateway-Code"] == "INVALID_ADDRESS"
    assert reply.headers["X-Gateway-Vendor-Code"] == "2002"
    assert reply.headers["X-Request-ID"] == "r-2"


def test_passthrough_maps_a_redirect_into_the_prefix(catalog: Catalog) -> None:
    ans = answer(302, b"", Location="http://relay.invalid/api/next?x=1")
    out = outcome_for(catalog, PASSTHROUGH_ROUTE, ans)
    reply = decide_reply(
        out,
        request_id="r",
        route=PASSTHROUGH_ROUTE,
        rest_path="/first",
        answer=ans,
    )
    assert (reply.status, reply.headers["Location"]) == (302, "/p/next?x=1")


@pytest.mark.parametrize("route", [PASSTHROUGH_ROUTE, ENVELOPE_ROUTE, None])
def test_the_proxys_own_answers_are_always_envelopes(catalog: Catalog, route: Route | None) -> None:
    out = classify_failure(catalog, "timeout", "the gateway did not answer in time")
    reply = decide_reply(out, request_id="r-3", route=route)
    envelope = orjson.loads(reply.body)
    validate_envelope(envelope)
    assert (reply.status, envelope["code"]) == (504, "TIMEOUT")
    assert envelope["route"] == (route.name if route else None)
    assert "Retry-After" not in reply.headers


def test_an_unrelayable_status_gets_the_envelope(catalog: Catalog) -> None:
    ans = answer(101, b"")
    out = outcome_for(catalog, PASSTHROUGH_ROUTE, ans)
    reply = decide_reply(out, request_id="r", route=PASSTHROUGH_ROUTE, answer=ans)
    assert reply.headers["Content-Type"].endswith("json")
