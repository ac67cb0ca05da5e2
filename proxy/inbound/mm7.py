"""Read an inbound MM7 callback (sans-io, never raises).

``parse_callback(body, content_type, max_bytes)`` returns a ``Callback`` (a
``DeliveryReport``, ``ReadReply`` or ``Deliver``) or a ``CallbackError`` carrying the MM7
status to answer. It reads bodies with the same hostile-input rules as replies
(``proxy.vendors.safexml``), and as loosely as real relays need:

* elements are matched by **local name**, children in any order: any REL-5 / REL-6 MM7
  namespace, a default namespace, a prefix, or none; SOAP 1.1 or 1.2. The request is the
  first element of the SOAP Body, or the document root itself (a bare ``*Req``);
* plain SOAP or ``multipart/related``; a DeliverReq's other parts are its content
  (``proxy.inbound.mime``);
* addresses are ``Number``, ``RFC2822Address`` or ``ShortCode`` children; a bare text
  address (no child element, as some relays send) counts as an e-mail address when it
  holds ``@``, else as a number. A DeliverReq's sender may be ``SenderAddress``;
* only what the event cannot do without is required: ``MessageID``, ``Recipient`` and
  ``MMStatus`` in reports, ``Sender`` in a DeliverReq. A missing TransactionID or
  MM7Version is tolerated: the answer then omits or defaults it.

Which status a refusal gets (TS 23.140 §8.7.4)::

    2007 Message format corrupt   over max_bytes (never read), empty, HTML, not well-formed
                                  XML or an unusable MIME body, or hostile (DTD/entities)
    4004 Validation error         well-formed XML that is not an MM7 request (wrong root),
                                  or a callback missing a required field
    4003 Unsupported operation    an MM7 request other than the three callbacks
                                  (SubmitReq, CancelReq, ...): understood, not served here

The result holds personal data (addresses, subjects, content): nothing here logs.
"""

import dataclasses

from lxml import etree

from proxy.inbound.mime import content_parts, split_body
from proxy.inbound.types import (
    DEFAULT_NAMESPACE,
    REQUEST_KINDS,
    SOAP12_NS,
    Address,
    AddressType,
    Callback,
    CallbackError,
    ContentPart,
    Deliver,
    DeliveryReport,
    Echo,
    ErrorReason,
    ReadReply,
    Recipients,
    RequestKind,
    SoapVersion,
)
from proxy.vendors.safexml import child_local, find_local, local_name, parse_xml, text_of

_ADDRESS_TYPES: dict[str, AddressType] = {
    "Number": "number",
    "RFC2822Address": "email",
    "ShortCode": "short_code",
}
_KINDS = {kind.casefold(): kind for kind in REQUEST_KINDS}
_CORRUPT: dict[str, tuple[ErrorReason, str]] = {
    "empty": ("empty", "the request body is empty"),
    "html": ("html", "the request body is HTML, not SOAP"),
    "hostile": ("hostile", "DTDs and entity declarations are not allowed in SOAP"),
    "malformed": ("malformed", "the request is not well-formed XML"),
}


def parse_callback(
    body: bytes, content_type: str | None, max_bytes: int
) -> Callback | CallbackError:
    """Read one callback; see the module docstring. Never raises.

    Every known failure is handled inside ``_parse``; this guard only turns a parser bug
    into a 2007 refusal, so that one odd body can never crash the inbound route (the fuzz
    tests call ``_parse`` directly to show the guard is never needed).
    """
    try:
        return _parse(body, content_type, max_bytes)
    except Exception:  # noqa: BLE001 - the single outermost guard; see the docstring
        return CallbackError(2007, "malformed", "the request could not be read")


def _parse(body: bytes, content_type: str | None, max_bytes: int) -> Callback | CallbackError:
    if len(body) > max_bytes:  # before any splitting or parsing, to bound all work
        return CallbackError(2007, "oversize", f"the request is larger than {max_bytes} bytes")
    split = split_body(body, content_type)
    if split is None:
        return CallbackError(2007, "malformed", "the multipart body has no usable SOAP part")
    root_part, others = split
    xml = parse_xml(root_part.payload, root_part.header)
    if xml.root is None:
        reason, detail = _CORRUPT.get(xml.kind, _CORRUPT["malformed"])
        return CallbackError(2007, reason, detail)
    located = _locate(xml.root)
    if isinstance(located, CallbackError):
        return located
    request, echo = located
    kind = _KINDS.get(local_name(request).casefold())
    if kind is None:
        return _unknown_request(request, echo)
    if kind == "DeliveryReportReq":
        return _delivery_report(request, echo)
    if kind == "ReadReplyReq":
        return _read_reply(request, echo)
    href = _content_href(request)
    return _deliver(request, echo, content_parts(others, href) if others else ())


def _locate(root: etree._Element) -> tuple[etree._Element, Echo] | CallbackError:
    """(the request element, what the answer echoes), or a 4004 for a wrong root."""
    if local_name(root) == "Envelope":
        soap: SoapVersion = "1.2" if etree.QName(root).namespace == SOAP12_NS else "1.1"
        body = child_local(root, "Body")
        request = next((c for c in body if local_name(c)), None) if body is not None else None
        if request is None:
            echo = Echo(soap=soap, transaction_id=_transaction_id(root))
            return CallbackError(4004, "wrong_root", "the SOAP Body holds no request", echo=echo)
        return request, _echo(request, soap, _transaction_id(root))
    if local_name(root).endswith("Req"):
        return root, _echo(root, "1.1", None)
    return CallbackError(4004, "wrong_root", "the document is not an MM7 request")


