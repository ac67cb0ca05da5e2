"""bench.profile's reading of py-spy output, and bench.imports' per-package sums (pure)."""

import pytest

from bench import imports, profile

RAW = [
    "run (asyncio/events.py:80);handle (main/proxy/server/handle.py:150);"
    "exchange (main/proxy/upstream/exchange.py:170);_send (main/proxy/upstream/connection.py:230) 30\n",
    "run (asyncio/events.py:80);handle (main/proxy/server/handle.py:150);"
    "_finish (main/proxy/server/handle.py:300);log_request (main/proxy/observability/record.py:50) 20\n",
    "run (asyncio/events.py:80);handle (main/proxy/server/handle.py:150) 10\n",
    "run (asyncio/events.py:80);_handle_request (aiohttp/web_protocol.py:500) 40\n",
    "not a stack line\n",
    "\n",
]


def test_frames_are_function_and_a_short_path() -> None:
    frame = "exchange (/work/main/proxy/upstream/exchange.py:170)"
    assert profile.frame_key(frame) == ("exchange", "proxy/upstream/exchange.py")
    site = "feed_data (/x/.venv/lib/python3.11/site-packages/aiohttp/streams.py:12)"
    assert profile.frame_key(site) == ("feed_data", "aiohttp/streams.py")
    assert profile.frame_key("<native>") == ("<native>", "")


def test_self_is_the_leaf_and_inclusive_counts_each_stack_once() -> None:
    rows, total = profile.parse_raw(RAW)
    assert total == 100
    by_name = {r.function: r for r in rows}
    assert rows[0].function == "_handle_request"  # most self samples first
    assert (by_name["_send"].self_samples, by_name["_send"].inclusive_samples) == (30, 30)
    assert (by_name["handle"].self_samples, by_name["handle"].inclusive_samples) == (10, 60)
    assert by_name["run"].inclusive_samples == 100
    assert by_name["run"].self_samples == 0


def test_a_recursive_function_is_counted_once_per_stack() -> None:
    rows, total = profile.parse_raw(["f (a.py:1);f (a.py:2);f (a.py:3) 7\n"])
    assert total == 7
    assert [(r.self_samples, r.inclusive_samples) for r in rows] == [(7, 7)]


def test_stage_shares_follow_the_pipeline() -> None:
    rows, total = profile.parse_raw(RAW)
    shares = profile.stage_shares(rows, total)
    assert shares["gateway-proxy's handler"] == pytest.approx(0.6)
    assert shares["upstream exchange (send, wait, read)"] == pytest.approx(0.3)
    assert shares["  the log line"] == pytest.approx(0.2)
    assert shares["aiohttp's connection handler (all of a request)"] == pytest.approx(0.4)
    assert shares["classification"] == 0.0


def test_render_turns_shares_into_microseconds_per_request() -> None:
    rows, total = profile.parse_raw(RAW)
    text = profile.render(rows, total, 200.0, 3, profile.stage_shares(rows, total))
    assert "40.0%    80.0   40.0%  _handle_request (aiohttp/web_protocol.py)" in text
    assert "60.0%   120.0  gateway-proxy's handler" in text


def test_import_costs_add_up_per_package_with_proxy_modules_apart() -> None:
    own = {"aiohttp": 100, "aiohttp.web": 50, "proxy": 1, "proxy.server": 20, "ssl": 300}
    assert imports.by_package(own) == {"ssl": 300, "aiohttp": 150, "proxy.server": 20, "proxy": 1}


def test_the_import_probe_measures_a_real_interpreter() -> None:
    figures = imports.measure()
    packages = figures["packages_kib"]
    assert isinstance(packages, dict)
    assert {"aiohttp", "lxml", "proxy.server"} <= set(packages)
    assert "proxy.tools.sim" not in packages  # serve does not load the simulator
    assert isinstance(figures["imports_kib"], int)
    assert figures["imports_kib"] > 0


def test_stages_match_class_qualified_names_as_py_spy_writes_them() -> None:
    raw = ["run (a.py:1);RequestHandler._handle_request (aiohttp/web_protocol.py:9) 5\n",
           "run (a.py:1);Metrics.observe (main/proxy/observability/metrics.py:9) 5\n"]  # fmt: skip
    rows, total = profile.parse_raw(raw)
    shares = profile.stage_shares(rows, total)
    assert shares["aiohttp's connection handler (all of a request)"] == pytest.approx(0.5)
    assert shares["  the metrics"] == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("where", "group"),
    [
        ("aiohttp/web_protocol.py", "aiohttp server (request, response, writer)"),
        ("aiohttp/http_writer.py", "aiohttp server (request, response, writer)"),
        ("aiohttp/client_reqrep.py", "aiohttp client (session, request, connector)"),
        ("aiohttp/connector.py", "aiohttp client (session, request, connector)"),
        ("aiohttp/streams.py", "aiohttp streams"),
        ("proxy/forward.py", "proxy/forward.py"),
        ("bench/minimal_proxy.py", "bench/minimal_proxy.py"),
        ("asyncio/runners.py", "asyncio"),
        ("", "(unknown)"),
    ],
)
def test_module_groups(where: str, group: str) -> None:
    assert profile.module_group(where) == group


def test_side_by_side_adds_self_time_per_module_for_each_target() -> None:
    rows, total = profile.parse_raw(RAW)
    gp = profile.by_module(rows, total, 100.0)
    assert gp == {
        "aiohttp server (request, response, writer)": 40.0,
        "proxy/upstream/connection.py": 30.0,
        "proxy/observability/record.py": 20.0,
        "proxy/server/handle.py": 10.0,
    }
    text = profile.render_side_by_side({"gateway-proxy": gp, "minimal": {"asyncio": 50.0}}, 10)
    lines = text.splitlines()
    assert lines[1].split() == ["0.0", "50.0", "asyncio"]  # the biggest in either goes first
    server = next(line for line in lines if line.endswith("(request, response, writer)"))
    assert server.split()[:2] == ["40.0", "0.0"]
    assert lines[-1].split() == ["100.0", "50.0", "total"]


def test_render_leaves_out_the_stage_table_when_there_are_no_stages() -> None:
    rows, total = profile.parse_raw(RAW)
    assert "stage" not in profile.render(rows, total, 100.0, 3, {})
