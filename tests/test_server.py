"""End to end: fake gateways on loopback, the proxy driven through aiohttp_client."""

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from proxy.server.keys import CONFIG_KEY
from tests import pii
from tests.conftest import make_config

MM7_NS = "http://www.3gpp.org/ftp/Specs/archive/23_series/23.140/schema/REL-6-MM7-1-4"
SUBMIT_RSP = f"""<?xml version="1.0" encoding="UTF-8"?>
<env:Envelope xmlns:env="http://schemas.xmlsoap.org/soap/envelope/">
 <env:Header><mm7:TransactionID xmlns:mm7="{MM7_NS}" env:mustUnderstand="1">tx-42</mm7:TransactionID></env:Header>
 <env:Body><SubmitRsp xmlns="{MM7_NS}"><MM7Version>6.8.0</MM7Version>
  <Status><StatusCode>{{code}}</StatusCode><StatusText>{{text}}</StatusText></Status>
  <MessageID>msg-1</MessageID></SubmitRsp></env:Body></env:Envelope>"""
SUBMIT_REQ = b"""<?xml version="1.0"?><env:Envelope xmlns:env="http://schemas.xmlsoap.org/soap/envelope/">
<env:Body><SubmitReq><Recipients><To><Number>+15550002002</Number></To></Recipients></SubmitReq>
</env:Body></env:Envelope>"""


def submit_rsp(code: str = "1000", text: str = "Success", status: int = 200) -> web.Response:
    body = SUBMIT_RSP.format(code=code, text=text)
    return web.Response(status=status, text=body, content_type="text/xml")


class Recorder:
    """A fake gateway that records what it received and answers with ``reply``."""

    def __init__(self, reply: Any = None) -> None:
        self.requests: list[dict[str, Any]] = []
        self.reply = reply or (submit_rsp)

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(
            {
                "method": request.method,
                "path_qs": request.raw_path,
                "headers": dict(request.headers),
                "body": await request.read(),
            }
        )
        return self.reply()


async def test_mm7_success_envelope(one_route_proxy: Any) -> None:
    gw = Recorder()
    client = await one_route_proxy(gw, upstream_path="/mm7/mm7.php")
    resp = await client.post("/gw", data=SUBMIT_REQ, headers={"Content-Type": "text/xml"})
    assert resp.status == 200
    assert resp.content_type == "application/json"
    env = await resp.json()
    assert env["ok"] is True
    assert env["code"] == "OK"
    assert env["route"] == "gw"
    upstream = URL(client.server.app[CONFIG_KEY].routes[0].upstream)
    gw_host, gw_port = upstream.host, upstream.port
    assert env["vendor"] == {
        "name": "mm7",
        "code": "1000",
        "message": "Success",
        "details": None,
        "http_status": 200,
        "transaction_id": "tx-42",
        "endpoint": f"{gw_host}:{gw_port}",
    }
    assert env["data"] == {"message_id": "msg-1", "mm7_version": "6.8.0"}
    assert resp.headers["X-Request-ID"] == env["request_id"]
    assert gw.requests[0]["path_qs"] == "/mm7/mm7.php"
    assert gw.requests[0]["body"] == SUBMIT_REQ


async def test_mm7_error_is_a_problem_document(one_route_proxy: Any) -> None:
    client = await one_route_proxy(Recorder(lambda: submit_rsp("2002", "Address Error", 500)))
    resp = await client.post("/gw", data=SUBMIT_REQ, headers={"X-Request-ID": "req-7"})
    assert resp.status == 400
    assert resp.content_type == "application/problem+json"
    env = await resp.json()
    assert (env["code"], env["category"], env["retryable"]) == ("INVALID_ADDRESS", "client", False)
    assert env["request_id"] == "req-7"
    assert env["instance"] == "urn:request:req-7"
    assert env["type"] == "urn:gateway-proxy:problem:INVALID_ADDRESS"
    assert env["vendor"]["http_status"] == 500
    assert resp.headers["X-Request-ID"] == "req-7"


