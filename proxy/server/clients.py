"""Who may send: the app's ``Proxy-Authorization`` against the configured ``clients`` (pure).

``Clients(config.clients)`` is built once; ``identify(header, route)`` answers for one
request on a send route, before it is admitted::

    no clients configured          the client "anonymous": anyone who reaches ``listen``
    Bearer <key>                   the client whose key it is
    Basic base64(<name>:<key>)     the client of that name, when the key is its own
    missing, malformed, wrong      Denied("client_unauthenticated"): 407 with
                                   Proxy-Authenticate (the gateway is not contacted)
    a route outside its routes     Denied("client_forbidden"): 403

Keys are compared in constant time: each configured key is kept only as its keyed
BLAKE2b digest (a MAC) under a key drawn at start-up, and a presented key is looked up by
its own digest, so neither the look-up's time nor a stored value says anything about a
key. (BLAKE2b, built into CPython, costs a third of OpenSSL's HMAC-SHA256 per call.) A key is never
logged, labelled or forwarded (``Proxy-Authorization`` is hop-by-hop: headers.py drops
it), and a denial's detail never quotes what the app sent.
"""

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from proxy.config import Client
from proxy.observability.metrics import ANONYMOUS
from proxy.vocab import FailureKind

#: The challenges of a 407: both forms are accepted.
CHALLENGES = ('Bearer realm="gateway-proxy"', 'Basic realm="gateway-proxy", charset="UTF-8"')
_HOW = "send Proxy-Authorization: Bearer <key> (or Basic base64(<client>:<key>))"


@dataclass(frozen=True, slots=True)
class Denied:
    """The request is refused; ``client`` is who it was, when that is known."""

    kind: FailureKind
    detail: str
    client: str = ANONYMOUS


class Clients:
    """The configured clients, ready for ``identify``."""

    __slots__ = ("_by_digest", "_pepper", "_routes", "enabled", "names")

    def __init__(self, clients: Iterable[Client]) -> None:
        clients = tuple(clients)
        self.enabled = bool(clients)
        self.names = tuple(c.name for c in clients)
        self._pepper = secrets.token_bytes(32)
        self._by_digest = {self._digest(c.key.encode()): c.name for c in clients}
        self._routes = {c.name: c.routes for c in clients}

    def _digest(self, key: bytes) -> bytes:
        return hashlib.blake2b(key, key=self._pepper, digest_size=32).digest()

    def identify(self, header: str | None, route: str) -> str | Denied:
        """The client sending on ``route`` with ``Proxy-Authorization: header``, or why
        it is refused."""
        if not self.enabled:
            return ANONYMOUS
        if not header:
            return Denied("client_unauthenticated", f"this proxy needs a client key: {_HOW}")
        name = self._client_of(header)
        if name is None:
            return Denied(
                "client_unauthenticated", f"the Proxy-Authorization key is not valid: {_HOW}"
            )
        allowed = self._routes[name]
        if allowed is not None and route not in allowed:
            return Denied("client_forbidden", f"client {name!r} may not use route {route!r}", name)
        return name

    def _client_of(self, header: str) -> str | None:
        scheme, _, credentials = header.strip().partition(" ")
        credentials = credentials.strip()
        scheme = scheme.lower()
        if scheme == "bearer":
            return self._by_digest.get(self._digest(credentials.encode("utf-8", "surrogateescape")))
        if scheme != "basic":
            return None
        try:
            decoded = base64.b64decode(credentials, validate=True)
        except (binascii.Error, ValueError):
            return None
        user, colon, key = decoded.partition(b":")
        found = self._by_digest.get(self._digest(key)) if colon else None
        # Both parts must agree; compared in constant time like the key itself.
        if found is None or not hmac.compare_digest(found.encode(), user):
            return None
        return found


__all__ = ["ANONYMOUS", "CHALLENGES", "Clients", "Denied"]
