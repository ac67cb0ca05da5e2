"""The config's TLS files as ``ssl`` contexts, re-read when they change.

One place builds every context the proxy uses, so ``check-config`` refuses exactly what
the running proxy could not load:

* ``client_context(tls)``: for a route's gateway. Verification is always on (a private CA
  goes in ``ca_file``, never a switch to turn it off); ``cert_file``/``key_file`` is the
  client certificate presented when the gateway asks (mTLS).
* ``server_context(tls)``: for ``listen_tls``.
* ``problem(exc)``: why a file could not be loaded, as a ``check-config`` reason.

Certificates rotate: cert-manager rewrites a Secret, and Kubernetes swaps the mounted
folder through its ``..data`` symlink at once. ``Watched`` notices: it keeps the
``stat`` of each file, through the symlinks, and says when one changed. ``ClientContexts``
(the upstream pool's) looks at connect time, a few ``stat`` calls per new connection,
and builds a fresh context for the new ones; connections already open keep theirs.
``ServerContext`` (a listener's) loads the new chain into the same context, which the
listening socket keeps using: new handshakes get the new certificate. Both also re-read
on ``reload()`` (SIGHUP). A file caught half-written (a key that does not match its new
certificate) is not taken: the context in use stays, a warning is logged, and the next
look tries again; no request fails for a rotation.
"""

import os
import ssl
from collections.abc import Callable, Iterable
from pathlib import Path

from proxy.config.model import ServerTLS, UpstreamTLS
from proxy.observability.logs import get_logger

_log = get_logger("gateway_proxy")

# OpenSSL's reasons for a file it could not take, in check-config's words.
_REASONS = {
    "KEY_VALUES_MISMATCH": "the private key does not match the certificate",
    "PEM_LIB": "not a PEM file of the expected kind",
    "NO_START_LINE": "not a PEM file of the expected kind",
    "BAD_END_LINE": "not a PEM file of the expected kind",
    "CA_MD_TOO_WEAK": "a certificate is signed with a digest that is too weak",
    "EE_KEY_TOO_SMALL": "the key is too small",
    "CA_KEY_TOO_SMALL": "a CA's key is too small",
}


def client_context(tls: UpstreamTLS | None) -> ssl.SSLContext:
    """A verifying client context for a gateway. Raises ``OSError`` (``ssl.SSLError``)."""
    if tls is None:
        return ssl.create_default_context()
    context = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
    if tls.cert_file is not None:
        context.load_cert_chain(str(tls.cert_file), str(tls.key_file or tls.cert_file))
    return context


def server_context(tls: ServerTLS) -> ssl.SSLContext:
    """A server context presenting ``tls``'s chain. Raises ``OSError`` (``ssl.SSLError``)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    return context


def problem(exc: OSError) -> str:
    """Why a TLS file could not be loaded: the OS's words, or OpenSSL's reason in plain
    words (never the file's content)."""
    if isinstance(exc, ssl.SSLError):
        reason = str(exc.reason or "")
        return _REASONS.get(reason, f"OpenSSL refused it ({reason or type(exc).__name__})")
    return (exc.strerror or type(exc).__name__).lower()


def files_of(tls: UpstreamTLS | ServerTLS) -> tuple[Path, ...]:
    """The files a TLS setting reads."""
    if isinstance(tls, ServerTLS):
        return tls.cert_file, tls.key_file
    return tuple(p for p in (tls.ca_file, tls.cert_file, tls.key_file) if p is not None)


class Watched:
    """The files of one TLS setting, and whether they changed since ``mark``.

    ``failed`` is the signature a build last failed on: the same files are not tried (or
    logged) again until they change once more.
    """

    __slots__ = ("_paths", "_seen", "failed")

    def __init__(self, paths: Iterable[Path]) -> None:
        self._paths = tuple(paths)
        self._seen = self.signature()
        self.failed: tuple[tuple[int, int, int, int], ...] | None = None

    def signature(self) -> tuple[tuple[int, int, int, int], ...]:
        """Each file's (device, inode, size, mtime), through symlinks; a missing file is
        zeros (it is changing: the next look sees where it lands)."""
        out = []
        for path in self._paths:
            try:
                st = os.stat(path)
            except OSError:
                out.append((0, 0, 0, 0))
            else:
                out.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
        return tuple(out)

    def changed(self) -> tuple[tuple[int, int, int, int], ...] | None:
        """The new signature when a file changed since the last ``mark``, else None."""
        now = self.signature()
        return now if now != self._seen else None

    def mark(self, signature: tuple[tuple[int, int, int, int], ...]) -> None:
        self._seen = signature


def _rebuilt(
    what: str, watched: Watched, build: Callable[[], None], *, force: bool = False
) -> bool:
    """Run ``build`` when ``watched`` changed (or ``force``); True when it did. A failed
    build keeps what is in use, logs why, and is tried again at the next look."""
    signature = watched.changed()
    if (signature is None or signature == watched.failed) and not force:
        return False
    signature = signature if signature is not None else watched.signature()
    try:
        build()
    except OSError as exc:
        watched.failed = signature
        _log.warning("tls_reload_failed", tls=what, reason=problem(exc))
        return False
    watched.failed = None
    watched.mark(signature)
    _log.info("tls_reloaded", tls=what)
    return True


class ClientContexts:
    """The client contexts of the upstream pool, one per TLS setting, re-read on change.

    ``None`` (a route without ``tls``) is the system store, built on first use and never
    re-read.
    """

    def __init__(self) -> None:
        self._contexts: dict[UpstreamTLS | None, ssl.SSLContext] = {}
        self._watched: dict[UpstreamTLS, Watched] = {}

    def context_for(self, tls: UpstreamTLS | None) -> ssl.SSLContext:
        """The context to open a new connection with. Raises ``OSError`` only when no
        context was ever built for ``tls`` (its files are unreadable from the start)."""
        context = self._contexts.get(tls)
        if context is None:
            # The files' signature first: a change while the context is built is seen.
            watched = Watched(files_of(tls)) if tls is not None else None
            context = self._contexts[tls] = client_context(tls)
            if tls is not None and watched is not None:
                self._watched[tls] = watched
            return context
        if tls is not None:
            self._refresh(tls)
            context = self._contexts[tls]
        return context

    def reload(self) -> None:
        """Re-read every setting's files now (SIGHUP)."""
        for tls in list(self._watched):
            self._refresh(tls, force=True)

    def _refresh(self, tls: UpstreamTLS, *, force: bool = False) -> None:
        def build() -> None:
            self._contexts[tls] = client_context(tls)

        _rebuilt("upstream", self._watched[tls], build, force=force)


class ServerContext:
    """A listener's context; ``check`` loads a changed chain into it in place."""

    def __init__(self, tls: ServerTLS) -> None:
        self._tls = tls
        self._watched = Watched(files_of(tls))
        self.context = server_context(tls)

    def check(self, *, force: bool = False) -> bool:
        """Load the chain again when its files changed (or ``force``); True when it did."""
        tls = self._tls

        def build() -> None:
            self.context.load_cert_chain(str(tls.cert_file), str(tls.key_file))

        return _rebuilt("listen", self._watched, build, force=force)


__all__ = [
    "ClientContexts",
    "ServerContext",
    "Watched",
    "client_context",
    "files_of",
    "problem",
    "server_context",
]
