"""Process lifecycle, in-process: ``run_simulator`` and ``run_demo`` until a signal arrives.

Both functions install signal handlers, which only the main thread may do, so they run in
the test's own thread while a helper thread waits for them to answer and then sends the
test process the signal. Their handlers turn it into a clean stop.
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from proxy.config import Config
from proxy.tools import demo, demo_webhook
from proxy.tools.sim import SimSettings, run_simulator

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - loopback
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture
def signal_when() -> Iterator[Callable[[Callable[[], bool]], None]]:
    """Start a helper thread that sends SIGINT to this process once ``ready()`` is true."""
    threads: list[threading.Thread] = []

    def start(ready: Callable[[], bool]) -> None:
        def run() -> None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if ready():
                    os.kill(os.getpid(), signal.SIGINT)
                    return
                time.sleep(0.1)

        thread = threading.Thread(target=run, name="signal-when", daemon=True)
        thread.start()
        threads.append(thread)

    yield start
    for thread in threads:
        thread.join(timeout=60)


Signaller = Callable[[Callable[[], bool]], None]


def test_run_simulator_serves_until_sigint(signal_when: Signaller) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/healthz"
    served: list[bool] = []

    def up() -> bool:
        served.append(answers(url))
        return served[-1]

    signal_when(up)
    run_simulator(SimSettings(port=port))  # returns once SIGINT arrives
    assert served[-1] is True
    assert not answers(url)


def test_the_demo_webhook_serves_until_sigint(
    signal_when: Signaller, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    signal_when(lambda: answers(f"http://127.0.0.1:{port}/healthz"))
    demo_webhook.main(["--listen", f"127.0.0.1:{port}"])  # returns once SIGINT arrives
    assert capsys.readouterr().out.startswith(f"demo webhook on http://127.0.0.1:{port} ")
    assert not answers(f"http://127.0.0.1:{port}/healthz")


def test_run_simulator_with_a_bad_mix_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mix = tmp_path / "mix.yaml"
    mix.write_text("moms:\n  - {code: '12345'}\n")
    with pytest.raises(SystemExit) as info:
        run_simulator(SimSettings(mix_path=mix))
    assert info.value.code == 2
    assert "moms[0].code" in capsys.readouterr().err


def demo_args(
    tmp_path: Path,
    *,
    listen_port: int | None = None,
    no_sim: bool = False,
    extra: tuple[str, ...] = (),
) -> tuple[argparse.Namespace, str]:
    app_port = listen_port or free_port()
    admin_port, sim_port, webhook_port = free_port(), free_port(), free_port()
    data = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())
    data["listen"] = f"127.0.0.1:{app_port}"
    data["admin_listen"] = f"127.0.0.1:{admin_port}"
    for route in data["routes"]:
        route["upstream"] = route["upstream"].replace(":8090/", f":{sim_port}/")
    for route in data.get("inbound", []):
        route["deliver_to"] = route["deliver_to"].replace(":9000/", f":{webhook_port}/")
    config = tmp_path / "demo.yaml"
    config.write_text(yaml.safe_dump(data))
    parser = argparse.ArgumentParser()
    demo.add_demo_arguments(parser)
    argv = ["--config", str(config), "--sim-listen", f"127.0.0.1:{sim_port}", *extra]
    ns = parser.parse_args([*argv, "--no-sim"] if no_sim else argv)
    return ns, f"http://127.0.0.1:{admin_port}/healthz"


def command(args: list[str]) -> str:
    """``simulate``, ``serve`` or ``proxy.tools.demo_webhook``: what a ``python -m`` child runs."""
    return args[1] if args[0] == "proxy" else args[0]


@pytest.fixture
def spawned(monkeypatch: pytest.MonkeyPatch) -> list[tuple[list[str], subprocess.Popen[bytes]]]:
    """Every child the demo starts: (its ``python -m`` arguments, the process)."""
    children: list[tuple[list[str], subprocess.Popen[bytes]]] = []
    real_spawn = demo._spawn

    def spawn(args: list[str]) -> subprocess.Popen[bytes]:
        child = real_spawn(args)
        children.append((list(args), child))
        return child

    monkeypatch.setattr(demo, "_spawn", spawn)
    return children


@pytest.fixture
def guided(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Set once both children answer and the demo prints its guide."""
    event = threading.Event()
    real_guide = demo.guide

    def guide(config: Config) -> str:
        event.set()
        return real_guide(config)

    monkeypatch.setattr(demo, "guide", guide)
    return event


@pytest.mark.slow
def test_run_demo_exits_1_when_a_child_dies(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    guided: threading.Event,
    spawned: list[tuple[list[str], subprocess.Popen[bytes]]],
) -> None:
    ns, admin = demo_args(tmp_path)

    def kill_the_simulator() -> None:
        assert guided.wait(60)
        [sim] = [child for args, child in spawned if command(args) == "simulate"]
        sim.kill()

    killer = threading.Thread(target=kill_the_simulator, name="kill-sim", daemon=True)
    killer.start()
    assert demo.run_demo(ns) == 1
    killer.join(timeout=10)
    assert "a child process exited" in capsys.readouterr().err
    assert all(child.poll() is not None for _, child in spawned)  # the others were stopped too
    assert not answers(admin)
    assert [command(args) for args, _ in spawned] == [
        "proxy.tools.demo_webhook",
        "simulate",
        "serve",
    ]
    [sim_args] = [args for args, _ in spawned if command(args) == "simulate"]
    app = yaml.safe_load(ns.config.read_text())["listen"]
    assert sim_args[-4:] == [
        "--callback-url", f"http://{app}/inbound/mm7", "--tps", str(demo.DEMO_TPS),
    ]  # fmt: skip


