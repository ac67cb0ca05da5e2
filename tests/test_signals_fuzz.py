"""Metamorphic properties of the verdict: failure injection refuses, neutral changes don't.

Start from any reply the generators build, MM7 (SOAP 1.1 and 1.2 or no envelope, every
REL-5/REL-6 namespace version, prefixed, default-namespaced or with unqualified children,
plain or multipart) and MoMS (XML, JSON, JSONP), then apply operators:

* a **failure-injection** operator puts a failure signal where the rules count one (a
  sibling error response, a second ``StatusCode`` or ``Status``, a status header line
  with a failure value or under another catalog name, an attribute or element twin of
  the code, a non-success ``status`` of any JSON type, a second response object). The
  answer must not be ``ok``;
* a **neutral** operator changes nothing the rules count (an element in a foreign
  namespace with any name, at any position, rebinding the ``mm7`` prefix included; a
  status-named element inside ``Details`` or an extension; renamed prefixes; whitespace,
  comments and processing instructions; gzip in one member or several; another charset
  with a correct label; a ``Status: OK`` header). The verdict, of a success or of a
  failure, must stay the same.

The whole reading path runs as the proxy runs it: ``decode_content`` (the Content-Encoding
lines), ``parse_reply`` (the Content-Type lines), ``classify_reply``. Examples per test
follow GATEWAY_PROXY_FUZZ_EXAMPLES (``make fuzz`` raises it).
"""

import dataclasses
import gzip
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from proxy.codes.catalog import load_catalog
from proxy.codes.classify import Outcome, classify_reply
from proxy.server.headers import content_type_of
from proxy.upstream import decode_content
from proxy.vendors import parse_reply
from proxy.vendors.mm7 import MM7_NAMESPACES