async def test_request_is_forwarded_unchanged(one_route_proxy: Any) -> None:
    gw = Recorder()
    client = await one_route_proxy(gw, upstream_path="/base")
    query = f"client_id=1&token={pii.SECRETS[0]}&to={pii.MSISDNS[1]}&a=%2F%20b"
    resp = await client.session.put(
        URL(f"http://{client.host}:{client.port}/gw/transaction.send?{query}", encoded=True),
        data=b"\x00binary\xff",
        headers={
            "Content-Type": "application/octet-stream",
            "Connection": "keep-alive, X-Hop",
            "X-Hop": "drop me",
            "Keep-Alive": "timeout=5",
            "TE": "trailers",
            "Proxy-Authorization": "Basic abc",
            "X-Custom": "kept",
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        },
    )
    assert resp.status == 200
    seen = gw.requests[0]
    assert seen["method"] == "PUT"
    assert seen["path_qs"] == f"/base/transaction.send?{query}"
    assert seen["body"] == b"\x00binary\xff"
    headers = seen["headers"]
    for hop in ("X-Hop", "Keep-Alive", "TE", "Proxy-Authorization"):
        assert hop not in headers
    assert headers["X-Custom"] == "kept"
    assert headers["Content-Type"] == "application/octet-stream"
    assert headers["traceparent"].startswith("00-0af7651916cd43dd8448eb211c80319c")
    assert headers["X-Forwarded-For"] == "127.0.0.1"
    assert headers["X-Forwarded-Proto"] == "http"
    assert headers["X-Forwarded-Host"] == f"{client.host}:{client.port}"
    assert len(headers["X-Request-ID"]) == 32  # generated when absent
    assert headers["X-Request-ID"] == resp.headers["X-Request-ID"]


async def test_host_is_the_upstreams(gateway: Any, proxy_client: Any) -> None:
    gw = Recorder()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", gw.__call__)
    server = await gateway(app)
    upstream = str(server.make_url("/x"))
    client = await proxy_client(make_config({"path_prefix": "/gw", "upstream": upstream}))
    await client.get("/gw", headers={"Host": "evil.example"})
    assert gw.requests[0]["headers"]["Host"] == f"{server.host}:{server.port}"


async def test_configured_headers_are_added(one_route_proxy: Any) -> None:
    gw = Recorder()
    client = await one_route_proxy(gw, headers={"Authorization": "Basic ${TEST_SECRET}"})
    await client.post("/gw", data=b"x", headers={"Authorization": "Basic app-sent"})
    assert gw.requests[0]["headers"]["Authorization"] == f"Basic {pii.SECRETS[0]}"


async def test_request_id_is_propagated(one_route_proxy: Any) -> None:
    gw = Recorder()
    client = await one_route_proxy(gw)
    resp = await client.post("/gw", data=b"x", headers={"X-Request-ID": "abc-123"})
    assert gw.requests[0]["headers"]["X-Request-ID"] == "abc-123"
    assert resp.headers["X-Request-ID"] == "abc-123"


async def test_unknown_path_is_route_not_found(one_route_proxy: Any) -> None:
    gw = Recorder()
    client = await one_route_proxy(gw)
    for path in ("/elsewhere", "/gwx", "/"):
        resp = await client.get(path)
        env = await resp.json()
        assert (resp.status, env["code"], env["vendor"]["name"]) == (
            404,
            "ROUTE_NOT_FOUND",
            "proxy",
        )
        assert env["route"] is None
    assert gw.requests == []


async def test_dot_segments_cannot_escape_the_upstream_path(one_route_proxy: Any) -> None:
    gw = Recorder()
    client = await one_route_proxy(gw)
    for path in ("/gw/%2e%2e/admin", "/gw/a/../../admin", "/gw/.%2E/x"):
        url = URL(f"http://{client.host}:{client.port}{path}", encoded=True)
        resp = await client.session.get(url)
        assert (resp.status, (await resp.json())["code"]) == (400, "INVALID_REQUEST"), path
    assert gw.requests == []


async def test_absolute_uri_requests_are_refused(one_route_proxy: Any) -> None:
    gw = Recorder()
    client = await one_route_proxy(gw)
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(
        b"GET http://169.254.169.254/gw HTTP/1.1\r\nHost: 169.254.169.254\r\n"
        b"Connection: close\r\n\r\n"
    )
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert json.loads(body)["code"] == "INVALID_REQUEST"
    assert gw.requests == []


