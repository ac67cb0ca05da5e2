"""Start, probe, check and stop the four targets of the side-by-side bench.

``direct`` is the fake gateway itself (started once per run by ``start_lab``); ``nginx``
is a second nginx as a plain reverse proxy; ``minimal`` is ``bench.minimal_proxy``;
``gateway-proxy`` is ``gateway-proxy serve`` with everything on: metrics, the JSON
request log at info (stdout, redirected to a file), the built-in catalog. Each proxy is
started fresh, pinned to the proxy core, and timed from ``Popen`` to ready: /readyz 200
for gateway-proxy, the first good answer through it for the others.

``check_answer`` is the correctness gate run before any load: a target that answers the
four replies wrongly is not measured.
"""

import http.client
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import nginx
from bench.common import free_port
from bench.procs import rss_kib, tree_pids, wait_until
from bench.replies import MM7_SUBMIT_OK, REPLIES, Reply
from bench.results import TargetName

_HOST = "127.0.0.1"
_SETTLE_S = 0.3  # after ready, before reading the idle RSS


@dataclass(frozen=True, slots=True)
class Layout:
    """Which cores run what. ``client``: wrk, the gateway and the bench's own clients."""

    client_cpus: str
    proxy_cpus: str
    all_cpus: str
    note: str


def choose_layout(cpus: list[int]) -> Layout:
    """The first core for the client side, the next for the proxy under test."""
    if len(cpus) < 2:
        only = str(cpus[0])
        return Layout(only, only, only, "one core: client, gateway and proxy share it")
    note = f"client side (wrk, gateway, bench clients) on core {cpus[0]}, proxy on core {cpus[1]}"
    if len(cpus) > 2:
        note += f"; cores {','.join(map(str, cpus[2:]))} idle"
    return Layout(str(cpus[0]), str(cpus[1]), ",".join(map(str, cpus)), note)


@dataclass(frozen=True, slots=True)
class Target:
    """A running target. ``proc`` is None for ``direct`` (the lab owns the gateway)."""

    name: TargetName
    pid: int
    port: int
    ready_s: float
    idle_rss_kib: int
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://{_HOST}:{self.port}"


@dataclass(frozen=True, slots=True)
class Lab:
    """One run's temp dir, core layout and fake gateway."""

    root: Path
    layout: Layout
    gateway: Target


def post(port: int, reply: Reply, path: str | None = None) -> tuple[int, bytes]:
    """POST ``reply``'s request to ``port``; (status, body). Raises OSError / HTTPException."""
    conn = http.client.HTTPConnection(_HOST, port, timeout=5)
    try:
        headers = {"Content-Type": reply.request_content_type}
        conn.request("POST", path or reply.path, body=reply.request_body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@dataclass(frozen=True, slots=True)
class _Probe:
    """Ready means: a GET of ``path`` answers 200, or (no path) an MM7 submit does."""

    port: int
    path: str = ""

    def __call__(self) -> bool:
        try:
            if not self.path:
                return post(self.port, MM7_SUBMIT_OK)[0] == 200
            conn = http.client.HTTPConnection(_HOST, self.port, timeout=2)
            try:
                conn.request("GET", self.path)
                return conn.getresponse().status == 200
            finally:
                conn.close()
        except (OSError, http.client.HTTPException):
            return False


def _ready(
    name: TargetName, proc: subprocess.Popen[bytes], started: float, probe: _Probe
) -> tuple[float, int]:
    """Seconds from ``started`` until ``probe`` passes, and the tree's RSS just after."""

    def check() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode} before it was ready")
        return probe()

    wait_until(check, timeout=30)
    ready_s = time.perf_counter() - started
    time.sleep(_SETTLE_S)
    return ready_s, rss_kib(tree_pids(proc.pid))


def start_lab(root: Path, layout: Layout) -> Lab:
    """Start the fake gateway on the client core."""
    port = free_port()
    started = time.perf_counter()
    conf = nginx.gateway_conf(root / "gateway", port)
    proc = nginx.start(root / "gateway", conf, layout.client_cpus)
    return Lab(root, layout, _ready_or_stop("direct", proc, started, port, _Probe(port)))


def gateway_proxy_config(port: int, admin_port: int, gateway_port: int) -> str:
    """Routes to the fake gateway; metrics and the request log on; the built-in catalog.

    The pool is unbounded like the other targets' (nginx opens what it needs; the minimal
    proxy uses ``limit=0``): the default 100 per host would queue the 128-connection and
    5,000-request scenarios at the pool instead of measuring the proxy. For the same wave,
    ``listen_backlog`` matches the gateway's (8192; the default 1024 would overflow) and
    ``max_in_flight`` is above it (the default 1000 would shed most of it).
    """
    gateway = f"http://{_HOST}:{gateway_port}"
    return f"""\
listen: {_HOST}:{port}
admin_listen: {_HOST}:{admin_port}
log: {{level: info, format: json}}
shutdown: {{drain_seconds: 1}}
listen_backlog: 8192
max_in_flight: 10000
pool: {{limit: 100000, limit_per_host: 0, keepalive_seconds: 30}}
routes:
  - name: mms
    path_prefix: /mm7
    vendor: mm7
    upstream: {gateway}/mm7
    timeout: {{total: 60}}
  - name: moms
    path_prefix: /moms
    vendor: moms
    upstream: {gateway}/moms
    timeout: {{total: 60}}
  - name: cm
    path_prefix: /cm
    vendor: moms
    upstream: {gateway}/cm
    timeout: {{total: 60}}
    max_request_bytes: 157286400
"""


