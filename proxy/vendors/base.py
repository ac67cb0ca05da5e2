"""The typed result every vendor parser returns: the reply, and every status signal in it."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from proxy.vocab import VENDOR_NAMES, VendorName

BodyKind = Literal[
    "vendor",  # a vendor answer was recognised (it may still lack a code, e.g. a bare Fault)
    "salvaged",  # broken XML, but a status code could still be read out of it
    "empty",  # no body, or only whitespace
    "html",  # an HTML page (load balancer, WAF, proxy error page)
    "hostile",  # DTD / entity declarations: never expanded, never trusted
    "malformed",  # looked like XML/JSON but did not parse and nothing was salvaged
    "unrecognized",  # parsed, but is not this vendor's answer shape
]

#: What a status-bearing occurrence says:
#: ``code``   a vendor status code (MM7 ``StatusCode``, MoMS ``code``);
#: ``status`` a status word (MoMS ``status``): only the catalog's success words succeed;
#: ``fault``  a SOAP Fault (always a failure; its faultcode may name the code);
#: ``error``  an MM7 ``*ErrorRsp`` (RSErrorRsp, VASPErrorRsp): always a failure.
SignalKind = Literal["code", "status", "fault", "error"]


class Signal(NamedTuple):  # a tuple: built several times per answer, cheaply
    """One status-bearing occurrence in a reply, and where it came from.

    ``where`` names the place: a body element with its path and namespace
    (``Body/SubmitRsp/Status/StatusCode (REL-6-MM7-1-4)``), an attribute
    (``response@code``), a JSON key (``response.status``), or a header field line
    (``header X-MM7-Status-Code, line 2``). ``value`` is the value as sent, stripped; a
    JSON value that is not a string is spelled as JSON (``false``, ``null``, ``0``), with
    ``text`` False: it is never a success word, and never a known code. ``message`` is the
    text that goes with a code (MM7 ``StatusText``, MoMS ``message``), for the catalog's
    message rules. A fault carries its faultcode in ``value`` and its SOAP 1.2 Subcode
    chain (outermost first) in ``subcodes``.
    """

    kind: SignalKind
    where: str
    value: str | None = None
    text: bool = True
    message: str | None = None
    subcodes: tuple[str, ...] = ()


@dataclass(slots=True)  # built per request: frozen=True costs a call per field
class VendorReply:
    """What a vendor parser read from a gateway body.

    ``signals`` is **every** status-bearing occurrence the vendor's rules count, in
    document order: each ``StatusCode`` at a status position, each response or error
    response, each Fault, each MoMS ``code`` and ``status`` (attribute, element or JSON
    key, every repetition). The classifier decides over all of them, never over the first
    one found.

    The other fields describe the reply for the envelope: ``code`` is the first code
    signal's value (as sent, stripped), ``message``/``details`` its text, ``status`` the
    first MoMS status word, ``fault_code``/``fault_subcodes`` the first Fault's codes
    (``Client.Auth``, SOAP 1.2 ``Code/Value`` and its ``Subcode`` chain, without prefixes),
    ``fault`` whether there was a Fault, ``element`` the local name of the response that
    holds the first code, and ``data`` the success payload (MM7 ``message_id`` and
    ``mm7_version``; MoMS every other field of the response).

    A reply built by hand without ``signals`` is read from those fields instead
    (``signals_of``), so ``VendorReply("vendor", code="2002")`` means what it says.
    """

    body_kind: BodyKind
    code: str | None = None
    message: str | None = None
    details: str | None = None
    status: str | None = None
    transaction_id: str | None = None
    fault_code: str | None = None
    fault_subcodes: tuple[str, ...] = ()
    fault: bool = False
    element: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    # Derived from the body, like the fields above: two replies that read the same are
    # equal whatever places their signals were found in.
    signals: tuple[Signal, ...] = field(default=(), compare=False)


def signals_of(reply: VendorReply) -> tuple[Signal, ...]:
    """The reply's signals: its own, or, for a reply built by hand, read off its fields."""
    if reply.signals:
        return reply.signals
    derived: list[Signal] = []
    if reply.code is not None:
        derived.append(Signal("code", "body", reply.code, message=reply.message))
    if reply.status is not None:
        derived.append(Signal("status", "body", reply.status))
    if reply.fault:
        derived.append(Signal("fault", "body", reply.fault_code, subcodes=reply.fault_subcodes))
    if reply.element and reply.element.endswith("ErrorRsp"):
        derived.append(Signal("error", "body", reply.element))
    return tuple(derived)


__all__ = ["VENDOR_NAMES", "BodyKind", "Signal", "SignalKind", "VendorName", "VendorReply"]
