"""What an inbound callback is, once read: frozen values, no behaviour.

``parse_callback`` (mm7.py) returns one of the three ``Callback`` kinds or a
``CallbackError``; ``build_event`` (event.py) and ``build_answer`` (answer.py) read them::

    Callback = DeliveryReport   DeliveryReportReq: did the message reach the handset
             | ReadReply        ReadReplyReq: was it read
             | Deliver          DeliverReq: a message a subscriber sent in

Each carries an ``Echo``: what the answer copies from the request (SOAP version, MM7
namespace and version, TransactionID). A ``CallbackError`` carries one too, filled as far
as the request could be read, so even a refusal answers in the relay's own dialect.

Mogreet's incoming-message POST is a ``MogreetCallback`` (or a ``MogreetError``), read by
mogreet.py.

Every field here is personal data or may be (addresses, subjects, content): never log
these values.
"""

from dataclasses import dataclass
from typing import ClassVar, Literal, get_args

RequestKind = Literal["DeliveryReportReq", "ReadReplyReq", "DeliverReq"]
REQUEST_KINDS: tuple[RequestKind, ...] = get_args(RequestKind)
SoapVersion = Literal["1.1", "1.2"]
AddressType = Literal["number", "email", "short_code"]
ADDRESS_TYPES: tuple[AddressType, ...] = get_args(AddressType)

#: Why a callback was refused; ``CallbackError.code`` is the MM7 status to answer.
ErrorReason = Literal[
    "oversize",  # body longer than max_bytes: not read at all (2007)
    "empty",  # no body, or only whitespace (2007)
    "html",  # an HTML page, not SOAP (2007)
    "hostile",  # a DTD or entity declaration: never expanded (2007)
    "malformed",  # not well-formed XML, or a MIME body that cannot be split (2007)
    "wrong_root",  # well-formed XML that is not an MM7 request (4004)
    "unsupported",  # an MM7 request other than the three callbacks, e.g. SubmitReq (4003)
    "missing_field",  # a callback without a field it cannot do without (4004)
    "ambiguous",  # a field given twice with two values: which one is meant? (Mogreet)
    "unavailable",  # the proxy shed it or was shutting down: not read, try again (4006)
]
ERROR_REASONS: tuple[ErrorReason, ...] = get_args(ErrorReason)

SOAP11_NS = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_NS = "http://www.w3.org/2003/05/soap-envelope"
#: The namespace and version an answer uses when the request named none it could read.
DEFAULT_NAMESPACE = "http://www.3gpp.org/ftp/Specs/archive/23_series/23.140/schema/REL-6-MM7-1-4"
DEFAULT_MM7_VERSION = "6.8.0"


@dataclass(frozen=True, slots=True)
class Echo:
    """What an answer mirrors from its request.

    ``namespace`` None means the request's elements were unqualified (the answer's are
    too); ``mm7_version`` and ``transaction_id`` are None when the request carried none.
    """

    soap: SoapVersion = "1.1"
    namespace: str | None = DEFAULT_NAMESPACE
    mm7_version: str | None = None
    transaction_id: str | None = None


@dataclass(frozen=True, slots=True)
class Address:
    """One MM7 address: ``Number`` (number), ``RFC2822Address`` (email), ``ShortCode``."""

    type: AddressType
    value: str


@dataclass(frozen=True, slots=True)
class Recipients:
    """A DeliverReq's ``Recipients``: the To, Cc and Bcc lists, in document order."""

    to: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()
    bcc: tuple[Address, ...] = ()

    @property
    def first(self) -> Address | None:
        """The first To address, else the first Cc, else the first Bcc."""
        return next(iter((*self.to, *self.cc, *self.bcc)), None)


@dataclass(frozen=True, slots=True)
class ContentPart:
    """One leaf part of a DeliverReq's content.

    ``body`` is ``str`` for ``text/*`` parts (decoded by their charset) and ``bytes`` for
    every other part (transfer encoding removed). ``content_type`` is the lower-case MIME
    type without parameters; ``content_id`` is without its angle brackets.
    """

    content_type: str
    content_id: str | None
    content_location: str | None
    body: str | bytes


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """A DeliveryReportReq. ``mm_status`` is the MMStatus as sent (stripped)."""

    KIND: ClassVar[RequestKind] = "DeliveryReportReq"
    echo: Echo
    message_id: str
    recipient: Address
    sender: Address | None
    mm_status: str
    status_extension: str | None  # REL-6 MMStatusExtension
    status_text: str | None
    timestamp: str | None  # Date, as sent
    relay_server_id: str | None  # MMSRelayServerID


@dataclass(frozen=True, slots=True)
class ReadReply:
    """A ReadReplyReq. ``mm_status`` is the MMStatus as sent (stripped)."""

    KIND: ClassVar[RequestKind] = "ReadReplyReq"
    echo: Echo
    message_id: str
    recipient: Address
    sender: Address | None
    mm_status: str
    status_text: str | None
    timestamp: str | None  # TimeStamp, as sent
    relay_server_id: str | None


@dataclass(frozen=True, slots=True)
class Deliver:
    """A DeliverReq: a message a subscriber sent in, with its content parts."""

    KIND: ClassVar[RequestKind] = "DeliverReq"
    echo: Echo
    sender: Address
    recipients: Recipients
    message_id: str | None
    linked_id: str | None
    subject: str | None
    priority: str | None
    timestamp: str | None  # TimeStamp, as sent
    relay_server_id: str | None
    parts: tuple[ContentPart, ...]


Callback = DeliveryReport | ReadReply | Deliver


@dataclass(frozen=True, slots=True)
class MogreetCallback:
    """Mogreet's incoming-message POST (a ``<mogreet>`` document), as sent.

    ``event`` is the ``<event>`` word stripped (None when absent: older posts carry none);
    what it means is the catalog's (``inbound.moms``). ``msisdn`` is the subscriber;
    ``images`` the URLs of the MMS's images, hosted by Mogreet for a while, in order.
    """

    event: str | None
    campaign_id: str | None
    msisdn: str
    carrier: str | None
    message: str | None
    subject: str | None
    images: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MogreetError:
    """A Mogreet POST the proxy cannot take; ``detail`` is fixed text, never content."""

    reason: ErrorReason
    detail: str


@dataclass(frozen=True, slots=True)
class CallbackError:
    """A callback the proxy cannot take, and the MM7 status to answer it with.

    ``detail`` is fixed text naming the problem (it goes into the answer's ``Details``),
    never content from the request. ``kind`` is set when the request type was read.
    """

    code: int
    reason: ErrorReason
    detail: str
    kind: RequestKind | None = None
    echo: Echo = Echo()


__all__ = [
    "ADDRESS_TYPES",
    "DEFAULT_MM7_VERSION",
    "DEFAULT_NAMESPACE",
    "ERROR_REASONS",
    "REQUEST_KINDS",
    "SOAP11_NS",
    "SOAP12_NS",
    "Address",
    "AddressType",
    "Callback",
    "CallbackError",
    "ContentPart",
    "Deliver",
    "DeliveryReport",
    "Echo",
    "ErrorReason",
    "MogreetCallback",
    "MogreetError",
    "ReadReply",
    "Recipients",
    "RequestKind",
    "SoapVersion",
]
