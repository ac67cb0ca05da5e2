"""Proof with the real thing: the proxy, a fake gateway and a real Prometheus together.

1. the proxy runs against a fake gateway that answers a known mix of MM7 and MoMS codes
   (plus a dead upstream, a slow one and an unrouted path), and has an inbound route whose
   webhook takes four events in five and fails the fifth (a 503 or a 422, in turn);
2. a real ``prometheus`` scrapes the admin port every second, with ``namespace``/``job``
   target labels as a ServiceMonitor would add them;
3. the mix is driven through the proxy, with a few keyed requests through its SQLite
   message ledger (a kept answer, its replay, a reused key, a released one, and one
   refused while another process holds the file's write lock), and a relay's delivery
   reports (some about a message the proxy sent), read reply and one invalid callback
   are posted to the inbound route;
4. ``sum by (code)`` of the responses counter, the inbound events by event and status,
   the webhook failures by reason, and the ledger's keyed requests by result, its errors
   by operation and its events matched or not, read back through Prometheus's HTTP API,
   equal exactly what was sent;
5. every dashboard variable resolves and every panel query, with the variables
   substituted, returns data (one request is held in flight meanwhile);
6. ``promtool check metrics`` accepts the admin port's ``/metrics``. (``promtool check
   rules`` and ``promtool test rules`` run in tests/test_promtool.py.)

A second test runs the project's realistic mix instead: the real simulator with
config/sim-mix.yaml behind the demo's routes and a SQLite message ledger, driven by
bench/traffic.py's scenarios (half of them with an Idempotency-Key, plus a few unrouted
requests), while a relay posts delivery reports and read replies to the
demo's inbound route throughout (its webhook fails one event in twenty: 5%, under
GatewayProxyWebhookFailures' 10%). Every panel query, with the variables substituted, runs
instant and over a range and must return data with no NaN, no negative latency and no zero
row in a table; no alert condition holds; and no ``_created`` series reaches Prometheus.

The flow-control alerts and the ledger's each get a test of their own: real proxies in the
state each alert describes (a dead endpoint, a full queue, a gone store, a Redis out of
memory), and the alert's condition holds for exactly them.
"""

import asyncio
import itertools
import json
import math
import random
import re
import shutil
import sqlite3
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry
from yarl import URL

