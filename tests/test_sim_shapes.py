"""Reply shapes of the simulator (X-Sim-Shape, the mix's ``shape``): proxy/tools/sim/mm7.py
(status-header, status-header-empty, nested-details, dotted-fault-401, multipart-late-soap),
proxy/tools/sim/moms.py (jsonp) and their choice in proxy/tools/sim/outcome.py."""

import email.message
import email.parser
import email.policy
import json
import re
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from lxml import etree

from proxy.tools.sim import SimSettings, create_sim_app
from proxy.tools.sim.codes import load_sim_codes
from proxy.tools.sim.mm7 import MM7_NS, SOAP_NS, STATUS_HEADER, VENDOR_NS, submit_request
from proxy.tools.sim.outcome import SHAPES, MixError, parse_mix

Client = TestClient[Any, Any]
NS = {"env": SOAP_NS, "mm7": MM7_NS, "vnd": VENDOR_NS}
SCHEMA_DIR = Path(__file__).parent / "fixtures" / "sim"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
SEND = {"campaign_id": "1", "to": "15550001234", "message": "hi", "format": "json"}
_JSONP = re.compile(r"^(?P<name>[\w$.]+)\((?P<json>.*)\);\s*$", re.DOTALL)


@pytest.fixture
async def sim(aiohttp_client: Callable[..., Awaitable[Client]]) -> Client:
    return await aiohttp_client(create_sim_app(SimSettings()))


async def mm7(
    sim: Client, shape: str | None, number: str = "+15550009999", **headers: str
) -> tuple[int, dict[str, str], bytes]:
    if shape is not None:
        headers["X-Sim-Shape"] = shape
    headers.setdefault("Content-Type", "text/xml")
    async with sim.post("/mm7", data=submit_request(number), headers=headers) as response:
        return response.status, dict(response.headers), await response.read()


def xml(body: bytes) -> etree._Element:
    return etree.fromstring(body, _PARSER)


def test_only_the_content_coding_shape_belongs_to_both_vendors() -> None:
    assert set(SHAPES["mm7"]) & set(SHAPES["moms"]) == {"gzip-members"}
    assert "jsonp" in SHAPES["moms"]
    assert "status-header" in SHAPES["mm7"]


def gzip_members(body: bytes) -> list[bytes]:
    """Each gzip member of ``body``, decoded (the simulator's oracle reads them itself)."""
    out: list[bytes] = []
    while body:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        out.append(inflater.decompress(body))
        assert inflater.eof
        body = inflater.unused_data
    return out


async def test_status_header_twice_sends_two_field_lines(sim: Client) -> None:
    headers = {"X-Sim-Code": "2002", "X-Sim-Shape": "status-header-twice"}
    async with sim.post("/mm7", data=submit_request("+1555"), headers=headers) as response:
        assert response.headers.getall(STATUS_HEADER) == ["1000", "2002"]
        body = await response.read()
    assert xml(body).xpath("string(//mm7:Status/mm7:StatusCode)", namespaces=NS) == "2002"


async def test_gzip_members_splits_the_answer_over_three_members(sim: Client) -> None:
    headers = {"X-Sim-Code": "2002", "X-Sim-Shape": "gzip-members", "Accept-Encoding": "identity"}
    async with sim.post("/mm7", data=submit_request("+1555"), headers=headers) as response:
        assert response.headers["Content-Encoding"] == "gzip"
        body = await response.read()  # aiohttp's client undoes the coding it was told of
    assert xml(body).xpath("string(//mm7:Status/mm7:StatusCode)", namespaces=NS) == "2002"
    params = {**SEND, "format": "xml"}
    async with sim.get(
        "/moms/transaction.send", params=params, headers=headers, auto_decompress=False
    ) as response:
        raw = await response.read()
    first, *rest = gzip_members(raw)
    assert first == b""
    assert len(rest) == 2
    assert xml(b"".join(rest)).get("code") == "2002"


