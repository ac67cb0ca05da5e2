"""The proxy as it runs (``serve``), with real sockets: callbacks on ``inbound_listen``
behind the relay's checks, signed events verified the way the README shows, TLS on
``listen`` re-read on SIGHUP, and MoMS credentials set by the route's query.
"""

import asyncio
import os
import re
import signal
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import aiohttp
import pytest
import trustme
from aiohttp import web
from lxml import etree

from proxy.config import Config
from proxy.inbound.guard import check_relay
from proxy.process.serve import serve
from tests import pii
from tests.conftest import ROOT, make_config
from tests.test_forward import free_port
from tests.test_inbound_e2e import NS, REPORT, Webhook
from tests.tls_relay import SecretMount, serial_of

XML = {"Content-Type": "text/xml; charset=utf-8"}
RELAY_AUTH = {"Authorization": f"Basic {pii.basic(pii.RELAY_USER, pii.RELAY_PASSWORD)}"}


def readme_verify() -> Callable[..., bool]:
    """The README's signature check, run exactly as an app would copy it."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(
        r"<!-- verify-signature:start -->\n```python\n(.*?)```\n<!-- verify-signature:end -->",
        readme,
        re.DOTALL,
    )
    assert block, "the README shows how an app verifies a signature"
    namespace: dict[str, Any] = {}
    exec(block.group(1), namespace)  # noqa: S102 - the README's own snippet
    verify: Callable[..., bool] = namespace["verify"]
    return verify


class Running:
    """``serve(config)`` in this event loop, until the test is done."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.stop = asyncio.Event()
        self.ready = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def url(self, path: str, *, inbound: bool = False, scheme: str = "http") -> str:
        address = self.config.inbound_listen if inbound else self.config.listen
        assert address is not None
        return f"{scheme}://127.0.0.1:{address.port}{path}"

    async def __aenter__(self) -> "Running":
        self.task = asyncio.get_running_loop().create_task(
            serve(self.config, stop=self.stop, on_ready=self.ready.set)
        )
        await asyncio.wait_for(self.ready.wait(), 15)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, 15)


@pytest.fixture
async def webhook(aiohttp_server: Any) -> tuple[Webhook, list[bytes], str]:
    """The app's webhook: the events, their raw bodies, and its URL."""
    hook = Webhook()
    raw: list[bytes] = []

    async def accept(request: web.Request) -> web.StreamResponse:
        raw.append(await request.read())
        return await hook.handler(request)

    app = web.Application()
    app.router.add_post("/events", accept)
    server = await aiohttp_server(app)
    return hook, raw, str(server.make_url("/events"))


def callback_config(deliver_to: str, **inbound: Any) -> Config:
    return make_config(
        {"name": "mms", "path_prefix": "/mm7", "upstream": "http://127.0.0.1:9/mm7"},
        listen=f"127.0.0.1:{free_port()}",
        admin_listen=f"127.0.0.1:{free_port()}",
        inbound_listen=f"127.0.0.1:{free_port()}",
        inbound=[{"name": "mm7-events", "path_prefix": "/inbound/mm7",
                  "deliver_to": deliver_to, **inbound}],
    )  # fmt: skip


def answer_of(body: bytes) -> tuple[str, str, str]:
    """(the answer element, its namespace, its StatusCode)."""
    root = etree.fromstring(body)
    (code,) = (el for el in root.iter() if etree.QName(el).localname == "StatusCode")
    rsp = code.getparent().getparent()  # type: ignore[union-attr]
    return etree.QName(rsp).localname, etree.QName(rsp).namespace or "", code.text or ""


