"""Rule 1 as a property: a reply carrying any failure signal is never ``ok``.

Two kinds of input: replies built from parts, so the test knows every signal they carry
(where the real status sits, decoy statuses elsewhere, Faults, wrappers, headers), and
the mutated and random replies of ``test_vendors_fuzz``, for which the signals that
survive the mutation are read off the inputs.
"""

import json

from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict

from proxy.codes.catalog import load_catalog
from proxy.codes.classify import classify_reply
from proxy.codes.envelope import build_envelope
from proxy.vendors import parse_reply
from proxy.vendors.mm7 import parse_mm7
from proxy.vendors.moms import parse_moms
from tests.conftest import validate_envelope
from tests.test_vendors_fuzz import FUZZ, gateway_replies, http_statuses

CATALOG = load_catalog()
MM7_FAILURES = sorted(c for c, e in CATALOG.vendors["mm7"].codes.items() if not e.canonical.ok)
MOMS_FAILURES = sorted(c for c, e in CATALOG.vendors["moms"].codes.items() if not e.canonical.ok)
NS = "http://www.3gpp.org/ftp/Specs/archive/23_series/23.140/schema/REL-6-MM7-1-4"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"

success_spellings = st.sampled_from(["1000", "+1000", "01000", " 1000 ", "1100"])
failure_codes = st.sampled_from(MM7_FAILURES) | st.integers(2000, 4999).map(str)


def ok_of(vendor: str, body: bytes, ct: str | None, status: int, headers: CIMultiDict[str]) -> bool:
    reply = parse_reply(vendor, body, ct)  # type: ignore[arg-type]
    outcome = classify_reply(CATALOG, vendor, reply, status, headers=headers)
    envelope = build_envelope(outcome, request_id="fuzz", route=vendor)
    validate_envelope(envelope)
    if envelope["ok"]:
        assert not outcome.conflict
    return bool(envelope["ok"])


@st.composite
def mm7_replies(draw: st.DrawFn) -> tuple[bytes, bool]:
    """(body, whether the reply's own status is a success) with decoys around it."""
    real_ok = draw(st.booleans())
    code = draw(success_spellings if real_ok else failure_codes)
    decoy = draw(success_spellings if not real_ok else failure_codes)
    p = draw(st.sampled_from(["mm7:", ""]))  # prefixed or unqualified children
    status = f"<{p}StatusCode>{code}</{p}StatusCode><{p}StatusText>t</{p}StatusText>"
    nested = (
        f"<{p}Details><v:Info xmlns:v='urn:v'><v:Status><v:StatusCode>{decoy}</v:StatusCode>"
        f"</v:Status></v:Info></{p}Details>"
    )
    extension = f"<{p}Extension><{p}Status><{p}StatusCode>{decoy}</{p}StatusCode></{p}Status></{p}Extension>"
    inner = draw(
        st.sampled_from(
            [
                f"<{p}Status>{status}{nested}</{p}Status>",
                f"{extension}<{p}Status>{status}</{p}Status>",
                f"{status}{nested}",
                f"<{p}Status>{status}</{p}Status>{extension}",
            ]
        )
    )
    rsp = draw(st.sampled_from(["SubmitRsp", "DeliverRsp", "CancelRsp", "ReplaceRsp"]))
    element = f"<mm7:{rsp}><mm7:MM7Version>6.8.0</mm7:MM7Version>{inner}</mm7:{rsp}>"
    header = f"<mm7:TransactionID>t</mm7:TransactionID><{p}Status><{p}StatusCode>{decoy}</{p}StatusCode></{p}Status>"
    body = (
        f'<env:Envelope xmlns:env="{SOAP11}" xmlns:mm7="{NS}"><env:Header>{header}</env:Header>'
        f"<env:Body>{element}</env:Body></env:Envelope>"
    )
    return body.encode(), real_ok


@st.composite
def mm7_faults(draw: st.DrawFn) -> bytes:
    """A SOAP 1.1 or 1.2 Fault, with or without a (success!) status in its detail."""
    inside = draw(
        st.sampled_from(
            [
                "",
                "<mm7:RSErrorRsp><mm7:Status><mm7:StatusCode>1000</mm7:StatusCode></mm7:Status></mm7:RSErrorRsp>",
                "<mm7:Status><mm7:StatusCode>1000</mm7:StatusCode></mm7:Status>",
            ]
        )
    )
    code = draw(st.sampled_from(["env:Client", "env:Server.Busy", "v:Throttled", "Client.Auth"]))
    if draw(st.booleans()):
        fault = f"<env:Fault><faultcode>{code}</faultcode><faultstring>x</faultstring><detail>{inside}</detail></env:Fault>"
        ns = SOAP11
    else:
        fault = (
            f"<env:Fault><env:Code><env:Value>env:Sender</env:Value><env:Subcode><env:Value>{code}"
            f"</env:Value></env:Subcode></env:Code><env:Reason><env:Text>x</env:Text></env:Reason>"
            f"<env:Detail>{inside}</env:Detail></env:Fault>"
        )
        ns = SOAP12
    return (
        f'<env:Envelope xmlns:env="{ns}" xmlns:mm7="{NS}" xmlns:v="urn:v"><env:Body>{fault}'
        "</env:Body></env:Envelope>"
    ).encode()


