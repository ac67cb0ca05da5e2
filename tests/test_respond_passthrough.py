"""Passthrough routes (proxy/server/respond.py): the envelope's verdict in ``X-Gateway-*``, no
empty header, and gateway redirects that real client libraries can follow.

The clients are ``requests`` (what Python MoMS clients are built on, following 301-303
with GET and 307/308 with the method and body kept) and the standard library's
``urllib.request``. Each runs in a thread against the proxy on loopback.
"""

import asyncio
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any, cast

import requests
from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict

from tests.conftest import ProxyFactory, make_config

NS = "http://www.3gpp.org/ftp/Specs/archive/23_series/23.140/schema/REL-6-MM7-1-4"
SUBMIT_RSP = (
    f'<env:Envelope xmlns:env="http://schemas.xmlsoap.org/soap/envelope/" xmlns:mm7="{NS}">'
    "<env:Body><mm7:SubmitRsp><mm7:Status><mm7:StatusCode>1000</mm7:StatusCode></mm7:Status>"
    "<mm7:MessageID>m-7</mm7:MessageID></mm7:SubmitRsp></env:Body></env:Envelope>"
)
SENT = '<response code="1" status="success"><message_id>41</message_id></response>'

Seen = list[tuple[str, str, bytes]]


async def gateway_with_redirects(
    start: Callable[[web.Application], Awaitable[TestServer]], seen: Seen
) -> TestServer:
    """A gateway whose API moved: old paths redirect to its root or to its other API."""

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        seen.append((request.method, request.path_qs, body))
        path = request.path
        if path == "/moms/transaction.send":  # moved to the gateway's root
            raise web.HTTPFound("/legacy/transaction.send?" + request.query_string)
        if path == "/moms/media.upload":  # moved under the other API
            raise web.HTTPFound("../cm/media.upload")
        if path == "/mm7/submit":  # a relay behind a new front door, method kept
            raise web.HTTPTemporaryRedirect("/mm7-v2/submit")
        if path in ("/legacy/transaction.send", "/cm/media.upload"):
            return web.Response(text=SENT, content_type="text/xml")
        if path == "/mm7-v2/submit":
            return web.Response(text=SUBMIT_RSP, content_type="text/xml")
        return web.Response(status=404)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return await start(app)


async def proxy_for(proxy_client: ProxyFactory, server: TestServer) -> Any:
    base = str(server.make_url("")).rstrip("/")
    config = make_config(
        {"name": "moms", "vendor": "moms", "path_prefix": "/moms", "upstream": base + "/moms",
         "mode": "passthrough"},
        {"name": "cm", "vendor": "moms", "path_prefix": "/cm", "upstream": base + "/cm",
         "mode": "passthrough"},
        {"name": "mms", "vendor": "mm7", "path_prefix": "/mms", "upstream": base + "/mm7",
         "mode": "passthrough"},
    )  # fmt: skip
    return await proxy_client(config)


async def test_requests_follows_a_redirect_to_the_gateways_root(
    gateway: Any, proxy_client: ProxyFactory
) -> None:
    seen: Seen = []
    server = await gateway_with_redirects(gateway, seen)
    client = await proxy_for(proxy_client, server)
    url = str(client.make_url("/moms/transaction.send?to=15550009999"))
    answer = await asyncio.to_thread(requests.get, url, timeout=10)
    assert (answer.status_code, answer.text) == (200, SENT)
    # The gateway's own URL: the proxy has no route for /legacy, the gateway meant it.
    first = answer.history[0]
    assert first.headers["Location"] == str(
        server.make_url("/legacy/transaction.send?to=15550009999")
    )
    assert first.headers["X-Gateway-Code"] == "INVALID_UPSTREAM_RESPONSE"  # a 302, no code
    assert "X-Gateway-Vendor-Code" not in first.headers  # no value: left out, not empty
    assert [path for _, path, _ in seen] == [
        "/moms/transaction.send?to=15550009999",
        "/legacy/transaction.send?to=15550009999",
    ]


async def test_a_redirect_into_another_routes_upstream_stays_on_the_proxy(
    gateway: Any, proxy_client: ProxyFactory
) -> None:
    seen: Seen = []
    server = await gateway_with_redirects(gateway, seen)
    client = await proxy_for(proxy_client, server)
    url = str(client.make_url("/moms/media.upload"))
    answer = await asyncio.to_thread(requests.post, url, data=b"img", timeout=10)
    assert answer.status_code == 200
    assert answer.history[0].headers["Location"] == "/cm/media.upload"  # the cm route's prefix
    assert answer.url == str(client.make_url("/cm/media.upload"))
    assert answer.headers["X-Gateway-Code"] == "OK"
    assert answer.headers["X-Gateway-Vendor-Code"] == "1"


async def test_urllib_follows_the_same_redirect(gateway: Any, proxy_client: ProxyFactory) -> None:
    seen: Seen = []
    server = await gateway_with_redirects(gateway, seen)
    client = await proxy_for(proxy_client, server)

    def fetch() -> tuple[int, str, str]:
        url = str(client.make_url("/moms/transaction.send?to=15550009999"))
        with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - loopback
            return answer.status, answer.read().decode(), answer.geturl()

    status, body, final = await asyncio.to_thread(fetch)
    assert (status, body) == (200, SENT)
    assert final.startswith(str(server.make_url("/legacy/")))