async def test_callbacks_with_basic_auth_and_allow_from_on_their_own_listener(
    webhook: tuple[Webhook, list[bytes], str], log_lines: Any
) -> None:
    hook, raw, url = webhook
    config = callback_config(
        url,
        auth={"basic": "${RELAY_USER}:${RELAY_PASSWORD}"},
        allow_from=["127.0.0.0/8", "198.51.100.0/24"],
        signing_secret="${SIGNING_SECRET}",
    )
    async with Running(config) as proxy, aiohttp.ClientSession() as http:
        inbound = proxy.url("/inbound/mm7", inbound=True)
        ok = await http.post(inbound, data=REPORT, headers={**XML, **RELAY_AUTH})
        assert ok.status == 200
        assert answer_of(await ok.read()) == ("DeliveryReportRsp", NS, "1000")
        # the wrong password, none at all: 401 with MM7 4001 in the request's namespace
        wrong = {"Authorization": f"Basic {pii.basic(pii.RELAY_USER, 'not-the-password')}"}
        for headers in (wrong, {}):
            refused = await http.post(inbound, data=REPORT, headers={**XML, **headers})
            assert refused.status == 401
            assert refused.headers["WWW-Authenticate"].startswith("Basic ")
            assert answer_of(await refused.read()) == ("DeliveryReportRsp", NS, "4001")
        # each listener serves only its own kind
        on_listen = await http.post(proxy.url("/inbound/mm7"), data=REPORT, headers=RELAY_AUTH)
        assert (on_listen.status, (await on_listen.json())["code"]) == (404, "ROUTE_NOT_FOUND")
        send = await http.post(proxy.url("/mm7", inbound=True), data=REPORT)
        assert (send.status, (await send.json())["code"]) == (404, "ROUTE_NOT_FOUND")
        metrics = await (await http.get(f"http://{config.admin_listen}/metrics")).text()
    assert len(hook.events) == 1  # the refused callbacks were never forwarded
    rejected = (
        'gateway_proxy_rejected_requests_total{reason="relay_unauthenticated",route="mm7-events"}'
    )
    assert f"{rejected} 2.0" in metrics
    refusals = [e for e in log_lines() if e["event"] == "callback" and e["kind"] == "refused"]
    assert [(e["status"], e["reason"]) for e in refusals] == [(401, "relay_unauthenticated")] * 2
    verify = readme_verify()
    header = hook.headers[0]["X-Gateway-Proxy-Signature"]
    assert verify(pii.SIGNING_SECRET.encode(), header, raw[0])


async def test_a_relay_outside_allow_from_is_refused_with_403(
    webhook: tuple[Webhook, list[bytes], str], log_lines: Any
) -> None:
    hook, _, url = webhook
    config = callback_config(url, allow_from=["198.51.100.0/24"])
    async with Running(config) as proxy, aiohttp.ClientSession() as http:
        refused = await http.post(proxy.url("/inbound/mm7", inbound=True), data=REPORT, headers=XML)
        body = await refused.read()
        garbage = await http.post(proxy.url("/inbound/mm7", inbound=True), data=b"<not-xml")
        garbage_body = await garbage.read()
    assert refused.status == 403
    assert answer_of(body) == ("DeliveryReportRsp", NS, "4001")
    assert b"Improper identification" in body
    assert garbage.status == 403  # unreadable: the generic VASPErrorRsp, still 4001
    assert answer_of(garbage_body)[::2] == ("VASPErrorRsp", "4001")
    assert hook.events == []
    (line, _) = [e for e in log_lines() if e["event"] == "callback" and e["kind"] == "refused"]
    assert (line["reason"], line["peer"]) == ("relay_forbidden", "127.0.0.1")