from bench import traffic
from proxy.observability.metrics import UNMATCHED_ROUTE
from proxy.server import READINESS_KEY, create_app
from proxy.server.admin import create_admin_app
from proxy.tools.sim import SimSettings, create_sim_app
from proxy.tools.sim.mm7 import render_reply, submit_request
from tests.conftest import make_config
from tests.prometheus_harness import (
    INSTALL_HINT,
    PrometheusServer,
    ScrapeTarget,
    free_port,
    substitute_dashboard_vars,
    values,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "helm/gateway-proxy/files/grafana-dashboard.json"
RULES = ROOT / "helm/gateway-proxy/files/prometheus-rules.yaml"
SIM_MIX = ROOT / "config/sim-mix.yaml"
NAMESPACE = "test"
JOB = "gateway-proxy"

SUBMIT = submit_request("+15550001000", transaction_id="e2e-1")
# The message ledger's mix, on the mms route: (path, Idempotency-Key, body, the code the
# app gets, what the ledger did). The replay is the kept answer again, not a new answer.
LEDGERED: list[tuple[str, str, str, str, str]] = [
    ("/mm7/1000", "k-1", SUBMIT, "OK", "stored"),
    ("/mm7/1000", "k-1", SUBMIT, "OK", "replayed"),
    ("/mm7/1000", "k-1", SUBMIT.replace("e2e-1", "e2e-2"), "IDEMPOTENCY_KEY_REUSED", "mismatch"),
    ("/mm7/4006", "k-2", SUBMIT, "UPSTREAM_UNAVAILABLE", "released"),
]

# The inbound side, as in config/demo.yaml: the relay posts its callbacks here.
INBOUND_ROUTE = "mm7-events"
INBOUND_PATH = "/inbound/mm7"
INBOUND_FIXTURES = ROOT / "tests/fixtures/inbound"
REPORT = (INBOUND_FIXTURES / "deliveryreport-rel6-default-ns.xml").read_bytes()
READ_REPLY = (INBOUND_FIXTURES / "readreply-rel6.xml").read_bytes()
INVALID = (INBOUND_FIXTURES / "wrong-root-submitrsp.xml").read_bytes()  # answered 4004
_STATUS_CODE = re.compile(rb"StatusCode>\s*(\d+)\s*<")

# The message id of every MM7 success of the fake gateway: reports about it match a send.
SENT_MESSAGE_ID = "m-1"
# (callback, the event's canonical status, how many times): the known inbound mix. The
# "Retrieved" reports are about a message the proxy sent (matched), the others not.
CALLBACKS: list[tuple[str, str, int]] = [
    ("report:Retrieved", "DELIVERED", 6),
    ("report:Expired", "EXPIRED", 2),
    ("report:Deferred", "DEFERRED", 1),
    ("read:Read", "READ", 1),
]
# A relay's callbacks over a realistic day's MMS, by weight: most messages are retrieved,
# some expire or wait for the handset, and a few recipients' clients send read replies.
RELAY_MIX = {
    "report:Retrieved": 60, "report:Expired": 6, "report:Rejected": 4, "report:Deferred": 6,
    "report:Unreachable": 5, "report:Indeterminate": 3, "read:Read": 12, "read:Deleted": 4,
}  # fmt: skip

# (proxy path, canonical code the app must get, how many times): the known mix.
MIX: list[tuple[str, str, int]] = [
    ("/mm7/1000", "OK", 5),
    ("/mm7/2002", "INVALID_ADDRESS", 3),
    ("/mm7/4001", "UNAUTHENTICATED", 2),
    ("/mm7/4006", "UPSTREAM_UNAVAILABLE", 2),
    ("/mm7/9999", "UPSTREAM_ERROR", 1),  # outside the catalog: vendor_code="other"
    ("/moms/1", "OK", 4),
    ("/moms/436", "INVALID_ADDRESS", 2),
    ("/moms/403", "PERMISSION_DENIED", 1),
    ("/moms/606", "RECIPIENT_OPTED_OUT", 1),
    ("/moms/http429", "RATE_LIMITED", 2),  # no code in the body: by HTTP status
    ("/down/x", "CONNECTION_ERROR", 2),
    ("/slow/x", "TIMEOUT", 1),
    ("/nowhere", "ROUTE_NOT_FOUND", 1),
]


def fake_gateway(release: asyncio.Event) -> web.Application:
    """MM7 at /mm7/<code>, MoMS at /moms/<code>; /slow and /mm7/hold wait for ``release``."""

    async def mm7(request: web.Request) -> web.Response:
        code = request.match_info["code"]
        if code == "hold":
            await asyncio.wait_for(release.wait(), 60)
            code = "1000"
        reply = render_reply(
            response_kind="SubmitRsp", transaction_id="e2e-1", code=code,
            text=f"status {code}", message_id="m-1",
        )  # fmt: skip
        return web.Response(
            status=reply.status, body=reply.body, headers={"Content-Type": reply.content_type}
        )

    async def moms(request: web.Request) -> web.Response:
        code = request.match_info["code"]
        if code.startswith("http"):
            # An empty body (a "slow down" text would also count as unparseable).
            return web.Response(status=int(code[4:]), headers={"Retry-After": "1"})
        status = "success" if code == "1" else "error"
        body = {"response": {"code": code, "status": status, "message": f"moms {code}"}}
        # The live API labels its JSON as text/xml.
        return web.Response(text=json.dumps(body), content_type="text/xml")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.wait_for(release.wait(), 60)
        return web.Response(text="too late")

    app = web.Application()
    app.router.add_post("/mm7/{code}", mm7)
    app.router.add_post("/moms/{code}", moms)
    app.router.add_post("/slow/{tail:.*}", slow)
    return app


def callback(name: str, message_id: str | None = None) -> bytes:
    """A relay's callback: ``report:<MMStatus>`` or ``read:<MMStatus>``, from the fixtures
    (about ``message_id`` when given, else the fixture's message)."""
    kind, _, mm_status = name.partition(":")
    fixture, tag, status = {
        "report": (REPORT, "MMStatus", "Retrieved"),
        "read": (READ_REPLY, "mm7:MMStatus", "Deleted"),
    }[kind]
    element = f"<{tag}>{status}</{tag}>".encode()
    assert element in fixture
    body = fixture.replace(element, f"<{tag}>{mm_status}</{tag}>".encode())
    if message_id is not None:
        assert b"MessageID>msg-7f3a9c<" in body
        body = body.replace(b"MessageID>msg-7f3a9c<", f"MessageID>{message_id}<".encode())
    return body


def fake_webhook(fail_every: int) -> tuple[web.Application, list[dict[str, Any]]]:
    """The app's webhook and the events it got: it takes each event (204, after 0 to 40 ms)
    but every ``fail_every``-th, which it answers 503 and 422 in turn (a failure the relay
    retries, and the app's refusal)."""
    events: list[dict[str, Any]] = []
    failures = itertools.cycle((503, 422))

    async def receive(request: web.Request) -> web.Response:
        events.append(await request.json())
        await asyncio.sleep(len(events) % 5 * 0.01)  # a spread for the latency quantiles
        if len(events) % fail_every == 0:
            return web.Response(status=next(failures))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/gateway-events", receive)
    return app, events


async def relay(http: aiohttp.ClientSession, url: URL, body: bytes) -> str:
    """POST one callback as a relay does; the StatusCode of the proxy's answer."""
    async with http.post(url, data=body, headers={"Content-Type": "text/xml"}) as resp:
        answer = await resp.read()
    match = _STATUS_CODE.search(answer)
    assert match, answer
    return match.group(1).decode()


async def relay_steadily(
    http: aiohttp.ClientSession, url: URL, callbacks: list[str], interval: float
) -> Counter[str]:
    """POST ``callbacks`` one after the other, ``interval`` apart; the answers' StatusCodes."""
    answers: Counter[str] = Counter()
    for name in callbacks:
        answers[await relay(http, url, callback(name))] += 1
        await asyncio.sleep(interval)
    return answers


def panel_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["expr"]) for p in dashboard["panels"] for t in p.get("targets", [])]


