"""A real TLS relay for the tests: an HTTPS server (Python's ``ssl``, OpenSSL) that may
require a client certificate, answering every request with an MM7 SubmitRsp 1000.

It runs in threads beside the test's event loop, does each handshake itself so it can
record the client certificate a connection presented (``serials``), and closes a refused
connection the way production servers do (a lingering close: the alert is not lost to a
reset). Certificates come from ``trustme`` (a real CA); nothing is mocked.
"""

import contextlib
import os
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import trustme

from tests.test_server import SUBMIT_RSP

RELAY_NAME = "relay.test"
ANSWER = SUBMIT_RSP.format(code="1000", text="Success").encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        relay = self.server.relay
        with relay.lock:
            relay.requests.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(ANSWER)))
        if relay.close_each:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(ANSWER)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    relay: "Relay"

    def finish_request(self, request: Any, client_address: Any) -> None:
        relay = self.relay
        try:
            request.do_handshake()
        except (ssl.SSLError, OSError) as exc:
            with relay.lock:
                relay.refused.append(str(getattr(exc, "reason", exc)))
            _linger(request)
            return
        cert = request.getpeercert()
        with relay.lock:
            relay.serials.append(cert.get("serialNumber") if cert else None)
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client gone mid-answer: not the test's business


def _linger(sock: ssl.SSLSocket) -> None:
    """Close after the alert went out, reading what the client sent meanwhile (as nginx's
    lingering close does), so the kernel does not answer it with a reset."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(2)
        while sock.recv(65536):
            pass
    sock.close()


class Relay:
    """An HTTPS relay on 127.0.0.1 presenting ``RELAY_NAME``'s certificate from ``ca``.

    ``clients``: the CA whose client certificates it requires (None: it asks for none).
    ``tls13``: TLS 1.3 only (else TLS 1.2 only). ``close_each``: one request per
    connection, so that every request opens a new one.
    """

    def __init__(
        self,
        ca: trustme.CA,
        *,
        clients: trustme.CA | None = None,
        tls13: bool = True,
        close_each: bool = False,
    ) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert(RELAY_NAME).configure_cert(context)
        version = ssl.TLSVersion.TLSv1_3 if tls13 else ssl.TLSVersion.TLSv1_2
        context.minimum_version = context.maximum_version = version
        if clients is not None:
            clients.configure_trust(context)
            context.verify_mode = ssl.CERT_REQUIRED
        self.close_each = close_each
        self.lock = threading.Lock()
        self.requests: list[str] = []
        self.serials: list[str | None] = []
        self.refused: list[str] = []
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.relay = self
        self._server.socket = context.wrap_socket(
            self._server.socket, server_side=True, do_handshake_on_connect=False
        )
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self._server.server_address[1]}/mm7"

    def __enter__(self) -> "Relay":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def write_pem(blob: trustme.Blob, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    blob.write_to_path(str(path))
    return path


def serial_of(cert: trustme.LeafCert) -> str:
    """The serial number as the relay's ``getpeercert`` spells it."""
    from cryptography import x509

    parsed = x509.load_pem_x509_certificate(cert.cert_chain_pems[0].bytes())
    text = f"{parsed.serial_number:X}"
    return text if len(text) % 2 == 0 else "0" + text


class SecretMount:
    """A folder laid out as Kubernetes mounts a Secret: the files are symlinks through
    ``..data``, which points at a timestamped folder; ``swap`` writes a new one and
    renames a symlink over ``..data``, atomically, as the kubelet does."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._generation = 0
        root.mkdir(parents=True, exist_ok=True)

    def swap(self, files: dict[str, bytes]) -> None:
        self._generation += 1
        folder = self.root / f"..2026_01_01_00_00_0{self._generation}.000000001"
        folder.mkdir()
        for name, data in files.items():
            (folder / name).write_bytes(data)
        link = self.root / "..data_tmp"
        link.symlink_to(folder.name)
        os.replace(link, self.root / "..data")
        for name in files:
            visible = self.root / name
            if not visible.is_symlink():
                visible.symlink_to(f"..data/{name}")

    def path(self, name: str) -> Path:
        return self.root / name


__all__ = ["RELAY_NAME", "Relay", "SecretMount", "serial_of", "write_pem"]
