"""scripts/install-podman.sh: instant when done, a clear verdict when podman cannot run here.

Run with fake ``podman``/``id``/``sudo`` on an otherwise tiny PATH, so nothing is installed
and no container starts: the verdict file is what tests/test_image.py reads to decide
between "must pass", "skip, saying why" and "fail, run the script".
"""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "install-podman.sh"


def fake_bin(tmp_path: Path, **programs: str) -> Path:
    directory = tmp_path / "fakebin"
    directory.mkdir()
    for name, body in programs.items():
        path = directory / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)
    for tool in ("bash", "head", "tail", "tr", "mkdir", "mv", "dirname", "cat"):
        (directory / tool).symlink_to(f"/usr/bin/{tool}" if Path(f"/usr/bin/{tool}").exists()
                                      else f"/bin/{tool}")  # fmt: skip
    return directory


def run(path: Path, status: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/bash", str(SCRIPT)],
        env={"PATH": str(path), "PODMAN_STATUS_FILE": str(status)},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_instant_when_installed_with_an_ok_verdict(tmp_path: Path) -> None:
    status = tmp_path / "podman-status"
    status.write_text("ok\n")
    calls = tmp_path / "calls"
    path = fake_bin(tmp_path, podman=f'echo "podman $*" >> {calls}; exit 0',
                    runc="exit 0", mmdebstrap="exit 0", id="exit 99")  # fmt: skip
    result = run(path, status)
    assert (result.returncode, result.stderr) == (0, "")
    assert calls.read_text().split("\n")[0].startswith("podman image exists"), "nothing else"
    assert len(calls.read_text().splitlines()) == 1


def test_a_podman_that_cannot_run_containers_leaves_a_reason(tmp_path: Path) -> None:
    """Installed but unusable (a locked-down sandbox): exit 0, verdict names the error."""
    status = tmp_path / "podman-status"
    podman = (
        'case "$1" in image) exit 0;; '
        'run) echo "Error: runc: cannot set up user namespace" >&2; exit 125;; esac; exit 0'
    )
    path = fake_bin(tmp_path, podman=podman, runc="exit 0", mmdebstrap="exit 0")
    result = run(path, status)
    assert result.returncode == 0, result.stderr
    verdict = status.read_text()
    assert verdict.startswith("unavailable: podman run failed here:")
    assert "cannot set up user namespace" in verdict
    # The next run tries again rather than trusting the old verdict.
    again = run(path, status)
    assert again.returncode == 0
    assert "unavailable" in again.stderr


def test_a_working_podman_gets_an_ok_verdict(tmp_path: Path) -> None:
    status = tmp_path / "podman-status"
    podman = 'case "$1" in image) exit 0;; run) echo 10001;; esac; exit 0'
    path = fake_bin(tmp_path, podman=podman, runc="exit 0", mmdebstrap="exit 0")
    result = run(path, status)
    assert result.returncode == 0, result.stderr
    assert status.read_text() == "ok\n"


def test_no_root_no_sudo_is_a_failed_install(tmp_path: Path) -> None:
    """Like the other installers: it says what it needs and fails, never prompts."""
    path = fake_bin(
        tmp_path,
        id="echo 1000",
        sudo='if [ "$1" = "-n" ]; then echo "sudo: a password is required" >&2; exit 1; fi',
        **{"apt-get": "exit 0"},
    )
    result = run(path, tmp_path / "podman-status")
    assert result.returncode == 1
    assert "need root or passwordless sudo" in result.stderr
    assert not (tmp_path / "podman-status").exists()


def test_install_tools_runs_it() -> None:
    """scripts/install-tools.sh runs every install-*.sh, so `make test` runs this one."""
    text = (ROOT / "scripts" / "install-tools.sh").read_text()
    assert '"$here"/install-*.sh' in text
    assert SCRIPT.name.startswith("install-")