@pytest.mark.slow
def test_run_demo_no_sim_uses_a_running_simulator(
    tmp_path: Path,
    guided: threading.Event,
    signal_when: Signaller,
    spawned: list[tuple[list[str], subprocess.Popen[bytes]]],
) -> None:
    ns, admin = demo_args(tmp_path, no_sim=True)
    config = yaml.safe_load(ns.config.read_text())
    sim_port = int(config["routes"][0]["upstream"].split(":")[2].split("/")[0])
    app = f"http://{config['listen']}"
    sim = subprocess.Popen(
        [sys.executable, "-m", "proxy", "simulate", "--listen", f"127.0.0.1:{sim_port}"],
        stdout=subprocess.DEVNULL,
    )
    answered: list[str] = []

    def through_the_proxy() -> bool:
        if not guided.is_set() or not answers(f"http://127.0.0.1:{sim_port}/healthz"):
            return False
        url = f"{app}/moms/transaction.send?campaign_id=1&from=1&message=hi&to=15550000606"
        try:
            urllib.request.urlopen(url, timeout=10)  # noqa: S310 - loopback
        except urllib.error.HTTPError as exc:  # 422: the opt-out, answered by `sim`
            answered.append(json.loads(exc.read())["code"])
        return True

    try:
        signal_when(through_the_proxy)
        assert demo.run_demo(ns) == 0
        # No simulator of its own (the webhook still runs: the config has inbound routes).
        assert [command(args) for args, _ in spawned] == ["proxy.tools.demo_webhook", "serve"]
        assert answered == ["RECIPIENT_OPTED_OUT"]
        assert sim.poll() is None  # the demo leaves a simulator it did not start alone
        assert not answers(admin)
    finally:
        sim.terminate()
        sim.wait(timeout=30)


@pytest.mark.slow
def test_run_demo_prints_the_guide_and_stops_cleanly_on_sigint(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    signal_when: Signaller,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ns, admin = demo_args(tmp_path)
    guided = threading.Event()
    real_guide = demo.guide

    def guide(config: Config) -> str:
        guided.set()  # both children answer: the demo is about to print and wait
        return real_guide(config)

    monkeypatch.setattr(demo, "guide", guide)
    signal_when(guided.is_set)
    assert demo.run_demo(ns) == 0
    out = capsys.readouterr().out
    assert "gateway-proxy demo" in out
    assert "X-Sim-Fault: hang" in out
    assert not answers(admin)  # both children are gone


@pytest.mark.slow
def test_run_demo_no_webhook_leaves_the_events_to_yours(
    tmp_path: Path,
    guided: threading.Event,
    signal_when: Signaller,
    spawned: list[tuple[list[str], subprocess.Popen[bytes]]],
) -> None:
    ns, admin = demo_args(tmp_path, extra=("--no-webhook",))
    signal_when(guided.is_set)
    assert demo.run_demo(ns) == 0
    assert [command(args) for args, _ in spawned] == ["simulate", "serve"]
    assert not answers(admin)


@pytest.mark.slow
def test_run_demo_fails_when_a_child_cannot_start(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        ns, _ = demo_args(tmp_path, listen_port=busy.getsockname()[1])
        assert demo.run_demo(ns) == 1


def test_stop_kills_a_child_that_ignores_sigterm() -> None:
    code = "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert child.stdout is not None
    assert child.stdout.readline() == b"ready\n"
    demo._stop([child], grace=0.5)
    assert child.returncode == -signal.SIGKILL
    child.stdout.close()


def test_busy_ports_are_one_line_for_simulate_and_demo(tmp_path: Path) -> None:
    """simulate and demo: one precise line and exit 1; the demo checks before its guide."""
    from tests.demo_process import DEMO_CONFIG

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        sim = subprocess.run(
            [sys.executable, "-m", "proxy", "simulate", "--listen", f"127.0.0.1:{port}"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        data = yaml.safe_load(DEMO_CONFIG.read_text(encoding="utf-8"))
        data["admin_listen"] = f"127.0.0.1:{port}"  # taken, as by a first demo
        config = tmp_path / "demo.yaml"
        config.write_text(yaml.safe_dump(data), encoding="utf-8")
        demo = subprocess.run(
            [sys.executable, "-m", "proxy", "demo", "--config", str(config)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert sim.returncode == 1
    assert sim.stderr == (
        f"gateway-proxy simulate: cannot listen on 127.0.0.1:{port}: address already in use\n"
    )
    assert demo.returncode == 1
    assert demo.stderr == (
        f"gateway-proxy demo: cannot listen on 127.0.0.1:{port}: address already in use\n"
    )
    assert "curl" not in demo.stdout  # no guide for ports it does not own