def _transaction_id(envelope: etree._Element) -> str | None:
    header = child_local(envelope, "Header")
    return text_of(find_local(header, "TransactionID")) if header is not None else None


def _echo(request: etree._Element, soap: SoapVersion, transaction_id: str | None) -> Echo:
    return Echo(
        soap=soap,
        namespace=etree.QName(request).namespace,
        mm7_version=_text(request, "MM7Version"),
        transaction_id=transaction_id,
    )


def _unknown_request(request: etree._Element, echo: Echo) -> CallbackError:
    name = local_name(request)
    if name.endswith("Req"):
        # The detail never quotes the element's name: it is request content.
        return CallbackError(4003, "unsupported", "this route serves only MM7 callbacks", echo=echo)
    # Not an MM7 request: its element's namespace is nobody's MM7 namespace (a Fault's, a
    # stray document's), so the answer is in the default one, which any MM7 reader knows.
    echo = dataclasses.replace(echo, namespace=DEFAULT_NAMESPACE)
    return CallbackError(4004, "wrong_root", "the SOAP Body holds no MM7 request", echo=echo)


def _missing(kind: RequestKind, echo: Echo, field: str) -> CallbackError:
    return CallbackError(4004, "missing_field", f"{kind} without {field}", kind=kind, echo=echo)


def _text(el: etree._Element, name: str) -> str | None:
    return text_of(child_local(el, name))


def _addresses(el: etree._Element | None) -> tuple[Address, ...]:
    """The addresses an address-holding element (Recipient, To, Sender, ...) carries."""
    if el is None:
        return ()
    found: list[Address] = []
    for child in el:
        kind = _ADDRESS_TYPES.get(local_name(child))
        value = text_of(child) if kind is not None else None
        if kind is not None and value is not None:
            found.append(Address(kind, value))
    if not found and not any(local_name(c) for c in el):
        bare = text_of(el)  # some relays put the address straight into <Sender>
        if bare is not None:
            found.append(Address("email" if "@" in bare else "number", bare))
    return tuple(found)


def _address(el: etree._Element, *names: str) -> Address | None:
    for name in names:
        found = _addresses(child_local(el, name))
        if found:
            return found[0]
    return None


def _report_fields(
    kind: RequestKind, request: etree._Element, echo: Echo
) -> tuple[str, Address, str] | CallbackError:
    """(MessageID, Recipient, MMStatus) of a report, or the 4004 naming the first missing."""
    message_id = _text(request, "MessageID")
    if message_id is None:
        return _missing(kind, echo, "MessageID")
    recipient = _address(request, "Recipient") or _recipients(request).first
    if recipient is None:
        return _missing(kind, echo, "Recipient")
    mm_status = _text(request, "MMStatus")
    if mm_status is None:
        return _missing(kind, echo, "MMStatus")
    return message_id, recipient, mm_status


def _delivery_report(request: etree._Element, echo: Echo) -> DeliveryReport | CallbackError:
    fields = _report_fields("DeliveryReportReq", request, echo)
    if isinstance(fields, CallbackError):
        return fields
    message_id, recipient, mm_status = fields
    return DeliveryReport(
        echo=echo,
        message_id=message_id,
        recipient=recipient,
        sender=_address(request, "Sender"),
        mm_status=mm_status,
        status_extension=_text(request, "MMStatusExtension"),
        status_text=_text(request, "StatusText"),
        timestamp=_text(request, "Date") or _text(request, "TimeStamp"),
        relay_server_id=_text(request, "MMSRelayServerID"),
    )


def _read_reply(request: etree._Element, echo: Echo) -> ReadReply | CallbackError:
    fields = _report_fields("ReadReplyReq", request, echo)
    if isinstance(fields, CallbackError):
        return fields
    message_id, recipient, mm_status = fields
    return ReadReply(
        echo=echo,
        message_id=message_id,
        recipient=recipient,
        sender=_address(request, "Sender"),
        mm_status=mm_status,
        status_text=_text(request, "StatusText"),
        timestamp=_text(request, "TimeStamp") or _text(request, "Date"),
        relay_server_id=_text(request, "MMSRelayServerID"),
    )


def _recipients(request: etree._Element) -> Recipients:
    """``Recipients`` To/Cc/Bcc; addresses straight under it, or a lone ``Recipient``, are To."""
    holder = child_local(request, "Recipients")
    if holder is None:
        return Recipients(to=_addresses(child_local(request, "Recipient")))
    lists: dict[str, list[Address]] = {"To": [], "Cc": [], "Bcc": []}
    for child in holder:
        target = lists.get(local_name(child))
        if target is not None:
            target.extend(_addresses(child))
    if not any(lists.values()):
        return Recipients(to=_addresses(holder))
    return Recipients(tuple(lists["To"]), tuple(lists["Cc"]), tuple(lists["Bcc"]))


def _content_href(request: etree._Element) -> str | None:
    content = child_local(request, "Content")
    href = content.get("href") if content is not None else None
    return (href.strip() or None) if href is not None else None


def _deliver(
    request: etree._Element, echo: Echo, parts: tuple[ContentPart, ...]
) -> Deliver | CallbackError:
    sender = _address(request, "Sender", "SenderAddress")
    if sender is None:
        return _missing("DeliverReq", echo, "Sender")
    return Deliver(
        echo=echo,
        sender=sender,
        recipients=_recipients(request),
        message_id=_text(request, "MessageID"),
        linked_id=_text(request, "LinkedID"),
        subject=_text(request, "Subject"),
        priority=_text(request, "Priority"),
        timestamp=_text(request, "TimeStamp") or _text(request, "Date"),
        relay_server_id=_text(request, "MMSRelayServerID"),
        parts=parts,
    )


__all__ = ["parse_callback"]
