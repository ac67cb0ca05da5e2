"""``gateway-proxy demo`` (proxy/tools/demo.py): a fresh process tree, the guide's own curl calls.

The demo runs as a real subprocess (``python -m proxy demo``) on free ports. The test reads
the guide it prints, runs every curl command of the guide (translated to urllib, so no
curl is needed) and checks each answer against the "-> HTTP <status> <CODE>" line the guide
printed under it, and the round trip of step 1: the simulator's delivery report comes back
through the proxy's inbound route as the event the demo webhook prints. Then SIGTERM must
stop the whole tree cleanly.
"""

import argparse
import json
import re
import shlex
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from proxy.config import Config, load_config
from proxy.tools.demo import (
    add_demo_arguments,
    builtin_demo_config_path,
    callback_url,
    guide,
    moms_callback_url,
    run_demo,
    simulator_address,
    webhook_address,
)
from proxy.tools.demo_webhook import PREFIX
from tests.conftest import validate_envelope
from tests.demo_process import (
    DemoProcess,
    running_demo,
    wait_for_event,
    wait_for_line,
    webhook_events,
)

ROOT = Path(__file__).resolve().parent.parent
_EXPECT = re.compile(r"^\s*-> HTTP (\d{3}) ([A-Z_]+)")
EVENT_SCHEMA = json.loads((ROOT / "docs" / "event.schema.json").read_text(encoding="utf-8"))


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[DemoProcess]:
    """The demo on free ports, with the shipped config's routes (timeouts shortened)."""
    with running_demo(tmp_path, total_timeout=1, pass_sim_listen=True) as running:
        yield running


def run_curl(command: str) -> tuple[int, dict[str, Any]]:
    """Run one of the guide's curl commands with urllib; returns (status, JSON body)."""
    args = shlex.split(command)
    assert args[0] == "curl"
    headers: dict[str, str] = {}
    data: bytes | None = None
    url = ""
    it = iter(args[1:])
    for arg in it:
        if arg == "-H":
            name, _, value = next(it).partition(":")
            headers[name.strip()] = value.strip()
        elif arg in ("--data", "-d"):
            data = next(it).encode()
        elif arg.startswith("http://"):
            url = arg
        else:
            assert arg == "-s", f"the guide uses a curl option the test does not know: {arg}"
    request = urllib.request.Request(url, data=data, headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.slow
def test_demo_guide_commands_return_what_the_guide_says(demo: DemoProcess) -> None:
    assert demo.guide_done.wait(60), "\n".join(demo.lines)
    assert demo.process.poll() is None, "\n".join(demo.lines)
    text = "\n".join(demo.lines)
    assert "gateway-proxy demo" in text
    assert f"{demo.admin}/metrics" in text
    envelopes = []
    mogreet = [line.strip() for line in demo.lines if "/sim/mogreet/incoming" in line]
    for i, line in enumerate(list(demo.lines)):
        if not line.strip().startswith("curl ") or line.strip() in mogreet:
            continue
        expected = _EXPECT.match(demo.lines[i + 1])
        assert expected, f"no '-> HTTP ...' line after: {line}"
        status, envelope = run_curl(line.strip())
        validate_envelope(envelope)
        assert (status, envelope["code"]) == (int(expected.group(1)), expected.group(2))
        envelopes.append(envelope)
    # success, MM7 address error, MoMS opt-out, timeout, the first of the safe retry
    assert len(envelopes) == 5
    check_the_safe_retry(demo, envelopes[4])
    check_the_round_trip(demo, envelopes[0]["data"]["message_id"], envelopes[4])
    check_the_burst(demo)  # step 5
    assert len(mogreet) == 1  # step 6: the simulator plays Mogreet
    check_the_mogreet_step(demo, mogreet[0])
    with urllib.request.urlopen(f"{demo.admin}/metrics", timeout=10) as response:  # noqa: S310
        metrics = response.read().decode()
    for code in ("OK", "INVALID_ADDRESS", "RECIPIENT_OPTED_OUT", "TIMEOUT"):
        assert f'code="{code}"' in metrics

    demo.process.send_signal(signal.SIGTERM)
    assert demo.process.wait(timeout=30) == 0
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection(("127.0.0.1", demo.sim_port), 1),
    ):
        pass  # the simulator child is gone too


