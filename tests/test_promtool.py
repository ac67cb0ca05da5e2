"""promtool accepts the shipped alert rules, and they fire on outages, not on normal traffic.

Runs the real ``promtool`` (Debian's prometheus package). A missing promtool fails the
test: scripts/install-prometheus.sh installs it, and ``make test`` runs that script.

Besides the hand-written threshold tests (tests/promtool/prometheus-rules.test.yaml), this
module generates promtool input from the project's own realistic traffic mix: the
scenarios of ``make demo-traffic`` (bench/traffic.py) at their default rate, through the
simulator with config/sim-mix.yaml. Each scenario's outcome is the one docs/simulator.md
says the simulator picks (a fault header, else a recipient ending in a vendor code, else a
draw from the mix); each vendor code's canonical code comes from config/codes.yaml, and
each fault's from the simulator guide's fault table. Then, with ``ALERTS``:

- an hour of the mix never makes any alert even pending;
- a gateway that stops accepting connections, one that answers 503, and one that slows
  down each fire exactly the alerts an operator needs, on that route only.
"""

import shutil
import subprocess
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench.traffic import SCENARIOS

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "helm/gateway-proxy/files/prometheus-rules.yaml"
RULE_TESTS = ROOT / "tests/promtool/prometheus-rules.test.yaml"
CATALOG = yaml.safe_load((ROOT / "config/codes.yaml").read_text())
SIM_MIX = yaml.safe_load((ROOT / "config/sim-mix.yaml").read_text())

pytestmark = pytest.mark.integration

RATE = 10.0  # req/s: bench.traffic's default --rate
ROUTES = {"mm7": "mms", "moms": "moms"}  # the demo config's route per vendor
# The chart's default timeouts (helm/gateway-proxy/values.yaml): a timeout counts as
# exactly timeout.total in the upstream histogram, whose buckets include both.
TIMEOUT_TOTAL, TIMEOUT_CONNECT = 30.0, 5.0
BUCKETS = sorted({0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0,
                  TIMEOUT_TOTAL, TIMEOUT_CONNECT})  # fmt: skip
MINUTES = 60
OUTAGE_AT = 20  # minute


@dataclass(frozen=True)
class Answer:
    """One kind of answer on a route: its labels, its failure reason, the gateway's time."""

    code: str
    vendor_code: str = "none"
    reason: str | None = None
    seconds: float | None = 0.03  # None: the gateway never had the request

    @property
    def category(self) -> str:
        return str(CATALOG["canonical"][self.code]["category"])


# docs/simulator.md, "Transport faults": what the proxy reports for each.
FAULTS = {
    "refuse": Answer("CONNECTION_LOST", reason="connection_lost"),
    "hang": Answer("TIMEOUT", reason="timeout", seconds=TIMEOUT_TOTAL),
    "drip": Answer("OK", seconds=2.0),
    "reset": Answer("CONNECTION_LOST", reason="connection_lost"),
    "oversize": Answer("INVALID_UPSTREAM_RESPONSE", reason="too_large"),
    "html502": Answer("UPSTREAM_UNAVAILABLE"),
    "empty": Answer("INVALID_UPSTREAM_RESPONSE", reason="unparseable"),
    "malformed": Answer("INVALID_UPSTREAM_RESPONSE", reason="unparseable"),
}


def _by_code(vendor: str, code: str) -> Answer:
    return Answer(CATALOG["vendors"][vendor]["codes"][code]["canonical"], vendor_code=code)


def _mix(vendor: str) -> Iterator[tuple[Answer, float]]:
    """The simulator's weighted draw for ``vendor``: (answer, share)."""
    entries = SIM_MIX[vendor]
    total = sum(e["weight"] for e in entries)
    for entry in entries:
        answer = FAULTS[entry["fault"]] if "fault" in entry else _by_code(vendor, entry["code"])
        yield answer, entry["weight"] / total


