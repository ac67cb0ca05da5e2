"""The Helm chart, checked with the real helm binary (scripts/install-helm.sh puts it in .venv/bin).

`helm lint --strict` runs on the default values and each example values file. `helm template`
renders standalone and sidecar setups (and the example app chart that includes the sidecar);
every rendered manifest is validated against the Kubernetes JSON schemas of
`kubernetes-validate` (strict: unknown fields fail). The Prometheus Operator objects
(ServiceMonitor, PodMonitor, PrometheusRule) are CRDs outside those schemas, so they get a
structural check instead, against the Service, the pods and the shipped rules file.
The install commands in the README and docs/deployment.md are rendered too, and the Secret
and ConfigMap their pods reference are checked against the `kubectl create` commands that
come before them.
"""

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

import proxy

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "helm" / "gateway-proxy"
EXAMPLES = ROOT / "helm" / "examples"
BIN = Path(sys.executable).parent
KUBE_VERSIONS = ("1.33", kubernetes_validate.latest_version())
CRD_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
EXAMPLE_VALUES = sorted(p.name for p in EXAMPLES.glob("values-*.yaml"))
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

Doc = dict[str, Any]
# scenario -> (which chart, extra helm args); "app" is helm/examples/app-with-sidecar.
SCENARIOS: dict[str, tuple[str, list[str]]] = {
    "default": ("chart", []),
    "standalone": ("chart", ["-f", str(EXAMPLES / "values-standalone.yaml")]),
    "monitoring": ("chart", ["-f", str(EXAMPLES / "values-monitoring.yaml")]),
    "sidecar": ("chart", ["-f", str(EXAMPLES / "values-sidecar.yaml")]),
    "sidecar-legacy": (
        "chart",
        ["-f", str(EXAMPLES / "values-sidecar.yaml"), "--set", "sidecar.native=false"],
    ),
    "app": ("app", []),
    "app-legacy": ("app", ["--set", "gateway-proxy.sidecar.native=false"]),
}
WITH_PODS = ["default", "standalone", "monitoring", "app", "app-legacy"]


