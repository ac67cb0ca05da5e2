"""The shipped dashboard, alert rules and runbook are consistent with the product's metrics.

Pure checks on the files the Helm chart packages (no network, no promtool): the dashboard
is sidecar-provisionable and its panels tile the grid; every query uses only the product's
metrics (the ones a proxy with an outbound and an inbound route exposes), the dashboard
variables and ``$__rate_interval``; the retryable regex tracks the catalog; every alert
carries severity, summary, description and a runbook anchor that exists.
"""

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from proxy.codes.catalog import load_catalog
from proxy.observability.metrics import UNMATCHED_ROUTE
from proxy.server import create_app
from tests.conftest import make_config

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "helm/gateway-proxy/files/grafana-dashboard.json"
RULES = ROOT / "helm/gateway-proxy/files/prometheus-rules.yaml"
RUNBOOK = ROOT / "docs/runbook.md"
CATALOG = ROOT / "config/codes.yaml"
RUNBOOK_BASE = "https://github.com/gateway-proxy/gateway-proxy/blob/main/docs/runbook.md#"

PRODUCT_METRICS = {
    "gateway_proxy_responses_total",
    "gateway_proxy_upstream_failures_total",
    "gateway_proxy_requests_in_flight",
    "gateway_proxy_build_info",
    "gateway_proxy_rejected_requests_total",
    "gateway_proxy_inbound_events_total",
    "gateway_proxy_webhook_failures_total",
    "gateway_proxy_circuit_state",
    "gateway_proxy_endpoint_requests_total",
    "gateway_proxy_rate_limit_queue",
    "gateway_proxy_rate_limit_max_wait_seconds",
    "gateway_proxy_store_up",
    "gateway_proxy_store_errors_total",
    "gateway_proxy_idempotency_requests_total",
    "gateway_proxy_ledger_errors_total",
    "gateway_proxy_ledger_up",
    "gateway_proxy_correlated_events_total",
    *(
        f"gateway_proxy_{name}_seconds{suffix}"
        for name in (
            "request_duration",
            "upstream_duration",
            "overhead",
            "webhook_duration",
            "rate_limit_wait",
        )
        for suffix in ("_bucket", "_sum", "_count")
    ),
}
SELECTOR = ('namespace=~"$namespace"', 'job=~"$job"', 'route=~"$route"')
# Metrics of the whole process, without a route label: a route filter would hide them.
PROCESS_METRICS = {"gateway_proxy_ledger_up"}
PROMQL_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
    "and", "or", "unless", "offset", "inf", "nan",
}  # fmt: skip

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_SELECTORS = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)?(\{[^{}]*\})")
_RANGE = re.compile(r"\[([^\]]*)\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_NUMBER = re.compile(r"(?<![A-Za-z0-9_:])\d[\w.]*")  # 0.99, 5m, 1e3: not names
_CODE_REGEX = re.compile(r'code(=~|!~)"([^"]*)"')
_NAME_MATCHER = re.compile(r'__name__\s*=~?\s*"([^"]*)"')


def metric_names(expr: str) -> set[str]:
    """Metric names an expression selects: identifiers that are not functions or keywords,
    and the alternatives of ``__name__="..."`` or ``__name__=~"a|b"`` matchers."""
    names = {name for m in _NAME_MATCHER.finditer(expr) for name in m.group(1).split("|")}
    stripped = _STRING.sub('""', expr)
    for pattern in (_MATCHERS, _RANGE, _GROUPING, _NUMBER):
        stripped = pattern.sub(" ", stripped)
    for match in _IDENT.finditer(stripped):
        rest = stripped[match.end() :].lstrip()
        if rest.startswith("(") or match.group().lower() in PROMQL_KEYWORDS:
            continue
        names.add(match.group())
    return names


def _catalog() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(CATALOG.read_text())
    return data


def retryable_codes() -> set[str]:
    return {name for name, c in _catalog()["canonical"].items() if c["retryable"]}


def codes_in_category(category: str) -> set[str]:
    return {name for name, c in _catalog()["canonical"].items() if c["category"] == category}


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def _panels() -> list[dict[str, Any]]:
    panels: list[dict[str, Any]] = []
    for panel in _dashboard()["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))  # collapsed rows nest their panels
    return [p for p in panels if p["type"] != "row"]


def _targets() -> list[Any]:
    return [
        pytest.param(p["title"], t, id=f"{p['title']}-{t['refId']}")
        for p in _panels()
        for t in p["targets"]
    ]


def _alerts() -> list[dict[str, Any]]:
    data = yaml.safe_load(RULES.read_text())
    return [r for g in data["groups"] for r in g["rules"] if "alert" in r]


def _github_anchors(markdown: str) -> set[str]:
    """Anchors GitHub generates for the headings of a Markdown file."""
    anchors = set()
    for line in markdown.splitlines():
        if m := re.match(r"#{1,6}\s+(.*)", line):
            slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            anchors.add(slug)
    return anchors


# --- the helper itself ------------------------------------------------------------------


def test_metric_names_skips_functions_labels_and_keywords() -> None:
    """Only selected metric names come out, whatever wraps them."""
    expr = (
        'histogram_quantile(0.9, sum by (le, route) (rate(a_bucket{x="y{z}"}[5m])))'
        " / on (route) group_left b unless c offset 5m"
    )
    assert metric_names(expr) == {"a_bucket", "b", "c"}
    assert metric_names('{__name__=~"a|b_total", route!="x"} or {__name__="c"}') == {
        "a", "b_total", "c",
    }  # fmt: skip


def test_product_metrics_are_what_the_proxy_exposes(tmp_path: Path) -> None:
    """The names the dashboard and rules may use exist: a rename fails here, not in Grafana."""
    registry = CollectorRegistry()
    config = make_config(
        {"name": "mms", "path_prefix": "/mm7", "upstreams": ["http://127.0.0.1:9/mm7",
         "http://127.0.0.1:10/mm7"], "circuit_breaker": {}, "rate_limit": {"per_second": 5}},
        inbound=[{"name": "mm7-events", "path_prefix": "/inbound/mm7",
                  "deliver_to": "http://127.0.0.1:9/events"}],
        store="redis://127.0.0.1:9/0",
        ledger={"path": str(tmp_path / "ledger.sqlite3")},
    )  # fmt: skip
    create_app(config, registry=registry)
    exposed = {s.name for family in registry.collect() for s in family.samples}
    assert exposed >= PRODUCT_METRICS, PRODUCT_METRICS - exposed


# --- dashboard --------------------------------------------------------------------------


def test_dashboard_is_sidecar_provisionable() -> None:
    """No __inputs or ${DS_...} placeholders: the sidecar loads the file as it is."""
    text = DASHBOARD.read_text()
    dashboard = _dashboard()
    assert "__inputs" not in dashboard
    assert "${DS_" not in text
    assert dashboard["uid"] == "gateway-proxy"
    assert dashboard["schemaVersion"] >= 36
    assert dashboard.get("id") is None  # an id would clash across Grafana instances


def test_panels_have_unique_ids_and_tile_the_grid_without_overlap() -> None:
    """Rows included: Grafana keys panels by id, and overlapping gridPos get pushed about."""
    panels = _dashboard()["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells: dict[tuple[int, int], str] = {}
    for panel in panels:
        pos = panel["gridPos"]
        assert min(pos["x"], pos["y"]) >= 0, panel["title"]
        assert min(pos["w"], pos["h"]) > 0, panel["title"]
        assert pos["x"] + pos["w"] <= 24, f"{panel['title']} is wider than the grid"
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[x, y]}"
                cells[x, y] = panel["title"]


def test_dashboard_variables() -> None:
    """datasource, then namespace, job and route from label_values, each chained to the last."""
    variables = {v["name"]: v for v in _dashboard()["templating"]["list"]}
    assert set(variables) >= {"datasource", "namespace", "job", "route"}
    datasource = variables["datasource"]
    assert (datasource["type"], datasource["query"]) == ("datasource", "prometheus")
    needs = {"namespace": (), "job": ("$namespace",), "route": ("$namespace", "$job")}
    for name, upstream_vars in needs.items():
        variable = variables[name]
        query = variable["query"]
        query = query["query"] if isinstance(query, dict) else query
        assert variable["type"] == "query"
        assert variable["datasource"]["uid"] == "${datasource}"
        match = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", query)
        assert match, f"{name}: {query}"
        assert match.group(2) == name
        assert metric_names(match.group(1)) <= PRODUCT_METRICS
        for var in upstream_vars:
            assert var in match.group(1), f"{name} should narrow by {var}"


def test_every_panel_has_unit_description_and_the_datasource_variable() -> None:
    panels = _panels()
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        assert panel.get("description", "").strip(), panel["title"]
        assert panel["fieldConfig"]["defaults"].get("unit"), panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]


def test_the_issue_panels_are_all_there() -> None:
    titles = " | ".join(p["title"].lower() for p in _panels())
    for wanted in (
        "request rate by canonical code",
        "error ratio by vendor",
        "top vendor codes",
        "retryable vs non-retryable",
        "upstream latency p50 / p95 / p99",
        "proxy-added latency",
        "in-flight",
        "upstream failures by reason",
        "auth failures",
        "inbound events by delivery status",
        "webhook failures by reason",
        "webhook latency p50 / p95 / p99",
        "circuit state by endpoint",
        "requests per endpoint",
        "rate-limit queue depth",
        "rate-limit wait p50 / p95 / p99",
        "keyed requests by result",
        "ledger errors by operation",
        "ledger up",
        "reports matched to their send",
    ):
        assert wanted in titles


@pytest.mark.parametrize(("title", "target"), _targets())
def test_target_queries_use_rate_interval_the_selector_and_product_metrics(
    title: str, target: dict[str, Any]
) -> None:
    """Every range is $__rate_interval, every selector is filtered by the variables."""
    expr = target["expr"]
    ranges = _RANGE.findall(_STRING.sub('""', expr))
    if re.search(r"\b(rate|irate|increase|delta)\(", expr):
        assert ranges
    assert all(r == "$__rate_interval" for r in ranges), expr
    selectors = _SELECTORS.findall(expr)
    assert selectors, expr
    for metric, selector in selectors:
        wanted = SELECTOR[:2] if metric in PROCESS_METRICS else SELECTOR
        for matcher in wanted:
            assert matcher in selector, f"{title}: {selector}"
        if metric in PROCESS_METRICS:
            assert "route" not in selector, f"{title}: {metric} has no route label"
    names = metric_names(expr)
    assert names, expr
    assert names <= PRODUCT_METRICS, names - PRODUCT_METRICS


def test_retryable_regex_tracks_the_catalog() -> None:
    """The retryable panel's code regex is exactly the catalog's retryable codes."""
    panel = next(p for p in _panels() if "retryable" in p["title"].lower())
    regexes = [m for t in panel["targets"] for m in _CODE_REGEX.findall(t["expr"])]
    assert {op for op, _ in regexes} == {"=~", "!~"}  # retryable and its complement
    for _, regex in regexes:
        assert set(regex.split("|")) == retryable_codes()


def test_auth_panel_covers_the_auth_category() -> None:
    panel = next(p for p in _panels() if "auth failures" in p["title"].lower())
    expr = panel["targets"][0]["expr"]
    assert 'category="auth"' in expr
    assert "code" in expr
    assert "route" in expr


def _panel(title: str) -> dict[str, Any]:
    return next(p for p in _panels() if p["title"].lower().startswith(title))


def test_auth_panel_is_a_rate_per_second() -> None:
    """increase() over $__rate_interval is a count whose size changes with the zoom."""
    panel = _panel("auth failures")
    (target,) = panel["targets"]
    assert re.match(r"sum by \(code, route\) \(rate\(", target["expr"]), target["expr"]
    assert "increase(" not in target["expr"]
    assert panel["fieldConfig"]["defaults"]["unit"] == "reqps"


@pytest.mark.parametrize(
    "title",
    [
        "request rate by canonical code",
        "inbound events by delivery status",
        "webhook failures",
        "keyed requests by result",
        "reports matched to their send",
    ],
)
def test_rate_panels_hide_all_zero_series(title: str) -> None:
    """Every label child exists from start-up at 0; the legend lists only the live ones."""
    (target,) = _panel(title)["targets"]
    assert target["expr"].rstrip().endswith("> 0"), target["expr"]


def test_inbound_events_panel_shows_the_event_with_its_status() -> None:
    """INDETERMINATE is a report's and a read reply's; `none` a message's and an invalid's."""
    (target,) = _panel("inbound events by delivery status")["targets"]
    assert target["expr"].startswith("sum by (event, status) (rate("), target["expr"]
    assert metric_names(target["expr"]) == {"gateway_proxy_inbound_events_total"}
    assert target["legendFormat"] == "{{event}} {{status}}"


def test_top_vendor_codes_table_drops_zero_rows_and_sorts_by_the_renamed_column() -> None:
    panel = _panel("top vendor codes")
    (target,) = panel["targets"]
    assert re.fullmatch(r"topk\(\d+, .*\) > 0\)", target["expr"], re.S), target["expr"]
    renamed = {
        new
        for t in panel["transformations"]
        if t["id"] == "organize"
        for new in t["options"]["renameByName"].values()
    }
    (sort,) = panel["options"]["sortBy"]
    assert sort["displayName"] in renamed, "sortBy must name a column the table still has"
    assert sort["desc"] is True


def test_error_ratio_leaves_out_unmatched_requests_and_never_divides_by_zero() -> None:
    """vendor="proxy" is only ROUTE_NOT_FOUND: a ratio of 100% or 0/0, never information."""
    (target,) = _panel("error ratio by vendor")["targets"]
    numerator, denominator = target["expr"].split("\n/\n")
    for part in (numerator, denominator):
        assert 'vendor!="proxy"' in part
    assert denominator.strip().startswith("(")
    assert denominator.strip().endswith("> 0)")


def test_route_picker_hides_the_unmatched_route() -> None:
    (route,) = [v for v in _dashboard()["templating"]["list"] if v["name"] == "route"]
    assert f'route!="{UNMATCHED_ROUTE}"' in route["query"]["query"]
    assert route["definition"] == route["query"]["query"]


def test_route_picker_offers_outbound_and_inbound_routes() -> None:
    """Outbound routes have responses, inbound routes events: the picker reads both."""
    (route,) = [v for v in _dashboard()["templating"]["list"] if v["name"] == "route"]
    match = re.fullmatch(r"label_values\((.*), route\)", route["query"]["query"])
    assert match, route["query"]["query"]
    assert metric_names(match.group(1)) == {
        "gateway_proxy_responses_total",
        "gateway_proxy_inbound_events_total",
    }


@pytest.mark.parametrize(
    "title", ["upstream latency", "proxy-added latency", "webhook latency", "rate-limit wait"]
)
def test_latency_panels_plot_quantiles_of_one_histogram_and_drop_nan(title: str) -> None:
    """Proxy-added latency is its own histogram: a difference of quantiles is no quantile."""
    metric = {
        "upstream latency": "gateway_proxy_upstream_duration_seconds_bucket",
        "proxy-added latency": "gateway_proxy_overhead_seconds_bucket",
        "webhook latency": "gateway_proxy_webhook_duration_seconds_bucket",
        "rate-limit wait": "gateway_proxy_rate_limit_wait_seconds_bucket",
    }[title]
    targets = _panel(title)["targets"]
    assert [t["legendFormat"] for t in targets] == ["p50", "p95", "p99"]
    for target, quantile in zip(targets, ("0.5", "0.95", "0.99"), strict=True):
        expr = target["expr"]
        assert expr.startswith(f"histogram_quantile({quantile}, sum by (le) (rate("), expr
        assert metric_names(expr) == {metric}
        assert expr.endswith(">= 0"), "no NaN line while there were no observations"


# --- alert rules ------------------------------------------------------------------------


def test_rule_file_holds_groups_only() -> None:
    """The chart embeds the file as a PrometheusRule spec: nothing but `groups:`."""
    data = yaml.safe_load(RULES.read_text())
    assert set(data) == {"groups"}


def test_the_issue_alerts_are_all_there() -> None:
    assert {a["alert"] for a in _alerts()} == {
        "GatewayProxyHighErrorRatio",
        "GatewayProxyAppErrorRatio",
        "GatewayProxyAuthFailures",
        "GatewayProxyConnectionErrors",
        "GatewayProxyGatewayUnavailable",
        "GatewayProxyUpstreamLatencyHigh",
        "GatewayProxyWebhookFailures",
        "GatewayProxyCircuitOpen",
        "GatewayProxyAllCircuitsOpen",
        "GatewayProxyRateLimitQueueing",
        "GatewayProxyStoreUnreachable",
        "GatewayProxyLedgerDown",
        "GatewayProxyLedgerErrors",
    }


@pytest.mark.parametrize("alert", _alerts(), ids=lambda a: a["alert"])
def test_alert_has_severity_summary_description_and_runbook(alert: dict[str, Any]) -> None:
    assert alert["labels"]["severity"] in {"critical", "warning", "info"}
    for key in ("summary", "description", "runbook_url"):
        assert alert["annotations"][key].strip()
    url = alert["annotations"]["runbook_url"]
    assert url.startswith(RUNBOOK_BASE)
    anchor = url.removeprefix(RUNBOOK_BASE)
    assert anchor == alert["alert"].lower()
    assert anchor in _github_anchors(RUNBOOK.read_text())
    assert metric_names(alert["expr"]) <= PRODUCT_METRICS


def test_auth_alert_regex_is_the_auth_category() -> None:
    alert = next(a for a in _alerts() if a["alert"] == "GatewayProxyAuthFailures")
    [(op, regex)] = _CODE_REGEX.findall(alert["expr"])
    assert op == "=~"
    assert set(regex.split("|")) == codes_in_category("auth")


def test_gateway_unavailable_alert_codes_are_retryable_upstream_codes() -> None:
    """RATE_LIMITED and UPSTREAM_UNAVAILABLE: names that exist, retryable, from the gateway."""
    alert = next(a for a in _alerts() if a["alert"] == "GatewayProxyGatewayUnavailable")
    [(_, regex)] = _CODE_REGEX.findall(alert["expr"])
    codes = set(regex.split("|"))
    assert codes == {"RATE_LIMITED", "UPSTREAM_UNAVAILABLE"}
    assert codes <= retryable_codes() & codes_in_category("upstream")


def _category_regex(alert_name: str) -> set[str]:
    alert = next(a for a in _alerts() if a["alert"] == alert_name)
    (regex,) = re.findall(r'category=~"([^"]*)"', alert["expr"])
    return set(regex.split("|"))


def test_error_ratio_alerts_split_the_error_categories() -> None:
    """The operator's categories page someone; the apps' own get a lower-severity alert."""
    categories = {c["category"] for c in _catalog()["canonical"].values()} - {"success"}
    operator = _category_regex("GatewayProxyHighErrorRatio")
    apps = _category_regex("GatewayProxyAppErrorRatio")
    assert operator == {"upstream", "network", "auth"}
    assert apps == categories - operator
    severity = {a["alert"]: a["labels"]["severity"] for a in _alerts()}
    assert severity["GatewayProxyAppErrorRatio"] == "info"
    assert severity["GatewayProxyHighErrorRatio"] == "warning"


@pytest.mark.parametrize(
    "name",
    [
        "GatewayProxyHighErrorRatio",
        "GatewayProxyAppErrorRatio",
        "GatewayProxyConnectionErrors",
        "GatewayProxyGatewayUnavailable",
    ],
)
def test_rate_alerts_are_shares_of_the_routes_traffic(name: str) -> None:
    """A share of the route's answers scales with traffic; 0.01/s is noise at real rates."""
    alert = next(a for a in _alerts() if a["alert"] == name)
    ratio, _, minimum = alert["expr"].partition("\nand\n")
    assert re.search(
        r"\)\s*/\s*sum by \(namespace, job, route\) \(rate\(gateway_proxy_responses_total\[5m\]\)\)",
        ratio.replace("\n", " "),
    ), ratio
    assert re.search(r"> 0\.\d+\s*$", ratio), ratio
    assert minimum.strip().endswith("> 0.1"), "and a minimum traffic on the route"


def test_an_apps_missing_key_pages_nobody() -> None:
    """The proxy's own 407/403 for an app (clients) are category client: neither the auth
    alert's codes nor the high error ratio's categories, and the dashboard shows them by
    client."""
    catalog = load_catalog()
    for name in ("PROXY_AUTHENTICATION_REQUIRED", "ROUTE_NOT_ALLOWED"):
        assert catalog[name].category == "client"
        assert name not in codes_in_category("auth")
    alerts = {a["alert"]: a["expr"] for a in _alerts()}
    [(_, regex)] = _CODE_REGEX.findall(alerts["GatewayProxyAuthFailures"])
    assert not {"PROXY_AUTHENTICATION_REQUIRED", "ROUTE_NOT_ALLOWED"} & set(regex.split("|"))
    assert 'category=~"upstream|network|auth"' in alerts["GatewayProxyHighErrorRatio"]
    (target,) = _panel("answers by client")["targets"]
    assert target["expr"].startswith("sum by (client, code) (rate(")
    assert target["expr"].rstrip().endswith("> 0")


def test_ledger_errors_panel_keeps_its_zero_line() -> None:
    """Zero failed calls is the news an operator looks for: the panel keeps its zeros."""
    (target,) = _panel("ledger errors by operation")["targets"]
    assert target["expr"].startswith("sum by (operation) (rate("), target["expr"]
    assert "> 0" not in target["expr"]
    assert metric_names(target["expr"]) == {"gateway_proxy_ledger_errors_total"}


def test_process_metrics_have_no_route_label(tmp_path: Path) -> None:
    """PROCESS_METRICS are exempt from the route filter because they carry no route."""
    registry = CollectorRegistry()
    config = make_config(
        {"name": "mms", "path_prefix": "/mm7", "upstream": "http://127.0.0.1:9/mm7"},
        ledger={"path": str(tmp_path / "ledger.sqlite3")},
    )
    create_app(config, registry=registry)
    for family in registry.collect():
        for sample in family.samples:
            if sample.name in PROCESS_METRICS:
                assert "route" not in sample.labels, sample