def realistic_mix() -> dict[str, dict[Answer, float]]:
    """route -> answer -> requests per second, for bench.traffic at RATE."""
    total = sum(s.weight for s in SCENARIOS)
    rates: dict[str, dict[Answer, float]] = defaultdict(lambda: defaultdict(float))
    for scenario in SCENARIOS:
        rate = RATE * scenario.weight / total
        route = rates[ROUTES[scenario.vendor]]
        codes = CATALOG["vendors"][scenario.vendor]["codes"]
        by_recipient = str(int(scenario.recipient[-4:]))
        if "X-Sim-Fault" in scenario.headers:
            route[FAULTS[scenario.headers["X-Sim-Fault"]]] += rate
        elif by_recipient in codes:
            route[_by_code(scenario.vendor, by_recipient)] += rate
        else:
            for answer, share in _mix(scenario.vendor):
                route[answer] += rate * share
    return {name: dict(answers) for name, answers in rates.items()}


def _share(mix: dict[str, dict[Answer, float]], route: str, categories: set[str]) -> float:
    answers = mix[route]
    return sum(r for a, r in answers.items() if a.category in categories) / sum(answers.values())


def test_the_realistic_mix_is_the_one_the_rules_were_tuned_for() -> None:
    """About 30% errors, as the rule file's header says (it quotes these shares)."""
    mix = realistic_mix()
    everything = sum(sum(answers.values()) for answers in mix.values())
    assert everything == pytest.approx(RATE)
    failed = sum(
        r for answers in mix.values() for a, r in answers.items() if a.category != "success"
    )
    assert 0.25 < failed / everything < 0.35
    for route in ROUTES.values():
        assert _share(mix, route, {"upstream", "network", "auth"}) < 0.2 / 1.5
        assert _share(mix, route, {"client", "recipient", "content"}) < 0.5 / 1.5


# --- promtool input -----------------------------------------------------------------------


def _counter(per_minute: list[float]) -> str:
    """promtool's expanding notation for a counter that grows by per_minute[i] in minute i."""
    values, total = ["0"], 0.0
    for step in per_minute:
        total += step
        values.append(f"{total:g}")
    return " ".join(values)


def _series(name: str, labels: dict[str, str], per_minute: list[float]) -> dict[str, str]:
    text = ", ".join(f'{k}="{v}"' for k, v in {"namespace": "prod", "job": "gp", **labels}.items())
    return {"series": f"{name}{{{text}}}", "values": _counter(per_minute)}


def input_series(minutes: list[dict[str, dict[Answer, float]]]) -> list[dict[str, str]]:
    """Counters and upstream histogram buckets for a per-minute list of route mixes."""
    out: list[dict[str, str]] = []
    for vendor, route in ROUTES.items():
        answers = sorted({a for m in minutes for a in m[route]}, key=repr)
        base = {"route": route, "vendor": vendor}

        def per_minute(pick: Any) -> list[float]:
            return [60 * sum(r for a, r in m[route].items() if pick(a)) for m in minutes]  # noqa: B023

        for key in sorted({(a.code, a.category, a.vendor_code) for a in answers}):
            code, category, vendor_code = key
            labels = {**base, "code": code, "category": category, "vendor_code": vendor_code}
            pick = lambda a, key=key: (a.code, a.category, a.vendor_code) == key  # noqa: E731
            out.append(_series("gateway_proxy_responses_total", labels, per_minute(pick)))
        for reason in ("connect", "timeout", "connection_lost", "too_large", "unparseable"):
            out.append(_series("gateway_proxy_upstream_failures_total", {**base, "reason": reason},
                               per_minute(lambda a, r=reason: a.reason == r)))  # fmt: skip
        for le in [*BUCKETS, float("inf")]:
            label = "+Inf" if le == float("inf") else repr(le)
            pick = lambda a, le=le: a.seconds is not None and a.seconds <= le  # noqa: E731
            out.append(_series("gateway_proxy_upstream_duration_seconds_bucket",
                               {**base, "le": label}, per_minute(pick)))  # fmt: skip
    return out