@st.composite
def mm7_headers(draw: st.DrawFn) -> tuple[CIMultiDict[str], bool]:
    """Response headers and whether they carry a failure signal."""
    headers: CIMultiDict[str] = CIMultiDict()
    failing = False
    choice = draw(st.integers(0, 2))
    if choice:
        code = draw(failure_codes if choice == 1 else success_spellings)
        headers[draw(st.sampled_from(["X-MM7-Status-Code", "x-mm7-statuscode"]))] = code
        failing = choice == 1
    if draw(st.booleans()):
        headers["Retry-After"] = "5"
    return headers, failing


@FUZZ
@given(reply=mm7_replies(), status=http_statuses, extra=mm7_headers())
def test_mm7_ok_only_when_every_signal_agrees(
    reply: tuple[bytes, bool], status: int, extra: tuple[CIMultiDict[str], bool]
) -> None:
    body, real_ok = reply
    headers, header_fails = extra
    ok = ok_of("mm7", body, "text/xml", status, headers)
    assert ok == (real_ok and 200 <= status < 300 and not header_fails)


@FUZZ
@given(body=mm7_faults(), status=http_statuses, extra=mm7_headers())
def test_a_fault_is_never_ok(
    body: bytes, status: int, extra: tuple[CIMultiDict[str], bool]
) -> None:
    assert not ok_of("mm7", body, "text/xml", status, extra[0])


MOMS_STATUS = st.sampled_from([None, "success", "Success", "error", "fail", "ERROR", "pending"])


@st.composite
def moms_replies(draw: st.DrawFn) -> tuple[bytes, bool]:
    """(body, whether code and status both say success), in JSON, JSONP or XML."""
    code_ok = draw(st.booleans())
    code = "1" if code_ok else draw(st.sampled_from(MOMS_FAILURES))
    status = draw(MOMS_STATUS)
    agrees = code_ok and (status is None or status.lower() in ("success", "ok"))
    fields: dict[str, object] = {"code": draw(st.sampled_from([code, int(code)]))}
    if status is not None:
        fields["status"] = status
    fields["message"] = "m"
    if draw(st.booleans()):
        attr = f' status="{status}"' if status is not None else ""
        return f'<response code="{code}"{attr}><message>m</message></response>'.encode(), agrees
    doc = json.dumps({"response": fields}).encode()
    wrapper = draw(
        st.sampled_from(["{}", "cb({});", "/**/jQuery_1({})", "{}\n<!-- x -->", "\ufeff{}"])
    )
    return wrapper.replace("{}", "\x00").encode().replace(b"\x00", doc), agrees


@FUZZ
@given(
    reply=moms_replies(),
    status=http_statuses,
    header=st.sampled_from([None, "OK", "200", "BAD_REQUEST", "500", "error"]),
)
def test_moms_ok_only_when_every_signal_agrees(
    reply: tuple[bytes, bool], status: int, header: str | None
) -> None:
    body, agrees = reply
    headers: CIMultiDict[str] = CIMultiDict({"Status": header} if header else {})
    header_ok = header in (None, "OK", "200")
    ok = ok_of("moms", body, "text/xml", status, headers)
    assert ok == (agrees and 200 <= status < 300 and header_ok)


@FUZZ
@given(reply=gateway_replies, status=st.integers(300, 599), vendor=st.sampled_from(["mm7", "moms"]))
def test_any_reply_with_an_error_status_is_never_ok(
    reply: tuple[bytes, str | None], status: int, vendor: str
) -> None:
    """Whatever a mutated body says, an error HTTP status is a failure signal."""
    assert not ok_of(vendor, *reply, status, CIMultiDict())


@FUZZ
@given(reply=gateway_replies, status=http_statuses, code=failure_codes)
def test_any_reply_with_a_failing_status_header_is_never_ok(
    reply: tuple[bytes, str | None], status: int, code: str
) -> None:
    assert not ok_of("mm7", *reply, status, CIMultiDict({"X-MM7-Status-Code": code}))


@FUZZ
@given(reply=gateway_replies, status=http_statuses)
def test_mutated_replies_with_failure_signals_are_never_ok(
    reply: tuple[bytes, str | None], status: int
) -> None:
    """Signals that survive a mutation, read off the parse: a Fault, an ErrorRsp, a status."""
    mm7_reply = parse_mm7(*reply)
    if mm7_reply.fault or (mm7_reply.element or "").endswith("ErrorRsp"):
        assert not ok_of("mm7", *reply, status, CIMultiDict())
    moms_reply = parse_moms(*reply)
    if moms_reply.status is not None and moms_reply.status.lower() not in ("success", "ok"):
        assert not ok_of("moms", *reply, status, CIMultiDict())