async def test_passthrough_returns_the_gateway_answer(one_route_proxy: Any) -> None:
    def reply() -> web.Response:
        resp = submit_rsp("2002", "Address Error", 500)
        resp.headers["X-Vendor"] = "v"
        return resp

    client = await one_route_proxy(Recorder(reply), mode="passthrough")
    resp = await client.post("/gw", data=SUBMIT_REQ, headers={"X-Request-ID": "p-1"})
    assert resp.status == 500
    assert resp.content_type == "text/xml"
    assert await resp.text() == SUBMIT_RSP.format(code="2002", text="Address Error")
    assert resp.headers["X-Vendor"] == "v"
    assert resp.headers["X-Gateway-Code"] == "INVALID_ADDRESS"
    assert resp.headers["X-Gateway-Category"] == "client"
    assert resp.headers["X-Gateway-Retryable"] == "false"
    assert resp.headers["X-Gateway-Vendor-Code"] == "2002"
    assert resp.headers["X-Request-ID"] == "p-1"


async def test_passthrough_failure_still_gets_an_envelope(one_route_proxy: Any) -> None:
    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.Response()

    client = await one_route_proxy(hang, mode="passthrough", timeout={"total": 0.3})
    resp = await client.post("/gw", data=b"x")
    assert (resp.status, (await resp.json())["code"]) == (504, "TIMEOUT")


async def test_retry_after_is_kept(one_route_proxy: Any) -> None:
    def reply() -> web.Response:
        return web.Response(status=429, text="slow down", headers={"Retry-After": "7"})

    client = await one_route_proxy(Recorder(reply), vendor="moms")
    resp = await client.get("/gw/system.ping")
    env = await resp.json()
    assert (resp.status, env["code"], env["retryable"]) == (429, "RATE_LIMITED", True)
    assert resp.headers["Retry-After"] == "7"


async def test_moms_json_labelled_text_xml(one_route_proxy: Any) -> None:
    body = json.dumps(
        {"response": {"code": "1", "status": "success", "message": "API Request Accepted",
                      "message_id": "184299036", "hash": "nm8ewqsd"}}
    )  # fmt: skip

    def reply() -> web.Response:
        return web.Response(text=body, content_type="text/xml")

    client = await one_route_proxy(Recorder(reply), vendor="moms")
    env = await (await client.get(f"/gw/transaction.send?to={pii.MSISDNS[0]}")).json()
    assert (env["code"], env["vendor"]["code"]) == ("OK", "1")
    assert env["data"] == {"message_id": "184299036", "hash": "nm8ewqsd"}


@pytest.mark.parametrize(
    ("message", "expected"),
    [("Mogreet: 403 Forbidden", "PERMISSION_DENIED"), ("invalid number", "INVALID_ADDRESS")],
)
async def test_moms_code_zero(one_route_proxy: Any, message: str, expected: str) -> None:
    body = json.dumps({"response": {"code": "0", "status": "error", "message": message}})
    client = await one_route_proxy(
        Recorder(lambda: web.Response(text=body, content_type="text/xml")), vendor="moms"
    )
    env = await (await client.get("/gw/system.ping")).json()
    assert env["code"] == expected
    assert env["vendor"]["message"] == message


async def test_html_error_page_is_classified_by_status(one_route_proxy: Any) -> None:
    def reply() -> web.Response:
        return web.Response(status=502, text="<html><h1>502 Bad Gateway</h1></html>",
                            content_type="text/html")  # fmt: skip

    client = await one_route_proxy(Recorder(reply))
    resp = await client.post("/gw", data=SUBMIT_REQ)
    env = await resp.json()
    assert (resp.status, env["code"], env["retryable"]) == (503, "UPSTREAM_UNAVAILABLE", True)
    assert env["vendor"]["code"] is None


async def test_hostile_xml_is_not_expanded(one_route_proxy: Any) -> None:
    body = (
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        "<Envelope><Body><SubmitRsp><Status><StatusCode>&x;</StatusCode></Status>"
        "</SubmitRsp></Body></Envelope>"
    )
    client = await one_route_proxy(Recorder(lambda: web.Response(text=body)))
    resp = await client.post("/gw", data=SUBMIT_REQ)
    text = await resp.text()
    assert "root:" not in text
    assert json.loads(text)["code"] == "INVALID_UPSTREAM_RESPONSE"


