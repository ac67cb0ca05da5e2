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

import functools
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
    return _reader(frozenset(namespaces)).read(xml.root)


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


def _short(ns: str | None) -> str:
    """How a namespace is named in a signal's ``where``: its last path segment."""
    return "no namespace" if ns is None else ns.rstrip("/").rpartition("/")[2] or ns


def _clark(name: str, spaces: Collection[str]) -> frozenset[str]:
    """``name`` unqualified and in each of ``spaces``, as lxml spells tags."""
    return frozenset({name, *(f"{{{ns}}}{name}" for ns in spaces)})


@functools.lru_cache(maxsize=8)
def _reader(namespaces: frozenset[str]) -> "_Reader":
    """One reader per set of MM7 namespaces (the catalog's): its tag sets are built once."""
    return _Reader(namespaces)


class _Reader:
    """Reads parsed trees against one set of MM7 namespaces.

    Every name is matched as lxml spells tags, ``{namespace}Local`` or ``Local``, against
    sets built once: one set look-up per element, no string splitting on the hot path.
    """

    def __init__(self, namespaces: frozenset[str]) -> None:
        self._mm7 = namespaces
        soap, mm7 = SOAP_NAMESPACES, namespaces
        self.envelope, self.body = _clark("Envelope", soap), _clark("Body", soap)
        self.header, self.fault = _clark("Header", soap), _clark("Fault", soap)
        self.detail = _clark("detail", soap) | _clark("Detail", soap)
        self.faultcode, self.faultstring = _clark("faultcode", soap), _clark("faultstring", soap)
        self.code, self.value = _clark("Code", soap), _clark("Value", soap)
        self.subcode, self.reason = _clark("Subcode", soap), _clark("Reason", soap)
        self.text = _clark("Text", soap)
        self.status, self.status_code = _clark("Status", mm7), _clark("StatusCode", mm7)
        self.status_text, self.details = _clark("StatusText", mm7), _clark("Details", mm7)
        self.message_id, self.version = _clark("MessageID", mm7), _clark("MM7Version", mm7)
        self.transaction_id = _clark("TransactionID", mm7)
        # tag -> the local name of an MM7 response (a *Rsp or Status), or "" for any other;
        # (place, tag, wrapped) -> a code's ``where``. Gateways repeat their shapes.
        self._responses: dict[object, str] = {}
        self._wheres: dict[tuple[str, str, bool], str] = {}

    def response_name(self, el: etree._Element) -> str:
        """The local name when ``el`` is an MM7 response (``*Rsp``, ``Status``), else ""."""
        tag: object = el.tag
        name = self._responses.get(tag)
        if name is None:
            name = ""
            if isinstance(tag, str):
                ns, _, local = tag[1:].partition("}") if tag[:1] == "{" else (None, "", tag)
                if (ns is None or ns in self._mm7) and (local.endswith("Rsp") or local == "Status"):
                    name = local
            if len(self._responses) < 4096:  # tags repeat across answers; hostile ones don't
                self._responses[tag] = name
        return name

    @staticmethod
    def _children(el: etree._Element, tags: frozenset[str]) -> list[etree._Element]:
        return [child for child in el if child.tag in tags]

    # --- the document ------------------------------------------------------------------
    def read(self, root: etree._Element) -> VendorReply:
        """Map a parsed tree to a reply; ``unrecognized`` when it holds no response and
        no Fault."""
        responses: list[tuple[etree._Element, str, str]] = []  # (element, where, name)
        faults: list[tuple[etree._Element, str]] = []
        header: etree._Element | None = None
        tag = root.tag
        if name := self.response_name(root):
            responses.append((root, "", name))
        elif tag in self.fault:
            faults.append((root, "Fault"))
        elif tag in self.envelope or tag in self.body:
            bodies = [root] if tag in self.body else self._children(root, self.body)
            for body in bodies:
                self._collect(body, "Body", responses, faults)
            if tag in self.envelope:
                for child in root:
                    if child.tag in self.header and header is None:
                        header = child
                    elif child.tag in self.fault:  # some relays put the Fault beside the Body
                        faults.append((child, "Envelope/Fault"))
        elif tag in self.header:
            header = root
        for fault, where in list(faults):
            for detail in self._children(fault, self.detail):
                self._collect(detail, f"{where}/detail", responses, None)
        transaction_id = self._transaction_id(header)
        if not responses and not faults:
            return VendorReply(body_kind="unrecognized", transaction_id=transaction_id)
        return self._reply(responses, faults, transaction_id)

    def _collect(
        self,
        container: etree._Element,
        where: str,
        responses: list[tuple[etree._Element, str, str]],
        faults: list[tuple[etree._Element, str]] | None,
    ) -> None:
        """The responses (and, in a Body, the Faults) that are direct children."""
        for child in container:
            if name := self.response_name(child):
                responses.append((child, where, name))
            elif faults is not None and child.tag in self.fault:
                faults.append((child, f"{where}/Fault"))

    def _transaction_id(self, header: etree._Element | None) -> str | None:
        if header is None:
            return None
        for el in header.iter():  # cheaper than lxml's tag matcher over many namespaces
            if el.tag in self.transaction_id:
                return text_of(el)
        return None

    # --- responses and faults ----------------------------------------------------------
    def _reply(
        self,
        responses: list[tuple[etree._Element, str, str]],
        faults: list[tuple[etree._Element, str]],
        transaction_id: str | None,
    ) -> VendorReply:
        signals: list[Signal] = []
        # The response of the first code (else the first response) describes the reply.
        described: tuple[str, dict[str, Any]] | None = None
        first_code: Signal | None = None
        first_details: str | None = None
        for element, where, name in responses:
            path = f"{where}/{name}" if where else name
            if name.endswith("ErrorRsp"):
                signals.append(Signal("error", path, name))
            codes, data = self._read_response(element, bare=name == "Status")
            for code_el, wrapped, message, details in codes:
                place = self._code_place(path, code_el.tag, wrapped)
                signal = Signal("code", place, _code_text(code_el), message=message)
                signals.append(signal)
                if first_code is None:
                    first_code, first_details, described = signal, details, (name, data)
            if described is None:
                described = (name, data)
        fault_code: str | None = None
        subcodes: tuple[str, ...] = ()
        for index, (fault, where) in enumerate(faults):
            code, chain = self._fault_codes(fault)
            if index == 0:
                fault_code, subcodes = code, chain
            signals.append(Signal("fault", where, code, subcodes=chain))
        code = message = details = None
        if first_code is not None:
            code, message, details = first_code.value or None, first_code.message, first_details
        elif faults:
            message = self._fault_message(faults[0][0])
            detail = self._children(faults[0][0], self.detail)
            details = text_of(detail[0]) if detail else None
        return VendorReply(
            body_kind="vendor",
            code=code,
            message=message,
            details=details,
            transaction_id=transaction_id,
            fault_code=fault_code,
            fault_subcodes=subcodes,
            fault=bool(faults),
            element=described[0] if described is not None else None,
            data=described[1] if described is not None else {},
            signals=tuple(signals),
        )

    def _code_place(self, path: str, tag: str, wrapped: bool) -> str:
        """``Body/SubmitRsp/Status/StatusCode (REL-6-MM7-1-4)``: where a code sat."""
        key = (path, tag, wrapped)
        place = self._wheres.get(key)
        if place is None:
            ns = tag[1:].partition("}")[0] if tag[:1] == "{" else None
            place = f"{path}/{'Status/' if wrapped else ''}StatusCode ({_short(ns)})"
            if len(self._wheres) < 4096:
                self._wheres[key] = place
        return place

    def _read_response(
        self, response: etree._Element, *, bare: bool
    ) -> tuple[list[tuple[etree._Element, bool, str | None, str | None]], dict[str, Any]]:
        """One pass over a response's children (and each ``Status`` wrapper's): every
        ``StatusCode`` (with whether a ``Status`` wraps it, and the ``StatusText`` and
        ``Details`` beside it), wrapped ones first; and its data."""
        codes: list[tuple[etree._Element, bool, str | None, str | None]] = []
        data: dict[str, Any] = {}
        own_text = own_details = None
        direct: list[etree._Element] = []
        wrappers: list[etree._Element] = []
        for child in response:
            t = child.tag
            if t in self.status_code:
                direct.append(child)
            elif t in self.status and not bare:
                wrappers.append(child)
            elif t in self.status_text:
                own_text = own_text or text_of(child)
            elif t in self.details:
                own_details = own_details or text_of(child)
            elif t in self.message_id or t in self.version:
                key = "message_id" if t in self.message_id else "mm7_version"
                value = text_of(child)
                if value is not None and key not in data:
                    data[key] = value
        for wrapper in wrappers:
            text = details = None
            wrapped: list[etree._Element] = []
            for child in wrapper:
                t = child.tag
                if t in self.status_code:
                    wrapped.append(child)
                elif t in self.status_text and text is None:
                    text = text_of(child)
                elif t in self.details and details is None:
                    details = text_of(child)
            codes.extend((c, True, text, details or own_details) for c in wrapped)
        codes.extend((c, False, own_text, own_details) for c in direct)
        return codes, data

    def _fault_codes(self, fault: etree._Element) -> tuple[str | None, tuple[str, ...]]:
        """(faultcode, SOAP 1.2 subcodes outermost first), without namespace prefixes."""
        for child in self._children(fault, self.faultcode):
            return _qname_local(text_of(child)), ()
        code = next(iter(self._children(fault, self.code)), None)
        if code is None:
            return None, ()
        base = _qname_local(text_of(next(iter(self._children(code, self.value)), None)))
        subcodes: list[str] = []
        sub = next(iter(self._children(code, self.subcode)), None)
        while sub is not None and len(subcodes) < 8:  # real chains are one or two deep
            value = _qname_local(text_of(next(iter(self._children(sub, self.value)), None)))
            if value is not None:
                subcodes.append(value)
            sub = next(iter(self._children(sub, self.subcode)), None)
        return base, tuple(subcodes)

    def _fault_message(self, fault: etree._Element) -> str | None:
        for child in self._children(fault, self.faultstring):
            return text_of(child)
        for reason in self._children(fault, self.reason):
            texts = self._children(reason, self.text)
            return text_of(texts[0]) if texts else text_of(reason)
        return None


def _code_text(el: etree._Element) -> str:
    """A StatusCode's value as sent, stripped: "" when empty (a code that is no success)."""
    return text_of(el) or ""


__all__ = ["MM7_NAMESPACES", "SOAP_NAMESPACES", "parse_mm7"]
