"""Run a real ``prometheus`` binary for integration tests, and query it.

``PrometheusServer`` writes a temporary config that scrapes the given targets every second,
starts ``prometheus`` on a free loopback port with its own TSDB directory, waits for
``/-/ready`` and offers ``query(expr)``, ``query_range(expr, start, end, step)`` and
``label_values(label, selector)`` (the label values API, as Grafana's ``label_values()``
variables call it) over the HTTP API. ``stop()`` terminates it (kill after a grace
period). Use it as an async context manager::

    async with PrometheusServer([ScrapeTarget("127.0.0.1:9100")], tmp_path) as prom:
        series = await prom.wait_for("up == 1", lambda r: len(r) == 1)

``substitute_dashboard_vars`` turns a Grafana panel query into plain PromQL.

What can fail: ``PrometheusError`` when the binary is missing, exits before it is ready,
never becomes ready, or the API answers with an error; ``TimeoutError`` from ``wait_for``
when the condition never holds (the message carries the last result).
"""

import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiohttp

INSTALL_HINT = "run scripts/install-prometheus.sh (make test runs it)"
# rate() needs two samples in its window; with a 1 s scrape a minute holds plenty and
# still covers traffic a test sent a few seconds ago.
DEFAULT_VARS = {"__rate_interval": "1m", "__interval": "1s", "__range": "5m"}

Result = list[dict[str, Any]]


class PrometheusError(RuntimeError):
    """The Prometheus process or its HTTP API failed."""


@dataclass(frozen=True)
class ScrapeTarget:
    """One static scrape target: ``address`` is host:port; labels go on every series."""

    address: str
    job: str = "gateway-proxy"
    labels: Mapping[str, str] = field(default_factory=lambda: {"namespace": "test"})
    metrics_path: str = "/metrics"


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def require_binary(name: str) -> str:
    """The path of ``name``; fails (never skips) with the installer hint when missing."""
    path = shutil.which(name)
    if path is None:
        raise PrometheusError(f"{name} not found on PATH: {INSTALL_HINT}")
    return path


def render_config(targets: Iterable[ScrapeTarget], scrape_interval: str = "1s") -> str:
    """A prometheus.yml (JSON is YAML) scraping ``targets``, one job per job name."""
    jobs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for target in targets:
        static = {"targets": [target.address], "labels": dict(target.labels)}
        jobs.setdefault((target.job, target.metrics_path), []).append(static)
    config = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "scrape_configs": [
            {
                "job_name": job,
                "metrics_path": path,
                "scrape_interval": scrape_interval,
                "scrape_timeout": scrape_interval,
                "static_configs": statics,
            }
            for (job, path), statics in jobs.items()
        ],
    }
    return json.dumps(config, indent=2)


