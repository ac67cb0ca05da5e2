"""bench/wrk.py: the Lua mix and the parsing of its JSON line (no wrk is run)."""

import pytest

from bench.replies import REPLIES
from bench.wrk import lua_script, parse_output


def test_the_script_sends_every_reply_request() -> None:
    script = lua_script()
    for reply in REPLIES:
        assert f'path = "{reply.path}"' in script
        assert reply.request_body.decode() in script
    assert "function done(summary, latency, requests)" in script


def test_the_done_line_is_parsed() -> None:
    out = (
        "Running 5s test @ http://127.0.0.1:1\n  Latency Distribution\n"
        'WRK_JSON {"requests": 5000, "duration_us": 5000000, "non_2xx": 1250, '
        '"socket_errors": 0, "p50_us": 210.0, "p90_us": 300.0, "p99_us": 950.5, "max_us": 4000.0}\n'
    )
    result = parse_output(out, connections=16)
    assert result.rps == 1000.0
    assert (result.non_2xx, result.p50_us, result.p99_us) == (1250, 210.0, 950.5)


def test_a_run_without_the_line_is_an_error() -> None:
    with pytest.raises(ValueError, match="WRK_JSON"):
        parse_output("unable to connect to 127.0.0.1:1 Connection refused\n", connections=1)