@pytest.mark.parametrize(("code", "side"), [("2002", "env:Client"), ("4006", "env:Server")])
async def test_status_header_puts_the_code_in_a_header_and_a_bare_fault(
    sim: Client, code: str, side: str
) -> None:
    status, headers, body = await mm7(sim, "status-header", **{"X-Sim-Code": code})
    assert status == 500  # the table's HTTP status for the code
    assert headers[STATUS_HEADER] == code
    doc = xml(body)
    assert doc.findtext("env:Body/env:Fault/faultcode", namespaces=NS) == side
    assert doc.find("env:Body/env:Fault/detail", NS) is None
    assert code not in body.decode()  # the header is the only place the status is


async def test_status_header_follows_the_recipient_and_x_sim_http_status(sim: Client) -> None:
    status, headers, _ = await mm7(
        sim, "status-header", "+15550002003", **{"X-Sim-Http-Status": "400"}
    )
    assert (status, headers[STATUS_HEADER]) == (400, "2003")


async def test_status_header_of_a_success_code_has_an_empty_body(sim: Client) -> None:
    status, headers, body = await mm7(sim, "status-header")
    assert (status, headers[STATUS_HEADER], body) == (200, "1000", b"")


async def test_status_header_empty_sends_no_body(sim: Client) -> None:
    status, headers, body = await mm7(sim, "status-header-empty", **{"X-Sim-Code": "4006"})
    assert (status, headers[STATUS_HEADER], body) == (500, "4006", b"")


@pytest.mark.parametrize(("code", "decoy"), [("1000", "4004"), ("2002", "4004"), ("4004", "1000")])
async def test_nested_details_hides_a_different_code_in_details(
    sim: Client, code: str, decoy: str
) -> None:
    status, _, body = await mm7(sim, "nested-details", **{"X-Sim-Code": code})
    doc = xml(body)
    codes = doc.xpath("//mm7:StatusCode/text()", namespaces=NS)
    assert codes == [code, decoy]  # the real one first, then the nested one
    real = doc.xpath(
        "//mm7:Status[not(ancestor::mm7:Details)]/mm7:StatusCode/text()", namespaces=NS
    )
    assert real == [code]
    nested = doc.xpath(
        "//mm7:Status/mm7:Details/vnd:RelayDiagnostics/mm7:Status/mm7:StatusCode/text()",
        namespaces=NS,
    )
    assert nested == [decoy]
    assert status == load_sim_codes().layout(code).http


async def test_nested_details_is_still_valid_rel6_mm7(sim: Client) -> None:
    schema = etree.XMLSchema(etree.parse(str(SCHEMA_DIR / "soap-envelope-subset.xsd"), _PARSER))
    for code in ("1000", "2002"):
        _, _, body = await mm7(sim, "nested-details", **{"X-Sim-Code": code})
        schema.assertValid(xml(body))


async def test_dotted_fault_401_has_no_mm7_status(sim: Client) -> None:
    status, headers, body = await mm7(sim, "dotted-fault-401", "+15550002002")
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Basic")
    doc = xml(body)
    assert doc.findtext("env:Body/env:Fault/faultcode", namespaces=NS) == "env:Client.Auth"
    assert not doc.xpath("//*[local-name()='StatusCode']")
    assert STATUS_HEADER not in headers


async def test_multipart_late_soap_names_its_second_part_with_start(sim: Client) -> None:
    status, headers, body = await mm7(sim, "multipart-late-soap", "+15550002002")
    assert status == 500
    ctype = headers["Content-Type"]
    assert ctype.startswith("multipart/related")
    message = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(
        b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body
    )
    parts = [p for p in message.get_payload() if isinstance(p, email.message.Message)]
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/xml"]
    start = str(message.get_param("start"))
    assert parts[1]["Content-ID"] == start
    assert parts[0]["Content-ID"] != start
    soap = parts[1].get_payload(decode=True)
    assert isinstance(soap, bytes)
    assert xml(soap).xpath("string(//mm7:Status/mm7:StatusCode)", namespaces=NS) == "2002"


async def test_multipart_late_soap_of_a_success_is_http_200(sim: Client) -> None:
    status, headers, body = await mm7(sim, "multipart-late-soap")
    assert status == 200
    assert b"<mm7:StatusCode>1000</mm7:StatusCode>" in body
    assert headers["Content-Type"].startswith("multipart/related")


