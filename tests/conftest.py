"""Suite-wide fixtures and checks, none of which patches production code.

Two checks run around every test:
- every envelope that a proxy built by these fixtures sends validates against
  docs/envelope.schema.json (an ``on_response_prepare`` hook on the app under test);
- no test MSISDN or secret (tests/pii.py) reaches a log line of the test, or a metric
  label of a registry the test's fixtures created.
"""

import io
import json
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from proxy.codes.catalog import Catalog, load_catalog
from proxy.config import Config, parse_config
from proxy.observability.logs import configure_logging
from tests import pii

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((ROOT / "docs" / "envelope.schema.json").read_text())
_VALIDATOR = jsonschema.Draft202012Validator(
    SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)
_ENVELOPE_TYPES = frozenset({"application/json", "application/problem+json"})


def validate_envelope(envelope: dict[str, Any]) -> None:
    """Raise if ``envelope`` does not follow docs/envelope.schema.json."""
    _VALIDATOR.validate(envelope)


# --- no PII in logs or metric labels ----------------------------------------------------
class _Sink(io.StringIO):
    """Where every log line of the suite goes; never replaced, thread-safe."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            self.lines.append(text)
        return len(text)


LOG_SINK = _Sink()


def configure_suite_logging() -> None:
    """The suite's logging: JSON at debug level into LOG_SINK (tests may re-apply it)."""
    configure_logging("debug", "json", stream=LOG_SINK)


configure_suite_logging()


def label_values(registry: CollectorRegistry) -> Iterator[str]:
    for family in registry.collect():
        for sample in family.samples:
            yield from sample.labels.values()


class Checks:
    """What one test's fixtures created and what they saw: checked at teardown."""

    def __init__(self) -> None:
        self.registries: list[CollectorRegistry] = []
        self.bad_envelopes: list[str] = []

    def registry(self) -> CollectorRegistry:
        registry = CollectorRegistry()
        self.registries.append(registry)
        return registry

    def watch(self, app: web.Application) -> web.Application:
        """Validate every envelope ``app`` sends (gateway answers passed through are not)."""

        async def check(request: web.Request, response: web.StreamResponse) -> None:
            if (
                isinstance(response, web.Response)
                and isinstance(response.body, bytes)
                and response.content_type in _ENVELOPE_TYPES
                and "X-Gateway-Code" not in response.headers
            ):
                try:
                    validate_envelope(json.loads(response.body))
                except (ValueError, jsonschema.ValidationError) as exc:
                    self.bad_envelopes.append(f"{request.method} {request.path_qs}: {exc}")

        app.on_response_prepare.append(check)
        return app


@pytest.fixture(autouse=True)
def checks() -> Iterator[Checks]:
    """No PII in this test's log lines or registries; every envelope it got is valid."""
    start = len(LOG_SINK.lines)
    checks = Checks()
    yield checks
    assert not checks.bad_envelopes, f"invalid envelopes: {checks.bad_envelopes}"
    logged = "".join(LOG_SINK.lines[start:])
    assert not pii.leaks(logged), f"PII leaked into logs: {pii.leaks(logged)}"
    for line in logged.splitlines():
        event = json.loads(line)
        assert not pii.phone_shaped(event), f"unmasked number in a log line: {line}"
    labels = [v for r in checks.registries for v in label_values(r)]
    assert not pii.leaks(" ".join(labels)), f"PII in metric labels: {pii.leaks(' '.join(labels))}"
    assert not pii.phone_shaped(labels), f"number-shaped metric label: {pii.phone_shaped(labels)}"


@pytest.fixture
def registry(checks: Checks) -> CollectorRegistry:
    """A fresh registry whose labels the leak check inspects."""
    return checks.registry()


@pytest.fixture
def log_lines() -> Callable[[], list[dict[str, Any]]]:
    """The JSON log events written since the test started."""
    start = len(LOG_SINK.lines)

    def read() -> list[dict[str, Any]]:
        text = "".join(LOG_SINK.lines[start:])
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    return read


# --- shared builders ------------------------------------------------------------------
@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog()


def make_config(*routes: dict[str, Any], **top: Any) -> Config:
    """A validated Config from route dicts (upstream required) and top-level overrides."""
    data: dict[str, Any] = {
        "listen": "127.0.0.1:0",
        "admin_listen": "127.0.0.1:0",
        "routes": [{"name": f"r{i}", "vendor": "mm7", **r} for i, r in enumerate(routes)],
        **top,
    }
    return parse_config(data, source="<test>", env=TEST_ENV)


#: The environment ``make_config`` expands ``${VAR}`` from: the suite's secrets (pii.py).
TEST_ENV = {
    "TEST_SECRET": pii.SECRETS[0],
    "CHECKOUT_KEY": pii.CHECKOUT_KEY,
    "REPORTS_KEY": pii.REPORTS_KEY,
    "MOMS_CLIENT_ID": pii.MOMS_CLIENT_ID,
    "MOMS_TOKEN": pii.MOMS_TOKEN,
    "RELAY_USER": pii.RELAY_USER,
    "RELAY_PASSWORD": pii.RELAY_PASSWORD,
    "SIGNING_SECRET": pii.SIGNING_SECRET,
}


ProxyFactory = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


def ProxyTestServer(app: web.Application) -> TestServer:
    """aiohttp's TestServer on the proxy's own runner (the guarded connection handler)."""
    from proxy.aio.testing import GuardedTestServer
    from proxy.server import runner

    return GuardedTestServer(app, runner)


@pytest.fixture
async def gateway(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> Callable[[web.Application], Awaitable[TestServer]]:
    """Start a fake gateway app on loopback; returns its TestServer."""

    async def start(app: web.Application) -> TestServer:
        return await aiohttp_server(app)

    return start


@pytest.fixture
def proxy_client(aiohttp_client: Any, checks: Checks) -> ProxyFactory:
    """Build the proxy for ``config`` with a fresh, checked registry; return a test client."""
    from proxy.server import create_app

    async def make(config: Config, **kwargs: Any) -> TestClient[web.Request, web.Application]:
        if "registry" not in kwargs:
            kwargs["registry"] = checks.registry()
        else:
            checks.registries.append(kwargs["registry"])
        app = checks.watch(create_app(config, **kwargs))
        return await aiohttp_client(ProxyTestServer(app))  # type: ignore[no-any-return]

    return make


@pytest.fixture
async def one_route_proxy(
    gateway: Callable[[web.Application], Awaitable[TestServer]], proxy_client: ProxyFactory
) -> Callable[..., Awaitable[TestClient[web.Request, web.Application]]]:
    """Start ``handler`` as a fake gateway and a proxy with one route in front of it."""

    async def make(
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
        *,
        vendor: str = "mm7",
        prefix: str = "/gw",
        upstream_path: str = "/api",
        top: dict[str, Any] | None = None,
        **route: Any,
    ) -> TestClient[web.Request, web.Application]:
        async def call(request: web.Request) -> web.StreamResponse:
            return await handler(request)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", call)
        server = await gateway(app)
        config = make_config(
            {
                "name": "gw",
                "vendor": vendor,
                "path_prefix": prefix,
                "upstream": str(server.make_url(upstream_path)),
                **route,
            },
            **(top or {}),
        )
        return await proxy_client(config)

    return make