class Helm:
    """Runs the real helm with its own config/cache dirs; caches renders per scenario."""

    def __init__(self, home: Path) -> None:
        if not (BIN / "helm").exists():
            pytest.fail(f"{BIN / 'helm'} is missing: run scripts/install-helm.sh (make tools)")
        self.env = {**os.environ, "KUBECONFIG": str(home / "kubeconfig")}
        for var in ("HELM_CONFIG_HOME", "HELM_CACHE_HOME", "HELM_DATA_HOME"):
            self.env[var] = str(home / var.lower())
        # The example app chart with gateway-proxy unpacked in charts/ (what
        # `helm dependency build` would do), in a scratch copy so the tree stays clean.
        self.app = home / "example-app"
        shutil.copytree(EXAMPLES / "app-with-sidecar", self.app)
        shutil.copytree(CHART, self.app / "charts" / "gateway-proxy")
        self._renders: dict[str, list[Doc]] = {}

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "helm"), *args],
            capture_output=True,
            text=True,
            env=self.env,
            check=False,
            timeout=120,
        )

    def template(self, *args: str, chart: Path = CHART, release: str = "gp") -> list[Doc]:
        result = self.run("template", release, str(chart), "--kube-version", "1.33.0", *args)
        assert result.returncode == 0, result.stderr
        return [d for d in yaml.safe_load_all(result.stdout) if d]

    def notes(self, *args: str, release: str = "gp", namespace: str = "shop") -> str:
        """The NOTES that `helm install` prints (a client-side dry run: no cluster needed)."""
        result = self.run(
            "install", release, str(CHART), "-n", namespace, "--dry-run=client", *args
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.split("NOTES:", 1)[1]

    def render(self, scenario: str) -> list[Doc]:
        if scenario not in self._renders:
            chart, args = SCENARIOS[scenario]
            if chart == "app":
                self._renders[scenario] = self.template(*args, chart=self.app, release="shop")
            else:
                self._renders[scenario] = self.template(*args)
        return self._renders[scenario]


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(tmp_path_factory.mktemp("helm"))


def _of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def _one(docs: list[Doc], kind: str) -> Doc:
    (doc,) = _of_kind(docs, kind)
    return doc


def _pods(docs: list[Doc]) -> list[tuple[Doc, Doc]]:
    """(pod spec, proxy container) for each Deployment that runs the proxy; never empty."""
    found = []
    for deployment in _of_kind(docs, "Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        for container in spec["containers"] + spec.get("initContainers", []):
            if container["name"] == "gateway-proxy":
                found.append((spec, container))
    assert found, "no Deployment runs the gateway-proxy container"
    return found


def _proxy_config(docs: list[Doc]) -> tuple[str, Doc]:
    configmaps = [d for d in _of_kind(docs, "ConfigMap") if "gateway-proxy.yaml" in d["data"]]
    (configmap,) = configmaps
    text = configmap["data"]["gateway-proxy.yaml"]
    return text, yaml.safe_load(text)


def _values(name: str) -> Doc:
    data = yaml.safe_load((EXAMPLES / name).read_text())
    assert isinstance(data, dict)
    return data


def test_chart_versions_match_the_package() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["appVersion"] == proxy.__version__
    app = yaml.safe_load((EXAMPLES / "app-with-sidecar" / "Chart.yaml").read_text())
    (dependency,) = app["dependencies"]
    assert (dependency["name"], dependency["version"]) == ("gateway-proxy", chart["version"])


@pytest.mark.parametrize("values", [None, *EXAMPLE_VALUES])
def test_helm_lint_strict(helm: Helm, values: str | None) -> None:
    args = ["-f", str(EXAMPLES / values)] if values else []
    result = helm.run("lint", "--strict", str(CHART), *args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


def test_helm_lint_strict_example_app(helm: Helm) -> None:
    result = helm.run("lint", "--strict", str(helm.app))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_every_manifest_validates(helm: Helm, scenario: str, version: str) -> None:
    docs = helm.render(scenario)
    assert _of_kind(docs, "ConfigMap"), "every mode renders the proxy's ConfigMap"
    for doc in docs:
        if doc["kind"] in CRD_KINDS:
            continue  # not in the Kubernetes schemas: test_monitoring_objects checks them
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(map(str, exc.path))
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {path}: {exc.message}")


def test_standalone_renders_a_workload_behind_a_service(helm: Helm) -> None:
    docs = helm.render("standalone")
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler"} <= kinds
    deployment, service = _one(docs, "Deployment"), _one(docs, "Service")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    for selector in (
        service["spec"]["selector"],
        _one(docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
    ):
        assert selector.items() <= pod_labels.items()
    hpa = _one(docs, "HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert _one(docs, "PodDisruptionBudget")["spec"]["minAvailable"] == 2
    ports = {p["name"]: p["targetPort"] for p in service["spec"]["ports"]}
    assert ports == {"http": "proxy-http", "admin": "proxy-admin"}
    assert _proxy_config(docs)[1]["listen"] == "0.0.0.0:8080"


@pytest.mark.parametrize("scenario", ["sidecar", "sidecar-legacy"])
def test_sidecar_mode_renders_no_workload(helm: Helm, scenario: str) -> None:
    kinds = {d["kind"] for d in helm.render(scenario)}
    assert kinds == {"ConfigMap", "PodMonitor"}
    # Loopback only: no other pod can use the app's credentials through its sidecar.
    assert _proxy_config(helm.render(scenario))[1]["listen"] == "127.0.0.1:8080"


def test_example_app_runs_the_proxy_as_a_native_sidecar(helm: Helm) -> None:
    ((spec, container),) = _pods(helm.render("app"))
    assert container in spec["initContainers"]
    assert container["restartPolicy"] == "Always"
    assert [c["name"] for c in spec["containers"]] == ["app"]
    app_env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
    assert app_env["MM7_ENDPOINT"] == "http://localhost:8080/mm7"
    # The app port listens on loopback only, so it is not declared as a container port.
    assert [p["name"] for p in container["ports"]] == ["proxy-admin"]


def test_fallback_for_old_clusters_is_a_regular_container(helm: Helm) -> None:
    docs = helm.render("app-legacy")
    ((spec, container),) = _pods(docs)
    assert "initContainers" not in spec
    # First: the kubelet starts containers in order and waits for each postStart hook.
    assert spec["containers"][0] == container
    assert "restartPolicy" not in container
    command = container["lifecycle"]["postStart"]["exec"]["command"]
    assert command[:2] == ["python", "-c"]
    assert "http://127.0.0.1:8081/readyz" in command[2]
    annotations = _one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["kubectl.kubernetes.io/default-container"] == "app"
    native = _pods(helm.render("app"))[0][1]
    assert "postStart" not in native["lifecycle"], "a native sidecar is ordered by Kubernetes"


class _Readyz(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/readyz" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def readyz() -> Iterator[ThreadingHTTPServer]:
    """A fake admin port on loopback; set `.RequestHandlerClass.status` for /readyz."""
    handler = type("Readyz", (_Readyz,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="fake-readyz", daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.mark.parametrize(("status", "released"), [(200, True), (503, False)])
def test_fallback_post_start_waits_for_readyz(
    helm: Helm, readyz: ThreadingHTTPServer, status: int, released: bool
) -> None:
    """The hook returns once /readyz answers 2xx, and fails after the startup budget if not."""
    readyz.RequestHandlerClass.status = status  # type: ignore[attr-defined]
    port = readyz.server_address[1]
    docs = helm.template(
        "--set", f"gateway-proxy.sidecar.native=false,gateway-proxy.ports.admin={port}",
        "--set", "gateway-proxy.probes.startup.periodSeconds=1",
        "--set", "gateway-proxy.probes.startup.failureThreshold=1",
        chart=helm.app, release="shop",
    )  # fmt: skip
    ((_, container),) = _pods(docs)
    _, flag, script = container["lifecycle"]["postStart"]["exec"]["command"]
    result = subprocess.run(
        [sys.executable, flag, script], capture_output=True, text=True, check=False, timeout=60
    )
    assert (result.returncode == 0) is released, result.stderr
    if not released:
        assert "/readyz not ready after 1s" in result.stderr


def test_example_app_uses_the_sidecar_example_values() -> None:
    app_values = yaml.safe_load((EXAMPLES / "app-with-sidecar" / "values.yaml").read_text())
    assert app_values["gateway-proxy"] == _values("values-sidecar.yaml")


@pytest.mark.parametrize("scenario", WITH_PODS)
def test_restricted_security_context(helm: Helm, scenario: str) -> None:
    dockerfile_user = re.search(r"^USER (\d+)", (ROOT / "Dockerfile").read_text(), re.M)
    assert dockerfile_user
    for spec, container in _pods(helm.render(scenario)):
        sc = container["securityContext"]
        assert sc["runAsNonRoot"] is True
        assert sc["runAsUser"] == int(dockerfile_user[1])
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
        assert sc["readOnlyRootFilesystem"] is True
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]], "the only writable path is an emptyDir"
        assert all(m.get("readOnly") for m in container["volumeMounts"] if m["mountPath"] != "/tmp")
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["automountServiceAccountToken"] is False


@pytest.mark.parametrize("scenario", WITH_PODS)
def test_probes_resources_and_ports(helm: Helm, scenario: str) -> None:
    docs = helm.render(scenario)
    admin_port = int(_proxy_config(docs)[1]["admin_listen"].rpartition(":")[2])
    for _, container in _pods(docs):
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports["proxy-admin"] == admin_port
        probes = {
            key: (container[key]["httpGet"]["path"], container[key]["httpGet"]["port"])
            for key in ("startupProbe", "readinessProbe", "livenessProbe")
        }
        assert probes == {
            "startupProbe": ("/healthz", "proxy-admin"),
            "readinessProbe": ("/readyz", "proxy-admin"),
            "livenessProbe": ("/healthz", "proxy-admin"),
        }
        for part in ("requests", "limits"):
            assert {"cpu", "memory"} <= container["resources"][part].keys()


@pytest.mark.parametrize("scenario", WITH_PODS)
def test_config_file_is_named_once(helm: Helm, scenario: str) -> None:
    """`--config` names the mounted ConfigMap key; no GATEWAY_PROXY_CONFIG says it twice."""
    for _, container in _pods(helm.render(scenario)):
        (mount,) = [m for m in container["volumeMounts"] if m["name"] == "gateway-proxy-config"]
        assert container["args"] == [
            "serve",
            "--config",
            f"{mount['mountPath']}/gateway-proxy.yaml",
        ]
        names = {e["name"] for e in container.get("env", [])}
        assert "GATEWAY_PROXY_CONFIG" not in names


@pytest.mark.parametrize("scenario", WITH_PODS)
def test_grace_period_covers_prestop_and_drain(helm: Helm, scenario: str) -> None:
    docs = helm.render(scenario)
    drain = _proxy_config(docs)[1]["shutdown"]["drain_seconds"]
    for spec, container in _pods(docs):
        command = container["lifecycle"]["preStop"]["exec"]["command"]
        assert command[0] == "sleep"
        assert spec["terminationGracePeriodSeconds"] > int(command[1]) + drain


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_configmap_passes_check_config(helm: Helm, scenario: str, tmp_path: Path) -> None:
    docs = helm.render(scenario)
    text, config = _proxy_config(docs)
    if "catalog" in config:
        # The projected volume puts the catalog ConfigMap's key next to the config file.
        assert config["catalog"] == "/etc/gateway-proxy/codes.yaml"
        for spec, container in _pods(docs):
            (mount,) = [
                m for m in container["volumeMounts"] if m["mountPath"] == "/etc/gateway-proxy"
            ]
            (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
            items = [
                i for s in volume["projected"]["sources"] for i in s["configMap"].get("items", [])
            ]
            assert [i["path"] for i in items] == ["codes.yaml"]
        shutil.copy(ROOT / "config" / "codes.yaml", tmp_path / "codes.yaml")
        text = text.replace("/etc/gateway-proxy/codes.yaml", str(tmp_path / "codes.yaml"))
    path = tmp_path / "gateway-proxy.yaml"
    path.write_text(text)
    # The Secret's values, as the container would get them.
    env = {**os.environ, **dict.fromkeys(_VAR.findall(text), "dummy-credential")}
    result = subprocess.run(
        [str(BIN / "gateway-proxy"), "check-config", str(path)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("scenario", WITH_PODS)
def test_credentials_come_from_an_existing_secret(helm: Helm, scenario: str) -> None:
    docs = helm.render(scenario)
    assert not _of_kind(docs, "Secret"), "the chart never holds credentials"
    text, config = _proxy_config(docs)
    used = set(_VAR.findall(text))
    assert used, "the example routes use ${VAR} credentials"
    for route in config["routes"]:
        for value in route.get("headers", {}).values():
            assert _VAR.search(value), "header values stay placeholders in the ConfigMap"
    for _, container in _pods(docs):
        from_secret = {
            e["name"] for e in container.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})
        }
        env_from = [s["secretRef"]["name"] for s in container.get("envFrom", [])]
        assert used <= from_secret or env_from, f"{used - from_secret} reach no env var"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["terminationGracePeriodSeconds=26"], "terminationGracePeriodSeconds (26) must exceed"),
        (["image.repository=gateway-proxy"], "docker.io/library/gateway-proxy, which is not"),
        (["credentials.envFrom=false"], "${MM7_BASIC_AUTH}"),
        (["ports.admin=8080"], "ports.http and ports.admin must differ"),
        (
            ["podDisruptionBudget.minAvailable=1", "podDisruptionBudget.maxUnavailable=1"],
            "not both",
        ),
        (["mode=sidecar", "serviceMonitor.enabled=true"], "in sidecar mode use podMonitor"),
        (
            ["config.routeOverrides.mmx.mode=passthrough"],
            'config.routeOverrides.mmx: no route in config.routes is named "mmx"',
        ),
        (
            ["autoscaling.enabled=true", "autoscaling.targetCPUUtilizationPercentage=null"],
            "autoscaling: set targetCPUUtilizationPercentage",
        ),
    ],
    ids=[
        "grace-period",
        "bare-image",
        "unset-var",
        "same-ports",
        "pdb",
        "sidecar-servicemonitor",
        "override-of-no-route",
        "hpa",
    ],
)
def test_inconsistent_values_fail_rendering(helm: Helm, args: list[str], message: str) -> None:
    sets = [arg for value in args for arg in ("--set", value)]
    result = helm.run("template", "gp", str(CHART), *sets)
    assert result.returncode != 0
    assert message in result.stderr


_DEFAULT_ROUTES: list[Doc] = yaml.safe_load((CHART / "values.yaml").read_text())["config"]["routes"]


def _route(name: str, prefix: str, **extra: Any) -> Doc:
    return {"name": name, "path_prefix": prefix, "vendor": "mm7",
            "upstream": "https://mms.example.net/mm7", **extra}  # fmt: skip


def _multi(name: str, prefix: str, *upstreams: str, **extra: Any) -> Doc:
    """A route with ``upstreams`` (and no ``upstream``)."""
    return {"name": name, "path_prefix": prefix, "vendor": "mm7", "upstreams": list(upstreams),
            **extra}  # fmt: skip


def _routes(*routes: Doc) -> tuple[list[str], Doc]:
    """The same routes as helm --set-json and as the proxy config's `routes:`."""
    return ["--set-json", f"config.routes={json.dumps(list(routes))}"], {"routes": list(routes)}


# (id, helm args, the same change to the rendered proxy config, helm's message, the key
# check-config names in its `file: key: reason` line)
BAD_CONFIGS: list[tuple[str, list[str], Doc, str, str]] = [
    ("duplicate-name", *_routes(_route("a", "/a"), _route("a", "/b")),
     'config.routes[1].name: duplicate route name "a" (also config.routes[0])',
     "routes[1].name"),
    ("duplicate-prefix", *_routes(_route("a", "/a"), _route("b", "/a/")),
     'config.routes[1].path_prefix: duplicate path_prefix "/a/" (also config.routes[0])',
     "routes[1].path_prefix"),
    ("nested-prefix", *_routes(_route("a", "/mm7"), _route("b", "/mm7/v2")),
     'config.routes[1].path_prefix: prefix "/mm7/v2" overlaps config.routes[0] ("/mm7")',
     "routes[1].path_prefix"),
    ("nested-prefix-first", *_routes(_route("a", "/mm7/v2"), _route("b", "/mm7")),
     'config.routes[1].path_prefix: prefix "/mm7" overlaps config.routes[0] ("/mm7/v2")',
     "routes[1].path_prefix"),
    ("root-prefix", *_routes(_route("a", "/")),
     "at '/config/routes/0/path_prefix': '/' does not match pattern",
     "routes[0].path_prefix"),
    ("relative-prefix", *_routes(_route("a", "mm7")),
     "at '/config/routes/0/path_prefix': 'mm7' does not match pattern",
     "routes[0].path_prefix"),
    ("prefix-with-space", *_routes(_route("a", "/m m")),
     "at '/config/routes/0/path_prefix': '/m m' does not match pattern",
     "routes[0].path_prefix"),
    ("bad-name", *_routes(_route("Shop_MMS", "/a")),
     "at '/config/routes/0/name': 'Shop_MMS' does not match pattern",
     "routes[0].name"),
    ("no-routes", *_routes(),
     "at '/config/routes': minItems: got 0, want 1",
     "routes"),
    ("missing-upstream", ["--set-json", 'config.routes=[{"name":"a","path_prefix":"/a","vendor":"mm7"}]'],
     {"routes": [{"name": "a", "path_prefix": "/a", "vendor": "mm7"}]},
     "config.routes[0].upstream: is required (or upstreams: a list of URLs)",
     "routes[0].upstream"),
    ("unknown-route-key", *_routes(_route("a", "/a", retries=3)),
     "additional properties 'retries' not allowed",
     "routes[0].retries"),
    ("unknown-vendor", *_routes(_route("a", "/a", vendor="smpp")),
     "at '/config/routes/0/vendor': value must be one of 'mm7', 'moms'",
     "routes[0].vendor"),
    ("unknown-mode", *_routes(_route("a", "/a", mode="proxy")),
     "at '/config/routes/0/mode': value must be one of 'envelope', 'passthrough'",
     "routes[0].mode"),
    ("ftp-upstream", *_routes(_route("a", "/a", upstream="ftp://mms.example.net/x")),
     "at '/config/routes/0/upstream': 'ftp://mms.example.net/x' does not match pattern",
     "routes[0].upstream"),
    ("upstream-without-host", *_routes(_route("a", "/a", upstream="https:///mm7")),
     'config.routes[0].upstream: must be an absolute http:// or https:// URL, got "https:///mm7"',
     "routes[0].upstream"),
    ("upstream-credentials", *_routes(_route("a", "/a", upstream="https://u:pw@mms.example.net/")),
     "config.routes[0].upstream: must not embed credentials",
     "routes[0].upstream"),
    ("upstream-query", *_routes(_route("a", "/a", upstream="https://mms.example.net/x?k=1")),
     "config.routes[0].upstream: must not have a query or fragment",
     "routes[0].upstream"),
    ("upstream-fragment", *_routes(_route("a", "/a", upstream="https://mms.example.net/x#top")),
     "config.routes[0].upstream: must not have a query or fragment",
     "routes[0].upstream"),
    ("upstream-port", *_routes(_route("a", "/a", upstream="https://mms.example.net:65536/")),
     "config.routes[0].upstream: port 65536 is out of range",
     "routes[0].upstream"),
    ("connect-over-total", *_routes(_route("a", "/a", timeout={"connect": 10, "total": 5})),
     "config.routes[0].timeout.connect: 10 s is longer than timeout.total (5 s)",
     "routes[0].timeout.connect"),
    ("connect-over-default-total", *_routes(_route("a", "/a", timeout={"connect": 45})),
     "config.routes[0].timeout.connect: 45 s is longer than timeout.total (30 s)",
     "routes[0].timeout.connect"),
    ("zero-timeout", *_routes(_route("a", "/a", timeout={"connect": 0, "total": 30})),
     "at '/config/routes/0/timeout/connect': minimum: got 0, want 0.001",
     "routes[0].timeout.connect"),
    ("unknown-timeout-key", *_routes(_route("a", "/a", timeout={"read": 5})),
     "additional properties 'read' not allowed",
     "routes[0].timeout.read"),
    ("zero-response-limit", *_routes(_route("a", "/a", max_response_bytes=0)),
     "at '/config/routes/0/max_response_bytes': minimum: got 0, want 1",
     "routes[0].max_response_bytes"),
    ("reserved-header", *_routes(_route("a", "/a", headers={"host": "mms.example.net"})),
     "config.routes[0].headers.host: is set by the proxy and cannot be configured",
     "routes[0].headers.host"),
    ("bad-header-name", *_routes(_route("a", "/a", headers={"X Bad": "1"})),
     "config.routes[0].headers.X Bad: is not a valid header name",
     "routes[0].headers.X Bad"),
    ("header-line-break", *_routes(_route("a", "/a", headers={"X-Tag": "a\r\nX-Evil: 1"})),
     "at '/config/routes/0/headers/X-Tag':",
     "routes[0].headers.X-Tag"),
    ("unset-variable", [*_routes(_route("a", "/a", headers={"Authorization": "Basic ${NOPE}"}))[0],
                        "--set", "credentials.envFrom=false"],
     _routes(_route("a", "/a", headers={"Authorization": "Basic ${NOPE}"}))[1],
     "config.routes use ${NOPE}, but neither credentials.env nor extraEnv provides it",
     "routes[0].headers.Authorization"),
    ("port-range", ["--set", "ports.http=70000"], {"listen": "0.0.0.0:70000"},
     "at '/ports/http': maximum: got 70,000, want 65,535",
     "listen"),
    ("same-ports", ["--set", "ports.admin=8080"], {"admin_listen": "0.0.0.0:8080"},
     "ports.http and ports.admin must differ",
     "admin_listen"),
    ("negative-drain", ["--set", "config.shutdown.drain_seconds=-1"], {"shutdown": {"drain_seconds": -1}},
     "at '/config/shutdown/drain_seconds': minimum: got -1, want 0",
     "shutdown.drain_seconds"),
    ("log-level", ["--set", "config.log.level=verbose"], {"log": {"level": "verbose", "format": "json"}},
     "at '/config/log/level': value must be one of",
     "log.level"),
    ("pool-limit", ["--set", "config.pool.limit=0"], {"pool": {"limit": 0}},
     "at '/config/pool/limit': minimum: got 0, want 1",
     "pool.limit"),
    ("override-makes-an-overlap", ["--set", "config.routeOverrides.moms.path_prefix=/mm7/moms"],
     {"routes": [_DEFAULT_ROUTES[0], {**_DEFAULT_ROUTES[1], "path_prefix": "/mm7/moms"}]},
     'config.routes[1].path_prefix: prefix "/mm7/moms" overlaps config.routes[0] ("/mm7")',
     "routes[1].path_prefix"),
    ("upstream-and-upstreams", *_routes(_route("a", "/a", upstreams=["https://b.example.net/x"])),
     "config.routes[0].upstreams: give either upstream or upstreams, not both",
     "routes[0].upstreams"),
    ("duplicate-endpoints", *_routes(_multi("a", "/a", "https://r.example.net/a",
                                            "https://R.example.net:443/b")),
     "config.routes[0].upstreams[1]: duplicate endpoint (also upstreams[0])",
     "routes[0].upstreams[1]"),
    ("second-upstream-query", *_routes(_multi("a", "/a", "https://a.example.net/a",
                                              "https://b.example.net/b?x=1")),
     "config.routes[0].upstreams[1]: must not have a query or fragment",
     "routes[0].upstreams[1]"),
    ("unknown-balance", *_routes(_route("a", "/a", balance="random")),
     "at '/config/routes/0/balance': value must be one of 'failover', 'round_robin'",
     "routes[0].balance"),
    ("zero-rate", *_routes(_route("a", "/a", rate_limit={"per_second": 0})),
     "at '/config/routes/0/rate_limit/per_second': exclusiveMinimum: got 0, want 0",
     "routes[0].rate_limit.per_second"),
    ("negative-rate", *_routes(_route("a", "/a", rate_limit={"per_second": -1})),
     "at '/config/routes/0/rate_limit/per_second': exclusiveMinimum: got -1, want 0",
     "routes[0].rate_limit.per_second"),
    ("small-burst", *_routes(_route("a", "/a", rate_limit={"per_second": 5, "burst": 0.5})),
     "at '/config/routes/0/rate_limit/burst': minimum: got 0.5, want 1",
     "routes[0].rate_limit.burst"),
    ("negative-max-wait", *_routes(_route("a", "/a", rate_limit={"per_second": 5, "max_wait": -1})),
     "at '/config/routes/0/rate_limit/max_wait': minimum: got -1, want 0",
     "routes[0].rate_limit.max_wait"),
    ("zero-failures", *_routes(_route("a", "/a", circuit_breaker={"failures": 0})),
     "at '/config/routes/0/circuit_breaker/failures': minimum: got 0, want 1",
     "routes[0].circuit_breaker.failures"),
    ("store-scheme", ["--set", "config.store=http://redis:6379/0"], {"store": "http://redis:6379/0"},
     "at '/config/store': 'http://redis:6379/0' does not match pattern",
     "store"),
    ("unknown-config-key", ["--set", "config.listen=0.0.0.0:9000"], {"listen_x": "0.0.0.0:9000"},
     "additional properties 'listen' not allowed",
     "listen_x"),
    ("key-without-ledger", ["--set", "config.routeOverrides.moms.require_idempotency_key=true"],
     {"routes": [_DEFAULT_ROUTES[0], {**_DEFAULT_ROUTES[1], "require_idempotency_key": True}]},
     "config.routes[1].require_idempotency_key: needs a ledger (config.ledger)",
     "routes[1].require_idempotency_key"),
    ("short-ttl", ["--set", "replicaCount=1", "--set-json", 'config.ledger={"idempotency_ttl":0.5}'],
     {"ledger": {"idempotency_ttl": 0.5}},
     "at '/config/ledger/idempotency_ttl': minimum: got 0.5, want 1",
     "ledger.idempotency_ttl"),
    ("webhook-without-ledger", ["--set", "config.clients[0].name=a", "--set", "config.clients[0].key=${K}",
                                "--set", "config.clients[0].webhook=http://a.example.net/ev"],
     {"clients": [{"name": "a", "key": "${K}", "webhook": "http://a.example.net/ev"}]},
     "config.clients[0].webhook: needs a ledger (config.ledger)",
     "clients[0].webhook"),
    ("webhook-scheme", ["--set", "config.clients[0].name=a", "--set", "config.clients[0].key=${K}",
                        "--set", "config.clients[0].webhook=ftp://a.example.net/ev"],
     {"clients": [{"name": "a", "key": "${K}", "webhook": "ftp://a.example.net/ev"}]},
     "at '/config/clients/0/webhook': 'ftp://a.example.net/ev' does not match pattern",
     "clients[0].webhook"),
]  # fmt: skip


def _check_config(tmp_path: Path, helm: Helm, patch: Doc) -> subprocess.CompletedProcess[str]:
    """check-config on the chart's default rendered config with ``patch`` applied."""
    text, config = _proxy_config(helm.render("default"))
    path = tmp_path / "gateway-proxy.yaml"
    path.write_text(yaml.safe_dump({**config, **patch}))
    # The Secret's values for the chart's own ${VAR}s, as the container would get them.
    env = {**os.environ, **dict.fromkeys(_VAR.findall(text), "dummy-credential")}
    return subprocess.run(
        [str(BIN / "gateway-proxy"), "check-config", str(path)],
        capture_output=True, text=True, env=env, check=False, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize("case", BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_configs_the_proxy_refuses_fail_rendering(
    helm: Helm, tmp_path: Path, case: tuple[str, list[str], Doc, str, str]
) -> None:
    """helm template refuses, with a clear message, what `gateway-proxy check-config` refuses.

    Each case is checked both ways: the values fail rendering, and the same change to the
    chart's rendered config fails check-config, so the chart's checks cannot drift from the
    proxy's.
    """
    _, args, patch, helm_says, proxy_key = case
    result = helm.run("template", "gp", str(CHART), *args)
    assert result.returncode != 0, f"helm accepted it:\n{result.stdout[:2000]}"
    assert helm_says in result.stderr, result.stderr
    checked = _check_config(tmp_path, helm, patch)
    assert checked.returncode == 2, checked.stdout + checked.stderr
    assert f": {proxy_key}: " in checked.stdout + checked.stderr


@pytest.mark.parametrize("name", ["duplicate-name", "root-prefix"])
def test_install_dry_run_refuses_them_too(helm: Helm, name: str) -> None:
    """Both kinds of check (a template's fail, the schema) stop `helm install` as well."""
    (case,) = [c for c in BAD_CONFIGS if c[0] == name]
    result = helm.run("install", "gp", str(CHART), "--dry-run=client", *case[1])
    assert result.returncode != 0
    assert case[3] in result.stderr, result.stderr


def test_one_route_changes_through_route_overrides(helm: Helm, tmp_path: Path) -> None:
    """--set on a list index replaces the list; a routeOverrides key merges into one route."""
    replaced = helm.run("template", "gp", str(CHART), "--set", "config.routes[1].timeout.total=60")
    assert replaced.returncode != 0, "the list was replaced by [null, {timeout: ...}]"
    assert "at '/config/routes/0': got null, want object" in replaced.stderr
    docs = helm.template(
        "--set", "config.routeOverrides.moms.timeout.total=60",
        "--set", "config.routeOverrides.mms.headers.X-Tenant=shop",
    )  # fmt: skip
    mms, moms = _proxy_config(docs)[1]["routes"]
    default_mms, default_moms = _DEFAULT_ROUTES
    assert moms == {**default_moms, "timeout": {**default_moms["timeout"], "total": 60}}
    assert mms == {**default_mms, "headers": {**default_mms["headers"], "X-Tenant": "shop"}}
    assert _checksum(docs) != _checksum(helm.render("default")), "the pods roll"
    checked = _check_config(tmp_path, helm, {"routes": [mms, moms]})
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_routes_the_proxy_accepts_still_render(helm: Helm) -> None:
    """Siblings, a shared stem and ${VAR} upstreams are fine: only real overlaps fail."""
    args, _ = _routes(
        _route("a", "/mm7"),
        _route("b", "/mm7x"),  # not under /mm7: the boundary is a path segment
        _route("c", "/v1/mm7"),
        _route("d", "/v1/moms", upstream="https://${MOMS_HOST}/moms", headers={"X-Tag": "${TAG}"}),
        _route("e", "/v6", upstream="http://[::1]:8090/mm7"),
        _route("f", "/short", timeout={"total": 2}),  # connect then defaults to the total
    )
    docs = helm.template(*args)
    routes = _proxy_config(docs)[1]["routes"]
    assert [r["name"] for r in routes] == ["a", "b", "c", "d", "e", "f"]


def test_monitoring_objects(helm: Helm) -> None:
    docs = helm.render("monitoring")
    service, monitor = _one(docs, "Service"), _one(docs, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    rule = _one(docs, "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    shipped = yaml.safe_load((CHART / "files" / "prometheus-rules.yaml").read_text())
    # The shipped groups, but for the two annotations that depend on the install.
    assert _without_install_annotations(rule["spec"]["groups"]) == _without_install_annotations(
        shipped["groups"]
    )
    assert all("logs" in a for a in _alert_annotations(docs))
    for group in rule["spec"]["groups"]:
        assert group["name"]
        assert group["rules"]
        assert all(r.get("expr") and (r.get("alert") or r.get("record")) for r in group["rules"])


def _without_install_annotations(groups: list[Doc]) -> list[Doc]:
    """The groups with runbook_url reduced to its anchor and no `logs` annotation."""
    groups = json.loads(json.dumps(groups))
    for rule in (r for g in groups for r in g["rules"]):
        annotations = rule.get("annotations", {})
        annotations.pop("logs", None)
        if "runbook_url" in annotations:
            annotations["runbook_url"] = annotations["runbook_url"].rpartition("#")[2]
    return groups


def _alert_annotations(docs: list[Doc]) -> list[Doc]:
    rule = _one(docs, "PrometheusRule")
    return [r["annotations"] for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r]


def test_runbook_url_is_a_chart_value(helm: Helm) -> None:
    """The on-call's copy of the runbook: <runbookBaseUrl>#<alert name in lower case>."""
    base = "https://wiki.example.com/ops/gateway-proxy-runbook"
    docs = helm.template(
        "-f", str(EXAMPLES / "values-monitoring.yaml"),
        "--set", f"prometheusRule.runbookBaseUrl={base}/",
    )  # fmt: skip
    rule = _one(docs, "PrometheusRule")
    alerts = [r for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r]
    assert alerts
    for alert in alerts:
        assert alert["annotations"]["runbook_url"] == f"{base}#{alert['alert'].lower()}"
    default = _alert_annotations(helm.render("monitoring"))
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert all(
        a["runbook_url"].startswith(values["prometheusRule"]["runbookBaseUrl"] + "#")
        for a in default
    )
    assert "github.com" not in (CHART / "templates" / "prometheusrule.yaml").read_text()


def test_pod_monitor_selects_the_app_pods(helm: Helm) -> None:
    docs = helm.render("app")
    monitor = _one(docs, "PodMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    deployment = _one(docs, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    ((_, container),) = _pods(docs)
    assert endpoint["port"] in {p["name"] for p in container["ports"]}


def test_grafana_dashboard_configmap_carries_the_shipped_file(helm: Helm) -> None:
    (dashboard,) = [
        d
        for d in _of_kind(helm.render("monitoring"), "ConfigMap")
        if "gateway-proxy.json" in d["data"]
    ]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = (CHART / "files" / "grafana-dashboard.json").read_text()
    assert dashboard["data"]["gateway-proxy.json"] == shipped, "byte for byte"
    assert json.loads(dashboard["data"]["gateway-proxy.json"])["uid"]


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_recommended_labels(helm: Helm, scenario: str) -> None:
    owned = [d for d in helm.render(scenario) if "gateway-proxy" in d["metadata"]["name"]]
    assert owned
    for doc in owned:
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "gateway-proxy"
        assert labels["app.kubernetes.io/version"] == proxy.__version__
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        for key in ("instance", "component", "part-of"):
            assert labels[f"app.kubernetes.io/{key}"]


def test_grace_period_boundary(helm: Helm) -> None:
    """Strictly greater than preStop (5) + delay (0) + drain (20) + 1: 27 renders, 26 does
    not (above), and a delay moves the boundary."""
    deployment = _one(helm.template("--set", "terminationGracePeriodSeconds=27"), "Deployment")
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 27
    delayed = ["--set", "config.shutdown.delay_seconds=3"]
    refused = helm.run(
        "template", "gp", str(CHART), *delayed, "--set", "terminationGracePeriodSeconds=27"
    )
    assert refused.returncode != 0
    assert "delay_seconds" in refused.stderr
    ok = _one(helm.template(*delayed, "--set", "terminationGracePeriodSeconds=30"), "Deployment")
    assert ok["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 30


def test_notes_grace_period_rule_matches_the_template(helm: Helm) -> None:
    """NOTES, the named template and the example app chart all say: > app + preStop + drain."""
    values = ["--set", "lifecycle.preStopSleepSeconds=7"]
    values += ["--set-json", "config.shutdown.drain_seconds=12.5"]
    notes = helm.notes("-f", str(EXAMPLES / "values-sidecar.yaml"), *values)
    text = " ".join(notes.split())
    match = re.search(
        r"terminationGracePeriodSeconds greater than your app's shutdown time \+ ([\d.]+)s "
        r"\(preStop sleep 7s \+ delay 0s \+ drain 12.5s \+ 1s\): e\.g\. your app's shutdown "
        r"time \+ (\d+)",
        text,
    )
    assert match, text
    assert float(match[1]) == 7 + 12.5 + 1
    assert int(match[2]) == 21, "the first whole second above 20.5"
    # The example app chart adds its own shutdown time to the same named template.
    app = yaml.safe_load((EXAMPLES / "app-with-sidecar" / "values.yaml").read_text())["app"]
    ((spec, container),) = _pods(helm.render("app"))
    drain = _proxy_config(helm.render("app"))[1]["shutdown"]["drain_seconds"]
    pre_stop = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
    grace = spec["terminationGracePeriodSeconds"]
    assert grace == app["shutdownSeconds"] + pre_stop + drain + 2
    assert grace > app["shutdownSeconds"] + pre_stop + drain + 1


def test_standalone_notes_say_how_to_reach_the_proxy_and_its_metrics(helm: Helm) -> None:
    notes = helm.notes("-f", str(EXAMPLES / "values-standalone.yaml"), release="edge")
    service = "edge-gateway-proxy.shop.svc"
    assert f"http://{service}:8080/mm7/..." in notes
    for route in _values("values-standalone.yaml")["config"]["routes"]:
        assert f"  {route['path_prefix']} -> {route['upstream']}" in notes
    assert f"http://{service}:8081/metrics" in notes
    assert "port-forward svc/edge-gateway-proxy 8080:8080 8081:8081" in notes
    assert "create secret generic gateway-proxy-credentials --from-literal=MM7_BASIC_AUTH=" in (
        notes
    )


def test_default_image_names_the_projects_registry() -> None:
    """ghcr.io/<owner>/<repo> of the image's own OCI source label: pullable as it stands."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    source = re.search(
        r'org\.opencontainers\.image\.source="https://github\.com/([^"]+)"',
        (ROOT / "Dockerfile").read_text(),
    )
    assert source
    assert values["image"]["repository"] == f"ghcr.io/{source[1]}"
    assert values["image"]["tag"] == "", "the tag follows the chart's appVersion"


def _checksum(docs: list[Doc]) -> str:
    deployment = _one(docs, "Deployment")
    return str(
        deployment["spec"]["template"]["metadata"]["annotations"]["checksum/gateway-proxy-config"]
    )


def test_config_change_rolls_the_pods(helm: Helm) -> None:
    assert _checksum(helm.template()) != _checksum(helm.template("--set", "config.log.level=debug"))


def test_catalog_revision_rolls_the_pods(helm: Helm) -> None:
    """The chart can't read the user's catalog ConfigMap; catalog.revision stands in for it."""
    base = ["-f", str(EXAMPLES / "values-monitoring.yaml")]
    first = _checksum(helm.template(*base))
    assert first == _checksum(helm.template(*base)), "stable while nothing changes"
    assert first != _checksum(helm.template(*base, "--set-string", "catalog.revision=2"))
    # The app chart's pods carry the same annotation.
    app = ["--set", "gateway-proxy.catalog.configMap=codes"]
    app_docs = helm.template(*app, chart=helm.app, release="shop")
    bumped = helm.template(
        *app, "--set", "gateway-proxy.catalog.revision=7", chart=helm.app, release="shop"
    )
    assert _checksum(app_docs) != _checksum(bumped)


@pytest.mark.parametrize(
    ("args", "key"),
    [
        (["--set", "replicaCont=3"], "replicaCont"),
        (["--set", "config.shutdown.drain_secs=5"], "drain_secs"),
        (["--set", "serviceMonitor.additionalLabel.release=x"], "additionalLabel"),
        (["--set", "securityContext.privileged=true"], "privileged"),
        (
            ["--set-json", 'config.routes=[{"name":"a","path_prefix":"/a","vendor":"mm7",'
             '"upstream_url":"https://x"}]'],
            "upstream_url",
        ),
    ],
    ids=["top", "nested", "monitor", "security", "route"],
)  # fmt: skip
def test_unknown_values_key_fails_the_schema(helm: Helm, args: list[str], key: str) -> None:
    for command in (["lint", "--strict", str(CHART)], ["template", "gp", str(CHART)]):
        result = helm.run(*command, *args)
        output = result.stdout + result.stderr
        assert result.returncode != 0, command
        assert f"additional properties '{key}' not allowed" in output, output


def test_schema_closes_every_object() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    open_paths: list[str] = []

    def walk(node: Any, path: str) -> None:
        if not isinstance(node, dict):
            return
        # Kubernetes objects passed through as-is (the API server validates them) stay open.
        passthrough = "passed through" in node.get("description", "") or path == "/global"
        if node.get("type") == "object" and "additionalProperties" not in node and not passthrough:
            open_paths.append(path)
        for key, child in node.get("properties", {}).items():
            walk(child, f"{path}/{key}")
        for key in ("items", "additionalProperties"):
            walk(node.get(key), f"{path}/{key}")
        for child in node.get("anyOf", []):
            walk(child, path)

    walk(schema, "")
    assert not open_paths
    assert schema["additionalProperties"] is False


def test_notes_snippet_is_the_same_sidecar(helm: Helm) -> None:
    """The paste route: the NOTES' container equals what the example app chart includes."""
    result = helm.run(
        "install", "shop", str(CHART), "-f", str(EXAMPLES / "values-sidecar.yaml"),
        "--dry-run=client",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("NOTES:", 1)[1].split("or paste this", 1)[1]
    match = re.search(r"\n(  initContainers:\n.*?)\n\n", notes, re.S)
    assert match, notes
    snippet = yaml.safe_load(match[1])
    ((spec, container),) = _pods(helm.render("app"))
    assert snippet["initContainers"] == [container]
    assert snippet["volumes"] == spec["volumes"]


def test_install_helm_script_is_instant_when_present(tmp_path: Path) -> None:
    for tool in ("helm", "kubectl"):
        (tmp_path / tool).symlink_to(BIN / tool)
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "install-helm.sh")],
        env={**os.environ, "HELM_INSTALL_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "fetching" not in result.stderr, "nothing to download"


# --- The docs' commands against the example values -------------------------------------------

# (file, heading of the section to read; None: the whole file)
COMMAND_DOCS = [("README.md", "## Deployment"), ("docs/deployment.md", None)]
_HELM_VALUE_OPTIONS = {"-f", "--values", "--set", "--set-string", "--set-json", "-n", "--namespace"}


def _doc_commands(name: str, heading: str | None) -> list[list[str]]:
    """Shell commands of the sh/bash code blocks, continuations joined, `&&` chains split."""
    text = (ROOT / name).read_text()
    if heading:
        start = text.index(f"\n{heading}\n")
        end = text.find("\n## ", start + 1)
        text = text[start : end if end != -1 else None]
    commands = []
    for block in re.findall(r"^```(?:sh|bash|shell)\n(.*?)^```", text, re.M | re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            while words:
                head = words.index("&&") if "&&" in words else len(words)
                commands.append(words[:head])
                words = words[head + 1 :]
    return commands


def _created_keys(words: list[str]) -> tuple[str, set[str]] | None:
    """("secret"|"configmap", name) and keys of `kubectl create secret generic|configmap`."""
    if words[:3] not in (["kubectl", "create", "secret"], ["kubectl", "create", "configmap"]):
        return None
    rest = words[4:] if words[2] == "secret" else words[3:]
    keys = set()
    for word in rest[1:]:
        option, _, value = word.partition("=")
        if option == "--from-literal":
            keys.add(value.partition("=")[0])
        elif option == "--from-file":
            key, _, path = value.partition("=")
            keys.add(key if path else Path(key).name)
    return f"{words[2]}/{rest[0]}", keys


def _install(words: list[str]) -> tuple[str, str, list[str]] | None:
    """(release, chart, other args) of `helm install|upgrade --install` using helm/examples."""
    if words[:2] != ["helm", "install"] and not (
        words[:2] == ["helm", "upgrade"] and "--install" in words
    ):
        return None
    if not any("helm/examples/" in w for w in words):
        return None
    positional: list[str] = []
    args: list[str] = []
    rest = iter(w for w in words[2:] if w != "--install")
    for word in rest:
        if word in _HELM_VALUE_OPTIONS:
            value = next(rest)
            args += [word, str(ROOT / value) if word in ("-f", "--values") else value]
        elif word.startswith("-"):
            args.append(word)
        else:
            positional.append(word)
    release, chart = positional
    return release, chart, args


def _pod_references(docs: list[Doc]) -> dict[str, set[str]]:
    """Objects the pods need but the chart does not render -> the keys they need from each."""
    rendered = {f"{d['kind'].lower()}/{d['metadata']['name']}" for d in docs}
    text, _ = _proxy_config(docs)
    need: dict[str, set[str]] = {}
    for spec, container in _pods(docs):
        explicit = set()
        for env in container.get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                need.setdefault(f"secret/{ref['name']}", set()).add(ref["key"])
            explicit.add(env["name"])
        for source in container.get("envFrom", []):
            # envFrom: the proxy needs every ${VAR} not set explicitly as a key of the Secret.
            name = f"secret/{source['secretRef']['name']}"
            need.setdefault(name, set()).update(set(_VAR.findall(text)) - explicit)
        for volume in spec["volumes"]:
            sources = volume.get("projected", {}).get("sources", [])
            for configmap in [s["configMap"] for s in sources if "configMap" in s]:
                keys = {i["key"] for i in configmap.get("items", [])}
                need.setdefault(f"configmap/{configmap['name']}", set()).update(keys)
    return {name: keys for name, keys in need.items() if name not in rendered}


@pytest.mark.parametrize(("doc", "heading"), COMMAND_DOCS, ids=[d for d, _ in COMMAND_DOCS])
def test_documented_secrets_match_the_example_values(
    helm: Helm, doc: str, heading: str | None
) -> None:
    """Each `helm install` of an example pairs with the `kubectl create secret` right before it.

    The Secret (and any ConfigMap) the rendered pods reference must be the one those commands
    create, with the keys they create: otherwise the pod sits in CreateContainerConfigError.
    """
    commands = _doc_commands(doc, heading)
    last_secret: tuple[str, set[str]] | None = None
    configmaps: dict[str, set[str]] = {}
    installed = set()
    for words in commands:
        for word in words:
            if "base64" in word:
                assert "| base64 -w0)" in word, f"{doc}: {word}: base64 wraps lines without -w0"
        created = _created_keys(words)
        if created and created[0].startswith("secret/"):
            last_secret = created
        elif created:
            configmaps[created[0]] = created[1]
        install = _install(words)
        if install is None:
            continue
        release, chart, args = install
        installed.add(chart if "-f" not in args else args[args.index("-f") + 1])
        if chart == "helm/gateway-proxy":
            # The proxy container is the same in both modes; standalone renders it in a pod.
            docs = helm.template(*args, "--set", "mode=standalone", release=release)
        else:
            assert chart == "helm/examples/app-with-sidecar", chart
            docs = helm.template(*args, chart=helm.app, release=release)
        needed = _pod_references(docs)
        secrets = {n: k for n, k in needed.items() if n.startswith("secret/")}
        assert secrets, f"{doc}: {shlex.join(words)}: the pods use no Secret?"
        assert last_secret, f"{doc}: {shlex.join(words)}: no `kubectl create secret` before it"
        for name, keys in secrets.items():
            assert name == last_secret[0], f"{doc}: {shlex.join(words)} needs {name}"
            assert keys <= last_secret[1], f"{doc}: {shlex.join(words)}: {name} needs {keys}"
        for name, keys in needed.items():
            if name.startswith("configmap/"):
                assert keys <= configmaps.get(name, set()), f"{doc}: create {name} with {keys}"
    # Both modes are documented with their example values.
    examples = {str(EXAMPLES / f) for f in ("values-sidecar.yaml", "values-standalone.yaml")}
    assert examples <= installed, f"{doc}: {sorted(installed)}"


# --- The runbook's commands, in both modes ---------------------------------------------------

RUNBOOK = ROOT / "docs" / "runbook.md"
_KUBECTL_USAGE_ERRORS = (
    "unknown flag",
    "unknown shorthand",
    "unknown command",
    "Usage:",
    "error: ",
)


def _runbook_blocks() -> list[str]:
    return re.findall(r"^ *```(?:sh|bash)\n(.*?)^ *```", RUNBOOK.read_text(), re.M | re.S)


def _mode_variables() -> dict[str, dict[str, str]]:
    """The variable blocks of "Where the proxy runs": standalone first, then sidecar."""
    found = {}
    for block in _runbook_blocks():
        assignments = dict(re.findall(r"^(NS|PODS|WORKLOAD)=(\S+)$", block, re.M))
        if assignments:
            mode = "standalone" if block.lstrip().startswith("# Standalone") else "sidecar"
            found[mode] = assignments
    assert set(found) == {"standalone", "sidecar"}, found
    return found


def _runbook_kubectl_commands() -> list[list[str]]:
    commands = []
    for block in _runbook_blocks():
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words[:1] == ["kubectl"]:
                commands.append(words[: words.index("|")] if "|" in words else words)
    assert len(commands) >= 8, commands
    return commands


def _mode_render(helm: Helm, mode: str) -> list[Doc]:
    """What the runbook's example names: docs/deployment.md's standalone release, the app chart."""
    if mode == "standalone":
        return helm.template(
            "-f", str(EXAMPLES / "values-standalone.yaml"), "-n", "shop", release="gateway-proxy"
        )
    return helm.render("app")


def _selector_matches_proxy_pods(docs: list[Doc], selector: str) -> Doc:
    """The Deployment whose pods the ``-l`` selector picks; they run the proxy container."""
    wanted = dict(pair.split("=", 1) for pair in selector.split(","))
    (deployment,) = [
        d for d in _of_kind(docs, "Deployment")
        if wanted.items() <= d["spec"]["template"]["metadata"]["labels"].items()
    ]  # fmt: skip
    spec = deployment["spec"]["template"]["spec"]
    names = [c["name"] for c in spec["containers"] + spec.get("initContainers", [])]
    assert "gateway-proxy" in names, names
    return deployment


def kubectl_parses(helm: Helm, words: list[str]) -> None:
    """The real kubectl accepts the command: with a dead API server, only connecting fails."""
    result = subprocess.run(
        [str(BIN / "kubectl"), "--server", "http://127.0.0.1:9", "--request-timeout", "2s",
         *words[1:]],
        capture_output=True, text=True, env=helm.env, check=False, timeout=60,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert "connection refused" in output, f"{shlex.join(words)}:\n{output}"
    for usage in _KUBECTL_USAGE_ERRORS:
        assert usage not in output.replace("Unhandled Error", ""), f"{shlex.join(words)}:\n{output}"


@pytest.mark.parametrize("mode", ["standalone", "sidecar"])
def test_runbook_commands_work_in_both_modes(helm: Helm, mode: str) -> None:
    """Every kubectl command of docs/runbook.md, with the mode's variables, hits the proxy.

    The variables name the real objects (the selector picks the pods that run the proxy,
    the workload is their Deployment), logs and exec name the proxy's container (in sidecar
    mode the pod's default container is the app), and the real kubectl parses each command.
    """
    variables = _mode_variables()[mode]
    docs = _mode_render(helm, mode)
    deployment = _selector_matches_proxy_pods(docs, variables["PODS"])
    assert variables["WORKLOAD"] == f"deploy/{deployment['metadata']['name']}"
    if mode == "sidecar":
        monitor = _one(docs, "PodMonitor")["spec"]["selector"]["matchLabels"]
        assert variables["PODS"] == ",".join(f"{k}={v}" for k, v in monitor.items())
    for command in _runbook_kubectl_commands():
        words = [
            re.sub(r"\$\{?(NS|PODS|WORKLOAD)\}?", lambda m: variables[m[1]], w) for w in command
        ]
        assert "$" not in " ".join(words[: words.index("--")] if "--" in words else words)
        if words[3] in ("logs", "exec"):
            assert words[words.index("-c") + 1] == "gateway-proxy", shlex.join(words)
        kubectl_parses(helm, words)


@pytest.mark.parametrize("mode", ["standalone", "sidecar"])
def test_alert_logs_annotation_reads_the_proxys_pods(helm: Helm, mode: str) -> None:
    """The alerts' `logs` command selects this install's proxy pods, in either mode."""
    if mode == "standalone":
        docs = helm.template("-f", str(EXAMPLES / "values-monitoring.yaml"), "-n", "shop")
        pods = docs
    else:
        docs = helm.render("app")
        pods = docs
        docs = helm.template(
            "--set", "gateway-proxy.prometheusRule.enabled=true", chart=helm.app, release="shop"
        )
    annotations = _alert_annotations(docs)
    (command,) = {a["logs"] for a in annotations}
    words = shlex.split(command.replace("{{ $labels.namespace }}", "shop"))
    assert words[:4] == ["kubectl", "-n", "shop", "logs"]
    assert words[words.index("-c") + 1] == "gateway-proxy"
    _selector_matches_proxy_pods(pods, words[words.index("-l") + 1])
    kubectl_parses(helm, words)


def test_reliability_and_inbound_keys_reach_the_config(helm: Helm, tmp_path: Path) -> None:
    """listen_backlog, max_in_flight, client_timeout, shutdown.delay_seconds and inbound
    routes render into the ConfigMap, and the proxy accepts what they render to."""
    values = tmp_path / "values.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "config": {
                    "listen_backlog": 4096,
                    "max_in_flight": 500,
                    "client_timeout": {"head": 5, "body_idle": 20},
                    "shutdown": {"delay_seconds": 2, "drain_seconds": 20},
                    "inbound": [
                        {"name": "events", "path_prefix": "/inbound/mm7",
                         "deliver_to": "http://127.0.0.1:9000/events"},
                    ],
                },
                "terminationGracePeriodSeconds": 30,
            }
        )
    )  # fmt: skip
    text, config = _proxy_config(helm.template("-f", str(values)))
    assert (config["listen_backlog"], config["max_in_flight"]) == (4096, 500)
    assert config["client_timeout"] == {"head": 5, "body_idle": 20}
    assert config["shutdown"]["delay_seconds"] == 2
    assert config["inbound"][0]["deliver_to"] == "http://127.0.0.1:9000/events"
    rendered = tmp_path / "gateway-proxy.yaml"
    rendered.write_text(text)
    result = subprocess.run(
        [sys.executable, "-m", "proxy", "check-config", str(rendered)],
        capture_output=True, text=True, check=False,
        env={**os.environ, "MM7_BASIC_AUTH": "x", "MOMS_CLIENT_ID": "x", "MOMS_TOKEN": "x"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    bad = helm.run(
        "template", "gp", str(CHART), "-f", str(values), "--set", "config.max_in_flight=0"
    )
    assert bad.returncode != 0


def test_flow_control_values_reach_the_config(helm: Helm, tmp_path: Path) -> None:
    """upstreams, balance, circuit_breaker, rate_limit and store render as written, and the
    rendered config passes check-config (which never connects to the store)."""
    route = _multi(
        "mms", "/mm7", "https://relay-a.example.net/mm7", "https://relay-b.example.net/mm7",
        balance="round_robin", circuit_breaker={"failures": 5, "open_seconds": 10},
        rate_limit={"per_second": 20, "burst": 20, "max_wait": 5},
    )  # fmt: skip
    args, _ = _routes(route)
    docs = helm.template(*args, "--set", "config.store=redis://redis.messaging.svc:6379/0")
    config = _proxy_config(docs)[1]
    assert config["routes"] == [route]
    assert config["store"] == "redis://redis.messaging.svc:6379/0"
    checked = _check_config(tmp_path, helm, {"routes": [route], "store": config["store"]})
    assert checked.returncode == 0, checked.stdout + checked.stderr


# --- issue 20: who may send, callbacks on their own port, TLS Secrets, the NetworkPolicy ---
HARDENED: Doc = {
    "ports": {"inbound": 8082},
    "networkPolicy": {
        "enabled": True,
        "sendFrom": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "checkout"}}},
                     {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "shop"}}}],
        "relayCIDRs": ["198.51.100.0/24"],
        "upstreamCIDRs": ["203.0.113.0/24", "2001:db8::/32"],
    },
    "tls": {"secrets": [{"name": "relay", "secretName": "relay-client-tls"}],
            "listenSecret": "gateway-proxy-tls"},
    "config": {
        "clients": [{"name": "checkout", "key": "${CHECKOUT_PROXY_KEY}", "routes": ["mms"]},
                    {"name": "reports", "key": "${REPORTS_PROXY_KEY}"}],
        "routeOverrides": {
            "mms": {"tls": {"ca_file": "/tls/relay/ca.crt", "cert_file": "/tls/relay/tls.crt",
                            "key_file": "/tls/relay/tls.key", "server_name": "mms.example.net"}},
            "moms": {"query": {"client_id": "${MOMS_CLIENT_ID}", "token": "${MOMS_TOKEN}"}},
        },
        "inbound": [{"name": "mm7-events", "path_prefix": "/inbound/mm7",
                     "deliver_to": "http://checkout.shop.svc:9000/events",
                     "auth": {"basic": "${RELAY_USER}:${RELAY_PASSWORD}"},
                     "allow_from": ["198.51.100.0/24"], "signing_secret": "${WEBHOOK_SIGNING_SECRET}"}],
    },
}  # fmt: skip


def _hardened(helm: Helm, tmp_path: Path, *extra: str) -> list[Doc]:
    values = tmp_path / "hardened.yaml"
    values.write_text(yaml.safe_dump(HARDENED))
    return helm.template("-f", str(values), *extra)


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_network_policy_renders_and_validates(helm: Helm, tmp_path: Path, version: str) -> None:
    """The opt-in NetworkPolicy, validated with every other manifest by kubernetes-validate:
    the send port from the apps, the inbound port from the relay's networks, the admin port
    from the monitoring namespace; egress to DNS and the upstreams only."""
    docs = _hardened(helm, tmp_path)
    for doc in docs:
        if doc["kind"] not in CRD_KINDS:
            kubernetes_validate.validate(doc, version, strict=True)
    policy = _one(docs, "NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    pod_labels = _one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= pod_labels.items()
    by_port = {rule["ports"][0]["port"]: rule["from"] for rule in policy["ingress"]}
    assert by_port["proxy-http"] == HARDENED["networkPolicy"]["sendFrom"]
    assert by_port["proxy-inbound"] == [{"ipBlock": {"cidr": "198.51.100.0/24"}}]
    assert by_port["proxy-admin"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    dns, upstream = policy["egress"]
    assert {p["port"] for p in dns["ports"]} == {53}
    assert [t["ipBlock"]["cidr"] for t in upstream["to"]] == ["203.0.113.0/24", "2001:db8::/32"]
    (_, container) = _pods(docs)[0]
    named = {p["name"] for p in container["ports"]}
    assert {"proxy-http", "proxy-inbound", "proxy-admin"} <= named, "the policy's ports exist"


def test_the_network_policy_is_opt_in(helm: Helm) -> None:
    assert not _of_kind(helm.render("standalone"), "NetworkPolicy")
    assert not _of_kind(helm.render("default"), "NetworkPolicy")


def test_hardened_standalone_config_passes_check_config(helm: Helm, tmp_path: Path) -> None:
    """Clients, inbound_listen, listen_tls, a route's tls and query render into a config the
    proxy accepts once the Secrets' files are where the mounts put them."""
    import trustme

    docs = _hardened(helm, tmp_path)
    service = _one(docs, "Service")
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]}["inbound"] == 8082
    spec, container = _pods(docs)[0]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    secrets = {v["name"]: v["secret"]["secretName"] for v in spec["volumes"] if "secret" in v}
    assert secrets[mounts["/tls/relay"]] == "relay-client-tls"
    assert secrets[mounts["/tls/listen"]] == "gateway-proxy-tls"
    text, config = _proxy_config(docs)
    assert config["inbound_listen"] == "0.0.0.0:8082"
    assert config["listen_tls"] == {
        "cert_file": "/tls/listen/tls.crt",
        "key_file": "/tls/listen/tls.key",
    }
    assert config["clients"][0] == {
        "name": "checkout",
        "key": "${CHECKOUT_PROXY_KEY}",
        "routes": ["mms"],
    }
    ca = trustme.CA()
    root = tmp_path / "tls"
    for name in ("relay", "listen"):
        leaf = ca.issue_cert(f"{name}.test")
        (root / name).mkdir(parents=True)
        leaf.cert_chain_pems[0].write_to_path(str(root / name / "tls.crt"))
        leaf.private_key_pem.write_to_path(str(root / name / "tls.key"))
        ca.cert_pem.write_to_path(str(root / name / "ca.crt"))
    path = tmp_path / "gateway-proxy.yaml"
    path.write_text(text.replace("/tls/", f"{root}/"))
    env = {**os.environ, **{v: f"{v.lower()}-credential" for v in _VAR.findall(text)}}
    env["RELAY_USER"] = "relay"
    result = subprocess.run(
        [str(BIN / "gateway-proxy"), "check-config", str(path)],
        capture_output=True, text=True, env=env, check=False, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_sidecar_exposes_the_inbound_port_and_mounts_the_tls_secrets(helm: Helm) -> None:
    """In sidecar mode the send port stays on loopback; the callbacks' port is the pod's."""
    docs = helm.template(
        "--set", "gateway-proxy.ports.inbound=8082",
        "--set-json", 'gateway-proxy.tls.secrets=[{"name":"relay","secretName":"relay-tls"}]',
        "--set-json", 'gateway-proxy.config.inbound=[{"name":"ev","path_prefix":"/inbound",'
                      '"deliver_to":"http://127.0.0.1:9000/ev"}]',
        chart=helm.app, release="shop",
    )  # fmt: skip
    for doc in docs:
        if doc["kind"] not in CRD_KINDS:
            kubernetes_validate.validate(doc, KUBE_VERSIONS[0], strict=True)
    ((spec, container),) = _pods(docs)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"proxy-admin": 8081, "proxy-inbound": 8082}  # no send port outside the pod
    assert "/tls/relay" in {m["mountPath"] for m in container["volumeMounts"]}
    assert any(v.get("secret", {}).get("secretName") == "relay-tls" for v in spec["volumes"])
    _, config = _proxy_config(docs)
    assert (config["listen"], config["inbound_listen"]) == ("127.0.0.1:8080", "0.0.0.0:8082")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["mode=sidecar", "config.inbound[0].name=ev", "config.inbound[0].path_prefix=/in",
          "config.inbound[0].deliver_to=http://127.0.0.1:9/"],
         "config.inbound: in sidecar mode the http port listens on 127.0.0.1 only"),
        (["ports.inbound=8081"], "ports.inbound must differ from ports.http and ports.admin"),
        (["mode=sidecar", "networkPolicy.enabled=true"], "in sidecar mode the pods are your app's"),
        (["config.clients[0].name=a", "config.clients[0].key=${K}",
          "config.clients[1].name=a", "config.clients[1].key=${K}"],
         'config.clients[1].name: duplicate client name "a" (also config.clients[0])'),
        (["config.clients[0].name=a", "config.clients[0].key=${K}", "config.clients[0].routes[0]=sms"],
         'config.clients[0].routes[0]: no route is named "sms" (routes: mms, moms)'),
        (["config.clients[0].name=a", "config.clients[0].key=${K}", "credentials.envFrom=false",
          "credentials.env.MM7_BASIC_AUTH=mm7-basic-auth"],
         "config.clients or config.inbound use ${K}"),
        (["tls.secrets[0].name=listen", "tls.secrets[0].secretName=x"],
         'tls.secrets[0].name: "listen" is already mounted at /tls/listen'),
        (["config.routeOverrides.mms.tls.verify=false"], "additional properties 'verify' not allowed"),
    ],
    ids=["sidecar-inbound", "inbound-port", "sidecar-policy", "duplicate-client",
         "client-route", "client-var", "tls-mount", "no-verify-switch"],
)  # fmt: skip
def test_issue20_values_the_chart_refuses(helm: Helm, args: list[str], message: str) -> None:
    sets = [arg for value in args for arg in ("--set", value)]
    result = helm.run("template", "gp", str(CHART), *sets)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("clients", "key"),
    [
        ([{"name": "a", "key": "${X}"}, {"name": "a", "key": "${Y}"}], "clients[1].name"),
        ([{"name": "a", "key": "${X}", "routes": ["sms"]}], "clients[0].routes[0]"),
    ],
)
def test_check_config_refuses_the_same_clients(
    helm: Helm, tmp_path: Path, clients: list[Doc], key: str
) -> None:
    """The chart's client checks and check-config's agree (same values, both refuse)."""
    checked = _check_config(tmp_path, helm, {"clients": clients})
    assert checked.returncode == 2
    assert f": {key}: " in checked.stdout + checked.stderr