async def test_an_unexpected_error_still_gets_an_envelope_and_a_traceback(
    one_route_proxy: Any, monkeypatch: pytest.MonkeyPatch, log_lines: Any
) -> None:
    def broken(*args: Any) -> Any:
        raise RuntimeError("parser bug")

    monkeypatch.setattr("proxy.server.handle.parse_reply", broken)
    client = await one_route_proxy(Recorder())
    resp = await client.post("/gw", data=SUBMIT_REQ, headers={"X-Request-ID": "bug-1"})
    env = await resp.json()
    assert (resp.status, env["code"], env["request_id"]) == (500, "INTERNAL_ERROR", "bug-1")
    assert resp.headers["X-Request-ID"] == "bug-1"
    (line,) = [line for line in log_lines() if line["event"] == "unhandled_error"]
    assert line["level"] == "error"
    assert "RuntimeError: parser bug" in line["exception"]
    (request_line,) = [line for line in log_lines() if line["event"] == "request"]
    assert (request_line["code"], request_line["route"]) == ("INTERNAL_ERROR", "gw")


async def test_head_and_no_content_answers_are_not_gateway_failures(one_route_proxy: Any) -> None:
    async def no_content(request: web.Request) -> web.Response:
        return web.Response(status=204)

    client = await one_route_proxy(no_content, vendor="moms")
    env = await (await client.get("/gw/system.ping")).json()
    assert (env["code"], env["vendor"]["http_status"]) == ("OK", 204)
    head = await one_route_proxy(Recorder(), vendor="mm7")
    resp = await head.head("/gw")
    assert (resp.status, resp.headers["Content-Type"]) == (200, "application/json")


async def test_encoded_slashes_cannot_escape_the_upstream_path(one_route_proxy: Any) -> None:
    gw = Recorder()
    client = await one_route_proxy(gw)
    for path in ("/gw/..%2fadmin", "/gw/%2F..%2Fetc", "/gw/a%5c..%5cb"):
        url = URL(f"http://{client.host}:{client.port}{path}", encoded=True)
        resp = await client.session.get(url)
        env = await resp.json()
        assert (resp.status, env["code"], env["route"]) == (400, "INVALID_REQUEST", "gw"), path
    assert gw.requests == []


@pytest.mark.parametrize(
    "request_line", [b"CONNECT example.com:443 HTTP/1.1", b"OPTIONS * HTTP/1.1"]
)
async def test_targets_no_route_can_match_get_an_envelope(
    one_route_proxy: Any, request_line: bytes
) -> None:
    client = await one_route_proxy(Recorder())
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(request_line + b"\r\nHost: x\r\nConnection: close\r\n\r\n")
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), head
    assert json.loads(body)["code"] == "INVALID_REQUEST"


async def test_a_phone_number_is_not_accepted_as_request_id(one_route_proxy: Any) -> None:
    gw = Recorder()
    client = await one_route_proxy(gw)
    resp = await client.post("/gw", data=b"x", headers={"X-Request-ID": pii.MSISDNS[0]})
    assert resp.headers["X-Request-ID"] != pii.MSISDNS[0]
    assert gw.requests[0]["headers"]["X-Request-ID"] == resp.headers["X-Request-ID"]


async def test_the_app_hanging_up_still_leaves_a_log_line_and_a_metric(
    one_route_proxy: Any, log_lines: Any
) -> None:
    started = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        started.set()
        await asyncio.sleep(30)
        return web.Response()

    client = await one_route_proxy(slow, timeout={"total": 20})
    _, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(b"POST /gw HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx")
    await writer.drain()
    await asyncio.wait_for(started.wait(), 5)
    writer.close()  # the app goes away while the gateway is still working
    for _ in range(100):
        lines = [line for line in log_lines() if line.get("event") == "request"]
        if lines:
            break
        await asyncio.sleep(0.05)
    (line,) = lines
    assert (line["code"], line["category"], line["route"]) == (
        "CLIENT_CLOSED_REQUEST",
        "client",
        "gw",
    )
    from proxy.server import REGISTRY_KEY

    registry = client.app[REGISTRY_KEY]
    labels = {"route": "gw", "vendor": "mm7", "code": "CLIENT_CLOSED_REQUEST",
              "category": "client", "vendor_code": "none"}  # fmt: skip
    assert registry.get_sample_value("gateway_proxy_responses_total", labels) == 1
    assert registry.get_sample_value("gateway_proxy_requests_in_flight", {"route": "gw"}) == 0