def check_the_burst(demo: DemoProcess) -> None:
    """Step 5: the same burst throttled by the relay without a rate limit, and all 200
    with one (the route's queue keeps it under the simulator's --tps)."""
    bursts = [line for line in demo.lines if line.strip().startswith("(for i in $(seq ")]
    assert len(bursts) == 2, "\n".join(demo.lines)
    statuses = []
    for line in bursts:
        count = int(re.search(r"\$\(seq (\d+)\)", line).group(1))  # type: ignore[union-attr]
        url = re.search(r"(http://\S+) -H", line).group(1)  # type: ignore[union-attr]
        body = re.search(r"--data '([^']*)'", line).group(1).encode()  # type: ignore[union-attr]

        def send(_: int, url: str = url, body: bytes = body) -> int:
            request = urllib.request.Request(url, data=body, headers={"Content-Type": "text/xml"})  # noqa: S310
            try:
                with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                    return int(response.status)
            except urllib.error.HTTPError as error:
                error.close()
                return int(error.code)

        with ThreadPoolExecutor(max_workers=count) as pool:
            statuses.append(Counter(pool.map(send, range(count))))
    unpaced, paced = statuses
    assert unpaced[429] > 0, unpaced
    assert unpaced[200] > 0, unpaced
    assert paced == Counter({200: sum(paced.values())}), paced


def check_the_safe_retry(demo: DemoProcess, first: dict[str, Any]) -> None:
    """Step 7: the same command again is the same answer (replayed: the same request and
    message ids), and the report's event names the send with the app's reference."""
    (command,) = {
        line.strip()
        for line in demo.lines
        if line.strip().startswith("curl ") and "Idempotency-Key:" in line
    }
    key = re.search(r"Idempotency-Key: (\S+)'", command).group(1)  # type: ignore[union-attr]
    status, again = run_curl(command)
    assert (status, again) == (200, first)
    message_id = first["data"]["message_id"]
    event = wait_for_event(demo, lambda e: e.get("message_id") == message_id)
    assert event["submit"]["idempotency_key"] == key
    assert event["submit"]["callback_data"] == key
    assert event["submit"]["request_id"] == first["request_id"]


def check_the_round_trip(demo: DemoProcess, message_id: str, retried: dict[str, Any]) -> None:
    """Step 1's delivery report: the event the webhook printed, as the guide says."""
    assert f"     {PREFIX} {{" in demo.lines  # the guide shows what to expect
    event = wait_for_event(demo, lambda e: e.get("message_id") == message_id)
    jsonschema.Draft202012Validator(
        EVENT_SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).validate(event)
    assert (event["event"], event["route"], event["status"], event["final"]) == (
        "delivery_report", "mm7-events", "DELIVERED", True,
    )  # fmt: skip
    assert event["recipient"] == {"type": "number", "value": "+15550001000"}
    assert event["vendor"]["mm_status"] == "Retrieved"
    # Only the accepted submits were reported (steps 2-4 failed or were MoMS; step 7 is
    # one message however often it is sent).
    reported = [e["message_id"] for e in webhook_events(list(demo.lines))]
    assert message_id in reported
    assert len(reported) == len(set(reported))
    assert set(reported) <= {message_id, retried["data"]["message_id"]}
    # The relay's own view: its log line says the proxy accepted the report.
    relay = wait_for_line(demo, lambda line: "delivery_report" in line and "attempt=1" in line)
    assert "verdict=accepted" in relay
    assert "status_code=1000" in relay


def check_the_mogreet_step(demo: DemoProcess, command: str) -> None:
    """Step 6: the simulator, as Mogreet, posts a message; the webhook prints its event."""
    args = shlex.split(command)
    assert args[:4] == ["curl", "-s", "-X", "POST"]
    assert args[4].startswith(f"http://127.0.0.1:{demo.sim_port}/sim/mogreet/incoming?")
    request = urllib.request.Request(args[4], method="POST")  # noqa: S310
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        posted = json.loads(response.read())
    assert (posted["verdict"], posted["http_status"], posted["attempts"]) == ("accepted", 200, 1)
    assert posted["posted_to"] == f"{demo.app}/inbound/moms"
    event = wait_for_event(demo, lambda e: e.get("route") == "moms-events")
    jsonschema.Draft202012Validator(
        EVENT_SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).validate(event)
    assert (event["event"], event["sender"]) == (
        "message", {"type": "number", "value": "15550001000"},
    )  # fmt: skip
    assert event["parts"][0]["text"] == "hello"


def test_demo_with_a_bad_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("listen: nowhere\nroutes: []\n")
    parser = argparse.ArgumentParser()
    add_demo_arguments(parser)
    assert run_demo(parser.parse_args(["--config", str(bad)])) == 2
    assert "listen" in capsys.readouterr().err