async def test_an_mm7_client_keeps_its_post_through_a_307(
    gateway: Any, proxy_client: ProxyFactory
) -> None:
    seen: Seen = []
    server = await gateway_with_redirects(gateway, seen)
    client = await proxy_for(proxy_client, server)
    url = str(client.make_url("/mms/submit"))
    soap = b"<SubmitReq/>"
    answer = await asyncio.to_thread(
        requests.post, url, data=soap, headers={"Content-Type": "text/xml"}, timeout=10
    )
    assert (answer.status_code, answer.text) == (200, SUBMIT_RSP)
    assert seen == [("POST", "/mm7/submit", soap), ("POST", "/mm7-v2/submit", soap)]


async def test_the_passthrough_verdict_is_the_envelopes(
    gateway: Any, proxy_client: ProxyFactory
) -> None:
    """Every signal counts in passthrough too: a second status header line refuses."""

    async def handle(request: web.Request) -> web.Response:
        headers = CIMultiDict([("X-MM7-Status-Code", "1000"), ("X-MM7-Status-Code", "2002")])
        return web.Response(text=SUBMIT_RSP, content_type="text/xml", headers=headers)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    server = await gateway(app)
    upstream = str(server.make_url("/mm7"))
    config = make_config(
        {"name": "pass", "path_prefix": "/pass", "upstream": upstream, "mode": "passthrough"},
        {"name": "env", "path_prefix": "/env", "upstream": upstream},
    )
    proxy = await proxy_client(config)
    relayed = await proxy.post("/pass", data=b"<SubmitReq/>")
    enveloped = await (await proxy.post("/env", data=b"<SubmitReq/>")).json()
    assert relayed.status == 200  # the gateway's own status and body...
    assert await relayed.text() == SUBMIT_RSP
    assert relayed.headers["X-Gateway-Code"] == enveloped["code"] == "INVALID_UPSTREAM_RESPONSE"
    assert relayed.headers["X-Gateway-Retryable"] == "false"
    assert relayed.headers["X-Gateway-Vendor-Code"] == enveloped["vendor"]["code"] == "1000"


def signal_shapes() -> list[tuple[str, bytes, int, list[tuple[str, str]]]]:
    """(vendor, body, HTTP status, headers) of tests/test_classify_signals.py's cases."""
    from tests import test_classify_signals as shapes

    success = shapes.soap(shapes.rsp("1000"))
    cases: list[tuple[str, bytes, int, list[tuple[str, str]]]] = []
    cases += [("mm7", shapes.soap(cast(str, p.values[0])), 200, []) for p in shapes.MM7_BODY_SHAPES]
    cases += [
        ("mm7", success, 200, cast(list[tuple[str, str]], p.values[0]))
        for p in shapes.MM7_HEADER_SHAPES
    ]
    cases += [("moms", cast(bytes, p.values[0]), 200, []) for p in shapes.MOMS_SHAPES]
    cases.append(("mm7", success, 200, []))  # and a plain success, last
    return cases


async def test_passthrough_and_envelope_agree_on_every_signal_shape(
    gateway: Any, proxy_client: ProxyFactory
) -> None:
    cases = signal_shapes()

    async def handle(request: web.Request) -> web.Response:
        _, body, status, headers = cases[int(request.match_info["n"])]
        return web.Response(
            status=status, body=body, content_type="text/xml", headers=CIMultiDict(headers)
        )

    app = web.Application()
    app.router.add_route("*", "/{vendor}/{n}", handle)
    server = await gateway(app)
    routes = []
    for vendor in ("mm7", "moms"):
        upstream = str(server.make_url(f"/{vendor}"))
        routes += [
            {"name": f"{vendor}-pass", "vendor": vendor, "path_prefix": f"/{vendor}-pass",
             "upstream": upstream, "mode": "passthrough"},
            {"name": f"{vendor}-env", "vendor": vendor, "path_prefix": f"/{vendor}-env",
             "upstream": upstream},
        ]  # fmt: skip
    proxy = await proxy_client(make_config(*routes))
    verdicts = []
    for n, (vendor, _, _, _) in enumerate(cases):
        relayed = await proxy.post(f"/{vendor}-pass/{n}", data=b"x")
        enveloped = await (await proxy.post(f"/{vendor}-env/{n}", data=b"x")).json()
        assert relayed.headers["X-Gateway-Code"] == enveloped["code"], n
        assert relayed.headers["X-Gateway-Retryable"] == str(enveloped["retryable"]).lower()
        assert relayed.headers.get("X-Gateway-Vendor-Code") == enveloped["vendor"]["code"]
        verdicts.append(enveloped["ok"])
    assert verdicts[-1] is True  # the plain success
    assert not any(verdicts[:-1])  # every shape with a failure signal: never ok