async def test_signatures_verify_as_the_readme_shows(
    webhook: tuple[Webhook, list[bytes], str],
) -> None:
    """Real events, verified by the README's snippet: a changed body, another secret or
    an old timestamp fail."""
    hook, raw, url = webhook
    config = callback_config(url, signing_secret="${SIGNING_SECRET}")
    async with Running(config) as proxy, aiohttp.ClientSession() as http:
        for _ in range(2):
            resp = await http.post(
                proxy.url("/inbound/mm7", inbound=True), data=REPORT, headers=XML
            )
            assert resp.status == 200
    verify = readme_verify()
    secret = pii.SIGNING_SECRET.encode()
    for headers, body in zip(hook.headers, raw, strict=True):
        header = headers["X-Gateway-Proxy-Signature"]
        assert re.fullmatch(r"t=[0-9]+,v1=[0-9a-f]{64}", header)
        assert verify(secret, header, body)
        assert not verify(secret, header, body.replace(b"DELIVERED", b"EXPIRED"))
        assert not verify(b"another-secret", header, body)
        sent = int(header.split(",")[0][2:])
        stale = header.replace(f"t={sent}", f"t={sent - 301}")
        assert not verify(secret, stale, body)
        assert not verify(secret, "garbage", body)


def test_relay_checks_are_a_pure_decision() -> None:
    config = make_config(
        {"name": "mms", "path_prefix": "/mm7", "upstream": "http://127.0.0.1:9/"},
        inbound=[{"name": "ev", "path_prefix": "/in", "deliver_to": "http://127.0.0.1:9/",
                  "auth": {"basic": "${RELAY_USER}:${RELAY_PASSWORD}"},
                  "allow_from": ["198.51.100.0/24", "2001:db8::/32"]}],
    )  # fmt: skip
    (route,) = config.inbound
    good = RELAY_AUTH["Authorization"]
    assert check_relay(route, good, "198.51.100.7") is None
    assert check_relay(route, good, "::ffff:198.51.100.7") is None  # a v4-mapped peer
    assert check_relay(route, good, "2001:db8::1") is None
    for peer in ("198.51.101.1", None, "not-an-address", "2001:db9::1"):
        refusal = check_relay(route, good, peer)
        assert refusal is not None
        assert (refusal.status, refusal.reason) == (403, "relay_forbidden")
    for header in (None, "", "Bearer x", "Basic !!", f"Basic {pii.basic(pii.RELAY_USER, 'x')}",
                   good.lower().replace("basic", "digest")):  # fmt: skip
        refusal = check_relay(route, header, "198.51.100.7")
        assert refusal is not None
        assert (refusal.status, refusal.reason) == (401, "relay_unauthenticated")
        assert not pii.leaks(refusal.detail)
    assert check_relay(route, "basic " + good.split()[1], "198.51.100.7") is None
    assert pii.RELAY_PASSWORD not in repr(route)


# --- TLS on listen, SIGHUP --------------------------------------------------------------------
async def test_listen_tls_serves_https_and_sighup_loads_a_rotated_certificate(
    tmp_path: Path, gateway: Any, log_lines: Any
) -> None:
    """SIGHUP re-reads listen_tls's files and never stops the proxy: new handshakes get
    the rotated certificate."""
    from tests.test_server import Recorder

    recorder = Recorder()

    async def record(request: web.Request) -> web.StreamResponse:
        return await recorder(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    upstream = await gateway(app)
    ca = trustme.CA()
    old, new = ca.issue_cert("proxy.test"), ca.issue_cert("proxy.test")
    mount = SecretMount(tmp_path / "tls")

    def files(leaf: trustme.LeafCert) -> dict[str, bytes]:
        return {"tls.crt": leaf.cert_chain_pems[0].bytes(), "tls.key": leaf.private_key_pem.bytes()}

    mount.swap(files(old))
    config = make_config(
        {"name": "mms", "path_prefix": "/mm7", "upstream": str(upstream.make_url("/mm7"))},
        listen=f"127.0.0.1:{free_port()}",
        admin_listen=f"127.0.0.1:{free_port()}",
        listen_tls={
            "cert_file": str(mount.path("tls.crt")),
            "key_file": str(mount.path("tls.key")),
        },
    )
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)

    async def presented() -> str:
        _, writer = await asyncio.open_connection(
            "127.0.0.1", config.listen.port, ssl=client_ctx, server_hostname="proxy.test"
        )
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        writer.close()
        await writer.wait_closed()
        from cryptography import x509

        number = x509.load_der_x509_certificate(der).serial_number
        text = f"{number:X}"
        return text if len(text) % 2 == 0 else "0" + text

    async with Running(config) as proxy, aiohttp.ClientSession() as http:
        resp = await http.post(proxy.url("/mm7", scheme="https"), data=b"<x/>", ssl=client_ctx,
                               server_hostname="proxy.test")  # fmt: skip
        assert (await resp.json())["code"] == "OK"
        assert await presented() == serial_of(old)
        mount.swap(files(new))
        os.kill(os.getpid(), signal.SIGHUP)
        for _ in range(200):  # the handler runs on the loop: give it its turn
            await asyncio.sleep(0.01)
            if "sighup" in [e["event"] for e in log_lines()]:
                break
        assert await presented() == serial_of(new)
        resp = await http.post(proxy.url("/mm7", scheme="https"), data=b"<x/>", ssl=client_ctx,
                               server_hostname="proxy.test")  # fmt: skip
        assert (await resp.json())["code"] == "OK"  # still serving
    events = [e["event"] for e in log_lines()]
    assert "sighup" in events
    assert "tls_reloaded" in events
    assert events.count("startup") == 1