async def test_a_shape_also_lays_out_the_relays_own_refusals(sim: Client) -> None:
    """An unreadable request is answered 4004, in the requested shape too."""
    async with sim.post("/mm7", data="not xml", headers={"X-Sim-Shape": "status-header"}) as r:
        assert (r.status, r.headers[STATUS_HEADER]) == (500, "4004")


async def test_a_fault_wins_over_a_shape(sim: Client) -> None:
    _, headers, _ = await mm7(
        sim, "status-header", **{"X-Sim-Fault": "html502", "X-Sim-Code": "2002"}
    )
    assert STATUS_HEADER not in headers


async def moms_text(sim: Client, path: str, params: dict[str, str], **headers: str) -> str:
    async with sim.get(path, params=params, headers=headers) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/javascript")
        return await response.text()


def unwrap(text: str) -> tuple[str, dict[str, Any]]:
    match = _JSONP.match(text)
    assert match is not None, text
    return match["name"], json.loads(match["json"])["response"]


@pytest.mark.parametrize("path", ["/moms/transaction.send", "/cm/keyword.check"])
async def test_jsonp_wraps_the_json_answer(sim: Client, path: str) -> None:
    params = {**SEND, "keyword": "SIM"}
    text = await moms_text(sim, path, params, **{"X-Sim-Shape": "jsonp", "X-Sim-Code": "606"})
    name, response = unwrap(text)
    assert name == "callback"
    assert (response["code"], response["status"]) == ("606", "error")
    assert response["message"] == load_sim_codes().moms["606"]


async def test_jsonp_uses_the_calls_callback_and_ignores_format(sim: Client) -> None:
    params = {**SEND, "format": "xml", "callback": "jQuery123_456.done"}
    name, response = unwrap(
        await moms_text(sim, "/moms/transaction.send", params, **{"X-Sim-Shape": "jsonp"})
    )
    assert name == "jQuery123_456.done"
    assert response["code"] == "1"
    assert response["message_id"].isdigit()


async def test_jsonp_refuses_a_callback_that_is_not_a_name(sim: Client) -> None:
    params = {**SEND, "callback": "alert(1)//"}
    text = await moms_text(sim, "/moms/system.ping", params, **{"X-Sim-Shape": "jsonp"})
    assert unwrap(text)[0] == "callback"


@pytest.mark.parametrize(
    ("path", "shape"),
    [("/mm7", "jsonp"), ("/moms/system.ping", "status-header"), ("/mm7", "sideways")],
)
async def test_a_shape_of_another_vendor_gets_a_plain_400(
    sim: Client, path: str, shape: str
) -> None:
    async with sim.post(path, data=submit_request("+1"), headers={"X-Sim-Shape": shape}) as r:
        assert r.status == 400
        assert "X-Sim-Shape" in await r.text()


async def test_the_mix_can_draw_shapes(
    aiohttp_client: Callable[..., Awaitable[Client]], tmp_path: Path
) -> None:
    mix = tmp_path / "mix.yaml"
    mix.write_text(
        'mm7:\n  - {code: "2002", shape: status-header}\nmoms:\n  - {shape: jsonp}\n',
        encoding="utf-8",
    )
    client = await aiohttp_client(create_sim_app(SimSettings(mix_path=mix, seed=1)))
    status, headers, _ = await mm7(client, None)
    assert (status, headers[STATUS_HEADER]) == (500, "2002")
    name, response = unwrap(await moms_text(client, "/moms/transaction.send", SEND))
    assert (name, response["code"]) == ("callback", "1")
    # The header's shape wins over the mix's.
    status, headers, _ = await mm7(client, "dotted-fault-401")
    assert status == 401


@pytest.mark.parametrize(
    ("entry", "line"),
    [
        ({"code": "2002", "shape": "jsonp"}, "mix.yaml: mm7[0].shape: must be one of"),
        ({"fault": "hang", "shape": "status-header"}, "mix.yaml: mm7[0]: a fault goes alone"),
        ({"weight": 3}, "mix.yaml: mm7[0]: needs one of code, fault, shape"),
    ],
)
def test_bad_shapes_in_a_mix_are_refused(entry: dict[str, Any], line: str) -> None:
    with pytest.raises(MixError) as info:
        parse_mix({"mm7": [entry]}, load_sim_codes(), source="mix.yaml")
    assert any(e.startswith(line) for e in info.value.errors), info.value.errors
