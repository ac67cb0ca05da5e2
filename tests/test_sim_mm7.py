"""The simulated MM7 relay (proxy/tools/sim/mm7.py, mm7_request.py, app.py)."""

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from lxml import etree

from proxy.codes.catalog import Catalog
from proxy.codes.classify import classify_reply
from proxy.tools.sim import SimSettings, create_sim_app
from proxy.tools.sim.codes import Mm7Layout
from proxy.tools.sim.mm7 import (
    MM7_NS,
    SOAP_NS,
    render_reply,
    submit_request,
)
from proxy.vendors import parse_reply

SCHEMA_DIR = Path(__file__).parent / "fixtures" / "sim"
NS = {"env": SOAP_NS, "mm7": MM7_NS}
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)

Client = TestClient[Any, Any]


def soap(kind: str, inner: str = "", *, tid: str | None = "tx-42", version: str = "6.8.0") -> str:
    header = (
        f'<env:Header><mm7:TransactionID env:mustUnderstand="1">{tid}</mm7:TransactionID>'
        "</env:Header>"
        if tid is not None
        else ""
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<env:Envelope xmlns:env="{SOAP_NS}" xmlns:mm7="{MM7_NS}">{header}<env:Body>'
        f"<mm7:{kind}><mm7:MM7Version>{version}</mm7:MM7Version>{inner}</mm7:{kind}>"
        "</env:Body></env:Envelope>"
    )


def submit(address: str = "+15550001234", element: str = "Number") -> str:
    inner = (
        "<mm7:SenderIdentification><mm7:VASPID>v</mm7:VASPID></mm7:SenderIdentification>"
        f"<mm7:Recipients><mm7:To><mm7:{element}>{address}</mm7:{element}></mm7:To>"
        "</mm7:Recipients><mm7:Subject>hi</mm7:Subject>"
    )
    return soap("SubmitReq", inner)


@pytest.fixture
def schema() -> etree.XMLSchema:
    """SOAP 1.1 + REL-6-MM7-1-4 response subset (tests/fixtures/sim/*.xsd)."""
    return etree.XMLSchema(etree.parse(str(SCHEMA_DIR / "soap-envelope-subset.xsd"), _PARSER))


@pytest.fixture
async def sim(aiohttp_client: Callable[..., Awaitable[Client]]) -> Client:
    return await aiohttp_client(create_sim_app(SimSettings()))


async def post(sim: Client, body: str | bytes, **headers: str) -> tuple[int, str, etree._Element]:
    headers.setdefault("Content-Type", "text/xml; charset=utf-8")
    async with sim.post("/mm7", data=body, headers=headers) as response:
        raw = await response.read()
        return response.status, response.headers["Content-Type"], etree.fromstring(raw, _PARSER)


def status_code(doc: etree._Element) -> str:
    return str(doc.xpath("string(//mm7:Status/mm7:StatusCode)", namespaces=NS))


def mm7_codes(catalog: Catalog) -> list[str]:
    return sorted(catalog.vendors["mm7"].codes, key=int)


async def test_submit_success_has_the_relay_shape(sim: Client) -> None:
    """SubmitRsp: TransactionID echoed in the Header, MM7Version 6.8.0, 1000, a MessageID."""
    status, ctype, doc = await post(sim, submit())
    assert status == 200
    assert ctype.startswith("text/xml")
    tid = doc.find("env:Header/mm7:TransactionID", NS)
    assert tid is not None
    assert tid.text == "tx-42"
    assert tid.get(f"{{{SOAP_NS}}}mustUnderstand") == "1"
    rsp = doc.find("env:Body/mm7:SubmitRsp", NS)
    assert rsp is not None
    assert rsp.findtext("mm7:MM7Version", namespaces=NS) == "6.8.0"
    assert rsp.findtext("mm7:Status/mm7:StatusCode", namespaces=NS) == "1000"
    assert rsp.findtext("mm7:Status/mm7:StatusText", namespaces=NS) == "Success"
    assert (rsp.findtext("mm7:MessageID", namespaces=NS) or "").strip()