def _with_outage(route: str, answer: Answer) -> list[dict[str, dict[Answer, float]]]:
    """The mix for MINUTES, where from OUTAGE_AT on every request on ``route`` gets ``answer``."""
    normal = realistic_mix()
    broken = {**normal, route: {answer: sum(normal[route].values())}}
    return [normal if minute < OUTAGE_AT else broken for minute in range(MINUTES)]


FIRING = 'count by (alertname, route, severity) (ALERTS{alertstate="firing"})'
# (scenario, per-minute mixes, alerts firing 20 minutes into the outage)
SCENARIO_TESTS: list[tuple[str, list[dict[str, dict[Answer, float]]], set[tuple[str, str]]]] = [
    (
        "mms-refuses-connections",
        _with_outage("mms", Answer("CONNECTION_ERROR", reason="connect", seconds=None)),
        {("GatewayProxyConnectionErrors", "critical"), ("GatewayProxyHighErrorRatio", "warning")},
    ),
    (
        "mms-answers-503",
        _with_outage("mms", Answer("UPSTREAM_UNAVAILABLE")),
        {("GatewayProxyGatewayUnavailable", "warning"), ("GatewayProxyHighErrorRatio", "warning")},
    ),
    (
        "mms-takes-8s",
        _with_outage("mms", Answer("OK", vendor_code="1000", seconds=8.0)),
        {("GatewayProxyUpstreamLatencyHigh", "warning")},
    ),
]


def _samples(alerts: set[tuple[str, str]], route: str) -> list[dict[str, Any]]:
    return [
        {"labels": f'{{alertname="{name}", route="{route}", severity="{severity}"}}', "value": 1}
        for name, severity in sorted(alerts)
    ]


def generated_tests() -> dict[str, Any]:
    quiet = [realistic_mix()] * MINUTES
    tests: list[dict[str, Any]] = [
        {
            "name": "realistic-mix",
            "interval": "1m",
            "input_series": input_series(quiet),
            # Not even pending, at any time of the hour.
            "promql_expr_test": [
                {"expr": "ALERTS", "eval_time": f"{minute}m", "exp_samples": []}
                for minute in range(5, MINUTES, 5)
            ],
        }
    ]
    for name, minutes, alerts in SCENARIO_TESTS:
        tests.append(
            {
                "name": name,
                "interval": "1m",
                "input_series": input_series(minutes),
                "promql_expr_test": [
                    # Just before the outage: nothing; 20 minutes into it: these, on mms only.
                    {"expr": "ALERTS", "eval_time": f"{OUTAGE_AT}m", "exp_samples": []},
                    {
                        "expr": FIRING,
                        "eval_time": f"{OUTAGE_AT + 20}m",
                        "exp_samples": _samples(alerts, "mms"),
                    },
                ],
            }
        )
    return {"rule_files": [str(RULES)], "evaluation_interval": "1m", "tests": tests}


# --- the tests ------------------------------------------------------------------------------


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool not found on PATH: run scripts/install-prometheus.sh (make test runs it)"
        )
    return subprocess.run(
        [path, *args], capture_output=True, text=True, timeout=120, check=False, cwd=ROOT
    )


def test_promtool_check_rules() -> None:
    """The rule file parses, every expression is valid PromQL, every template renders."""
    alerts = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    done = promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(alerts)} rules found" in done.stdout


def test_promtool_test_rules() -> None:
    """Each alert fires on its trigger series and stays quiet just under its threshold."""
    done = promtool("test", "rules", str(RULE_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_realistic_mix_fires_nothing_and_outages_fire_the_right_alerts(tmp_path: Path) -> None:
    path = tmp_path / "realistic-mix.test.yaml"
    path.write_text(yaml.safe_dump(generated_tests(), sort_keys=False, width=200))
    done = promtool("test", "rules", str(path))
    assert done.returncode == 0, f"{path}:\n{done.stdout}{done.stderr}"
    assert "SUCCESS" in done.stdout
