"""Who may send: the pure decision (proxy/server/clients.py) from a table, then the proxy
with real sockets: 407 and 403 answered without contacting the gateway, keys never
forwarded, logged or labelled, and each request counted under its client."""

import base64
from typing import Any

import pytest
from aiohttp import web

from proxy.config import Client, ConfigError
from proxy.server import REGISTRY_KEY
from proxy.server.clients import ANONYMOUS, Clients, Denied
from tests import pii
from tests.conftest import label_values, make_config
from tests.test_server import SUBMIT_REQ, Recorder

CLIENTS = Clients(
    [
        Client("checkout", pii.CHECKOUT_KEY, frozenset({"mms"})),
        Client("reports", pii.REPORTS_KEY, None),
    ]
)


def basic(user: str, key: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{key}".encode()).decode()


IDENTIFIED = [
    (f"Bearer {pii.CHECKOUT_KEY}", "mms", "checkout"),
    (f"bearer   {pii.CHECKOUT_KEY} ", "mms", "checkout"),  # the scheme is case-insensitive
    (basic("checkout", pii.CHECKOUT_KEY), "mms", "checkout"),
    (f"Bearer {pii.REPORTS_KEY}", "moms", "reports"),  # no routes: every route
    (basic("reports", pii.REPORTS_KEY), "mms", "reports"),
]
UNAUTHENTICATED = [
    None,
    "",
    "Bearer",
    "Bearer ",
    f"Bearer {pii.CHECKOUT_KEY}x",
    f"Bearer {pii.CHECKOUT_KEY[:-1]}",
    f"Token {pii.CHECKOUT_KEY}",
    basic("reports", pii.CHECKOUT_KEY),  # a real key, under another client's name
    basic("checkout", pii.CHECKOUT_KEY + "x"),
    "Basic not-base64!",
    "Basic " + base64.b64encode(pii.CHECKOUT_KEY.encode()).decode(),  # no name:
    f"Basic {pii.CHECKOUT_KEY}",
    "Bearer \udcff\udcfe",  # undecodable bytes, as aiohttp hands them over
]


@pytest.mark.parametrize(("header", "route", "client"), IDENTIFIED)
def test_a_valid_key_names_its_client(header: str, route: str, client: str) -> None:
    assert CLIENTS.identify(header, route) == client


@pytest.mark.parametrize("header", UNAUTHENTICATED)
def test_a_missing_or_wrong_key_is_unauthenticated(header: str | None) -> None:
    denied = CLIENTS.identify(header, "mms")
    assert isinstance(denied, Denied)
    assert (denied.kind, denied.client) == ("client_unauthenticated", ANONYMOUS)
    assert "Proxy-Authorization" in denied.detail
    assert not pii.leaks(denied.detail)


def test_a_route_outside_the_clients_routes_is_forbidden() -> None:
    denied = CLIENTS.identify(f"Bearer {pii.CHECKOUT_KEY}", "moms")
    assert denied == Denied(
        "client_forbidden", "client 'checkout' may not use route 'moms'", "checkout"
    )


def test_without_clients_everyone_is_anonymous() -> None:
    assert Clients([]).identify(None, "mms") == ANONYMOUS
    assert Clients([]).identify("Bearer whatever", "mms") == ANONYMOUS


def test_keys_are_kept_only_as_digests() -> None:
    """Nothing the object holds is a key: not its repr, not a stored value."""
    client = Client("checkout", pii.CHECKOUT_KEY)
    assert pii.CHECKOUT_KEY not in repr(client)
    held = repr(vars(CLIENTS)) if hasattr(CLIENTS, "__dict__") else ""
    held += repr([getattr(CLIENTS, slot) for slot in Clients.__slots__])
    assert not pii.leaks(held)


# --- the config -------------------------------------------------------------------------
ROUTES = (
    {"name": "mms", "path_prefix": "/mm7", "upstream": "http://relay.invalid/"},
    {"name": "moms", "vendor": "moms", "path_prefix": "/moms", "upstream": "http://m.invalid"},
)


@pytest.mark.parametrize(
    ("clients", "expected"),
    [
        ([{"name": "a", "key": "${CHECKOUT_KEY}"}, {"name": "a", "key": "${REPORTS_KEY}"}],
         "<test>: clients[1].name: duplicate client name 'a' (also clients[0])"),
        ([{"name": "a", "key": "${CHECKOUT_KEY}", "routes": ["mms", "sms"]}],
         "<test>: clients[0].routes[1]: no route is named 'sms' (routes: mms, moms)"),
        ([{"name": "a", "key": "${CHECKOUT_KEY}"}, {"name": "b", "key": "${CHECKOUT_KEY}"}],
         "<test>: clients[1].key: is the same key as clients[0]: each client needs its own"),
        ([{"name": "a", "key": "short"}],
         "<test>: clients[0].key: must be at least 16 characters long"),
        ([{"name": "a"}], "<test>: clients[0].key: is required"),
        ([{"name": "a", "key": "${NOPE}"}],
         "<test>: clients[0].key: environment variable ${NOPE} is not set"),
        ([], "<test>: clients: must be a non-empty list of clients (or left out: no check)"),
        ([{"name": "a", "key": "${CHECKOUT_KEY}", "tier": 1}],
         "<test>: clients[0].tier: unknown key (expected one of key, name, routes, webhook)"),
    ],
)  # fmt: skip
def test_clients_config_errors(clients: list[dict[str, Any]], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        make_config(*ROUTES, clients=clients)
    assert expected in info.value.errors
    assert not pii.leaks(str(info.value))


def test_clients_config_builds_frozen_clients() -> None:
    config = make_config(
        *ROUTES,
        clients=[
            {"name": "checkout", "key": "${CHECKOUT_KEY}", "routes": ["mms"]},
            {"name": "reports", "key": "${REPORTS_KEY}"},
        ],
    )
    assert config.clients == (
        Client("checkout", pii.CHECKOUT_KEY, frozenset({"mms"})),
        Client("reports", pii.REPORTS_KEY, None),
    )
    assert not pii.leaks(repr(config))


# --- through the proxy, with real sockets ---------------------------------------------------
async def clients_proxy(gateway: Any, proxy_client: Any, recorder: Recorder) -> Any:
    async def record(request: web.Request) -> web.StreamResponse:
        return await recorder(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    server = await gateway(app)
    config = make_config(
        {"name": "mms", "path_prefix": "/mm7", "upstream": str(server.make_url("/mm7"))},
        {"name": "moms", "vendor": "moms", "path_prefix": "/moms",
         "upstream": str(server.make_url("/moms"))},
        clients=[
            {"name": "checkout", "key": "${CHECKOUT_KEY}", "routes": ["mms"]},
            {"name": "reports", "key": "${REPORTS_KEY}"},
        ],
    )  # fmt: skip
    return await proxy_client(config)


def count(proxy: Any, metric: str, **labels: str) -> float:
    return proxy.app[REGISTRY_KEY].get_sample_value(metric, labels) or 0.0


async def test_without_a_valid_key_the_gateway_is_never_contacted(
    gateway: Any, proxy_client: Any, log_lines: Any
) -> None:
    recorder = Recorder()
    client = await clients_proxy(gateway, proxy_client, recorder)
    xml = {"Content-Type": "text/xml"}
    for header in (None, f"Bearer {pii.CHECKOUT_KEY}-wrong", basic("reports", pii.CHECKOUT_KEY)):
        headers = xml if header is None else {**xml, "Proxy-Authorization": header}
        resp = await client.post("/mm7", data=SUBMIT_REQ, headers=headers)
        assert resp.status == 407
        assert resp.headers.getall("Proxy-Authenticate")[0].startswith("Bearer ")
        envelope = await resp.json()
        assert (envelope["code"], envelope["vendor"]["name"]) == (
            "PROXY_AUTHENTICATION_REQUIRED",
            "proxy",
        )
        assert envelope["retryable"] is False
    forbidden = await client.get(
        "/moms/transaction.send", headers={"Proxy-Authorization": f"Bearer {pii.CHECKOUT_KEY}"}
    )
    assert forbidden.status == 403
    assert (await forbidden.json())["code"] == "ROUTE_NOT_ALLOWED"
    assert recorder.requests == []  # the gateway saw nothing
    rejected = "gateway_proxy_rejected_requests_total"
    assert count(client, rejected, route="mms", reason="client_unauthenticated") == 3
    assert count(client, rejected, route="moms", reason="client_forbidden") == 1
    responses = "gateway_proxy_responses_total"
    assert count(client, responses, route="mms", vendor="mm7", vendor_code="none",
                 code="PROXY_AUTHENTICATION_REQUIRED", category="client", client="anonymous") == 3  # fmt: skip
    assert count(client, responses, route="moms", vendor="moms", vendor_code="none",
                 code="ROUTE_NOT_ALLOWED", category="client", client="checkout") == 1  # fmt: skip
    lines = [e for e in log_lines() if e["event"] == "request"]
    assert [e["client"] for e in lines] == ["anonymous"] * 3 + ["checkout"]
    assert {e["code"] for e in lines} == {"PROXY_AUTHENTICATION_REQUIRED", "ROUTE_NOT_ALLOWED"}


async def test_a_valid_key_is_forwarded_to_nobody_and_counted_under_its_client(
    gateway: Any, proxy_client: Any, log_lines: Any
) -> None:
    recorder = Recorder()
    client = await clients_proxy(gateway, proxy_client, recorder)
    xml = {"Content-Type": "text/xml"}
    for header in (f"Bearer {pii.CHECKOUT_KEY}", basic("checkout", pii.CHECKOUT_KEY)):
        resp = await client.post(
            "/mm7", data=SUBMIT_REQ, headers={**xml, "Proxy-Authorization": header}
        )
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["code"] == "OK"
    resp = await client.post(
        "/moms/x",
        data=SUBMIT_REQ,
        headers={**xml, "Proxy-Authorization": f"Bearer {pii.REPORTS_KEY}"},
    )
    assert len(recorder.requests) == 3
    for seen in recorder.requests:
        assert "Proxy-Authorization" not in seen["headers"]
        assert pii.CHECKOUT_KEY not in repr(seen)
        assert pii.REPORTS_KEY not in repr(seen)
    responses = "gateway_proxy_responses_total"
    ok = {
        "route": "mms",
        "vendor": "mm7",
        "code": "OK",
        "category": "success",
        "vendor_code": "1000",
    }
    assert count(client, responses, client="checkout", **ok) == 2
    assert count(client, responses, client="anonymous", **ok) == 0
    moms = [
        s for f in client.app[REGISTRY_KEY].collect() for s in f.samples
        if s.name == responses and s.labels["route"] == "moms" and s.value
    ]  # fmt: skip
    assert [s.labels["client"] for s in moms] == ["reports"]
    labels = set(label_values(client.app[REGISTRY_KEY]))
    assert {"checkout", "reports", "anonymous"} <= labels
    assert [e["client"] for e in log_lines() if e["event"] == "request"] == [
        "checkout", "checkout", "reports",
    ]  # fmt: skip


async def test_callbacks_never_need_a_client_key(gateway: Any, proxy_client: Any) -> None:
    """An inbound route on `listen` is the relay's: its own checks, never a client key."""

    async def accept(request: web.Request) -> web.Response:
        return web.Response(status=204)

    hook = web.Application()
    hook.router.add_post("/events", accept)
    server = await gateway(hook)
    config = make_config(
        {"name": "mms", "path_prefix": "/mm7", "upstream": "http://127.0.0.1:9/"},
        clients=[{"name": "checkout", "key": "${CHECKOUT_KEY}"}],
        inbound=[{"name": "events", "path_prefix": "/inbound",
                  "deliver_to": str(server.make_url("/events"))}],
    )  # fmt: skip
    client = await proxy_client(config)
    from tests.test_inbound_e2e import REPORT

    resp = await client.post("/inbound", data=REPORT, headers={"Content-Type": "text/xml"})
    assert resp.status == 200
    assert b"1000" in await resp.read()