async def test_message_ids_differ_between_submits(sim: Client) -> None:
    ids = set()
    for _ in range(3):
        _, _, doc = await post(sim, submit())
        ids.add(doc.findtext("env:Body/mm7:SubmitRsp/mm7:MessageID", namespaces=NS))
    assert len(ids) == 3


@pytest.mark.parametrize(
    ("kind", "rsp"),
    [
        ("CancelReq", "CancelRsp"),
        ("ReplaceReq", "ReplaceRsp"),
        ("DeliveryReportReq", "DeliveryReportRsp"),
        ("ExtendedReplaceReq", "ExtendedReplaceRsp"),
    ],
)
async def test_each_request_gets_its_own_rsp(
    sim: Client, schema: etree.XMLSchema, kind: str, rsp: str
) -> None:
    inner = "<mm7:MessageID>123</mm7:MessageID>"
    status, _, doc = await post(sim, soap(kind, inner))
    assert status == 200
    assert doc.find(f"env:Body/mm7:{rsp}", NS) is not None
    assert status_code(doc) == "1000"
    schema.assertValid(doc)


async def test_error_is_a_soap_fault_with_rserrorrsp(sim: Client, schema: etree.XMLSchema) -> None:
    status, _, doc = await post(sim, submit("+15550002002"))
    assert status == 500
    fault = doc.find("env:Body/env:Fault", NS)
    assert fault is not None
    assert fault.findtext("faultcode") == "env:Client"
    assert fault.findtext("faultstring") == "Address Error"
    assert fault.find("detail/mm7:RSErrorRsp", NS) is not None
    assert status_code(doc) == "2002"
    assert doc.findtext("env:Header/mm7:TransactionID", namespaces=NS) == "tx-42"
    schema.assertValid(doc)


@pytest.mark.parametrize(("code", "side"), [("3002", "env:Server"), ("4006", "env:Server")])
async def test_server_side_codes_use_faultcode_server(sim: Client, code: str, side: str) -> None:
    status, _, doc = await post(sim, submit(), **{"X-Sim-Code": code})
    assert status == 500
    assert doc.findtext("env:Body/env:Fault/faultcode", namespaces=NS) == side


async def test_every_catalog_code_by_recipient(sim: Client, catalog: Catalog) -> None:
    """+1555000XXXX gives MM7 code XXXX for every code of the catalog (0000 gives 0)."""
    for code in mm7_codes(catalog):
        _, _, doc = await post(sim, submit(f"+1555000{int(code):04d}"))
        assert status_code(doc) == code


async def test_every_catalog_code_by_header(sim: Client, catalog: Catalog) -> None:
    for code in mm7_codes(catalog):
        _, _, doc = await post(sim, submit(), **{"X-Sim-Code": code})
        assert status_code(doc) == code


async def test_output_is_valid_rel6_mm7_1_4_for_every_schema_code(
    sim: Client, schema: etree.XMLSchema, catalog: Catalog
) -> None:
    """Every answer (SubmitRsp or Fault/RSErrorRsp) validates; 0 is outside TS 23.140."""
    for code in mm7_codes(catalog):
        if code == "0":
            continue
        _, _, doc = await post(sim, submit(), **{"X-Sim-Code": code})
        schema.assertValid(doc)


async def test_schema_subset_rejects_a_submitrsp_without_messageid(
    schema: etree.XMLSchema,
) -> None:
    """The schema subset is strict enough to catch a broken answer."""
    body = soap("SubmitRsp", "<mm7:Status><mm7:StatusCode>1000</mm7:StatusCode>"
                "<mm7:StatusText>ok</mm7:StatusText></mm7:Status>")  # fmt: skip
    assert not schema.validate(etree.fromstring(body.encode(), _PARSER))


async def test_the_proxy_parser_reads_every_code_as_the_catalog_says(
    sim: Client, catalog: Catalog
) -> None:
    for code in mm7_codes(catalog):
        async with sim.post("/mm7", data=submit(), headers={"X-Sim-Code": code}) as response:
            body = await response.read()
            reply = parse_reply("mm7", body, response.headers["Content-Type"])
            outcome = classify_reply(catalog, "mm7", reply, response.status)
        assert reply.code == code
        assert reply.transaction_id == "tx-42"
        assert outcome.code == catalog.vendors["mm7"].codes[code].canonical


