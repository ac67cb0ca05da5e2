"""The container image, built and run for real with podman: no daemon, no registry.

The session builds the image with scripts/build-image.sh on the local Debian base
(``BASE_IMAGE=local``: mmdebstrap's bookworm with python3, scripts/image-base.sh), with
podman's layer cache, and runs it as Kubernetes would: a read-only root filesystem, a tmpfs
``/tmp``, uid 10001. The containers use the host's network (no CNI bridge needed) on free
loopback ports, with the proxy's config mounted over the image's default; the gateway is
the image's own ``gateway-proxy simulate``. The image as shipped (its default config and
HEALTHCHECK) runs in a network namespace of its own (``--network none``), where its fixed
ports cannot clash with anything.

Whether podman can run containers here is scripts/install-podman.sh's verdict (``make
test`` runs it), in .venv/podman-status: ``ok``, and every test must pass; ``unavailable:
REASON``, and they skip with that reason, unless ``GATEWAY_PROXY_IMAGE_TEST=required``
(``make image-test`` sets it); no verdict, and they fail, naming the script.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from proxy.tools.sim.mm7 import submit_request
from tests.prometheus_harness import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
STATUS = Path(sys.executable).parent.parent / "podman-status"
TAG = "localhost/gateway-proxy:test"
BASE = os.environ.get("GATEWAY_PROXY_BASE_IMAGE", "localhost/gateway-proxy-base:bookworm")
HARD_NOFILE = subprocess.run(
    ["bash", "-c", "ulimit -Hn"], capture_output=True, text=True, check=True
).stdout.strip()
# How the tests (and docs/deployment.md) run the image.
RUN = [
    "--runtime", "runc", "--read-only", "--tmpfs", "/tmp",
    "--ulimit", f"nofile={HARD_NOFILE}:{HARD_NOFILE}", "--ulimit", "nproc=4096:4096",
]  # fmt: skip
COMPILERS = ("gcc", "cc", "c++", "g++", "clang", "cpp", "ld", "as", "make", "x86_64-linux-gnu-gcc")


def podman_verdict() -> str:
    """'ok', or the reason podman cannot run containers here (skip or fail, as documented)."""
    required = os.environ.get("GATEWAY_PROXY_IMAGE_TEST") == "required"
    if not STATUS.exists() or shutil.which("podman") is None:
        pytest.fail(
            f"no podman verdict in {STATUS}: run scripts/install-podman.sh (make test does)"
        )
    verdict = STATUS.read_text().strip()
    if verdict != "ok":
        if required:
            pytest.fail(f"GATEWAY_PROXY_IMAGE_TEST=required, but {verdict}")
        pytest.skip(f"podman cannot run containers here ({verdict})")
    return verdict


def podman(
    *args: str, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        pytest.fail(f"podman {' '.join(args)}: exit {result.returncode}\n{result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="session")
def image() -> str:
    """The image, built on the local base (podman's cache makes a rebuild take seconds)."""
    podman_verdict()
    build = subprocess.run(
        ["bash", str(ROOT / "scripts" / "build-image.sh"), TAG],
        env={**os.environ, "BASE_IMAGE": "local"},
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    return TAG


@dataclass
class Containers:
    """Containers this test module started, removed (by name) at the end."""

    names: list[str] = field(default_factory=list)

    def run(self, image: str, *args: str, options: tuple[str, ...] = (), rm: bool = True) -> str:
        name = f"gp-test-{uuid.uuid4().hex[:10]}"
        self.names.append(name)
        flags = ["--rm"] if rm else []
        podman("run", "-d", "--name", name, *flags, *RUN, *options, image, *args)
        return name

    def remove_all(self) -> None:
        for name in self.names:
            podman("rm", "-f", "-t", "0", name, check=False)


def http(url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None,
         timeout: float = 30) -> tuple[int, bytes]:  # fmt: skip
    assert url.startswith("http://127.0.0.1:"), url  # loopback only
    request = urllib.request.Request(url, data=data, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_ready(admin: str, name: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if http(f"{admin}/readyz", timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    logs = podman("logs", name, check=False)
    pytest.fail(f"{name} never became ready:\n{logs.stdout[-2000:]}{logs.stderr[-2000:]}")


@dataclass(frozen=True)
class Stack:
    """A proxy from the image in front of the image's simulator (and of a dead port)."""

    app: str
    admin: str
    sim: str
    proxy: str


def start_proxy(
    containers: Containers, image: str, config: Path, sim: str, rm: bool = True
) -> Stack:
    data = yaml.safe_load(config.read_text())
    app, admin = (f"http://{data[key]}" for key in ("listen", "admin_listen"))
    name = containers.run(
        image,
        options=("--network", "host", "--user", "10001", "--no-healthcheck",
                 "-v", f"{config}:/etc/gateway-proxy/gateway-proxy.yaml:ro"),
        rm=rm,
    )  # fmt: skip
    wait_ready(admin, name)
    # Ready, and the answer came from this container (not from whatever else holds the port).
    state = json.loads(podman("inspect", name).stdout)[0]["State"]
    assert state["Running"], f"{name} exited: {podman('logs', name, check=False).stderr[-2000:]}"
    return Stack(app, admin, sim, name)


@pytest.fixture(scope="module")
def containers() -> Iterator[Containers]:
    started = Containers()
    yield started
    started.remove_all()


def write_config(directory: Path, sim: str) -> Path:
    """A proxy config on free loopback ports: the simulator's two gateways and a dead one."""
    config = directory / f"gateway-proxy-{uuid.uuid4().hex[:6]}.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "listen": f"127.0.0.1:{free_port()}",
                "admin_listen": f"127.0.0.1:{free_port()}",
                "shutdown": {"drain_seconds": 10},
                "routes": [
                    {"name": "mms", "path_prefix": "/mm7", "vendor": "mm7",
                     "upstream": f"http://{sim}/mm7"},
                    {"name": "moms", "path_prefix": "/moms", "vendor": "moms",
                     "upstream": f"http://{sim}/moms"},
                    {"name": "dead", "path_prefix": "/dead", "vendor": "mm7",
                     "upstream": f"http://127.0.0.1:{free_port()}/mm7",
                     "timeout": {"connect": 1, "total": 2}},
                ],
            }
        )
    )  # fmt: skip
    config.chmod(0o644)  # the container's uid 10001 reads it
    return config


@pytest.fixture(scope="module")
def stack(image: str, containers: Containers, tmp_path_factory: pytest.TempPathFactory) -> Stack:
    sim = f"127.0.0.1:{free_port()}"
    containers.run(image, "simulate", "--listen", sim,
                   options=("--network", "host", "--user", "10001", "--no-healthcheck"))  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        try:
            if http(f"http://{sim}/healthz", timeout=2)[0] == 200:
                break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    config = write_config(tmp_path_factory.mktemp("image"), sim)
    return start_proxy(containers, image, config, sim)


def test_it_runs_read_only_as_uid_10001_and_is_ready(stack: Stack) -> None:
    assert http(f"{stack.admin}/readyz")[0] == 200
    inspect = json.loads(podman("inspect", stack.proxy).stdout)[0]
    assert inspect["HostConfig"]["ReadonlyRootfs"] is True
    assert podman("exec", stack.proxy, "id", "-u").stdout.strip() == "10001"
    touched = podman("exec", stack.proxy, "touch", "/etc/gateway-proxy/x", check=False)
    assert touched.returncode != 0, "the root filesystem must be read-only"
    assert podman("exec", stack.proxy, "touch", "/tmp/x").returncode == 0, "/tmp is writable"


def test_a_dead_upstream_gets_an_envelope(stack: Stack) -> None:
    status, body = http(f"{stack.app}/dead", data=submit_request("+15550001000").encode())
    envelope = json.loads(body)
    assert (status, envelope["code"], envelope["retryable"]) == (502, "CONNECTION_ERROR", True)
    assert envelope["vendor"]["name"] == "proxy"


def test_requests_through_the_simulator(stack: Stack) -> None:
    """The image's own `gateway-proxy simulate` answers; the proxy classifies."""
    status, body = http(f"{stack.app}/mm7", data=submit_request("+15550001000").encode(),
                        headers={"Content-Type": "text/xml"})  # fmt: skip
    assert (status, json.loads(body)["code"]) == (200, "OK")
    query = "campaign_id=1&from=21534&message=hi&to=15550000606"
    status, body = http(f"{stack.app}/moms/transaction.send?{query}")
    assert (status, json.loads(body)["code"]) == (422, "RECIPIENT_OPTED_OUT")
    status, metrics = http(f"{stack.admin}/metrics")
    assert status == 200
    assert (
        b'gateway_proxy_responses_total{category="recipient",client="anonymous",'
        b'code="RECIPIENT_OPTED_OUT"' in metrics
    )
    assert b"_created" not in metrics


def test_podman_stop_drains_in_flight_requests_and_exits_0(
    image: str, stack: Stack, containers: Containers, tmp_path: Path
) -> None:
    """SIGTERM (the image's STOPSIGNAL): the request in flight still gets its answer."""
    config = write_config(tmp_path, stack.sim)
    proxy = start_proxy(containers, image, config, stack.sim, rm=False)
    query = "campaign_id=1&from=21534&message=hi&to=15550001234"
    slow = {"X-Sim-Fault": "drip", "X-Sim-Drip-Ms": "200"}  # about 2 s for the whole answer
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(http, f"{proxy.app}/moms/transaction.send?{query}", headers=slow)
        deadline = time.monotonic() + 10
        while (
            b'gateway_proxy_requests_in_flight{route="moms"} 1.0'
            not in http(f"{proxy.admin}/metrics")[1]
        ):
            assert time.monotonic() < deadline, "the request never got in flight"
            time.sleep(0.05)
        stopped = podman("stop", "-t", "30", proxy.proxy, timeout=60)
        status, body = answer.result(timeout=30)
    assert stopped.returncode == 0
    assert (status, json.loads(body)["code"]) == (200, "OK")
    state = json.loads(podman("inspect", proxy.proxy).stdout)[0]["State"]
    assert state["ExitCode"] == 0, state
    logs = podman("logs", proxy.proxy).stdout.splitlines()
    (shutdown,) = [json.loads(line) for line in logs if '"event":"shutdown"' in line]
    assert shutdown["signal"] == "SIGTERM"


def test_the_image_as_shipped_is_healthy(image: str, containers: Containers) -> None:
    """Default config and command, the image's own USER, and its HEALTHCHECK (python3)."""
    name = containers.run(image, options=("--network", "none", "-e", "MM7_BASIC_AUTH=dXNlcg=="))
    deadline = time.monotonic() + 30
    while podman("healthcheck", "run", name, check=False).returncode != 0:
        assert time.monotonic() < deadline, podman("logs", name, check=False).stdout[-2000:]
        time.sleep(0.5)
    assert podman("exec", name, "id", "-u").stdout.strip() == "10001"
    checked = podman("run", "--rm", *RUN, "--network", "none", "-e", "MM7_BASIC_AUTH=eA==",
                     image, "check-config", check=False)  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_image_metadata(image: str) -> None:
    """Non-root, SIGTERM, the console script; nothing of the build host's pip setup."""
    inspect = json.loads(podman("image", "inspect", image).stdout)[0]
    config = inspect["Config"]
    assert config["User"] == "10001:10001"
    assert config["StopSignal"] == "SIGTERM"
    assert config["Entrypoint"] == ["gateway-proxy"]
    assert config["Cmd"] == ["serve", "--config", "/etc/gateway-proxy/gateway-proxy.yaml"]
    assert inspect["Healthcheck"]["Test"][:2] == ["CMD", "python3"], "python3: any Debian base"
    assert not [e for e in config["Env"] if e.startswith("PIP_")], config["Env"]
    assert config["Labels"]["org.opencontainers.image.base.name"] == BASE
    history = podman("history", "--no-trunc", "--format", "{{.CreatedBy}}", image).stdout
    assert "PIP_CERT" not in history
    assert "PIP_INDEX_URL" not in history


def _shell(image: str, script: str) -> subprocess.CompletedProcess[str]:
    return podman("run", "--rm", *RUN, "--network", "none", "--entrypoint", "/bin/sh", image,
                  "-c", script, check=False)  # fmt: skip


def test_no_compiler_no_pip_cache_no_build_leftovers(image: str) -> None:
    found = _shell(image, " ".join(f"command -v {c};" for c in COMPILERS) + " true")
    assert found.stdout.strip() == "", f"compilers in the image: {found.stdout}"
    leftovers = _shell(
        image,
        "find / -xdev \\( -path '*/.cache/pip' -o -path '*/.cache/pip/*' -o -path /wheels"
        " -o -path /src -o -name 'cc1' \\) -print 2>/dev/null; true",
    )
    assert leftovers.stdout.strip() == "", leftovers.stdout


def test_the_ca_bundle_is_the_bases_not_the_build_hosts(image: str) -> None:
    """The build mounts the host's CA bundle for pip; the image keeps its own."""
    bundle = "/etc/ssl/certs/ca-certificates.crt"
    ours = _shell(image, f"sha256sum {bundle}").stdout.split()[0]
    base = podman("run", "--rm", *RUN, "--network", "none", BASE, "sha256sum", bundle).stdout
    assert ours == base.split()[0]


def test_the_wheel_carries_what_pyproject_force_includes(image: str) -> None:
    """`gateway-proxy demo` and the catalog find their files from any directory."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    targets = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"].values()
    script = "import importlib.resources as r; " + "; ".join(
        f"assert (r.files('proxy') / {Path(t).relative_to('proxy').as_posix()!r}).is_file()"
        for t in targets
    )
    done = podman("run", "--rm", *RUN, "--network", "none", "--entrypoint", "python3", image,
                  "-c", script, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    codes = podman("run", "--rm", *RUN, "--network", "none", image, "codes", "--format", "json")
    assert re.search(r'"INVALID_ADDRESS"', codes.stdout)