# --- issue 21: the message ledger -------------------------------------------------------
def _ledger_mount(docs: list[Doc]) -> tuple[Doc, Doc] | None:
    """(the volume, its mount) of the ledger's SQLite directory in the proxy's pod."""
    spec, container = _pods(docs)[0]
    mounts = [m for m in container["volumeMounts"] if m["mountPath"] == "/var/lib/gateway-proxy"]
    if not mounts:
        return None
    (mount,) = mounts
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    return volume, mount


def test_a_sqlite_ledger_gets_a_writable_volume_at_its_path(helm: Helm, tmp_path: Path) -> None:
    """One replica, config.ledger without a store: the chart sets the file's path under a
    writable volume (the root filesystem is read-only), an emptyDir by default; a route's
    require_idempotency_key and a client's webhook render as written; the manifests
    validate, and the proxy accepts the config, and opens its ledger there."""
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({
        "replicaCount": 1,
        "config": {
            "ledger": {"idempotency_ttl": 3600, "correlation_ttl": 86400},
            "routeOverrides": {"mms": {"require_idempotency_key": True}},
            "clients": [{"name": "checkout", "key": "${CHECKOUT_PROXY_KEY}",
                         "webhook": "http://checkout.shop.svc:9000/gateway-events"}],
        },
    }))  # fmt: skip
    docs = helm.template("-f", str(values))
    for doc in docs:
        if doc["kind"] not in CRD_KINDS:
            kubernetes_validate.validate(doc, KUBE_VERSIONS[0], strict=True)
    text, config = _proxy_config(docs)
    assert config["ledger"] == {
        "idempotency_ttl": 3600,
        "correlation_ttl": 86400,
        "path": "/var/lib/gateway-proxy/ledger.sqlite3",
    }
    assert config["routes"][0]["require_idempotency_key"] is True
    assert config["clients"][0]["webhook"] == "http://checkout.shop.svc:9000/gateway-events"
    mounted = _ledger_mount(docs)
    assert mounted is not None
    volume, mount = mounted
    assert volume["emptyDir"] == {"sizeLimit": "1Gi"}
    assert not mount.get("readOnly")
    (_, container) = _pods(docs)[0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # The proxy reads this config: check-config accepts it, and `serve` opens its ledger
    # in the mounted directory (here a stand-in for the volume, on loopback ports).
    ledger_dir = tmp_path / "var-lib-gateway-proxy"
    ports = {}
    for name in ("http", "admin"):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            ports[name] = sock.getsockname()[1]
    path = tmp_path / "gateway-proxy.yaml"
    path.write_text(
        text.replace("/var/lib/gateway-proxy", str(ledger_dir))
        .replace("0.0.0.0:8080", f"127.0.0.1:{ports['http']}")
        .replace("0.0.0.0:8081", f"127.0.0.1:{ports['admin']}")
    )
    env = {**os.environ, **dict.fromkeys(_VAR.findall(text), "dummy-credential-0123456789")}
    checked = subprocess.run(
        [str(BIN / "gateway-proxy"), "check-config", str(path)],
        capture_output=True, text=True, env=env, check=False, timeout=60,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    serve = subprocess.Popen(
        [str(BIN / "gateway-proxy"), "serve", "--config", str(path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not (ledger_dir / "ledger.sqlite3").exists():
            assert serve.poll() is None, serve.communicate()[1]
            assert time.monotonic() < deadline, "serve did not open its ledger"
            time.sleep(0.1)
    finally:
        serve.terminate()
        serve.communicate(timeout=30)


def test_a_persistent_volume_claim_keeps_the_ledger(helm: Helm) -> None:
    docs = helm.template(
        "--set", "replicaCount=1", "--set-json", "config.ledger={}",
        "--set", "ledgerStorage.existingClaim=gateway-proxy-ledger",
    )  # fmt: skip
    for doc in docs:
        if doc["kind"] not in CRD_KINDS:
            kubernetes_validate.validate(doc, KUBE_VERSIONS[0], strict=True)
    mounted = _ledger_mount(docs)
    assert mounted is not None
    assert mounted[0]["persistentVolumeClaim"] == {"claimName": "gateway-proxy-ledger"}
    spec, _ = _pods(docs)[0]
    assert spec["securityContext"]["fsGroup"] == 10001, "the claim is writable by the proxy"


def test_with_a_store_the_ledger_lives_in_redis_and_replicas_share_it(helm: Helm) -> None:
    """No file, no volume, and any number of replicas (or an HPA)."""
    for extra in ([], ["--set", "autoscaling.enabled=true"]):
        docs = helm.template(
            "--set-json", "config.ledger={}",
            "--set", "config.store=redis://redis.messaging.svc:6379/0", *extra,
        )  # fmt: skip
        _, config = _proxy_config(docs)
        assert config["ledger"] == {}
        assert config["store"] == "redis://redis.messaging.svc:6379/0"
        assert _ledger_mount(docs) is None


def test_no_ledger_no_volume(helm: Helm) -> None:
    docs = helm.render("default")
    assert "ledger" not in _proxy_config(docs)[1]
    assert _ledger_mount(docs) is None


def test_a_sidecar_keeps_its_ledger_in_the_apps_pod(helm: Helm) -> None:
    """In sidecar mode each app pod has its own ledger volume (the chart cannot count the
    app's replicas: docs/deployment.md says to set a store for more than one)."""
    docs = helm.template(
        "--set-json", "gateway-proxy.config.ledger={}", chart=helm.app, release="shop"
    )
    for doc in docs:
        if doc["kind"] not in CRD_KINDS:
            kubernetes_validate.validate(doc, KUBE_VERSIONS[0], strict=True)
    mounted = _ledger_mount(docs)
    assert mounted is not None
    assert "emptyDir" in mounted[0]
    assert _proxy_config(docs)[1]["ledger"]["path"] == "/var/lib/gateway-proxy/ledger.sqlite3"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set-json", "config.ledger={}"],
         "config.ledger: replicaCount 2 would give each replica its own SQLite ledger"),
        (["--set-json", "config.ledger={}", "--set", "replicaCount=1",
          "--set", "autoscaling.enabled=true"],
         "config.ledger: autoscaling would run several replicas, each with its own SQLite ledger"),
        (["--set", "ledgerStorage.existingClaim=x"],
         "ledgerStorage.existingClaim: only the SQLite ledger uses it"),
        (["--set", "replicaCount=1", "--set", "config.ledger.path=/data/ledger.sqlite3"],
         "at '/config/ledger': additional properties 'path' not allowed"),
    ],
    ids=["replicas", "hpa", "claim-without-ledger", "path-is-the-charts"],
)  # fmt: skip
def test_ledger_values_the_chart_refuses(helm: Helm, args: list[str], message: str) -> None:
    result = helm.run("template", "gp", str(CHART), *args)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