async def test_header_code_wins_over_the_recipient(sim: Client) -> None:
    _, _, doc = await post(sim, submit("+15550002002"), **{"X-Sim-Code": "4006"})
    assert status_code(doc) == "4006"


async def test_header_code_outside_the_catalog_is_sent_as_is(sim: Client) -> None:
    """Unknown codes exercise the proxy's TS 23.140 class fallbacks."""
    status, _, doc = await post(sim, submit(), **{"X-Sim-Code": "2099"})
    assert status == 500
    assert status_code(doc) == "2099"


@pytest.mark.parametrize(
    ("address", "element", "expected"),
    [
        ("+15550009999", "Number", "1000"),  # 9999 is no code: success
        ("+15550002003/TYPE=PLMN", "RFC2822Address", "2003"),
        ("user2004@example.com", "RFC2822Address", "2004"),
        ("12002", "ShortCode", "2002"),
    ],
)
async def test_recipient_forms(sim: Client, address: str, element: str, expected: str) -> None:
    _, _, doc = await post(sim, submit(address, element))
    assert status_code(doc) == expected


async def test_multipart_related_with_start(sim: Client) -> None:
    boundary = "sim-boundary"
    body = (
        f"--{boundary}\r\nContent-Type: text/xml; charset=utf-8\r\nContent-ID: <soap-start>\r\n\r\n"
        f"{submit('+15550002002')}\r\n"
        f"--{boundary}\r\nContent-Type: image/gif\r\nContent-ID: <img1>\r\n\r\nGIF89a....\r\n"
        f"--{boundary}--\r\n"
    )
    ctype = f'multipart/related; boundary="{boundary}"; type="text/xml"; start="<soap-start>"'
    _, _, doc = await post(sim, body, **{"Content-Type": ctype})
    assert status_code(doc) == "2002"


async def test_multipart_related_takes_the_first_part_without_start(sim: Client) -> None:
    boundary = "b0"
    body = (
        f"--{boundary}\r\nContent-Type: text/xml\r\n\r\n{submit()}\r\n"
        f"--{boundary}\r\nContent-Type: text/plain\r\n\r\nhello\r\n--{boundary}--\r\n"
    )
    status, _, doc = await post(
        sim, body, **{"Content-Type": f"multipart/related; boundary={boundary}"}
    )
    assert status == 200
    assert status_code(doc) == "1000"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("this is not xml", "4004"),
        ("<html><body>hi</body></html>", "4004"),
        (soap("SubmitReq", tid=None), "4004"),
        (soap("FrobnicateReq"), "4003"),
        (soap("SubmitReq", version="9.0.0"), "4002"),
        (soap("SubmitReq", version=""), "4004"),
        (soap("SubmitRsp"), "4004"),
    ],
)
async def test_requests_the_relay_cannot_serve(sim: Client, body: str, code: str) -> None:
    status, _, doc = await post(sim, body)
    assert status == 500
    assert status_code(doc) == code
    assert doc.find("env:Body/env:Fault/detail/mm7:RSErrorRsp", NS) is not None
    assert doc.xpath("string(//mm7:Status/mm7:Details)", namespaces=NS)


async def test_a_request_with_a_dtd_is_refused_not_expanded(sim: Client) -> None:
    body = '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>' + soap(
        "SubmitReq"
    ).split("?>", 1)[1].replace("hi", "&e;")
    async with sim.post("/mm7", data=body) as response:
        text = await response.text()
    assert "root:" not in text
    assert "<mm7:StatusCode>4004</mm7:StatusCode>" in text


async def test_fault_http_status_can_be_chosen(sim: Client) -> None:
    status, _, doc = await post(sim, submit(), **{"X-Sim-Code": "4006", "X-Sim-Http-Status": "200"})
    assert status == 200
    assert status_code(doc) == "4006"


