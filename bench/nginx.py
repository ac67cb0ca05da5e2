"""nginx instances for the bench: the fake gateway and the reference reverse proxy.

Each instance lives in its own directory (its nginx.conf, pid file, error log and temp
paths) and listens on loopback ports of its own, so it needs no system config and never
touches the packaged service. ``worker_processes 1``, ``access_log off``, and nothing
that could make the gateway the bottleneck: fixed ``return`` replies held in memory.

The gateway also has two locations that need the echo module (Debian's
libnginx-mod-http-echo, installed by scripts/install-bench-tools.sh): ``SLOW_PATH``
answers after ``SLOW_SECONDS`` (``echo_sleep``), and ``UPLOAD_PATH`` reads the whole
request body before answering (``echo_read_request_body``; a bare ``return`` would answer
at once and let a proxy drop the rest of an upload, which would measure nothing). The
body goes to an unlinked temp file in the instance's directory past 1 MiB.

The reverse proxy streams request bodies upstream (``proxy_request_buffering off``: no
temp file) and keeps upstream connections alive (``keepalive`` in the upstream block,
HTTP/1.1, an empty ``Connection`` header).
"""

import os
import resource
import shutil
import subprocess
from pathlib import Path

from bench.replies import MM7_SUBMIT_OK, MOMS_JSON_OK, REPLIES, SLOW_PATH, SLOW_SECONDS, UPLOAD_PATH

ECHO_MODULE = Path("/usr/lib/nginx/modules/ngx_http_echo_module.so")
INSTALL_HINT = "run scripts/install-bench-tools.sh (make bench runs it)"
_TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def nginx_binary() -> str:
    """The nginx program (``/usr/sbin`` is not on every user's PATH)."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise FileNotFoundError(f"nginx not found: {INSTALL_HINT}")
    return found


def quoted(text: bytes | str) -> str:
    """``text`` as a single-quoted nginx string; refuses what nginx would interpret."""
    value = text.decode() if isinstance(text, bytes) else text
    if any(c in value for c in "'$\\\n\r"):
        raise ValueError(f"cannot quote for nginx (has ' $ \\ or a line break): {value[:60]!r}")
    return f"'{value}'"


def _main_block(root: Path, modules: tuple[Path, ...] = ()) -> str:
    loads = "".join(f"load_module {m};\n" for m in modules)
    temps = "".join(f"  {name}_temp_path {root / name};\n" for name in _TEMP_PATHS)
    # A container may not raise RLIMIT_NOFILE past its hard limit, even as root.
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nofile = 65536 if hard == resource.RLIM_INFINITY else min(65536, hard)
    return (
        f"{loads}worker_processes 1;\ndaemon off;\npid {root / 'nginx.pid'};\n"
        f"error_log {root / 'error.log'} warn;\nworker_rlimit_nofile {nofile};\n"
        f"events {{ worker_connections {max(1024, nofile - 64)}; }}\n"
        f"http {{\n  access_log off;\n{temps}"
        "  keepalive_requests 10000000;\n  keepalive_timeout 75s;\n"
    )


def gateway_conf(root: Path, port: int) -> str:
    """The fake gateway: the four replies of ``bench.replies``, plus the slow and upload paths."""
    locations = [
        f"    location = {r.path} {{ default_type {quoted(r.content_type)};"
        f" return {r.status} {quoted(r.body)}; }}\n"
        for r in REPLIES
    ]
    locations.append(
        f"    location = {SLOW_PATH} {{ default_type {quoted(MM7_SUBMIT_OK.content_type)};"
        f" echo_sleep {SLOW_SECONDS}; echo -n {quoted(MM7_SUBMIT_OK.body)}; }}\n"
    )
    locations.append(
        f"    location = {UPLOAD_PATH} {{ client_max_body_size 0; client_body_buffer_size 1m;"
        f" default_type {quoted(MOMS_JSON_OK.content_type)}; echo_read_request_body;"
        f" echo -n {quoted(MOMS_JSON_OK.body)}; }}\n"
    )
    return (
        _main_block(root, (ECHO_MODULE,))
        + f"  server {{\n    listen 127.0.0.1:{port} backlog=8192;\n"
        + "".join(locations)
        + "    location / { return 404; }\n  }\n}\n"
    )


def reverse_proxy_conf(root: Path, port: int, upstream_port: int) -> str:
    """A plain nginx reverse proxy to the gateway: streamed bodies, keep-alive upstream."""
    return _main_block(root) + (
        f"  upstream gateway {{ server 127.0.0.1:{upstream_port}; keepalive 256;"
        " keepalive_requests 10000000; }\n"
        f"  server {{\n    listen 127.0.0.1:{port};\n    client_max_body_size 0;\n"
        "    location / {\n      proxy_pass http://gateway;\n      proxy_http_version 1.1;\n"
        '      proxy_set_header Connection "";\n      proxy_request_buffering off;\n'
        "      proxy_read_timeout 60s;\n    }\n  }\n}\n"
    )


def start(root: Path, conf: str, cpus: str) -> subprocess.Popen[bytes]:
    """Write ``conf`` into ``root`` and start nginx on ``cpus`` (in the foreground).

    Raises ``FileNotFoundError`` when nginx or the echo module the gateway loads is missing.
    """
    if "load_module" in conf and not ECHO_MODULE.is_file():
        raise FileNotFoundError(f"{ECHO_MODULE} not found: {INSTALL_HINT}")
    root.mkdir(parents=True, exist_ok=True)
    # Run as root, nginx's workers are "nobody": they must reach their temp paths.
    os.chmod(root, 0o711)  # noqa: S103 - traverse only; nothing in it is secret
    (root / "nginx.conf").write_text(conf)
    error_log = root / "error.log"
    command = [nginx_binary(), "-p", str(root), "-c", str(root / "nginx.conf")]
    with (root / "stderr.log").open("wb") as stderr:
        return subprocess.Popen(
            ["taskset", "-c", cpus, *command, "-e", str(error_log)],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
