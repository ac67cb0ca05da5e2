"""The README's quickstart is real: its curl commands, run against a live demo, return its JSON.

The demo (``python -m proxy demo``, proxy/tools/demo.py) runs as a subprocess with the shipped
``config/demo.yaml`` moved to free ports (timeouts unchanged, so the timeout call takes the
config's own ``timeout.total``). Each ``sh`` block of the README's Quickstart is run with the
real ``curl`` when there is one (else an urllib translation), and its answer must equal the
``json`` block under it once the values that differ on every run are masked. The guide the
demo prints must offer exactly the README's commands, and docs/simulator.md's metric lines
must be what ``/metrics`` then shows.
"""

import json
import re
import shlex
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from proxy.tools.sim.mm7 import submit_request
from tests.demo_process import DEMO_CONFIG, DemoProcess, running_demo
from tests.test_sim_demo import run_curl

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SIMULATOR_DOC = ROOT / "docs" / "simulator.md"
README_APP = "http://127.0.0.1:8080"
_PAIR = re.compile(r"```sh\n(?P<sh>.*?)```\n```json\n(?P<json>.*?)```", re.DOTALL)
#: Different on every run: generated request ids, and the simulator's unseeded message ids.
_RANDOM = {("request_id",), ("instance",), ("data", "message_id")}

pytestmark = pytest.mark.slow


def quickstart() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("\n## Quickstart\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def readme_calls() -> list[tuple[str, dict[str, Any]]]:
    """(curl command, the JSON shown under it) for every step of the quickstart."""
    calls = []
    for match in _PAIR.finditer(quickstart()):
        commands = [line for line in match["sh"].splitlines() if line.startswith("curl ")]
        assert len(commands) == 1, f"one curl command per step: {match['sh']}"
        calls.append((commands[0], json.loads(match["json"])))
    return calls


def masked(envelope: dict[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(envelope))
    for path in _RANDOM:
        node = out
        for key in path[:-1]:
            node = node.get(key) or {}
        if path[-1] in node:
            assert node[path[-1]], f"{path} is set but empty"
            node[path[-1]] = "<masked>"
    return dict(out)


@pytest.fixture
def live_demo(tmp_path: Path) -> Iterator[DemoProcess]:
    """``python -m proxy demo`` on free ports, once its guide is printed."""
    # No --sim-listen: the demo puts the simulator where the upstreams point.
    with running_demo(tmp_path) as demo:
        assert demo.guide_done.wait(60), "\n".join(demo.lines)
        assert demo.process.poll() is None, "\n".join(demo.lines)
        yield demo


def run_with_curl(command: str) -> dict[str, Any]:
    result = subprocess.run(
        shlex.split(command), capture_output=True, timeout=60, check=True
    )  # fmt: skip
    return dict(json.loads(result.stdout))


def run_with_urllib(command: str) -> dict[str, Any]:
    """The quickstart's curl options (-s, -H, --data), through the demo test's translation."""
    return run_curl(command)[1]


def run(command: str) -> dict[str, Any]:
    return run_with_curl(command) if shutil.which("curl") else run_with_urllib(command)


def test_the_quickstart_has_the_four_guide_calls() -> None:
    calls = readme_calls()
    assert [envelope["code"] for _, envelope in calls] == [
        "OK", "INVALID_ADDRESS", "RECIPIENT_OPTED_OUT", "TIMEOUT",
    ]  # fmt: skip
    assert all(README_APP in command for command, _ in calls)
    # Step 1 and 2 post exactly the body the demo's guide prints.
    assert f"--data '{submit_request('+15550001000')}'" in calls[0][0]
    assert f"--data '{submit_request('+15550002002')}'" in calls[1][0]


def test_the_timeout_the_quickstart_names_is_the_demo_config_s() -> None:
    stated = re.search(r"after its (\d+(?:\.\d+)?) s `?timeout\.total", quickstart())
    assert stated, "the quickstart's timeout step names the route's timeout.total"
    routes = yaml.safe_load(DEMO_CONFIG.read_text(encoding="utf-8"))["routes"]
    [moms] = [route for route in routes if route["path_prefix"] == "/moms"]
    assert float(stated.group(1)) == float(moms["timeout"]["total"])


def test_the_quickstart_commands_return_the_readme_json(live_demo: DemoProcess) -> None:
    """Each README call answers the README's JSON; then docs/simulator.md's metrics hold."""
    guide = {line.strip() for line in live_demo.lines if line.strip().startswith("curl ")}
    for command, shown in readme_calls():
        live = command.replace(README_APP, live_demo.app)
        assert live in guide, f"the demo's guide does not print:\n{live}"
        got = run(live)
        # The demo runs on free ports: the simulator the README names is on 8090.
        if got["vendor"]["endpoint"] == f"127.0.0.1:{live_demo.sim_port}":
            got["vendor"]["endpoint"] = "127.0.0.1:8090"
        assert masked(got) == masked(shown), command
    check_simulator_guide_metrics(live_demo)


def check_simulator_guide_metrics(live_demo: DemoProcess) -> None:
    """docs/simulator.md: after the quickstart calls and three more, /metrics shows these."""
    doc = SIMULATOR_DOC.read_text(encoding="utf-8")
    block = re.search(r"they\s+read[^\n]*:\n\n```text\n(.*?)```", doc, re.DOTALL)
    assert block, "docs/simulator.md shows the demo's metric lines"
    expected = block.group(1).strip().splitlines()
    app = live_demo.app
    moms = f"{app}/moms/transaction.send?campaign_id=1&from=21534&message=hi&to=15550001234"
    extra = [
        urllib.request.Request(  # noqa: S310
            f"{app}/mm7", data=submit_request("+15550001000").encode(),
            headers={"Content-Type": "text/xml", "X-Sim-Code": "4006"},
        ),
        urllib.request.Request(moms, headers={"X-Sim-Fault": "html502"}),  # noqa: S310
        urllib.request.Request(moms, headers={"X-Sim-Fault": "refuse"}),  # noqa: S310
    ]  # fmt: skip
    for request in extra:
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(request, timeout=30)  # noqa: S310
        error.value.close()
    with urllib.request.urlopen(f"{live_demo.admin}/metrics", timeout=10) as response:  # noqa: S310
        metrics = response.read().decode().splitlines()
    # Label children for every catalog code are pre-created at 0: keep the counted ones.
    responses = [
        line
        for line in metrics
        if line.startswith("gateway_proxy_responses_total{") and not line.endswith(" 0.0")
    ]
    assert sorted(responses) == sorted(expected)