async def test_one_pooled_connection_serves_consecutive_requests(one_route_proxy: Any) -> None:
    ports: list[int] = []

    async def peer_port(request: web.Request) -> web.Response:
        assert request.transport is not None
        ports.append(request.transport.get_extra_info("peername")[1])
        return submit_rsp()

    client = await one_route_proxy(peer_port)
    for _ in range(3):
        assert (await client.post("/gw", data=b"x")).status == 200
    assert len(set(ports)) == 1, "a new connection (or session) per request"


async def test_retry_after_is_kept_on_503(one_route_proxy: Any) -> None:
    def reply() -> web.Response:
        return web.Response(status=503, text="", headers={"Retry-After": "120"})

    client = await one_route_proxy(Recorder(reply))
    resp = await client.post("/gw", data=b"x")
    env = await resp.json()
    assert (resp.status, env["code"], resp.headers["Retry-After"]) == (
        503, "UPSTREAM_UNAVAILABLE", "120",
    )  # fmt: skip


Locator = Callable[[web.Request], str]


def redirecting_gateway(
    status: int, location: Locator, seen: list[tuple[str, str, bytes]]
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """A gateway under /api: /api/start answers ``status`` with ``location(request)``,
    anything else answers 200 with a Content-Location into itself."""

    async def handler(request: web.Request) -> web.Response:
        seen.append((request.method, request.raw_path, await request.read()))
        if request.path == "/api/start":
            return web.Response(status=status, headers={"Location": location(request)})
        resp = submit_rsp()
        resp.headers["Content-Location"] = "/api/target/v1"
        return resp

    return handler


@pytest.mark.parametrize(
    ("status", "location"),
    [
        (301, lambda request: "/api/target?n=1"),
        (302, lambda request: "target?n=1"),
        (303, lambda request: str(request.url.with_path("/api/target").with_query("n=1"))),
        (307, lambda request: "../api/target?n=1"),
        (308, lambda request: f"http://{request.host}/api/target?n=1"),
    ],
)
async def test_a_client_follows_a_passthrough_redirect_through_the_proxy(
    one_route_proxy: Any, status: int, location: Locator
) -> None:
    seen: list[tuple[str, str, bytes]] = []
    client = await one_route_proxy(redirecting_gateway(status, location, seen), mode="passthrough")
    async with (
        aiohttp.ClientSession() as session,
        session.post(client.make_url("/gw/start"), data=b"x", allow_redirects=True) as resp,
    ):
        assert resp.status == 200
        assert resp.url.path_qs == "/gw/target?n=1"
        assert [(r.status, r.headers["Location"]) for r in resp.history] == [
            (status, "/gw/target?n=1")
        ]
        assert resp.headers["Content-Location"] == "/gw/target/v1"
    kept = status in (307, 308)  # the client keeps the method and body only for these
    assert seen == [
        ("POST", "/api/start", b"x"),
        ("POST" if kept else "GET", "/api/target?n=1", b"x" if kept else b""),
    ]


@pytest.mark.parametrize(
    "location", ["http://other.invalid/api/target", "https://127.0.0.1/api/target"]
)
async def test_a_redirect_out_of_the_upstream_is_passed_untouched(
    one_route_proxy: Any, location: str
) -> None:
    seen: list[tuple[str, str, bytes]] = []
    gateway = redirecting_gateway(302, lambda request: location, seen)
    client = await one_route_proxy(gateway, mode="passthrough")
    resp = await client.get("/gw/start", allow_redirects=False)
    assert (resp.status, resp.headers["Location"]) == (302, location)
    assert [path for _, path, _ in seen] == ["/api/start"]


async def test_an_envelope_route_does_not_relay_location(one_route_proxy: Any) -> None:
    seen: list[tuple[str, str, bytes]] = []
    client = await one_route_proxy(redirecting_gateway(302, lambda request: "/api/x", seen))
    resp = await client.get("/gw/start", allow_redirects=False)
    assert resp.content_type != "text/xml"  # an envelope, not the gateway's answer
    assert "Location" not in resp.headers
