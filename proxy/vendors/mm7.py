"""Parse an MM7 (3GPP TS 23.140 SOAP) gateway reply into a ``VendorReply``.

In: the raw body and the Content-Type header, whatever the HTTP status was (200, 4xx and
500 can all carry a fault). Out: a ``VendorReply`` with **every** status signal the rules
below count (``signals``); this never raises. The classifier decides over all of them.

* **Names are namespace and local name.** SOAP's elements (``Envelope``, ``Body``,
  ``Header``, ``Fault``, ``detail``/``Detail`` and the Fault's children) count in the SOAP
  1.1 or 1.2 namespace or unqualified; MM7's (``*Rsp``, ``Status``, ``StatusCode``,
  ``StatusText``, ``Details``, ``MessageID``, ...) in one of the MM7 namespaces (the
  catalog's ``vendors.mm7.namespaces``, every REL-5/REL-6 ``MM7-1-x`` schema version by
  default) or unqualified, as relays that drop prefixes send them. An element in any
  other namespace is data, whatever its prefix (a vendor binding ``mm7:`` to its own
  URI included) or position.
* **Statuses only where they belong, every one of them.** A *response* is a ``*Rsp`` or a
  bare ``Status`` that is the document root or a direct child of a Body (every Body) or
  of a Fault's ``detail`` (every Fault, also one beside the Body). Every response
  counts: several responses side by side, and error responses, each give their signals.
  A response's codes are the ``StatusCode`` children of each of its ``Status``
  wrappers, and the ``StatusCode`` children placed directly in the ``*Rsp``: all of
  them, each a ``code`` signal with its ``StatusText``. An ``*ErrorRsp`` is an
  ``error`` signal and each Fault a ``fault`` signal. A ``StatusCode`` or ``Status``
  anywhere else (inside ``Details``, an extension element, a nested ``*Rsp``, the SOAP
  Header) is data. An empty ``StatusCode`` is a code that is no success.
* ``code`` (the first code, as sent, stripped: ``+2002`` and ``02002`` stay as they are;
  the classifier reads them as the integer they spell), ``message`` its ``StatusText``
  (None when missing: the classifier fills it from the catalog) and ``element`` its
  response describe the reply; a Fault without any code gives ``message`` = faultstring
  (or SOAP 1.2 ``Reason/Text``) and ``fault_code``/``fault_subcodes`` without prefixes.
* ``transaction_id`` comes from the SOAP Header (padding stripped, empty → None);
  ``data`` holds ``message_id`` and ``mm7_version`` of the first response.
* ``multipart/related``: the part named by ``start=``, else the first XML part.
* Hostile (DTD/entities), HTML, empty and over-cap bodies are reported by kind with no code
  (see ``proxy.vendors.safexml``). Malformed XML that still holds one unambiguous numeric
  ``<…StatusCode>`` is ``salvaged`` by a bounded regex, with a ``fault`` or ``error``
  signal when a Fault or an ``*ErrorRsp`` start tag is there too; hostile bodies are
  never salvaged.
"""

import re
from collections.abc import Collection
from typing import Any

from lxml import etree

from proxy.vendors.base import Signal, VendorReply
from proxy.vendors.multipart import select_part
from proxy.vendors.safexml import (
    MAX_XML_BYTES,
    content_type_params,
    parse_xml,
    text_of,
)

SOAP_NAMESPACES = frozenset(
    {"http://schemas.xmlsoap.org/soap/envelope/", "http://www.w3.org/2003/05/soap-envelope"}
)
_MM7_BASE = "http://www.3gpp.org/ftp/Specs/archive/23_series/23.140/schema/"
#: The MM7 schema namespaces a status counts in when no catalog list is given: every
#: REL-5 and REL-6 ``MM7-1-x`` version. The built-in catalog lists the same
#: (``vendors.mm7.namespaces``; a test keeps them equal).
MM7_NAMESPACES = frozenset(
    f"{_MM7_BASE}REL-{release}-MM7-1-{version}" for release in (5, 6) for version in range(6)
)

