"""``make install`` on a machine without a usable Python (Makefile): clear messages, no debris.

The Makefile is copied into an empty directory and run with ``PYTHON`` pointing at a fake
interpreter, so nothing is installed: the fake either is too old or cannot make a venv
(Debian without python3-venv leaves a half-made one behind).
"""

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAKE = shutil.which("make") or "make"  # a prerequisite of `make test` itself

# Answers `-c <version check>` with $VERSION_OK; `-m venv DIR` leaves DIR/bin/python and fails.
FAKE_PYTHON = """#!/bin/sh
if [ "$1" = "-c" ]; then exit "$VERSION_OK"; fi
if [ "$1" = "--version" ]; then echo "Python 3.9.2"; exit 0; fi
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
  mkdir -p "$3/bin" && touch "$3/bin/python" && chmod +x "$3/bin/python"
  echo "The virtual environment was not created successfully because ensurepip is not" >&2
  exit 1
fi
exit 2
"""


def make_install(tmp_path: Path, version_ok: bool) -> subprocess.CompletedProcess[str]:
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    (tmp_path / "pyproject.toml").write_text("")
    fake = tmp_path / "fake-python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    return subprocess.run(
        [MAKE, "-s", "install", f"PYTHON={fake}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
        env={"PATH": "/usr/bin:/bin", "VERSION_OK": "0" if version_ok else "1"},
    )  # fmt: skip


def test_a_failed_venv_is_removed_with_a_hint(tmp_path: Path) -> None:
    (tmp_path / ".venv" / "bin").mkdir(parents=True)  # a half-made venv from an earlier run
    (tmp_path / ".venv" / "bin" / "python").touch()
    result = make_install(tmp_path, version_ok=True)
    assert result.returncode != 0
    assert "apt install python3-venv" in result.stderr
    assert not (tmp_path / ".venv").exists()


def test_an_old_python_is_named(tmp_path: Path) -> None:
    result = make_install(tmp_path, version_ok=False)
    assert result.returncode != 0
    assert "needs Python >= 3.11" in result.stderr
    assert "Python 3.9.2" in result.stderr
    assert not (tmp_path / ".venv").exists()
