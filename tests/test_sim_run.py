"""Process lifecycle, in-process: ``run_simulator`` and ``run_demo`` until a signal arrives.

Both functions install signal handlers, which only the main thread may do, so they run in
the test's own thread while a helper thread waits for them to answer and then sends the
test process the signal. Their handlers turn it into a clean stop.
"""

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from proxy import demo
from proxy.config import Config
from proxy.sim import SimSettings, run_simulator

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


def test_run_simulator_with_a_bad_mix_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mix = tmp_path / "mix.yaml"
    mix.write_text("moms:\n  - {code: '12345'}\n")
    with pytest.raises(SystemExit) as info:
        run_simulator(SimSettings(mix_path=mix))
    assert info.value.code == 2
    assert "moms[0].code" in capsys.readouterr().err


def demo_args(tmp_path: Path, *, listen_port: int | None = None) -> tuple[argparse.Namespace, str]:
    app_port = listen_port or free_port()
    admin_port, sim_port = free_port(), free_port()
    data = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())
    data["listen"] = f"127.0.0.1:{app_port}"
    data["admin_listen"] = f"127.0.0.1:{admin_port}"
    for route in data["routes"]:
        route["upstream"] = route["upstream"].replace(":8090/", f":{sim_port}/")
    config = tmp_path / "demo.yaml"
    config.write_text(yaml.safe_dump(data))
    parser = argparse.ArgumentParser()
    demo.add_demo_arguments(parser)
    ns = parser.parse_args(["--config", str(config), "--sim-listen", f"127.0.0.1:{sim_port}"])
    return ns, f"http://127.0.0.1:{admin_port}/healthz"


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
def test_run_demo_fails_when_a_child_cannot_start(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        ns, _ = demo_args(tmp_path, listen_port=busy.getsockname()[1])
        assert demo.run_demo(ns) == 1


def test_stop_kills_a_child_that_ignores_sigterm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "STOP_GRACE_SECONDS", 0.5)
    code = "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert child.stdout is not None
    assert child.stdout.readline() == b"ready\n"
    demo._stop([child])
    assert child.returncode == -signal.SIGKILL
    child.stdout.close()
