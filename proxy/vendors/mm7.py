"""Parse an MM7 (3GPP TS 23.140 SOAP) gateway reply into a ``VendorReply``.

In: the raw body and the Content-Type header, whatever the HTTP status was (200, 4xx and
500 can all carry a fault). Out: a ``VendorReply``; this never raises.

Real relays disagree on almost everything, so the reading is deliberately loose:

* Elements are matched by **local name** only: any ``REL-5-MM7-1-x`` / ``REL-6-MM7-1-x``
  namespace, a default namespace, any prefix, or none at all; SOAP 1.1 or 1.2.
* The status is read **only where it belongs**: the ``StatusCode`` that is a direct
  child of the response's own ``Status`` element, or, where that wrapper is missing, a
  direct child of the ``*Rsp`` (SubmitRsp, DeliveryReportRsp, RSErrorRsp, VASPErrorRsp,
  ...). The response element is a direct child of the Body, of a Fault's ``detail``
  (``Detail`` in SOAP 1.2; also a Fault placed outside the Body), or the document root. A
  bare ``Status`` may stand there instead of a ``*Rsp``. A ``StatusCode`` or ``Status``
  anywhere else (inside ``Details``, an extension element, a nested ``*Rsp``) is data.
* A Fault without MM7 status gives ``code=None``, ``message`` = faultstring (or SOAP 1.2
  ``Reason/Text``), ``fault_code`` = faultcode without its prefix (``Client``,
  ``Client.Auth``, ``Throttled``; SOAP 1.2 ``Code/Value``) and ``fault_subcodes`` = the
  SOAP 1.2 ``Subcode/Value`` chain. When a StatusCode is present, ``message`` is its
  StatusText or None (the classifier fills it from the catalog), never the faultstring.
* ``code`` is the StatusCode as sent, stripped: ``+2002`` and ``02002`` stay as they are;
  the classifier reads them as the integer they spell (TS 23.140 types it ``xs:integer``).
* ``transaction_id`` comes from the SOAP Header (padding stripped, empty → None);
  ``data`` holds ``message_id`` and ``mm7_version`` when present.
* ``multipart/related``: the part named by ``start=``, else the first XML part.
* Hostile (DTD/entities), HTML, empty and over-cap bodies are reported by kind with no code
  (see ``proxy.vendors.safexml``). Malformed XML that still holds one unambiguous numeric
  ``<…StatusCode>`` is ``salvaged`` by a bounded regex; hostile bodies are never salvaged.
"""

import re
from typing import Any

from lxml import etree

from proxy.vendors.base import VendorReply
from proxy.vendors.multipart import select_part
from proxy.vendors.safexml import (
    MAX_XML_BYTES,
    child_local,
    children_by_local,
    content_type_params,
    find_local,
    local_name,
    parse_xml,
    text_of,
)

# Bounded patterns for salvage: fixed-width quantifiers, no nested repetition.
_PREFIX = r"(?:[A-Za-z_][\w.-]{0,40}:)?"


def _element(name: str, value: str) -> re.Pattern[str]:
    """``<[prefix:]name [attrs]>value</[prefix:]name>`` with every quantifier bounded."""
    return re.compile(rf"<{_PREFIX}{name}(?:\s[^<>]{{0,200}})?>{value}</{_PREFIX}{name}\s{{0,8}}>")


_SALVAGE_CODE = _element("StatusCode", r"\s{0,64}([+-]?[0-9]{1,9})\s{0,64}")
_SALVAGE_TEXT = _element("StatusText", r"([^<>&]{1,512})")
_SALVAGE_TXN = _element("TransactionID", r"([^<>&]{1,256})")


def parse_mm7(body: bytes, content_type: str | None) -> VendorReply:
    """Read an MM7 reply; see the module docstring. Never raises.

    Every known failure (bad XML, bad encodings, bad multipart) is handled inside
    ``_parse``; this guard only turns a parser bug into ``malformed`` so that one odd
    gateway body can never crash a request (the fuzz tests call ``_parse`` directly).
    """
    try:
        return _parse(body, content_type)
    except Exception:  # noqa: BLE001 - the single outermost guard; see the docstring
        return VendorReply(body_kind="malformed")


def _parse(body: bytes, content_type: str | None) -> VendorReply:
    if len(body) > MAX_XML_BYTES:  # checked before multipart splitting, to bound all work
        return VendorReply(body_kind="malformed")
    mime, _ = content_type_params(content_type)
    if mime.startswith("multipart/"):
        part = select_part(body, content_type)
        if part is not None:
            body, content_type = part.body, part.content_type
    xml = parse_xml(body, content_type)
    if xml.kind == "malformed":
        return _salvage(xml.text)
    if xml.root is None:  # empty, html, hostile
        return VendorReply(body_kind=xml.kind)
    return _read_tree(xml.root)


def _salvage(text: str) -> VendorReply:
    """A code from broken XML, only when exactly one distinct StatusCode is present."""
    codes = {m.group(1) for m in _SALVAGE_CODE.finditer(text)}
    if len(codes) != 1:
        return VendorReply(body_kind="malformed")
    texts = {m.group(1).strip() for m in _SALVAGE_TEXT.finditer(text)} - {""}
    txns = {m.group(1).strip() for m in _SALVAGE_TXN.finditer(text)} - {""}
    return VendorReply(
        body_kind="salvaged",
        code=codes.pop(),
        message=texts.pop() if len(texts) == 1 else None,
        transaction_id=txns.pop() if len(txns) == 1 else None,
    )


