"""The simulator's settings and command-line options (proxy/tools/sim/settings.py)."""

import argparse
from pathlib import Path

import pytest

from proxy.tools.sim import SimSettings, add_simulate_arguments, settings_from_args


def parse(*argv: str) -> SimSettings:
    parser = argparse.ArgumentParser()
    add_simulate_arguments(parser)
    return settings_from_args(parser.parse_args(argv))


def test_settings_defaults() -> None:
    assert parse() == SimSettings(host="127.0.0.1", port=8090)


def test_settings_from_all_options() -> None:
    settings = parse(
        "--listen", "10.1.2.3:9000", "--latency", "20", "--seed", "3", "--mix", "m.yaml",
        "--client-id", "c", "--token", "s3cr3t-t0ken-Zq9",
    )  # fmt: skip
    assert settings == SimSettings("10.1.2.3", 9000, 20, 3, Path("m.yaml"), "c", "s3cr3t-t0ken-Zq9")
    assert "s3cr3t" not in repr(settings)


def test_callback_options() -> None:
    settings = parse("--callback-url", "http://127.0.0.1:8080/inbound/mm7", "--callback-delay", "0")
    assert settings.callback_url == "http://127.0.0.1:8080/inbound/mm7"
    assert settings.callback_delay_ms == 0
    assert (parse().callback_url, parse().callback_delay_ms) == (None, 500)
    assert parse("--callback-url", "https://[::1]:8443/x").callback_url == "https://[::1]:8443/x"


@pytest.mark.parametrize(
    "argv",
    [
        ("--listen", "nohost"),
        ("--latency", "-1"),
        ("--listen", "h:99999"),
        ("--callback-url", "127.0.0.1:8080/inbound"),
        ("--callback-url", "ftp://host/x"),
        ("--callback-url", "http:///no-host"),
        ("--callback-url", "http://h:99999/x"),
        ("--callback-delay", "soon"),
        ("--callback-delay", "-5"),
    ],
)
def test_bad_option_values_are_usage_errors(argv: tuple[str, ...]) -> None:
    with pytest.raises(SystemExit) as info:
        parse(*argv)
    assert info.value.code == 2


def test_client_id_without_token_is_refused() -> None:
    with pytest.raises(ValueError, match="--client-id and --token"):
        parse("--client-id", "c")


def test_settings_from_a_hand_made_namespace_are_checked() -> None:
    ns = argparse.Namespace(listen="x", latency=0, seed=None, mix=None)
    with pytest.raises(ValueError, match="--listen"):
        settings_from_args(ns)
    ns = argparse.Namespace(listen=":1", latency=-5, seed=None, mix=None)
    with pytest.raises(ValueError, match="--latency"):
        settings_from_args(ns)
    ns = argparse.Namespace(listen=":1", latency=0, seed=None, mix=None, callback_url="x")
    with pytest.raises(ValueError, match="--callback-url"):
        settings_from_args(ns)
    ns = argparse.Namespace(listen=":1", latency=0, seed=None, mix=None, callback_delay=-1)
    with pytest.raises(ValueError, match="--callback-delay"):
        settings_from_args(ns)
