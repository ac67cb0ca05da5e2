"""The typed result every vendor parser returns."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

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


@dataclass(slots=True)  # built per request: frozen=True costs a call per field
class VendorReply:
    """What a vendor parser read from a gateway body.

    ``code`` is the vendor status code exactly as sent (surrounding whitespace
    stripped), or ``None`` when the body holds none. ``data`` is the success
    payload: for MM7 ``message_id`` and ``mm7_version``; for MoMS every other
    field of the response. ``fault_code`` is the SOAP ``faultcode`` without its
    namespace prefix (SOAP 1.1: ``Client``, ``Client.Auth``, ``Throttled``; SOAP 1.2: the
    ``Code/Value``, ``Sender`` or ``Receiver``) and ``fault_subcodes`` the SOAP 1.2
    ``Subcode/Value`` chain, outermost first.

    The other signals a reply can carry, which the classifier checks against the code
    (``ok`` only when every one agrees): ``fault`` says the body held a SOAP Fault, and
    ``element`` is the local name of the MM7 response element that held the status
    (``SubmitRsp``, ``RSErrorRsp``, ``Status``, ...).
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


__all__ = ["VENDOR_NAMES", "BodyKind", "VendorName", "VendorReply"]
