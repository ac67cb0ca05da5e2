"""bench/nginx.py: the rendered configs (no nginx is started)."""

from pathlib import Path

import pytest

from bench.nginx import gateway_conf, quoted, reverse_proxy_conf
from bench.replies import REPLIES, SLOW_PATH, UPLOAD_PATH


def test_the_gateway_serves_every_reply_verbatim(tmp_path: Path) -> None:
    conf = gateway_conf(tmp_path, 8490)
    for reply in REPLIES:
        assert (
            f"location = {reply.path} {{ default_type '{reply.content_type}';"
            f" return {reply.status} '{reply.body.decode()}'; }}"
        ) in conf
    assert f"location = {SLOW_PATH}" in conf
    assert "echo_sleep 2;" in conf
    assert f"location = {UPLOAD_PATH}" in conf
    assert "echo_read_request_body;" in conf
    assert "worker_processes 1;" in conf
    assert "access_log off;" in conf
    assert f"pid {tmp_path / 'nginx.pid'};" in conf


def test_the_reverse_proxy_streams_and_keeps_upstream_connections(tmp_path: Path) -> None:
    conf = reverse_proxy_conf(tmp_path, 8491, 8490)
    assert "server 127.0.0.1:8490; keepalive" in conf
    assert "proxy_request_buffering off;" in conf
    assert "client_max_body_size 0;" in conf
    assert 'proxy_set_header Connection "";' in conf


@pytest.mark.parametrize("text", ["it's", "$host", "a\\b", "two\nlines"])
def test_what_nginx_would_interpret_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="cannot quote"):
        quoted(text)