@pytest.mark.parametrize(
    ("header", "value"),
    [("X-Sim-Code", "abc"), ("X-Sim-Http-Status", "99"), ("X-Sim-Fault", "explode")],
)
async def test_bad_sim_headers_get_a_plain_400(sim: Client, header: str, value: str) -> None:
    async with sim.post("/mm7", data=submit(), headers={header: value}) as response:
        assert response.status == 400
        assert header in await response.text()


async def test_too_large_request_gets_2004(
    aiohttp_client: Callable[..., Awaitable[Client]],
) -> None:
    small = await aiohttp_client(create_sim_app(SimSettings(max_mm7_request_bytes=1000)))
    status, _, doc = await post(small, submit().replace("hi", "x" * 5000))
    assert status == 500
    assert status_code(doc) == "2004"


async def test_latency_delays_every_answer(
    aiohttp_client: Callable[..., Awaitable[Client]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--latency sleeps before answering (recorded, not timed)."""
    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def recording_sleep(delay: float) -> None:
        slept.append(delay)
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", recording_sleep)
    client = await aiohttp_client(create_sim_app(SimSettings(latency_ms=250)))
    async with client.post("/mm7", data=submit()) as response:
        assert response.status == 200
    async with client.get("/moms/system.ping") as response:
        assert response.status == 200
    assert slept == [0.25, 0.25]


async def test_demo_template_is_a_valid_submit(sim: Client) -> None:
    """The body the demo guide prints is accepted by the relay."""
    _, _, doc = await post(sim, submit_request("+15550002002"))
    assert status_code(doc) == "2002"
    assert doc.findtext("env:Header/mm7:TransactionID", namespaces=NS) == "demo-1"


@pytest.mark.parametrize(
    "body",
    [
        "--b0\r\nContent-Type: text/xml\r\n\r\n\r\n--b0--\r\n",  # an empty SOAP part
        "no parts at all",
    ],
)
async def test_multipart_without_a_soap_part_is_4004(sim: Client, body: str) -> None:
    status, _, doc = await post(sim, body, **{"Content-Type": "multipart/related; boundary=b0"})
    assert status == 500
    assert status_code(doc) == "4004"


async def test_empty_body_element_is_4004(sim: Client) -> None:
    body = soap("SubmitReq").replace(
        "<mm7:SubmitReq><mm7:MM7Version>6.8.0</mm7:MM7Version></mm7:SubmitReq>", ""
    )
    _, _, doc = await post(sim, body)
    assert status_code(doc) == "4004"
    assert doc.findtext("env:Header/mm7:TransactionID", namespaces=NS) == "tx-42"


async def test_recipients_without_an_address_is_a_success(sim: Client) -> None:
    body = soap("SubmitReq", "<mm7:Recipients><mm7:To/></mm7:Recipients>")
    _, _, doc = await post(sim, body)
    assert status_code(doc) == "1000"


@pytest.mark.parametrize(("code", "status"), [("1000", 200), ("2002", 500), ("2099", 500)])
def test_render_reply_takes_the_layout_from_the_table(code: str, status: int) -> None:
    """The builder hand-made test gateways use: an explicit text, the table's layout."""
    reply = render_reply(
        response_kind="SubmitRsp", transaction_id="e2e-1", code=code, text=f"status {code}"
    )
    doc = etree.fromstring(reply.body, _PARSER)
    assert (reply.status, status_code(doc)) == (status, code)
    assert doc.xpath("string(//mm7:StatusText)", namespaces=NS) == f"status {code}"
    assert (doc.find("env:Body/env:Fault", NS) is None) == (status == 200)


def test_render_reply_follows_an_explicit_layout() -> None:
    reply = render_reply(
        response_kind="SubmitRsp",
        transaction_id=None,
        code="1000",
        text="ok",
        layout=Mm7Layout(503, "fault", "Server"),
        fault_status=200,
    )
    doc = etree.fromstring(reply.body, _PARSER)
    assert reply.status == 200  # fault_status overrides a Fault's HTTP status
    assert doc.findtext("env:Body/env:Fault/faultcode", namespaces=NS) == "env:Server"
    assert doc.find("env:Header", NS) is None  # no TransactionID, no Header