CATALOG = load_catalog()
PROPERTIES = settings(
    max_examples=int(os.environ.get("GATEWAY_PROXY_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SOAP = {
    "1.1": "http://schemas.xmlsoap.org/soap/envelope/",
    "1.2": "http://www.w3.org/2003/05/soap-envelope",
}
FOREIGN = ["urn:example:relay-ext", "http://vendor.example/mm7/extensions", "urn:x"]
MM7_OK = ["1000", "+1000", "01000", " 1000 ", "1100"]
MM7_FAILING = sorted(c for c, e in CATALOG.vendors["mm7"].codes.items() if not e.canonical.ok)
MOMS_FAILING = sorted(c for c, e in CATALOG.vendors["moms"].codes.items() if not e.canonical.ok)
NAMES = ["Status", "StatusCode", "StatusText", "Fault", "SubmitRsp", "RSErrorRsp", "Body",
         "Envelope", "Details", "code", "status", "response", "Extension", "x"]  # fmt: skip
mm7_failing = st.sampled_from(MM7_FAILING) | st.integers(2000, 4999).map(str)
moms_failing = st.sampled_from(MOMS_FAILING)
prefixes = st.sampled_from(["mm7", "m", "ns1", "tns", "env", "soap", "x"])
Space = Literal["soap", "mm7", "none", "foreign"]
Verdict = tuple[str, bool, bool]
Draw = Callable[..., Any]  # a composite's draw, or st.data()'s


# --- a small XML model, rendered with any prefixes --------------------------------------------


@dataclass
class El:
    """An element: ``space`` is the namespace it is in (``foreign`` uses ``uri``)."""

    space: Space
    name: str
    children: list["El | str"] = field(default_factory=list)  # str: text or raw markup
    attrs: dict[str, str] = field(default_factory=dict)
    uri: str = ""
    prefix: str | None = None  # a foreign element's prefix (None: a default namespace)


@dataclass(frozen=True)
class Names:
    """How the reply spells its namespaces."""

    soap: str  # the SOAP prefix
    mm7: str  # the MM7 prefix (when prefixed)
    mm7_uri: str
    soap_uri: str
    default_mm7: bool  # MM7 elements in a default namespace instead of a prefix


def text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")


def render(el: El | str, names: Names, default: str | None, root: bool = False) -> str:
    if isinstance(el, str):
        return el
    decl, inner_default = "", default
    if el.space == "soap":
        tag = f"{names.soap}:{el.name}"
    elif el.space == "mm7" and names.default_mm7:
        tag = el.name
        if default != names.mm7_uri:
            decl, inner_default = f' xmlns="{names.mm7_uri}"', names.mm7_uri
    elif el.space == "mm7":
        tag = f"{names.mm7}:{el.name}"
    elif el.space == "none":
        tag = el.name
        if default:
            decl, inner_default = ' xmlns=""', None
    elif el.prefix:
        tag, decl = f"{el.prefix}:{el.name}", f' xmlns:{el.prefix}="{el.uri}"'
    else:
        tag, decl, inner_default = el.name, f' xmlns="{el.uri}"', el.uri
    if root:
        decl += f' xmlns:{names.soap}="{names.soap_uri}"'
        if not names.default_mm7:
            decl += f' xmlns:{names.mm7}="{names.mm7_uri}"'
    attrs = "".join(f' {k}="{text(v)}"' for k, v in el.attrs.items())
    inner = "".join(render(c, names, inner_default) for c in el.children)
    return f"<{tag}{decl}{attrs}>{inner}</{tag}>"


def foreign(draw: Draw, name: str | None = None, content: str = "") -> El:
    """An element in another namespace, with any name and prefix (``mm7`` rebound too)."""
    name = name or draw(st.sampled_from(NAMES))
    uri = draw(st.sampled_from(FOREIGN))
    prefix = draw(st.none() | prefixes)
    inner: list[El | str] = [content] if content else []
    if draw(st.booleans()):  # a nested status-looking child, in the same foreign namespace
        code = draw(mm7_failing | st.sampled_from(MM7_OK))
        inner.append(El("foreign", "StatusCode", [code], uri=uri, prefix=prefix))
    return El("foreign", name, inner, uri=uri, prefix=prefix)


# --- MM7 ---------------------------------------------------------------------------------------


@dataclass
class Mm7Reply:
    soap: Literal["1.1", "1.2", "bare"]
    names: Names
    rsp: str
    code: str
    direct: bool  # StatusCode directly in the *Rsp, no Status wrapper
    unqualified: bool  # the *Rsp's children unqualified (relays that drop prefixes)
    in_fault: bool  # the response sits in a Fault's detail
    http: int
    body_extra: list[El | str] = field(default_factory=list)
    rsp_first: list[El | str] = field(default_factory=list)  # before everything in the Rsp
    rsp_extra: list[El | str] = field(default_factory=list)
    status_extra: list[El | str] = field(default_factory=list)
    details: list[El | str] = field(default_factory=list)
    header_extra: list[El | str] = field(default_factory=list)
    envelope_extra: list[El | str] = field(default_factory=list)
    headers: list[tuple[str, str]] = field(default_factory=list)
    multipart: bool = False
    encoding: "Encoding | None" = None  # another charset, correctly labelled
    gzip_parts: int = 0

    def child_space(self) -> Space:
        return "none" if self.unqualified else "mm7"

    def status_code(self) -> El:
        return El(self.child_space(), "StatusCode", [self.code])

    def response(self) -> El:
        space = self.child_space()
        status: list[El | str] = [self.status_code(), El(space, "StatusText", ["Numéro"])]
        status += self.status_extra
        if self.details:
            status.append(El(space, "Details", list(self.details)))
        kids: list[El | str] = [*self.rsp_first, El(space, "MM7Version", ["6.8.0"])]
        kids += status if self.direct else [El(space, "Status", status)]
        kids += [*self.rsp_extra, El(space, "MessageID", ["m-1"])]
        return El("mm7", self.rsp, kids)

    def document(self) -> El:
        response = self.response()
        if self.soap == "bare":
            response.children += self.body_extra
            return response
        body: list[El | str] = []
        if self.in_fault:
            body.append(fault(self.soap, [response]))
        else:
            body.append(response)
        body += self.body_extra
        header = El("soap", "Header", [El("mm7", "TransactionID", ["t-1"]), *self.header_extra])
        return El("soap", "Envelope", [header, El("soap", "Body", body), *self.envelope_extra])


def fault(soap: str, detail: list[El | str], code: str = "Server") -> El:
    if soap == "1.2":
        value = "Receiver" if code == "Server" else "Sender"
        parts: list[El | str] = [
            El("soap", "Code", [El("soap", "Value", [f"env12:{value}"])]),
            El("soap", "Reason", [El("soap", "Text", ["refused"])]),
        ]
        if detail:
            parts.append(El("soap", "Detail", detail))
        return El("soap", "Fault", parts)
    parts = [El("none", "faultcode", [f"x:{code}"]), El("none", "faultstring", ["refused"])]
    if detail:
        parts.append(El("none", "detail", detail))
    return El("soap", "Fault", parts)


def mm7_bytes(reply: Mm7Reply) -> tuple[bytes, CIMultiDictProxy[str], int]:
    xml = render(reply.document(), reply.names, None, root=True)
    encoding = reply.encoding or UTF8
    data = encoding.encode('<?xml version="1.0" encoding="{enc}"?>' + xml)
    content_type = f"text/xml; charset={encoding.label}"
    headers = CIMultiDict(reply.headers)
    if reply.multipart:
        boundary = "MIME_boundary_7"
        data = b"\r\n".join([
            f"--{boundary}".encode(), b"Content-Type: text/plain", b"", b"see the SOAP part",
            f"--{boundary}".encode(), f"Content-Type: {content_type}".encode(),
            b"Content-ID: <soap-root>", b"", data, f"--{boundary}--".encode(), b"",
        ])  # fmt: skip
        content_type = (
            f'multipart/related; boundary="{boundary}"; type="text/xml"; start="<soap-root>"'
        )
    headers["Content-Type"] = content_type
    if reply.gzip_parts:
        data = split_gzip(data, reply.gzip_parts)
        headers.add("Content-Encoding", "gzip")
    return data, CIMultiDictProxy(headers), reply.http


def split_gzip(data: bytes, parts: int) -> bytes:
    """``data`` in ``parts`` gzip members (an empty first one when more than one)."""
    if parts == 1:
        return gzip.compress(data)
    size = max(1, len(data) // (parts - 1))
    pieces = [b""] + [data[i : i + size] for i in range(0, len(data), size)]
    return b"".join(gzip.compress(piece) for piece in pieces)


@dataclass(frozen=True)
class Encoding:
    """A charset and its correct label (a BOM first, when ``bom``)."""

    codec: str
    label: str
    bom: bool = False

    def encode(self, doc: str) -> bytes:
        """``doc`` in this charset; a character it has no byte for is written as an XML
        character reference (JSON documents are built ASCII-safe for these charsets)."""
        data = doc.replace("{enc}", self.label).encode(self.codec, "xmlcharrefreplace")
        return "\ufeff".encode(self.codec) + data if self.bom else data

    @property
    def unicode(self) -> bool:
        return self.codec.startswith("utf")


UTF8 = Encoding("utf-8", "UTF-8")
ENCODINGS = [
    Encoding("utf-16-be", "utf-16"),  # no BOM: big-endian, RFC 2781 §4.3
    Encoding("utf-16-be", "UTF-16BE"),
    Encoding("utf-16-le", "utf-16le"),
    Encoding("utf-16-le", "utf-16", bom=True),
    Encoding("utf-32-be", "utf-32"),
    Encoding("utf-32-le", "UTF-32", bom=True),
    Encoding("utf-8", "utf-8", bom=True),
    Encoding("iso-8859-1", "ISO-8859-1"),
    Encoding("cp1252", "windows-1252"),
]


@st.composite
def mm7_replies(draw: st.DrawFn, ok: bool) -> Mm7Reply:
    soap: Literal["1.1", "1.2", "bare"] = draw(st.sampled_from(["1.1", "1.2", "bare"]))
    default_mm7 = draw(st.booleans())
    names = Names(
        soap=draw(st.sampled_from(["env", "soap", "SOAP-ENV", "S", "env12"])),
        mm7=draw(st.sampled_from(["mm7", "m", "ns2"])),
        mm7_uri=draw(st.sampled_from(sorted(MM7_NAMESPACES))),
        soap_uri=SOAP["1.2" if soap == "1.2" else "1.1"],
        default_mm7=default_mm7,
    )
    in_fault = not ok and soap != "bare" and draw(st.booleans())
    rsp = "RSErrorRsp" if in_fault else draw(
        st.sampled_from(["SubmitRsp", "DeliverRsp", "CancelRsp", "ReplaceRsp", "DeliveryReportRsp"])
    )  # fmt: skip
    code = draw(st.sampled_from(MM7_OK) if ok else mm7_failing)
    http = draw(st.sampled_from([200, 201] if ok else [200, 400, 500]))
    return Mm7Reply(
        soap=soap, names=names, rsp=rsp, code=code, direct=draw(st.booleans()),
        unqualified=not default_mm7 and draw(st.booleans()), in_fault=in_fault, http=http,
        multipart=draw(st.booleans()),
    )  # fmt: skip


MM7_FAILURE_OPS = [
    "sibling-error-response", "sibling-response", "second-statuscode", "second-status",
    "direct-statuscode", "fault", "header-line", "header-other-name", "header-joined",
]  # fmt: skip


def inject_mm7(draw: Draw, reply: Mm7Reply, op: str) -> Mm7Reply:
    """Put a failure signal where the rules count one."""
    failing = draw(mm7_failing)
    space = reply.child_space()
    if reply.soap == "bare" and op in ("sibling-error-response", "sibling-response", "fault"):
        op = "second-statuscode"  # no Body to hold a sibling
    if op in ("sibling-error-response", "sibling-response"):
        name = "VASPErrorRsp" if op == "sibling-error-response" else "SubmitRsp"
        extra = El("mm7", name, [El(space, "Status", [El(space, "StatusCode", [failing])])])
        reply.body_extra.insert(draw(st.integers(0, len(reply.body_extra))), extra)
    elif op == "second-statuscode":
        reply.status_extra.append(
            El(draw(st.sampled_from([space, "none"])), "StatusCode", [failing])
        )
    elif op == "second-status":
        reply.rsp_extra.append(El(space, "Status", [El(space, "StatusCode", [failing])]))
    elif op == "direct-statuscode":
        reply.rsp_extra.insert(0, El(space, "StatusCode", [failing]))
    elif op == "fault":
        reply.body_extra.append(fault(reply.soap, []))
    elif op == "header-line":
        reply.headers += [("X-MM7-Status-Code", "1000"), ("X-MM7-Status-Code", failing)]
    elif op == "header-other-name":
        reply.headers += [("X-MM7-Status-Code", "1000"), ("X-MM7-StatusCode", failing)]
    else:
        reply.headers.append(("X-MM7-Status-Code", f"1000, {failing}"))
    return reply


MM7_NEUTRAL_OPS = [
    "foreign-anywhere", "status-in-details", "status-in-extension", "rename-prefixes",
    "whitespace-comments-pis", "gzip", "charset", "foreign-first",
]  # fmt: skip


def neutral_mm7(draw: Draw, reply: Mm7Reply, op: str) -> Mm7Reply:
    """Change nothing the rules count."""
    if op == "foreign-anywhere":
        content = draw(mm7_failing | st.sampled_from(MM7_OK))
        place = draw(st.sampled_from(["body", "rsp", "status", "header", "envelope"]))
        target = {
            "body": reply.body_extra, "rsp": reply.rsp_extra, "status": reply.status_extra,
            "header": reply.header_extra, "envelope": reply.envelope_extra,
        }[place]  # fmt: skip
        target.insert(draw(st.integers(0, len(target))), foreign(draw, content=content))
    elif op == "foreign-first":  # a vendor Status before the real one, any prefix
        content = draw(mm7_failing | st.sampled_from(MM7_OK))
        name = draw(st.sampled_from(["Status", "StatusCode"]))
        reply.rsp_first.insert(0, foreign(draw, name, content))
    elif op == "status-in-details":
        code = draw(mm7_failing | st.sampled_from(MM7_OK))
        space = reply.child_space()
        reply.details.append(El(space, "Status", [El(space, "StatusCode", [code])]))
    elif op == "status-in-extension":
        code = draw(mm7_failing | st.sampled_from(MM7_OK))
        space = reply.child_space()
        nested = El(space, "Extension", [El(space, "Status", [El(space, "StatusCode", [code])])])
        reply.rsp_extra.append(nested)
    elif op == "rename-prefixes":
        reply.names = dataclasses.replace(
            reply.names,
            soap=draw(st.sampled_from(["e", "s", "SOAP"])),
            mm7=draw(st.sampled_from(["r", "mms", "ns9"])),
        )
    elif op == "whitespace-comments-pis":
        junk = st.sampled_from(["\n  ", "\t", "<!-- relay 7 -->", "<?relay trace?>", " "])
        for target in (reply.body_extra, reply.rsp_extra, reply.status_extra, reply.header_extra):
            for _ in range(draw(st.integers(0, 2))):
                target.insert(draw(st.integers(0, len(target))), draw(junk))
    elif op == "gzip":
        reply.gzip_parts = draw(st.integers(1, 5))
    elif op == "charset":
        reply.encoding = draw(st.sampled_from(ENCODINGS))
    return reply


def verdict_of(vendor: str, body: bytes, headers: CIMultiDictProxy[str], http: int) -> Outcome:
    codings = headers.getall("Content-Encoding", [])
    content = decode_content(body, ", ".join(codings), 1 << 22) if codings else body
    reply = parse_reply(vendor, content, content_type_of(headers))  # type: ignore[arg-type]
    return classify_reply(CATALOG, vendor, reply, http, headers=headers)


def summary(outcome: Outcome) -> Verdict:
    return outcome.code.name, outcome.code.ok, outcome.retryable


def mm7_verdict(reply: Mm7Reply) -> Outcome:
    return verdict_of("mm7", *mm7_bytes(reply))


@PROPERTIES
@given(st.data())
def test_mm7_generators_build_what_they_claim(data: st.DataObject) -> None:
    ok = data.draw(st.booleans())
    outcome = mm7_verdict(data.draw(mm7_replies(ok)))
    assert outcome.code.ok is ok, outcome


@PROPERTIES
@given(
    st.data(),
    st.sampled_from(MM7_FAILURE_OPS),
    st.lists(st.sampled_from(MM7_NEUTRAL_OPS), max_size=3),
)
def test_mm7_an_injected_failure_is_never_a_success(
    data: st.DataObject, op: str, neutral: list[str]
) -> None:
    reply = data.draw(mm7_replies(ok=True))
    for other in neutral:
        reply = neutral_mm7(data.draw, reply, other)
    outcome = mm7_verdict(inject_mm7(data.draw, reply, op))
    assert not outcome.code.ok, (op, outcome)
    if outcome.conflict:
        assert not outcome.retryable


@PROPERTIES
@given(st.data(), st.booleans(), st.lists(st.sampled_from(MM7_NEUTRAL_OPS), min_size=1, max_size=3))
def test_mm7_neutral_changes_keep_the_verdict(
    data: st.DataObject, ok: bool, ops: list[str]
) -> None:
    reply = data.draw(mm7_replies(ok))
    before = summary(mm7_verdict(reply))
    for op in ops:
        reply = neutral_mm7(data.draw, reply, op)
    assert summary(mm7_verdict(reply)) == before, ops


# --- MoMS --------------------------------------------------------------------------------------


@dataclass
class MomsReply:
    form: Literal["xml", "json", "jsonp"]
    code: Any
    status: Any
    message: str
    payload: list[tuple[str, Any]]
    code_as: Literal["attribute", "element"] = "attribute"
    extra_codes: list[Any] = field(default_factory=list)  # appended twins
    extra_statuses: list[Any] = field(default_factory=list)
    extra_responses: list[list[tuple[str, Any]]] = field(default_factory=list)
    xml_extra: list[El | str] = field(default_factory=list)
    headers: list[tuple[str, str]] = field(default_factory=list)
    space: str = ""  # JSON whitespace between tokens
    encoding: Encoding | None = None
    gzip_parts: int = 0
    jsonp_guard: bool = False


@st.composite
def moms_replies(draw: st.DrawFn, ok: bool) -> MomsReply:
    form: Literal["xml", "json", "jsonp"] = draw(st.sampled_from(["xml", "json", "jsonp"]))
    code: Any = "1" if ok else draw(moms_failing)
    if form != "xml" and draw(st.booleans()):
        code = int(code)
    status = draw(st.sampled_from(["success", "Success", "ok"])) if ok else "error"
    payload: list[tuple[str, Any]] = draw(
        st.sampled_from(
            [[("message_id", "77"), ("hash", "a1")],
             [("campaign", {"id": "9", "status": {"code": "606", "value": "OPTEDOUT"}})],
             [("history", [{"status": "error", "code": 436}])], []]
        )
    )  # fmt: skip
    return MomsReply(
        form=form, code=code, status=status, message="Message envoyé", payload=payload,
        code_as=draw(st.sampled_from(["attribute", "element"])),
        jsonp_guard=draw(st.booleans()),
    )  # fmt: skip


def xml_value(name: str, value: Any) -> El:
    if isinstance(value, dict):
        return El("none", name, [xml_value(k, v) for k, v in value.items()])
    if isinstance(value, list):
        return El("none", name, [xml_value("entry", v) for v in value])
    return El("none", name, [str(value)])


def moms_bytes(reply: MomsReply) -> tuple[bytes, CIMultiDictProxy[str], int]:
    encoding = reply.encoding or UTF8
    if reply.form == "xml":
        attrs = {"status": str(reply.status)}
        kids: list[El | str] = [El("none", "message", [text(reply.message)])]
        if reply.code_as == "attribute":
            attrs["code"] = str(reply.code)
        else:
            kids.insert(0, El("none", "code", [str(reply.code)]))
        kids += [El("none", "code", [str(c)]) for c in reply.extra_codes]
        kids += [El("none", "status", [str(s)]) for s in reply.extra_statuses]
        kids += [xml_value(k, v) for k, v in reply.payload] + reply.xml_extra
        names = Names("s", "m", "urn:unused", SOAP["1.1"], default_mm7=True)
        xml = render(El("none", "response", kids, attrs), names, None)
        doc = '<?xml version="1.0" encoding="{enc}"?>' + xml
        content_type = "text/xml"
    else:
        sp = reply.space
        pairs = [("code", reply.code), ("status", reply.status), ("message", reply.message)]
        pairs += [("code", c) for c in reply.extra_codes]
        pairs += [("status", s) for s in reply.extra_statuses] + reply.payload
        responses = [pairs, *reply.extra_responses]
        doc = (
            "{"
            + sp
            + ("," + sp).join(
                f'"response":{sp}{json_object(r, sp, ascii_only=not encoding.unicode)}'
                for r in responses
            )
            + sp
            + "}"
        )
        if reply.form == "jsonp":
            doc = ("/**/ " if reply.jsonp_guard else "") + f"callback({doc});\n"
        content_type = "application/json" if reply.form == "json" else "text/javascript"
    data = encoding.encode(doc)
    content_type += f"; charset={encoding.label}"
    headers = CIMultiDict(reply.headers)
    headers["Content-Type"] = content_type
    if reply.gzip_parts:
        data = split_gzip(data, reply.gzip_parts)
        headers.add("Content-Encoding", "gzip")
    return data, CIMultiDictProxy(headers), 200


def json_object(pairs: list[tuple[str, Any]], sp: str, *, ascii_only: bool = False) -> str:
    inner = ("," + sp).join(
        f"{json.dumps(k)}:{sp}{json.dumps(v, ensure_ascii=ascii_only)}" for k, v in pairs
    )
    return "{" + sp + inner + sp + "}"


non_success_json = st.one_of(
    st.sampled_from([False, True, 0, 1, None, "", "error", "failed", "successful", "OK!", [], {}]),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.lists(st.sampled_from(["success", 1]), max_size=2),
    st.dictionaries(st.sampled_from(["status", "value"]), st.just("success"), max_size=1),
    st.text(max_size=8).filter(lambda s: s.strip().lower() not in ("success", "ok")),
)

MOMS_FAILURE_OPS = [
    "code-twin",
    "status-twin",
    "status-any-value",
    "second-response",
    "status-header",
]


def inject_moms(draw: Draw, reply: MomsReply, op: str) -> MomsReply:
    if op == "code-twin":
        reply.extra_codes.append(draw(moms_failing))
    elif op == "status-twin":
        reply.extra_statuses.append(draw(st.sampled_from(["error", "fail", "FAILED"])))
    elif op == "status-any-value":
        value = draw(non_success_json)
        if reply.form == "xml":
            value = str(value) if isinstance(value, str) else json.dumps(value)
            if value.strip().lower() in ("success", "ok"):
                value = "error"
        if draw(st.booleans()):
            reply.status = value
        else:
            reply.extra_statuses.append(value)
    elif op == "second-response" and reply.form != "xml":
        reply.extra_responses.append([("code", draw(moms_failing)), ("status", "error")])
    elif op == "second-response":  # XML has one root: its twin is a second <code>
        reply.extra_codes.append(draw(moms_failing))
    else:
        value = draw(st.sampled_from(["BAD_REQUEST", "403", "500 Internal Server Error", "error"]))
        reply.headers += [("Status", "OK"), ("Status", value)]
    return reply


MOMS_NEUTRAL_OPS = ["foreign-element", "whitespace", "gzip", "charset", "status-header-ok"]


def neutral_moms(draw: Draw, reply: MomsReply, op: str) -> MomsReply:
    if op == "foreign-element" and reply.form == "xml":
        content = draw(st.sampled_from(["606", "error", "1", "success"]))
        reply.xml_extra.insert(0, foreign(draw, content=content))
    elif op == "whitespace":
        if reply.form == "xml":
            reply.xml_extra.append(draw(st.sampled_from(["\n", "<!-- api-3 -->", "<?trace x?>"])))
        else:
            reply.space = draw(st.sampled_from([" ", "\n\t", "\r\n  "]))
    elif op == "gzip":
        reply.gzip_parts = draw(st.integers(1, 5))
    elif op == "charset":
        reply.encoding = draw(st.sampled_from(ENCODINGS))
    elif op == "status-header-ok":
        reply.headers.append(("Status", draw(st.sampled_from(["OK", "200", "200 OK"]))))
    return reply


def moms_verdict(reply: MomsReply) -> Outcome:
    return verdict_of("moms", *moms_bytes(reply))


@PROPERTIES
@given(st.data())
def test_moms_generators_build_what_they_claim(data: st.DataObject) -> None:
    ok = data.draw(st.booleans())
    outcome = moms_verdict(data.draw(moms_replies(ok)))
    assert outcome.code.ok is ok, outcome


@PROPERTIES
@given(
    st.data(),
    st.sampled_from(MOMS_FAILURE_OPS),
    st.lists(st.sampled_from(MOMS_NEUTRAL_OPS), max_size=3),
)
def test_moms_an_injected_failure_is_never_a_success(
    data: st.DataObject, op: str, neutral: list[str]
) -> None:
    reply = data.draw(moms_replies(ok=True))
    for other in neutral:
        reply = neutral_moms(data.draw, reply, other)
    outcome = moms_verdict(inject_moms(data.draw, reply, op))
    assert not outcome.code.ok, (op, outcome)
    if outcome.conflict:
        assert not outcome.retryable


@PROPERTIES
@given(
    st.data(), st.booleans(), st.lists(st.sampled_from(MOMS_NEUTRAL_OPS), min_size=1, max_size=3)
)
def test_moms_neutral_changes_keep_the_verdict(
    data: st.DataObject, ok: bool, ops: list[str]
) -> None:
    reply = data.draw(moms_replies(ok))
    before = summary(moms_verdict(reply))
    for op in ops:
        reply = neutral_moms(data.draw, reply, op)
    assert summary(moms_verdict(reply)) == before, ops


@PROPERTIES
@given(st.data(), st.booleans(), st.sampled_from(["mm7", "moms"]))
def test_the_fast_path_gives_the_rules_verdict(data: st.DataObject, ok: bool, vendor: str) -> None:
    """classify_reply's shortcut for a single agreeing code is exact: the same Outcome as
    judging every signal by the rules, for any reply the generators build."""
    from proxy.codes.classify import _by_the_rules

    if vendor == "mm7":
        reply = data.draw(mm7_replies(ok))
        if data.draw(st.booleans()):
            reply = inject_mm7(data.draw, reply, data.draw(st.sampled_from(MM7_FAILURE_OPS)))
        body, headers, http = mm7_bytes(reply)
    else:
        moms = data.draw(moms_replies(ok))
        if data.draw(st.booleans()):
            moms = inject_moms(data.draw, moms, data.draw(st.sampled_from(MOMS_FAILURE_OPS)))
        body, headers, http = moms_bytes(moms)
    codings = headers.getall("Content-Encoding", [])
    content = decode_content(body, ", ".join(codings), 1 << 22) if codings else body
    parsed = parse_reply(vendor, content, content_type_of(headers))  # type: ignore[arg-type]
    table = CATALOG.vendors[vendor]
    fast = classify_reply(CATALOG, vendor, parsed, http, headers=headers)
    assert fast == _by_the_rules(CATALOG, table, parsed, http, headers, False)