# --- MoMS credentials --------------------------------------------------------------------------
async def test_moms_query_credentials_replace_the_apps(
    gateway: Any, proxy_client: Any, log_lines: Any
) -> None:
    seen: list[str] = []

    async def moms(request: web.Request) -> web.Response:
        seen.append(request.raw_path)
        return web.json_response({"response": {"status": "success", "code": 1,
                                               "message": "API Request Accepted"}})  # fmt: skip

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", moms)
    server = await gateway(app)
    config = make_config(
        {"name": "moms", "vendor": "moms", "path_prefix": "/moms",
         "upstream": str(server.make_url("/moms")),
         "query": {"client_id": "${MOMS_CLIENT_ID}", "token": "${MOMS_TOKEN}"}},
    )  # fmt: skip
    client = await proxy_client(config)
    for query in (
        "campaign_id=1&to=15550000436&message=a%26b",
        "client_id=app-own-id&token=app-own-t0ken&campaign_id=1",
        "Client_Id=kept&client%5Fid=app-own-id&token=&token=x",
        "",
    ):
        resp = await client.get(f"/moms/transaction.send?{query}" if query else "/moms/x")
        assert (await resp.json())["code"] == "OK"
    parsed = [parse_qs(path.partition("?")[2], keep_blank_values=True) for path in seen]
    for params in parsed:
        assert params["client_id"] == [pii.MOMS_CLIENT_ID]
        assert params["token"] == [pii.MOMS_TOKEN]
    assert parsed[0]["message"] == ["a&b"]  # the app's own parameters, still encoded
    assert parsed[0]["to"] == ["15550000436"]
    assert parsed[2]["Client_Id"] == ["kept"]  # names are matched exactly, once decoded
    assert seen[3].startswith("/moms/x?client_id=")
    logged = repr(log_lines())
    assert pii.MOMS_CLIENT_ID not in logged
    assert pii.MOMS_TOKEN not in logged
    assert "app-own-t0ken" not in logged  # the app's own are redacted too
    assert "app-own-id" not in logged


def test_query_values_are_encoded_once() -> None:
    from proxy.upstream import endpoint_of

    endpoint = endpoint_of("https://api.mogreet.com/moms",
                           query={"client_id": "a b&c", "token": "t=1/+%"})  # fmt: skip
    target = endpoint.target("/transaction.send", "to=1&token=old")
    assert target == "/moms/transaction.send?to=1&client_id=a%20b%26c&token=t%3D1%2F%2B%25"
    assert "a b" not in repr(endpoint)