# Bounded patterns for salvage: fixed-width quantifiers, no nested repetition.
_PREFIX = r"(?:[A-Za-z_][\w.-]{0,40}:)?"


def _element(name: str, value: str) -> re.Pattern[str]:
    """``<[prefix:]name [attrs]>value</[prefix:]name>`` with every quantifier bounded."""
    return re.compile(rf"<{_PREFIX}{name}(?:\s[^<>]{{0,200}})?>{value}</{_PREFIX}{name}\s{{0,8}}>")


_SALVAGE_CODE = _element("StatusCode", r"\s{0,64}([+-]?[0-9]{1,9})\s{0,64}")
_SALVAGE_TEXT = _element("StatusText", r"([^<>&]{1,512})")
_SALVAGE_TXN = _element("TransactionID", r"([^<>&]{1,256})")
_SALVAGE_FAULT = re.compile(rf"<{_PREFIX}Fault[\s/>]")
_SALVAGE_ERROR_RSP = re.compile(rf"<{_PREFIX}(\w{{1,40}}ErrorRsp)[\s/>]")


def parse_mm7(
    body: bytes, content_type: str | None, namespaces: Collection[str] = MM7_NAMESPACES
) -> VendorReply:
    """Read an MM7 reply; see the module docstring. Never raises.

    ``namespaces`` are the MM7 namespaces a status counts in (the catalog's). Every known
    failure (bad XML, bad encodings, bad multipart) is handled inside ``_parse``; this
    guard only turns a parser bug into ``malformed`` so that one odd gateway body can
    never crash a request (the fuzz tests call ``_parse`` directly).
    """
    try:
        return _parse(body, content_type, namespaces)
    except Exception:  # noqa: BLE001 - the single outermost guard; see the docstring
        return VendorReply(body_kind="malformed")


def _parse(
    body: bytes, content_type: str | None, namespaces: Collection[str] = MM7_NAMESPACES
) -> VendorReply:
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
    return _Reader(namespaces).read(xml.root)


def _salvage(text: str) -> VendorReply:
    """A code from broken XML, only when exactly one distinct StatusCode is present."""
    codes = {m.group(1) for m in _SALVAGE_CODE.finditer(text)}
    if len(codes) != 1:
        return VendorReply(body_kind="malformed")
    code = codes.pop()
    texts = {m.group(1).strip() for m in _SALVAGE_TEXT.finditer(text)} - {""}
    txns = {m.group(1).strip() for m in _SALVAGE_TXN.finditer(text)} - {""}
    message = texts.pop() if len(texts) == 1 else None
    signals = [Signal("code", "salvaged StatusCode", code, message=message)]
    fault = _SALVAGE_FAULT.search(text) is not None
    if fault:
        signals.append(Signal("fault", "salvaged Fault"))
    error = _SALVAGE_ERROR_RSP.search(text)
    if error is not None:
        signals.append(Signal("error", "salvaged " + error.group(1), error.group(1)))
    return VendorReply(
        body_kind="salvaged",
        code=code,
        message=message,
        transaction_id=txns.pop() if len(txns) == 1 else None,
        fault=fault,
        signals=tuple(signals),
    )


def _qname_local(raw: str | None) -> str | None:
    """A QName's text without its namespace prefix (or Clark ``{ns}``), stripped."""
    if raw is None:
        return None
    return raw.rpartition("}")[2].rpartition(":")[2].strip() or None


def _split(el: etree._Element) -> tuple[str | None, str]:
    """(namespace or None, local name) of an element; ("", "") for comments and PIs."""
    tag: object = el.tag
    if not isinstance(tag, str):
        return "", ""
    if tag[:1] != "{":
        return None, tag
    end = tag.index("}")
    return tag[1:end], tag[end + 1 :]


def _short(ns: str | None) -> str:
    """How a namespace is named in a signal's ``where``: its last path segment."""
    return "no namespace" if ns is None else ns.rstrip("/").rpartition("/")[2] or ns


