"""promtool accepts the shipped alert rules and their unit tests pass.

Runs the real ``promtool`` (Debian's prometheus package). A missing promtool fails the
test: scripts/install-prometheus.sh installs it, and ``make test`` runs that script.
"""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "helm/gateway-proxy/files/prometheus-rules.yaml"
RULE_TESTS = ROOT / "tests/promtool/prometheus-rules.test.yaml"

pytestmark = pytest.mark.integration


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool not found on PATH: run scripts/install-prometheus.sh (make test runs it)"
        )
    return subprocess.run(
        [path, *args], capture_output=True, text=True, timeout=120, check=False, cwd=ROOT
    )


def test_promtool_check_rules() -> None:
    """The rule file parses, every expression is valid PromQL, every template renders."""
    done = promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 5 rules found" in done.stdout


def test_promtool_test_rules() -> None:
    """Each alert fires on its trigger series and stays quiet just under its threshold."""
    done = promtool("test", "rules", str(RULE_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