def _qname_local(raw: str | None) -> str | None:
    """A QName's text without its namespace prefix (or Clark ``{ns}``), stripped."""
    if raw is None:
        return None
    return raw.rpartition("}")[2].rpartition(":")[2].strip() or None


def _fault_codes(fault: etree._Element) -> tuple[str | None, tuple[str, ...]]:
    """(faultcode, SOAP 1.2 subcodes outermost first), without namespace prefixes."""
    raw = text_of(child_local(fault, "faultcode"))
    if raw is not None:
        return _qname_local(raw), ()
    code = child_local(fault, "Code")
    if code is None:
        return None, ()
    base = _qname_local(text_of(child_local(code, "Value")))
    subcodes: list[str] = []
    sub = child_local(code, "Subcode")
    while sub is not None and len(subcodes) < 8:  # real chains are one or two deep
        value = _qname_local(text_of(child_local(sub, "Value")))
        if value is not None:
            subcodes.append(value)
        sub = child_local(sub, "Subcode")
    return base, tuple(subcodes)


def _fault_message(fault: etree._Element) -> str | None:
    message = text_of(child_local(fault, "faultstring"))
    if message is None:
        reason = child_local(fault, "Reason")
        if reason is not None:
            message = text_of(find_local(reason, "Text")) or text_of(reason)
    return message


def _transaction_id(root: etree._Element, kids: dict[str, etree._Element]) -> str | None:
    """The SOAP Header's TransactionID; ``kids`` is ``children_by_local(root)``."""
    header = root if local_name(root) == "Header" else kids.get("Header")
    if header is None:
        header = find_local(root, "Header")
    return text_of(find_local(header, "TransactionID")) if header is not None else None


def _fault_detail(fault: etree._Element) -> etree._Element | None:
    detail = child_local(fault, "detail")
    return detail if detail is not None else child_local(fault, "Detail")


def _locate(
    root: etree._Element, kids: dict[str, etree._Element]
) -> tuple[etree._Element | None, etree._Element | None]:
    """(the response element holding the status, the SOAP Fault), each None if absent.

    The response element is a ``*Rsp``, or a bare ``Status``, that is the root or a direct
    child of the Body or of a Fault's detail. Nothing nested deeper is ever the status.
    ``kids`` is ``children_by_local(root)``.
    """
    name = local_name(root)
    if name.endswith("Rsp") or name == "Status":
        return root, None
    containers: list[etree._Element] = []
    fault: etree._Element | None = None
    if name == "Fault":
        fault = root
    else:
        body = root if name == "Body" else kids.get("Body")
        if body is not None:
            containers.append(body)
            fault = (kids if body is root else children_by_local(body)).get("Fault")
        if fault is None and name == "Envelope":  # some relays put the Fault beside the Body
            fault = kids.get("Fault")
    if fault is not None and (detail := _fault_detail(fault)) is not None:
        containers.append(detail)
    for container in containers:
        named = [(local_name(c), c) for c in container]
        candidates = [c for n, c in named if n.endswith("Rsp")] or [
            c for n, c in named if n == "Status"
        ]
        if len(candidates) > 1:
            # Several responses side by side: the first that carries a status is the answer.
            with_status = (c for c in candidates if _status_fields(c)[0] is not None)
            return next(with_status, candidates[0]), fault
        if candidates:
            return candidates[0], fault
    return None, fault


def _status_fields(
    response: etree._Element, kids: dict[str, etree._Element] | None = None
) -> tuple[str | None, str | None, str | None]:
    """(StatusCode, StatusText, Details) of a ``*Rsp`` or bare ``Status``, from direct children.

    In a ``*Rsp`` the ``Status`` wrapper is read first; a StatusCode placed directly in the
    ``*Rsp`` is used when the wrapper is missing or holds none. ``kids`` (optional) is
    ``children_by_local(response)``.
    """
    own = children_by_local(response) if kids is None else kids
    scope, details = own, text_of(own.get("Details"))
    if local_name(response) != "Status":
        status = own.get("Status")
        if status is not None:
            wrapper = children_by_local(status)
            if "StatusCode" in wrapper:
                scope = wrapper
                details = text_of(wrapper.get("Details")) or details
    return text_of(scope.get("StatusCode")), text_of(scope.get("StatusText")), details


def _read_tree(root: etree._Element) -> VendorReply:
    """Map a parsed tree to a reply; ``unrecognized`` when it holds no response and no Fault."""
    kids = children_by_local(root)
    response, fault = _locate(root, kids)
    if response is None and fault is None:
        return VendorReply(body_kind="unrecognized", transaction_id=_transaction_id(root, kids))
    code = message = details = None
    data: dict[str, Any] = {}
    if response is not None:
        own = kids if response is root else children_by_local(response)
        code, message, details = _status_fields(response, own)
        for key, name in (("message_id", "MessageID"), ("mm7_version", "MM7Version")):
            value = text_of(own.get(name))
            if value is not None:
                data[key] = value
    fault_code: str | None = None
    subcodes: tuple[str, ...] = ()
    if fault is not None:
        fault_code, subcodes = _fault_codes(fault)
        if code is None:
            message = message or _fault_message(fault)
            details = details or text_of(_fault_detail(fault))
    return VendorReply(
        body_kind="vendor",
        code=code,
        message=message,
        details=details,
        transaction_id=_transaction_id(root, kids),
        fault_code=fault_code,
        fault_subcodes=subcodes,
        fault=fault is not None,
        element=local_name(response) if response is not None else None,
        data=data,
    )


__all__ = ["parse_mm7"]
