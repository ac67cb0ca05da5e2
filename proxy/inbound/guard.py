"""The relay's checks on an inbound route (pure): who may post callbacks.

``check_relay(route, authorization, peer)`` returns None when the callback may go on, or
the ``RelayRefusal`` to answer::

    allow_from   the peer address is in none of the route's networks    403  relay_forbidden
    auth.basic   no ``Authorization: Basic``, or other credentials        401  relay_unauthenticated

A refused callback is never forwarded: the handler answers it with MM7 StatusCode 4001
(Improper identification) in the request's own namespace, logs and counts it. The
credentials are compared in constant time; a refusal's detail never quotes them.
"""

import base64
import binascii
import hmac
import ipaddress
from dataclasses import dataclass

from proxy.config import InboundRoute
from proxy.vocab import RelayRejection

#: The challenge of a 401.
CHALLENGE = 'Basic realm="gateway-proxy", charset="UTF-8"'


@dataclass(frozen=True, slots=True)
class RelayRefusal:
    """The HTTP status of the refusal, its metric reason, and why (for the log)."""

    status: int
    reason: RelayRejection
    detail: str


def check_relay(
    route: InboundRoute, authorization: str | None, peer: str | None
) -> RelayRefusal | None:
    """Whether the relay at ``peer`` with ``Authorization: authorization`` may post to
    ``route``; see the module docstring."""
    if route.allow_from and not _allowed(route, peer):
        return RelayRefusal(403, "relay_forbidden", "the relay's address is not in allow_from")
    if route.auth_basic is not None and not _authorized(route.auth_basic, authorization):
        why = "no Basic credentials" if not authorization else "wrong Basic credentials"
        return RelayRefusal(401, "relay_unauthenticated", f"the relay sent {why}")
    return None


def _allowed(route: InboundRoute, peer: str | None) -> bool:
    try:
        address = ipaddress.ip_address((peer or "").split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in route.allow_from)


def _authorized(expected: str, authorization: str | None) -> bool:
    scheme, _, credentials = (authorization or "").strip().partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        presented = base64.b64decode(credentials.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(presented, expected.encode())


__all__ = ["CHALLENGE", "RelayRefusal", "check_relay"]
