"""The command line: check-config, codes (kept in sync with the README), translate."""

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from proxy.cli import main
from proxy.codes.catalog import load_catalog
from proxy.codes.table import render_codes
from tests.conftest import validate_envelope

ROOT = Path(__file__).resolve().parents[1]


def test_check_config_ok(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MM7_BASIC_AUTH", "x")
    assert main(["check-config", str(ROOT / "config" / "gateway-proxy.yaml")]) == 0
    assert "ok: 3 route(s)" in capsys.readouterr().out


def test_check_config_reports_every_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MM7_BASIC_AUTH", raising=False)
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "listen: 127.0.0.1:8080\nrouts: []\nroutes:\n"
        "  - {name: a, path_prefix: /a, vendor: mm7, upstream: 'http://x/${MM7_BASIC_AUTH}'}\n"
    )
    assert main(["check-config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: routs: unknown key" in err
    assert f"{bad}: routes[0].upstream: environment variable ${{MM7_BASIC_AUTH}} is not set" in err


def test_serve_refuses_a_bad_config(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("routes: []\n")
    result = subprocess.run(
        [sys.executable, "-m", "proxy", "serve", "--config", str(bad)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    line = json.loads(result.stdout.strip().splitlines()[-1])
    assert line["event"] == "config_error"
    assert "routes: must be a non-empty list" in line["error"]


def test_python_dash_m_and_console_script_agree() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "proxy", "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert out.startswith("gateway-proxy ")
    script = Path(sys.executable).parent / "gateway-proxy"
    assert script.exists()
    assert (
        subprocess.run([script, "--version"], capture_output=True, text=True, check=True).stdout
        == out
    )


@pytest.mark.parametrize("fmt", ["table", "json", "markdown"])
def test_codes_formats(capsys: pytest.CaptureFixture[str], fmt: str) -> None:
    assert main(["codes", "--format", fmt]) == 0
    out = capsys.readouterr().out
    assert "INVALID_ADDRESS" in out
    assert "2002" in out
    assert "606" in out
    if fmt == "json":
        data = json.loads(out)
        assert {c["code"] for c in data["canonical"]} >= {"OK", "TIMEOUT"}


def test_codes_one_vendor(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["codes", "--vendor", "moms", "--format", "json"]) == 0
    assert list(json.loads(capsys.readouterr().out)["vendors"]) == ["moms"]


def test_readme_code_table_is_generated_from_the_catalog() -> None:
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- codes:start -->\n(.*?)<!-- codes:end -->", readme, re.S)
    assert match, "README.md lacks the generated code table markers"
    assert match.group(1) == render_codes(load_catalog(), fmt="markdown"), (
        "README code table is stale: regenerate with `gateway-proxy codes --format markdown`"
    )


def test_translate_a_captured_reply(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capture = tmp_path / "reply.xml"
    capture.write_text(
        "<Envelope><Body><Fault><faultcode>Client</faultcode><detail><RSErrorRsp><Status>"
        "<StatusCode>2007</StatusCode></Status></RSErrorRsp></detail></Fault></Body></Envelope>"
    )
    assert main(["translate", "--vendor", "mm7", "--http-status", "500", str(capture)]) == 0
    env = json.loads(capsys.readouterr().out)
    validate_envelope(env)
    assert (env["code"], env["vendor"]["code"], env["vendor"]["http_status"]) == (
        "INVALID_REQUEST", "2007", 500,
    )  # fmt: skip


def test_translate_from_stdin() -> None:
    body = b'{"response": {"code": 606, "status": "error", "message": "opted out"}}'
    result = subprocess.run(
        [sys.executable, "-m", "proxy", "translate", "--vendor", "moms", "-"],
        input=body, capture_output=True, check=True, env={**os.environ},
    )  # fmt: skip
    env = json.loads(result.stdout)
    validate_envelope(env)
    assert env["code"] == "RECIPIENT_OPTED_OUT"


def test_translate_reads_status_headers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capture = tmp_path / "bare-fault.xml"
    capture.write_text(
        "<Envelope><Body><Fault><faultcode>Server</faultcode></Fault></Body></Envelope>"
    )
    argv = ["translate", "--vendor", "mm7", "--http-status", "503", str(capture)]
    assert main([*argv, "--header", "X-MM7-Status-Code: 2002", "--header", "Retry-After:9"]) == 0
    env = json.loads(capsys.readouterr().out)
    validate_envelope(env)
    assert (env["code"], env["vendor"]["code"], env["retryable"]) == (
        "INVALID_ADDRESS",
        "2002",
        True,
    )
    assert main([*argv, "--header", "no-colon"]) == 2
    assert "NAME:VALUE" in capsys.readouterr().err


def test_translate_missing_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["translate", "--vendor", "mm7", "/nonexistent/x.xml"]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_simulate_rejects_half_credentials(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--client-id", "x"]) == 2
    assert "--client-id and --token go together" in capsys.readouterr().err


def _serve(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "proxy", "serve", "--config", str(config), *args],
        capture_output=True, text=True, timeout=60, check=False,
        env={k: v for k, v in os.environ.items() if k != "MM7_BASIC_AUTH"},
    )  # fmt: skip


def test_a_missing_secret_is_named_readably_and_kept_secret(tmp_path: Path) -> None:
    """The line a crash-looping pod shows says which variable is missing."""
    config = tmp_path / "gw.yaml"
    config.write_text(
        "routes: [{name: mms, path_prefix: /mm7, vendor: mm7, upstream: 'http://127.0.0.1:9/',"
        " headers: {Authorization: 'Basic ${MM7_BASIC_AUTH}'}}]\n"
    )
    result = _serve(config)
    assert result.returncode == 2
    (line,) = [json.loads(raw) for raw in result.stdout.splitlines()]
    assert line["event"] == "config_error"
    assert line["key"] == "routes[0].headers.Authorization"
    assert line["reason"] == "environment variable ${MM7_BASIC_AUTH} is not set"
    console = _serve(config, "--log-format", "console")
    assert "config_error" in console.stdout
    assert "environment variable ${MM7_BASIC_AUTH} is not set" in console.stdout
    assert not console.stdout.lstrip().startswith("{")


def test_a_port_in_use_is_one_line_and_a_failure(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = tmp_path / "gw.yaml"
        config.write_text(
            f"listen: 127.0.0.1:{port}\nadmin_listen: 127.0.0.1:0\n"
            "routes: [{name: a, path_prefix: /a, vendor: mm7, upstream: 'http://127.0.0.1:9/'}]\n"
        )
        result = _serve(config)
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    errors = [json.loads(raw) for raw in result.stdout.splitlines() if '"listen_error"' in raw]
    assert [e["error"] for e in errors] == [
        f"cannot listen on 127.0.0.1:{port}: address already in use"
    ]


def test_every_subcommand_and_option_has_help() -> None:
    from proxy.cli import COMMANDS, build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for command in COMMANDS:
        assert command.summary
        assert command.description
        for action in sub.choices[command.name]._actions:
            assert action.help, f"{command.name} {action.option_strings or action.dest}"
    serve_help = sub.choices["serve"].format_help()
    assert "config/gateway-proxy.yaml" in serve_help
    assert "GATEWAY_PROXY_CONFIG" in serve_help
    assert "200" in sub.choices["translate"].format_help()