class _Reader:
    """Reads one parsed tree against one set of MM7 namespaces."""

    __slots__ = ("_mm7",)

    def __init__(self, namespaces: Collection[str]) -> None:
        self._mm7 = namespaces

    # --- names ------------------------------------------------------------------------
    def _soap(self, el: etree._Element, *names: str) -> bool:
        ns, name = _split(el)
        return name in names and (ns is None or ns in SOAP_NAMESPACES)

    def _mm7_name(self, el: etree._Element) -> str | None:
        """The local name of an MM7 (or unqualified) element; None for any other."""
        ns, name = _split(el)
        return name if name and (ns is None or ns in self._mm7) else None

    def _is_response(self, el: etree._Element) -> bool:
        name = self._mm7_name(el)
        return name is not None and (name.endswith("Rsp") or name == "Status")

    def _soap_children(self, el: etree._Element, *names: str) -> list[etree._Element]:
        return [child for child in el if self._soap(child, *names)]

    def _mm7_child(self, el: etree._Element, name: str) -> etree._Element | None:
        for child in el:
            if self._mm7_name(child) == name:
                return child
        return None

    # --- the document ------------------------------------------------------------------
    def read(self, root: etree._Element) -> VendorReply:
        """Map a parsed tree to a reply; ``unrecognized`` when it holds no response and
        no Fault."""
        responses: list[tuple[etree._Element, str]] = []
        faults: list[tuple[etree._Element, str]] = []
        header: etree._Element | None = None
        if self._is_response(root):
            responses.append((root, ""))
        elif self._soap(root, "Fault"):
            faults.append((root, "Fault"))
        elif self._soap(root, "Envelope", "Body"):
            bodies = [root] if self._soap(root, "Body") else self._soap_children(root, "Body")
            for body in bodies:
                self._collect(body, "Body", responses, faults)
            if self._soap(root, "Envelope"):
                header = next(iter(self._soap_children(root, "Header")), None)
                # Some relays put the Fault beside the Body.
                faults.extend((f, "Envelope/Fault") for f in self._soap_children(root, "Fault"))
        elif self._soap(root, "Header"):
            header = root
        for fault, where in list(faults):
            for detail in self._soap_children(fault, "detail", "Detail"):
                self._collect(detail, f"{where}/detail", responses, None)
        transaction_id = self._transaction_id(header)
        if not responses and not faults:
            return VendorReply(body_kind="unrecognized", transaction_id=transaction_id)
        return self._reply(responses, faults, transaction_id)

    def _collect(
        self,
        container: etree._Element,
        where: str,
        responses: list[tuple[etree._Element, str]],
        faults: list[tuple[etree._Element, str]] | None,
    ) -> None:
        """The responses (and, in a Body, the Faults) that are direct children."""
        for child in container:
            if self._is_response(child):
                responses.append((child, where))
            elif faults is not None and self._soap(child, "Fault"):
                faults.append((child, f"{where}/Fault"))

    def _transaction_id(self, header: etree._Element | None) -> str | None:
        if header is None:
            return None
        for el in header.iter():
            if self._mm7_name(el) == "TransactionID":
                return text_of(el)
        return None

    # --- responses and faults ----------------------------------------------------------
    def _reply(
        self,
        responses: list[tuple[etree._Element, str]],
        faults: list[tuple[etree._Element, str]],
        transaction_id: str | None,
    ) -> VendorReply:
        signals: list[Signal] = []
        first: tuple[etree._Element, Signal, str | None] | None = None
        for response, where in responses:
            name = self._mm7_name(response) or ""
            path = f"{where}/{name}" if where else name
            if name.endswith("ErrorRsp"):
                signals.append(Signal("error", path, name))
            for code_el, message, details in self._codes(response):
                code_ns, _ = _split(code_el)
                code_path = f"{path}/{'' if code_el.getparent() is response else 'Status/'}"
                signal = Signal(
                    "code",
                    f"{code_path}StatusCode ({_short(code_ns)})",
                    _code_text(code_el),
                    message=message,
                )
                signals.append(signal)
                if first is None:
                    first = (response, signal, details)
        fault_code: str | None = None
        subcodes: tuple[str, ...] = ()
        for index, (fault, where) in enumerate(faults):
            code, chain = self._fault_codes(fault)
            if index == 0:
                fault_code, subcodes = code, chain
            signals.append(Signal("fault", where, code, subcodes=chain))
        data: dict[str, Any] = {}
        described = first[0] if first is not None else (responses[0][0] if responses else None)
        if described is not None:
            for key, name in (("message_id", "MessageID"), ("mm7_version", "MM7Version")):
                value = text_of(self._mm7_child(described, name))
                if value is not None:
                    data[key] = value
        code = message = details = None
        if first is not None:
            code, message, details = first[1].value or None, first[1].message, first[2]
        elif faults:
            message = self._fault_message(faults[0][0])
            details = text_of(
                next(iter(self._soap_children(faults[0][0], "detail", "Detail")), None)
            )
        return VendorReply(
            body_kind="vendor",
            code=code,
            message=message,
            details=details,
            transaction_id=transaction_id,
            fault_code=fault_code,
            fault_subcodes=subcodes,
            fault=bool(faults),
            element=self._mm7_name(described) if described is not None else None,
            data=data,
            signals=tuple(signals),
        )

    def _codes(
        self, response: etree._Element
    ) -> list[tuple[etree._Element, str | None, str | None]]:
        """(StatusCode, its StatusText, the Details beside it) for every code a response
        holds: in each ``Status`` wrapper, then directly in the ``*Rsp``."""
        scopes = [response]
        if self._mm7_name(response) != "Status":
            scopes = [c for c in response if self._mm7_name(c) == "Status"] + [response]
        found: list[tuple[etree._Element, str | None, str | None]] = []
        own_details = text_of(self._mm7_child(response, "Details"))
        for scope in scopes:
            text: str | None = None
            details: str | None = None
            codes: list[etree._Element] = []
            for child in scope:
                name = self._mm7_name(child)
                if name == "StatusCode":
                    codes.append(child)
                elif name == "StatusText" and text is None:
                    text = text_of(child)
                elif name == "Details" and details is None:
                    details = text_of(child)
            found.extend((code, text, details or own_details) for code in codes)
        return found

    def _fault_codes(self, fault: etree._Element) -> tuple[str | None, tuple[str, ...]]:
        """(faultcode, SOAP 1.2 subcodes outermost first), without namespace prefixes."""
        for child in self._soap_children(fault, "faultcode"):
            return _qname_local(text_of(child)), ()
        code = next(iter(self._soap_children(fault, "Code")), None)
        if code is None:
            return None, ()
        base = _qname_local(text_of(next(iter(self._soap_children(code, "Value")), None)))
        subcodes: list[str] = []
        sub = next(iter(self._soap_children(code, "Subcode")), None)
        while sub is not None and len(subcodes) < 8:  # real chains are one or two deep
            value = _qname_local(text_of(next(iter(self._soap_children(sub, "Value")), None)))
            if value is not None:
                subcodes.append(value)
            sub = next(iter(self._soap_children(sub, "Subcode")), None)
        return base, tuple(subcodes)

    def _fault_message(self, fault: etree._Element) -> str | None:
        for child in self._soap_children(fault, "faultstring"):
            return text_of(child)
        for reason in self._soap_children(fault, "Reason"):
            texts = self._soap_children(reason, "Text")
            return text_of(texts[0]) if texts else text_of(reason)
        return None


def _code_text(el: etree._Element) -> str:
    """A StatusCode's value as sent, stripped: "" when empty (a code that is no success)."""
    return text_of(el) or ""


__all__ = ["MM7_NAMESPACES", "SOAP_NAMESPACES", "parse_mm7"]