def gateway_proxy_command() -> list[str]:
    """``gateway-proxy`` from this interpreter's venv (else PATH)."""
    beside = Path(sys.executable).with_name("gateway-proxy")
    found = str(beside) if beside.exists() else shutil.which("gateway-proxy")
    if found is None:
        raise FileNotFoundError("gateway-proxy not found: run make install")
    return [found]


def workers_supported() -> bool:
    """Whether ``gateway-proxy serve`` has a ``--workers`` option."""
    done = subprocess.run(
        [*gateway_proxy_command(), "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return "--workers" in done.stdout


def start(
    lab: Lab,
    name: TargetName,
    *,
    cpus: str | None = None,
    workers: int | None = None,
    tree: Path | None = None,
    config: Callable[[str], str] | None = None,
) -> Target:
    """Start ``name`` on ``cpus`` (default: the proxy core) and wait until it is ready.

    gateway-proxy only: ``tree`` runs the ``proxy`` package of another source tree with this
    venv (``bench.ab``), ``config`` rewrites its config text.
    """
    if name == "direct":
        return lab.gateway
    cpus = cpus or lab.layout.proxy_cpus
    port = free_port()
    instance = lab.root / f"{name}-{port}"
    started = time.perf_counter()
    if name == "nginx":
        conf = nginx.reverse_proxy_conf(instance, port, lab.gateway.port)
        return _ready_or_stop(name, nginx.start(instance, conf, cpus), started, port, _Probe(port))
    instance.mkdir(parents=True)
    log = instance / "stdout.log"
    if name == "minimal":
        command = [sys.executable, "-m", "bench.minimal_proxy", "--listen", f"{_HOST}:{port}",
                   "--upstream", lab.gateway.base_url]  # fmt: skip
        probe = _Probe(port)
    else:
        admin = free_port()
        path = instance / "gateway-proxy.yaml"
        text = gateway_proxy_config(port, admin, lab.gateway.port)
        path.write_text(config(text) if config else text)
        program = [sys.executable, "-m", "proxy"] if tree else gateway_proxy_command()
        command = [*program, "serve", "--config", str(path)]
        command += ["--workers", str(workers)] if workers else []
        probe = _Probe(admin, "/readyz")
    env = {**os.environ, "PYTHONPATH": str(tree)} if tree else None
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["taskset", "-c", cpus, *command], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    return _ready_or_stop(name, proc, started, port, probe, log=log)


def _ready_or_stop(
    name: TargetName,
    proc: subprocess.Popen[bytes],
    started: float,
    port: int,
    probe: _Probe,
    *,
    log: Path | None = None,
) -> Target:
    try:
        ready_s, idle = _ready(name, proc, started, probe)
    except BaseException:
        _terminate(proc)
        raise
    return Target(name, proc.pid, port, ready_s, idle, proc, log)


def stop(target: Target) -> None:
    """Stop a target started by ``start``; ``direct`` (the gateway) stays: see ``stop_lab``."""
    if target.name != "direct" and target.proc is not None:
        _terminate(target.proc)


def stop_lab(lab: Lab) -> None:
    if lab.gateway.proc is not None:
        _terminate(lab.gateway.proc)


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def check_answer(name: TargetName, reply: Reply, status: int, body: bytes) -> str | None:
    """What is wrong with ``name``'s answer to ``reply``'s request; None when it is right.

    The gateway and nginx must pass the reply through unchanged; the minimal proxy and
    gateway-proxy must have read its vendor code and whether it is a success.
    """
    if name in ("direct", "nginx"):
        if (status, body) != (reply.status, reply.body):
            return (
                f"{name}: {reply.name}: expected the gateway's {reply.status} reply, got {status}"
            )
        return None
    try:
        answer = json.loads(body)
    except ValueError:
        return f"{name}: {reply.name}: not JSON ({status}): {body[:200]!r}"
    if name == "minimal":
        code, ok = answer.get("code"), answer.get("ok")
    else:
        code, ok = (answer.get("vendor") or {}).get("code"), answer.get("ok")
    if (code, ok) != (reply.vendor_code, reply.ok):
        expected = f"code {reply.vendor_code} ok={reply.ok}"
        return f"{name}: {reply.name}: expected {expected}, got code {code} ok={ok}"
    return None


def answers(target: Target) -> dict[str, int]:
    """Each reply's HTTP status through ``target``, after checking the answers are right.

    Raises ``RuntimeError`` listing every wrong answer.
    """
    statuses, problems = {}, []
    for reply in REPLIES:
        status, body = post(target.port, reply)
        statuses[reply.name] = status
        if (problem := check_answer(target.name, reply, status, body)) is not None:
            problems.append(problem)
    if problems:
        raise RuntimeError("wrong answers, not measured:\n  " + "\n  ".join(problems))
    return statuses