def panels() -> list[dict[str, Any]]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return [p for p in dashboard["panels"] if p.get("targets")]


def variable_queries() -> dict[str, str]:
    dashboard = json.loads(DASHBOARD.read_text())
    out = {}
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            out[variable["name"]] = query["query"] if isinstance(query, dict) else query
    return out


def label_values_args(query: str) -> tuple[str, str]:
    """The (series selector, label) of Grafana's ``label_values(selector, label)``."""
    match = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", query)
    assert match, query
    return match.group(1), match.group(2)


def label_values_as_promql(query: str) -> str:
    """Grafana's ``label_values(selector, label)`` as an instant PromQL query."""
    selector, label = label_values_args(query)
    return f"group by ({label}) ({selector})"


async def promtool_check_metrics(text: bytes) -> tuple[int, str]:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail(f"promtool not found on PATH: {INSTALL_HINT}")
    process = await asyncio.create_subprocess_exec(
        promtool, "check", "metrics",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await process.communicate(text)
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


async def test_real_prometheus_sees_what_the_proxy_did(
    aiohttp_server: Callable[..., Awaitable[TestServer]], tmp_path: Path
) -> None:
    release = asyncio.Event()
    gateway = await aiohttp_server(fake_gateway(release), host="127.0.0.1")
    webhook_app, events = fake_webhook(fail_every=5)
    webhook = await aiohttp_server(webhook_app, host="127.0.0.1")
    config = make_config(
        {"name": "mms", "vendor": "mm7", "path_prefix": "/mm7",
         "upstream": str(gateway.make_url("/mm7"))},
        {"name": "moms", "vendor": "moms", "path_prefix": "/moms",
         "upstream": str(gateway.make_url("/moms"))},
        {"name": "down", "vendor": "mm7", "path_prefix": "/down",
         "upstream": f"http://127.0.0.1:{free_port()}/mm7"},
        {"name": "slow", "vendor": "moms", "path_prefix": "/slow",
         "upstream": str(gateway.make_url("/slow")), "timeout": {"total": 0.5}},
        # Flow control: a dead primary whose circuit opens at once, and a rate limit whose
        # one token goes to the first request (the next one waits in its queue).
        {"name": "failover", "vendor": "mm7", "path_prefix": "/failover",
         "upstreams": [f"http://127.0.0.1:{free_port()}/mm7", str(gateway.make_url("/mm7"))],
         "circuit_breaker": {"failures": 1, "open_seconds": 600}},
        {"name": "paced", "vendor": "mm7", "path_prefix": "/paced",
         "upstream": str(gateway.make_url("/mm7")),
         "rate_limit": {"per_second": 0.01, "burst": 1, "max_wait": 600}},
        inbound=[{"name": INBOUND_ROUTE, "path_prefix": INBOUND_PATH,
                  "deliver_to": str(webhook.make_url("/gateway-events"))}],
        ledger={"path": str(tmp_path / "ledger.sqlite3")},
    )  # fmt: skip
    registry = CollectorRegistry()
    app = create_app(config, registry=registry)
    proxy = await aiohttp_server(app, host="127.0.0.1")
    admin = await aiohttp_server(create_admin_app(registry, app[READINESS_KEY]), host="127.0.0.1")
    target = ScrapeTarget(f"127.0.0.1:{admin.port}", job=JOB, labels={"namespace": NAMESPACE})

    try:
        async with (
            PrometheusServer([target], tmp_path / "prometheus") as prom,
            aiohttp.ClientSession() as http,
        ):
            # 2. Prometheus scrapes the admin port before any traffic: counters start at 0.
            await prom.wait_for(f'up{{job="{JOB}"}} == 1', lambda r: len(r) == 1)

            # 3. Drive the mix; each answer is checked on the way, so a wrong fake fails here.
            sent: Counter[str] = Counter()
            for path, code, times in MIX:
                for _ in range(times):
                    body = SUBMIT if path.startswith("/mm7/") else b"<x/>"
                    async with http.post(proxy.make_url(path), data=body) as resp:
                        envelope = await resp.json()
                    assert envelope["code"] == code, (path, envelope)
                    sent[code] += 1
            # The message ledger: a kept answer, its replay, a key reused for another
            # request, a retryable answer (its key released), and a key refused while
            # another process holds SQLite's write lock past the busy timeout: a failed
            # call while the ledger still answers its health check.
            did: Counter[str] = Counter()
            for path, key, body, code, result in LEDGERED:
                headers = {"Idempotency-Key": key}
                async with http.post(proxy.make_url(path), data=body, headers=headers) as resp:
                    assert (await resp.json())["code"] == code, (path, key, result)
                    replayed = resp.headers.get("Idempotent-Replayed") == "true"
                assert replayed == (result == "replayed"), (path, key, result)
                sent[code] += not replayed  # a replay is not a new answer
                did[result] += 1
            lock = sqlite3.connect(tmp_path / "ledger.sqlite3", timeout=0, isolation_level=None)
            lock.execute("BEGIN IMMEDIATE")
            try:
                headers = {"Idempotency-Key": "k-3"}
                async with http.post(
                    proxy.make_url("/mm7/1000"), data=SUBMIT, headers=headers
                ) as resp:
                    assert (resp.status, (await resp.json())["code"]) == (503, "LEDGER_UNAVAILABLE")
            finally:
                lock.execute("ROLLBACK")
                lock.close()
            sent["LEDGER_UNAVAILABLE"] += 1
            did["unavailable"] += 1
            total = sum(sent.values())
            # The relay's callbacks: one the proxy cannot take (never forwarded), then the
            # known mix, of which the webhook fails the 5th (503) and the 10th (422).
            url = proxy.make_url(INBOUND_PATH)
            answers = Counter([await relay(http, url, INVALID)])
            inbound: Counter[tuple[str, str]] = Counter({("invalid", "none"): 1})
            for name, status, times in CALLBACKS:
                event = "read_reply" if name.startswith("read:") else "delivery_report"
                about = SENT_MESSAGE_ID if name == "report:Retrieved" else None
                for _ in range(times):
                    answers[await relay(http, url, callback(name, about))] += 1
                    inbound[event, status] += 1
            assert answers == {"1000": 8, "4006": 1, "3002": 1, "4004": 1}
            assert Counter(e["status"] for e in events) == {
                status: n for (event, status), n in inbound.items() if event != "invalid"
            }

            # 4. Prometheus's view of the counter equals exactly what was sent.
            await prom.wait_for(
                "sum(gateway_proxy_responses_total)",
                lambda r: bool(r) and float(r[0]["value"][1]) == total,
            )
            by_code = values(
                await prom.query("sum by (code) (gateway_proxy_responses_total)"), "code"
            )
            assert {c: n for c, n in by_code.items() if n} == dict(sent)
            failures = values(
                await prom.query("sum by (reason) (gateway_proxy_upstream_failures_total)"),
                "reason",
            )
            assert {r: n for r, n in failures.items() if n} == {"connect": 2, "timeout": 1}
            await prom.wait_for(
                "sum(gateway_proxy_inbound_events_total)",
                lambda r: bool(r) and float(r[0]["value"][1]) == inbound.total(),
            )
            by_event = await prom.query(
                "sum by (route, event, status) (gateway_proxy_inbound_events_total) > 0"
            )
            assert {s["metric"]["route"] for s in by_event} == {INBOUND_ROUTE}
            assert {
                (s["metric"]["event"], s["metric"]["status"]): float(s["value"][1])
                for s in by_event
            } == inbound
            webhook_failures = values(
                await prom.query("sum by (reason) (gateway_proxy_webhook_failures_total)"),
                "reason",
            )
            assert {r: n for r, n in webhook_failures.items() if n} == {
                "server_error": 1,
                "refused": 1,
            }
            by_result = values(
                await prom.query("sum by (result) (gateway_proxy_idempotency_requests_total)"),
                "result",
            )
            assert {r: n for r, n in by_result.items() if n} == did
            errors = values(
                await prom.query("sum by (operation) (gateway_proxy_ledger_errors_total)"),
                "operation",
            )
            assert {o: n for o, n in errors.items() if n} == {"begin": 1}
            assert values(await prom.query("gateway_proxy_ledger_up"), "job") == {JOB: 1.0}
            matched = values(
                await prom.query("sum by (result) (gateway_proxy_correlated_events_total)"),
                "result",
            )
            retrieved = next(n for name, _, n in CALLBACKS if name == "report:Retrieved")
            assert matched == {"matched": retrieved, "unmatched": inbound.total() - 1 - retrieved}

            # 5. Hold one request in flight, then resolve the variables and run every panel.
            async with asyncio.TaskGroup() as tasks:
                held = tasks.create_task(http.post(proxy.make_url("/mm7/hold"), data=SUBMIT))
                await prom.wait_for(
                    'gateway_proxy_requests_in_flight{route="mms"}',
                    lambda r: values(r, "route") == {"mms": 1.0},
                )
                # Flow control: a failover (the primary's circuit opens), a paced request,
                # and one more held in the rate limit's queue while the panels are read.
                for path in ("/failover/1000", "/paced/1000"):
                    async with http.post(proxy.make_url(path), data=SUBMIT) as resp:
                        assert (await resp.json())["code"] == "OK", path
                queued = tasks.create_task(http.post(proxy.make_url("/paced/1000"), data=SUBMIT))
                await prom.wait_for(
                    'gateway_proxy_rate_limit_queue{route="paced"}',
                    lambda r: values(r, "route") == {"paced": 1.0},
                )
                await check_dashboard_against(prom)
                queued.cancel()  # its app hangs up: it leaves the queue
                release.set()
            async with held.result() as resp:
                assert (await resp.json())["code"] == "OK"

            # 6. promtool accepts what the admin port exposes.
            async with http.get(admin.make_url("/metrics")) as resp:
                exposition = await resp.read()
            returncode, output = await promtool_check_metrics(exposition)
            assert returncode == 0, output
    finally:
        release.set()


async def check_dashboard_against(prom: PrometheusServer) -> None:
    """Variables resolve to our target; every panel query returns finite data."""
    resolved = await resolve_variables(prom)
    assert resolved["namespace"] == NAMESPACE
    assert resolved["job"] == JOB
    assert {"mms", "moms", "down", "slow", INBOUND_ROUTE} <= set(resolved["route"].split("|"))
    assert UNMATCHED_ROUTE not in resolved["route"].split("|")

    for title, expr in panel_queries():
        promql = substitute_dashboard_vars(expr, resolved)
        result = await prom.query(promql)
        numbers = [float(s["value"][1]) for s in result]
        finite = [n for n in numbers if math.isfinite(n)]
        assert finite, f"{title}: {promql} returned no data: {result}"
        assert any(n > 0 for n in finite), f"{title}: {promql} is all zero: {result}"


async def resolve_variables(prom: PrometheusServer) -> dict[str, str]:
    """Each query variable as Grafana's "All" of what it finds (a multi-value regex).

    Found twice, and both must agree: by an instant PromQL query, and as Grafana asks for
    it (the label values API with the selector as ``match[]``).
    """
    resolved: dict[str, str] = {}
    for name, template in variable_queries().items():
        query = substitute_dashboard_vars(template, resolved)
        promql = label_values_as_promql(query)
        found = set(values(await prom.query(promql), name))
        assert found, f"variable {name}: {promql} resolved to nothing"
        selector, label = label_values_args(query)
        assert set(await prom.label_values(label, selector)) == found, query
        resolved[name] = "|".join(sorted(found))
    return resolved


def check_panel(panel: dict[str, Any], expr: str, series: list[list[float]]) -> None:
    """The invariants every panel keeps, for one query's series (instant: one value each)."""
    title = panel["title"]
    assert series, f"{title}: {expr} returned no data"
    numbers = [n for s in series for n in s]
    assert numbers, f"{title}: {expr} returned series without samples"
    assert all(math.isfinite(n) for n in numbers), f"{title}: {expr} has NaN/Inf: {series}"
    unit = panel["fieldConfig"]["defaults"]["unit"]
    if unit == "s":
        assert min(numbers) >= 0, f"{title}: {expr} has a negative latency: {series}"
    if unit == "percentunit":
        assert all(0 <= n <= 1 for n in numbers), f"{title}: {expr} is no share: {series}"
    if panel["type"] == "table":
        assert min(numbers) > 0, f"{title}: {expr} has a zero row: {series}"


async def test_dashboard_and_alerts_under_the_realistic_mix(
    aiohttp_server: Callable[..., Awaitable[TestServer]], tmp_path: Path
) -> None:
    settings = SimSettings(mix_path=SIM_MIX, seed=12, hang_seconds=5)
    sim = await aiohttp_server(create_sim_app(settings), host="127.0.0.1")
    # 5% of the events fail: half of GatewayProxyWebhookFailures' threshold.
    webhook_app, events = fake_webhook(fail_every=20)
    webhook = await aiohttp_server(webhook_app, host="127.0.0.1")
    # The demo's routes (config/demo.yaml), with a short total timeout for the hang faults.
    timeout = {"connect": 0.5, "total": 1.0}
    # The mms route has two endpoints (one simulator, by two names), circuit breakers and a
    # rate limit, none of which ever binds here: the flow-control panels show data too.
    config = make_config(
        {"name": "mms", "vendor": "mm7", "path_prefix": "/mm7", "timeout": timeout,
         "upstreams": [str(sim.make_url("/mm7")), f"http://localhost:{sim.port}/mm7"],
         "circuit_breaker": {"failures": 1000, "open_seconds": 10},
         "rate_limit": {"per_second": 1000, "burst": 1000, "max_wait": 5}},
        {"name": "moms", "vendor": "moms", "path_prefix": "/moms",
         "upstream": str(sim.make_url("/moms")), "timeout": timeout},
        inbound=[{"name": INBOUND_ROUTE, "path_prefix": INBOUND_PATH,
                  "deliver_to": str(webhook.make_url("/gateway-events")), "timeout": timeout}],
        ledger={"path": str(tmp_path / "ledger.sqlite3")},
    )  # fmt: skip
    registry = CollectorRegistry()
    app = create_app(config, registry=registry)
    proxy = await aiohttp_server(app, host="127.0.0.1")
    admin = await aiohttp_server(create_admin_app(registry, app[READINESS_KEY]), host="127.0.0.1")
    target = ScrapeTarget(f"127.0.0.1:{admin.port}", job=JOB, labels={"namespace": NAMESPACE})

    callbacks = random.Random(3).choices(list(RELAY_MIX), list(RELAY_MIX.values()), k=60)
    async with (
        PrometheusServer([target], tmp_path / "prometheus") as prom,
        aiohttp.ClientSession() as http,
    ):
        await prom.wait_for(f'up{{job="{JOB}"}} == 1', lambda r: len(r) == 1)
        began = time.time()
        ns = traffic.parse_args(
            ["--proxy", str(proxy.make_url("")), "--duration", "12", "--rate", "40", "--seed", "5",
             "--keyed", "0.5"]  # half of the apps send an Idempotency-Key: the ledger's panels
        )  # fmt: skip
        async with asyncio.TaskGroup() as tasks:  # the relay calls back all along: 5/s
            relayed = tasks.create_task(
                relay_steadily(http, proxy.make_url(INBOUND_PATH), callbacks, interval=0.2)
            )
            results = await traffic.run(ns)
        for _ in range(5):  # the unrouted: vendor="proxy", always ROUTE_NOT_FOUND
            async with http.get(proxy.make_url("/nowhere")) as resp:
                assert resp.status == 404
        sent = sum(results.values()) + 5
        assert not [c for c in results if c.startswith("client:")], results
        # The 20th, 40th and 60th events fail: a 503 (retried), a 422 (refused), a 503.
        assert relayed.result() == {"1000": 57, "4006": 2, "3002": 1}
        assert len(events) == len(callbacks)
        await prom.wait_for(
            "sum(gateway_proxy_responses_total)",
            lambda r: bool(r) and float(r[0]["value"][1]) == sent,
        )
        await prom.wait_for(
            "sum(gateway_proxy_inbound_events_total)",
            lambda r: bool(r) and float(r[0]["value"][1]) == len(callbacks),
        )
        ended = time.time()

        # No _created series: they were a quarter of all series.
        assert await prom.query(f'{{__name__=~".+_created", job="{JOB}"}}') == []

        resolved = await resolve_variables(prom)
        assert set(resolved["route"].split("|")) == {"mms", "moms", INBOUND_ROUTE}
        for panel in panels():
            for target_ in panel["targets"]:
                expr = substitute_dashboard_vars(target_["expr"], resolved)
                instant = await prom.query(expr)
                check_panel(panel, expr, [[float(s["value"][1])] for s in instant])
                ranged = await prom.query_range(expr, began, ended, step=1)
                check_panel(panel, expr, [[float(v) for _, v in s["values"]] for s in ranged])
                if panel["title"].startswith("Upstream latency"):
                    # The hangs time out: they count as timeout.total, a bucket bound.
                    highest = max(float(v) for s in ranged for _, v in s["values"])
                    assert highest <= timeout["total"], f"{expr} reads above the timeout"
                if "vendor" in expr and "by (vendor" in expr:
                    assert "proxy" not in {s["metric"].get("vendor") for s in instant}, expr

        # No alert condition holds under normal traffic. The rules use 5m windows; the
        # traffic is younger than that, so rate() over 5m would understate it: use 1m.
        rules = yaml.safe_load(RULES.read_text())["groups"]
        for rule in (r for g in rules for r in g["rules"]):
            expr = rule["expr"].replace("[5m]", "[1m]")
            assert await prom.query(expr) == [], f"{rule['alert']} holds: {expr}"


async def test_the_flow_control_alerts_fire_on_a_real_prometheus(
    aiohttp_server: Callable[..., Awaitable[TestServer]], tmp_path: Path
) -> None:
    """Each flow-control alert's condition holds on what a real proxy exposes, for the
    routes it should and no other: a route with one dead endpoint of two (its circuit
    open), a route with no endpoint left, a rate-limited route whose queue stays full (its
    waits near max_wait), and a store that cannot be reached. (The ``for`` durations are
    promtool's tests; the rules use 5m windows, younger traffic is read over 1m.)"""
    release = asyncio.Event()
    gateway = await aiohttp_server(fake_gateway(release), host="127.0.0.1")
    dead_a, dead_b = free_port(), free_port()
    config = make_config(
        {"name": "half", "vendor": "mm7", "path_prefix": "/half",
         "upstreams": [f"http://127.0.0.1:{dead_a}/mm7", str(gateway.make_url("/mm7"))],
         "circuit_breaker": {"failures": 1, "open_seconds": 600}},
        {"name": "none", "vendor": "mm7", "path_prefix": "/none",
         "upstreams": [f"http://127.0.0.1:{dead_b}/mm7"],
         "circuit_breaker": {"failures": 1, "open_seconds": 600}},
        {"name": "busy", "vendor": "mm7", "path_prefix": "/busy",
         "upstream": str(gateway.make_url("/mm7")),
         "rate_limit": {"per_second": 4, "burst": 1, "max_wait": 1}},
        store=f"redis://127.0.0.1:{free_port()}/0",
    )  # fmt: skip
    registry = CollectorRegistry()
    app = create_app(config, registry=registry)
    proxy = await aiohttp_server(app, host="127.0.0.1")
    admin = await aiohttp_server(create_admin_app(registry, app[READINESS_KEY]), host="127.0.0.1")
    target = ScrapeTarget(f"127.0.0.1:{admin.port}", job=JOB, labels={"namespace": NAMESPACE})
    rules = {r["alert"]: r["expr"].replace("[5m]", "[1m]")
             for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}  # fmt: skip

    async def keep_sending(http: aiohttp.ClientSession, seconds: float) -> Counter[str]:
        """Send to /busy until ``seconds`` pass; a refused request is sent again at once,
        so the queue is always as full as max_wait allows."""
        codes: Counter[str] = Counter()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            async with http.post(proxy.make_url("/busy/1000"), data=SUBMIT) as resp:
                codes[(await resp.json())["code"]] += 1
            await asyncio.sleep(0.01)
        return codes

    async with (
        PrometheusServer([target], tmp_path / "prometheus") as prom,
        aiohttp.ClientSession() as http,
    ):
        await prom.wait_for(f'up{{job="{JOB}"}} == 1', lambda r: len(r) == 1)
        for path, code in (("/half/1000", "OK"), ("/none/1000", "CONNECTION_ERROR"),
                           ("/none/1000", "UPSTREAM_UNAVAILABLE")):  # fmt: skip
            async with http.post(proxy.make_url(path), data=SUBMIT) as resp:
                assert (await resp.json())["code"] == code, path
        async with asyncio.TaskGroup() as tasks:
            senders = [tasks.create_task(keep_sending(http, 12)) for _ in range(6)]
        sent = sum((s.result() for s in senders), Counter())
        assert set(sent) <= {"OK", "RATE_LIMITED"}, sent  # queued, or refused at once
        assert sent["OK"] > 0

        circuit = await prom.wait_for(rules["GatewayProxyCircuitOpen"], lambda r: len(r) == 2)
        assert {(s["metric"]["route"], s["metric"]["endpoint"]) for s in circuit} == {
            ("half", f"127.0.0.1:{dead_a}"), ("none", f"127.0.0.1:{dead_b}"),
        }  # fmt: skip
        left = await prom.query(rules["GatewayProxyAllCircuitsOpen"])
        assert values(left, "route") == {"none": 1.0}
        queueing = await prom.wait_for(
            rules["GatewayProxyRateLimitQueueing"], lambda r: len(r) == 1
        )
        assert queueing[0]["metric"]["route"] == "busy"
        store = await prom.wait_for(rules["GatewayProxyStoreUnreachable"], lambda r: len(r) == 1)
        assert (store[0]["metric"]["namespace"], store[0]["metric"]["job"]) == (NAMESPACE, JOB)
    release.set()


async def test_the_ledger_alerts_fire_on_a_real_prometheus(
    aiohttp_server: Callable[..., Awaitable[TestServer]], tmp_path: Path
) -> None:
    """Each ledger alert's condition holds for the proxy it should and no other: one whose
    ledger Redis is gone (GatewayProxyLedgerDown; its failed calls stay out of
    GatewayProxyLedgerErrors), one whose Redis answers PING but is out of memory, so every
    keyed request's ``begin`` fails (GatewayProxyLedgerErrors). Both refuse keyed requests
    with LEDGER_UNAVAILABLE without contacting the gateway. (promtool tests the ``for``
    durations; the rules' 5m windows are read over 1m here.)"""
    import redis.asyncio

    from tests.redis_server import RedisServer

    sent: list[str] = []

    async def counting(request: web.Request) -> web.Response:
        sent.append(request.path)
        reply = render_reply(
            response_kind="SubmitRsp", transaction_id="e2e-1", code="1000",
            text="Success", message_id=f"m-{len(sent)}",
        )  # fmt: skip
        return web.Response(status=reply.status, body=reply.body, content_type="text/xml")

    gateway_app = web.Application()
    gateway_app.router.add_post("/mm7", counting)
    gateway = await aiohttp_server(gateway_app, host="127.0.0.1")
    route = {"name": "mms", "vendor": "mm7", "path_prefix": "/mm7",
             "upstream": str(gateway.make_url("/mm7"))}  # fmt: skip
    rules = {r["alert"]: r["expr"].replace("[5m]", "[1m]")
             for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}  # fmt: skip
    with RedisServer(tmp_path / "redis") as full:
        client = redis.asyncio.Redis.from_url(full.url)
        await client.config_set("maxmemory-policy", "noeviction")
        await client.config_set("maxmemory", "1")  # every write is refused: OOM
        await client.aclose()
        proxies, targets = [], []
        for job, store in (("ledger-gone", f"redis://127.0.0.1:{free_port()}/0"),
                           ("ledger-full", full.url)):  # fmt: skip
            registry = CollectorRegistry()
            app = create_app(make_config(route, ledger={}, store=store), registry=registry)
            proxies.append(await aiohttp_server(app, host="127.0.0.1"))
            admin = create_admin_app(registry, app[READINESS_KEY])
            admin_server = await aiohttp_server(admin, host="127.0.0.1")
            targets.append(ScrapeTarget(f"127.0.0.1:{admin_server.port}", job=job,
                                        labels={"namespace": NAMESPACE}))  # fmt: skip
        async with (
            PrometheusServer(targets, tmp_path / "prometheus") as prom,
            aiohttp.ClientSession() as http,
        ):
            await prom.wait_for("up == 1", lambda r: len(r) == 2)
            await prom.wait_for(  # both proxies' zeros are in, before any error
                "gateway_proxy_ledger_errors_total", lambda r: len(r) >= 10
            )
            for proxy in proxies:
                for i in range(10):
                    headers = {"Idempotency-Key": f"order-{i}", "Content-Type": "text/xml"}
                    async with http.post(proxy.make_url("/mm7"), data=SUBMIT,
                                         headers=headers) as resp:  # fmt: skip
                        envelope = await resp.json()
                    assert (resp.status, envelope["code"]) == (503, "LEDGER_UNAVAILABLE")
            assert sent == [], "no keyed request reached the gateway"

            # Both proxies' failed calls are in Prometheus, the gone ledger's too: its
            # errors must stay out of GatewayProxyLedgerErrors (they are LedgerDown's).
            await prom.wait_for(
                'sum by (job) (gateway_proxy_ledger_errors_total{operation="begin"})',
                lambda r: values(r, "job") == {"ledger-gone": 10.0, "ledger-full": 10.0},
            )
            down = await prom.wait_for(rules["GatewayProxyLedgerDown"], lambda r: len(r) >= 1)
            assert [s["metric"]["job"] for s in down] == ["ledger-gone"]
            errors = await prom.wait_for(rules["GatewayProxyLedgerErrors"], lambda r: len(r) >= 1)
            assert [{k: s["metric"][k] for k in ("job", "route", "operation")} for s in errors] == [
                {"job": "ledger-full", "route": "mms", "operation": "begin"}
            ]