def parse_demo(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_demo_arguments(parser)
    return parser.parse_args(argv)


def test_the_default_config_is_the_shipped_demo_yaml() -> None:
    assert parse_demo().config is None  # resolved by run_demo, not relative to the cwd
    path = builtin_demo_config_path()
    assert path.is_file()
    assert path.read_text() == (ROOT / "config" / "demo.yaml").read_text()
    config = load_config(path)
    assert simulator_address(config, None) == ("127.0.0.1", 8090)
    assert webhook_address(config) == ("127.0.0.1", 9000)
    assert callback_url(config) == "http://127.0.0.1:8080/inbound/mm7"
    assert moms_callback_url(config) == "http://127.0.0.1:8080/inbound/moms"


def test_demo_runs_from_any_directory(tmp_path: Path) -> None:
    """Outside the repo the default config is still found (here it stops at the mismatch)."""
    result = subprocess.run(
        [sys.executable, "-m", "proxy", "demo", "--sim-listen", "127.0.0.1:1"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "--sim-listen 127.0.0.1:1: the config's upstreams point at 127.0.0.1:8090" in (
        result.stderr
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--sim-listen", "127.0.0.1:9999"), "upstreams point at 127.0.0.1:8090"),
        (("--sim-listen", "localhost:8090"), "upstreams point at 127.0.0.1:8090"),
        (("--sim-listen", "nowhere"), "--sim-listen: must be HOST:PORT, got 'nowhere'"),
    ],
)
def test_sim_listen_must_agree_with_the_upstreams(
    argv: tuple[str, ...], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_demo(parse_demo(*argv)) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "--listen:" not in err


def test_the_simulator_address_comes_from_the_upstreams(tmp_path: Path) -> None:
    data = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())
    data["routes"][0]["upstream"] = "http://127.0.0.1:7000/mm7"
    config = tmp_path / "split.yaml"
    config.write_text(yaml.safe_dump(data))
    loaded = load_config(config)
    with pytest.raises(ValueError, match="several addresses"):
        simulator_address(loaded, None)
    for route in data["routes"]:
        route["upstream"] = route["upstream"].replace(":8090/", ":7000/")
    config.write_text(yaml.safe_dump(data))
    assert simulator_address(load_config(config), None) == ("127.0.0.1", 7000)
    assert simulator_address(load_config(config), "127.0.0.1:7000") == ("127.0.0.1", 7000)


def demo_config(tmp_path: Path, **changes: Any) -> Config:
    """The shipped demo config with top-level keys replaced (None: removed)."""
    data = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path = tmp_path / "changed.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_config(path)


def inbound_route(deliver_to: str, prefix: str = "/inbound/mm7") -> dict[str, Any]:
    return {"name": f"r{len(prefix)}", "path_prefix": prefix, "vendor": "mm7",
            "deliver_to": deliver_to}  # fmt: skip


def test_without_inbound_routes_there_is_no_webhook_and_no_callback(tmp_path: Path) -> None:
    config = demo_config(tmp_path, inbound=None)
    assert (webhook_address(config), callback_url(config), moms_callback_url(config)) == (
        None, None, None,
    )  # fmt: skip
    text = guide(config)
    assert PREFIX not in text
    assert "DeliveryReportReq" not in text
    assert "/sim/mogreet/incoming" not in text
    assert "-> HTTP 200 OK" in text


def test_the_mogreet_step_needs_a_moms_inbound_route_and_goes_to_the_simulator(
    tmp_path: Path,
) -> None:
    only_mm7 = demo_config(tmp_path, inbound=[inbound_route("http://127.0.0.1:9000/hook")])
    assert moms_callback_url(only_mm7) is None
    assert "/sim/mogreet/incoming" not in guide(only_mm7)
    assert "curl -s -X POST 'http://127.0.0.1:8090/sim/mogreet/incoming?" in guide(
        demo_config(tmp_path)
    )


def test_the_webhook_address_comes_from_deliver_to(tmp_path: Path) -> None:
    config = demo_config(tmp_path, inbound=[inbound_route("http://127.0.0.1:7001/hook")])
    assert webhook_address(config) == ("127.0.0.1", 7001)
    split = demo_config(
        tmp_path,
        inbound=[
            inbound_route("http://127.0.0.1:7001/hook"),
            inbound_route("http://127.0.0.1:7002/hook", prefix="/inbound/other"),
        ],
    )
    with pytest.raises(ValueError, match="deliver to several addresses"):
        webhook_address(split)


def test_a_bad_webhook_plan_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())
    data["inbound"] = [
        inbound_route("http://127.0.0.1:7001/hook"),
        inbound_route("http://127.0.0.1:7002/hook", prefix="/inbound/other"),
    ]
    path = tmp_path / "split.yaml"
    path.write_text(yaml.safe_dump(data))
    assert run_demo(parse_demo("--config", str(path))) == 2
    assert "--no-webhook" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("listen", "url"),
    [
        ("127.0.0.1:8080", "http://127.0.0.1:8080/inbound/mm7"),
        ("0.0.0.0:8080", "http://127.0.0.1:8080/inbound/mm7"),
        ("[::]:8080", "http://[::1]:8080/inbound/mm7"),
        ("[::1]:8080", "http://[::1]:8080/inbound/mm7"),
    ],
)
def test_the_callback_url_is_the_proxy_s_inbound_prefix(
    tmp_path: Path, listen: str, url: str
) -> None:
    assert callback_url(demo_config(tmp_path, listen=listen)) == url
