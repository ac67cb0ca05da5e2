"""Parse an MM7 (3GPP TS 23.140 SOAP) gateway reply into a ``VendorReply``.

In: the raw body and the Content-Type header, whatever the HTTP status was (200, 4xx and
500 can all carry a fault). Out: a ``VendorReply``; this never raises.

Real relays disagree on almost everything, so the reading is deliberately loose:

* Elements are matched by **local name** only: any ``REL-5-MM7-1-x`` / ``REL-6-MM7-1-x``
  namespace, a default namespace, any prefix, or none at all; SOAP 1.1 or 1.2.
* The status lives in the first element whose name ends in ``Rsp`` (SubmitRsp,
  DeliveryReportRsp, RSErrorRsp, VASPErrorRsp, ...) and holds a StatusCode, wherever it
  sits: in the Body, in ``Fault/detail`` (``Detail`` in SOAP 1.2), or in a Fault placed
  outside the Body. The ``Status`` wrapper may be missing; children come in any order.
* A Fault without MM7 detail gives ``code=None``, ``message`` = faultstring (or SOAP 1.2
  ``Reason/Text``) and ``fault_code`` = the local part of faultcode (``Client``,
  ``Sender``, ...). When a StatusCode is present, ``message`` is its StatusText or None
  (the classifier fills it from the catalog), never the generic faultstring.
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


_SALVAGE_CODE = _element("StatusCode", r"\s{0,64}(\d{1,9})\s{0,64}")
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


def _find_rsp(root: etree._Element) -> etree._Element | None:
    """The first ``*Rsp`` holding a StatusCode, else the first ``*Rsp`` at all."""
    rsps = [el for el in root.iter() if local_name(el).endswith("Rsp")]
    for rsp in rsps:
        if find_local(rsp, "StatusCode") is not None:
            return rsp
    return rsps[0] if rsps else None


def _fault_code(fault: etree._Element) -> str | None:
    """faultcode (1.1) or Code/Value (1.2), without its namespace prefix."""
    raw = text_of(find_local(fault, "faultcode"))
    if raw is None:
        code = find_local(fault, "Code")
        raw = text_of(find_local(code, "Value")) if code is not None else None
    if raw is None:
        return None
    return raw.rpartition("}")[2].rpartition(":")[2].strip() or None


def _fault_message(fault: etree._Element) -> str | None:
    message = text_of(find_local(fault, "faultstring"))
    if message is None:
        reason = find_local(fault, "Reason")
        if reason is not None:
            message = text_of(find_local(reason, "Text")) or text_of(reason)
    return message


def _transaction_id(root: etree._Element) -> str | None:
    header = root if local_name(root) == "Header" else find_local(root, "Header")
    return text_of(find_local(header, "TransactionID")) if header is not None else None


def _read_tree(root: etree._Element) -> VendorReply:
    """Map a parsed tree to a reply; ``unrecognized`` when it holds no Rsp and no Fault."""
    rsp = root if local_name(root).endswith("Rsp") else _find_rsp(root)
    fault = root if local_name(root) == "Fault" else find_local(root, "Fault")
    if rsp is None and fault is None:
        return VendorReply(body_kind="unrecognized", transaction_id=_transaction_id(root))
    code = message = details = None
    data: dict[str, Any] = {}
    if rsp is not None:
        status = find_local(rsp, "Status")
        scope = (
            status if status is not None and find_local(status, "StatusCode") is not None else rsp
        )
        code = text_of(find_local(scope, "StatusCode"))
        message = text_of(find_local(scope, "StatusText"))
        details = text_of(find_local(scope, "Details"))
        if details is None:
            details = text_of(find_local(rsp, "Details"))
        for key, name in (("message_id", "MessageID"), ("mm7_version", "MM7Version")):
            value = text_of(find_local(rsp, name))
            if value is not None:
                data[key] = value
    fault_code = _fault_code(fault) if fault is not None else None
    if code is None and fault is not None:
        message = message or _fault_message(fault)
        detail = find_local(fault, "detail")
        details = details or text_of(detail if detail is not None else find_local(fault, "Detail"))
    return VendorReply(
        body_kind="vendor",
        code=code,
        message=message,
        details=details,
        transaction_id=_transaction_id(root),
        fault_code=fault_code,
        data=data,
    )


__all__ = ["parse_mm7"]