class PrometheusServer:
    """A ``prometheus`` process scraping ``targets``, on a free loopback port."""

    def __init__(
        self,
        targets: Iterable[ScrapeTarget],
        workdir: Path,
        *,
        scrape_interval: str = "1s",
        ready_timeout: float = 60.0,
    ) -> None:
        self.targets = list(targets)
        self.workdir = workdir
        self.scrape_interval = scrape_interval
        self.ready_timeout = ready_timeout
        self.port = 0
        self._process: asyncio.subprocess.Process | None = None
        self._session: aiohttp.ClientSession | None = None
        self._log_path = workdir / "prometheus.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 30) -> str:
        """The end of Prometheus's own log, for failure messages."""
        if not self._log_path.exists():
            return ""
        return "\n".join(self._log_path.read_text(errors="replace").splitlines()[-lines:])

    async def start(self) -> None:
        """Start and wait until ``/-/ready``; a port lost to a race is retried."""
        binary = require_binary("prometheus")
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "prometheus.yml"
        config.write_text(render_config(self.targets, self.scrape_interval))
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        for attempt in range(3):
            self.port = free_port()
            data = self.workdir / f"data-{attempt}"
            with self._log_path.open("ab") as log:
                self._process = await asyncio.create_subprocess_exec(
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={data}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--storage.tsdb.retention.time=1h",
                    "--log.level=warn",
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    env={**os.environ, "GOMAXPROCS": "2"},
                )
            if await self._wait_ready():
                return
            await self._reap()
        await self.stop()
        raise PrometheusError(f"prometheus never became ready:\n{self.log_tail()}")

    async def _wait_ready(self) -> bool:
        """True once /-/ready answers 200; False if the process exits first."""
        assert self._process is not None
        assert self._session is not None
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self._process.returncode is not None:
                return False
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                async with self._session.get(f"{self.url}/-/ready") as resp:
                    if resp.status == 200:
                        return True
            await asyncio.sleep(0.1)
        return False

    async def _reap(self) -> None:
        """Terminate the process, kill it after 10 s, and wait for it."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()

    async def stop(self) -> None:
        await self._reap()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def query(self, expr: str) -> Result:
        """Instant query; the API's ``data.result`` (a list for vector results)."""
        if self._session is None:
            raise PrometheusError("prometheus is not running")
        async with self._session.get(f"{self.url}/api/v1/query", params={"query": expr}) as r:
            body = await r.json()
        if body.get("status") != "success":
            raise PrometheusError(f"query {expr!r}: {body.get('error', body)}")
        result = body["data"]["result"]
        if body["data"]["resultType"] == "scalar":
            return [{"metric": {}, "value": result}]
        return list(result)

    async def query_range(self, expr: str, start: float, end: float, step: float) -> Result:
        """Range query (unix seconds); the API's ``data.result``: series with ``values``."""
        if self._session is None:
            raise PrometheusError("prometheus is not running")
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
        async with self._session.get(f"{self.url}/api/v1/query_range", params=params) as r:
            body = await r.json()
        if body.get("status") != "success":
            raise PrometheusError(f"query_range {expr!r}: {body.get('error', body)}")
        return list(body["data"]["result"])

    async def label_values(self, label: str, selector: str) -> list[str]:
        """The values of ``label`` on the series ``selector`` matches (``match[]``), sorted."""
        if self._session is None:
            raise PrometheusError("prometheus is not running")
        url = f"{self.url}/api/v1/label/{label}/values"
        async with self._session.get(url, params={"match[]": selector}) as r:
            body = await r.json()
        if body.get("status") != "success":
            raise PrometheusError(
                f"label values {label!r} of {selector!r}: {body.get('error', body)}"
            )
        return sorted(body["data"])

    async def wait_for(
        self,
        expr: str,
        condition: Callable[[Result], bool],
        *,
        # Not asyncio.timeout(): on expiry we want the last result and the log in the error.
        timeout: float = 30.0,  # noqa: ASYNC109
    ) -> Result:
        """Query ``expr`` until ``condition(result)`` holds; its last result on success."""
        deadline = time.monotonic() + timeout
        result: Result = []
        while True:
            result = await self.query(expr)
            if condition(result):
                return result
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"{expr!r} never satisfied the condition; last result: {result}\n"
                    f"prometheus log:\n{self.log_tail()}"
                )
            await asyncio.sleep(0.25)


def values(result: Result, label: str) -> dict[str, float]:
    """``{series[label]: value}`` for an instant vector (labels missing map to "")."""
    return {s["metric"].get(label, ""): float(s["value"][1]) for s in result}


_VAR = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\$(\w+)")


def substitute_dashboard_vars(expr: str, variables: Mapping[str, str]) -> str:
    """Replace Grafana's ``$var``, ``${var}`` and ``${var:format}`` with plain values.

    ``$__rate_interval``, ``$__interval`` and ``$__range`` default to values suited to a
    1 s scrape (DEFAULT_VARS); ``variables`` wins. Raises ``KeyError`` naming any variable
    left without a value, so a query never reaches Prometheus half-substituted.
    """
    known = {**DEFAULT_VARS, **variables}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in known:
            raise KeyError(f"dashboard variable ${name} has no value in {sorted(known)}")
        return known[name]

    return _VAR.sub(replace, expr)
