"""The simulated MoMS / CM API (proxy/tools/sim/moms.py, the MoMS handler of proxy/tools/sim/app.py)."""

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from lxml import etree

from proxy.codes.catalog import Catalog
from proxy.codes.classify import classify_reply
from proxy.tools.sim import SimSettings, create_sim_app
from proxy.tools.sim.codes import load_sim_codes
from proxy.vendors import parse_reply

ROOT = Path(__file__).resolve().parent.parent
Client = TestClient[Any, Any]
SEND = {"campaign_id": "20948", "from": "21534", "to": "15550001234", "message": "hi"}


@pytest.fixture
async def sim(aiohttp_client: Callable[..., Awaitable[Client]]) -> Client:
    return await aiohttp_client(create_sim_app(SimSettings()))


@pytest.fixture
async def locked_sim(aiohttp_client: Callable[..., Awaitable[Client]]) -> Client:
    """A simulator that checks credentials."""
    settings = SimSettings(client_id="cid-1", token="s3cr3t-t0ken-Zq9")
    return await aiohttp_client(create_sim_app(settings))


async def call_json(
    sim: Client, path: str, params: dict[str, str] | None = None, /, **headers: str
) -> tuple[str, dict[str, Any]]:
    """GET with format=json; returns (Content-Type, the "response" object)."""
    query = {**(params or {}), "format": "json"}
    async with sim.get(path, params=query, headers=headers) as response:
        assert response.status == 200  # the live API answers everything with HTTP 200
        body = json.loads(await response.read())
        return response.headers["Content-Type"], body["response"]


async def call_xml(
    sim: Client, path: str, params: dict[str, str] | None = None, /, **headers: str
) -> tuple[str, etree._Element]:
    async with sim.get(path, params=params or {}, headers=headers) as response:
        assert response.status == 200
        raw = await response.read()
        return response.headers["Content-Type"], etree.fromstring(raw)


async def test_ping_xml_has_the_live_shape(sim: Client) -> None:
    ctype, root = await call_xml(sim, "/moms/system.ping")
    assert ctype == "text/xml"
    assert root.tag == "response"
    assert root.get("code") == "1"
    assert root.get("status") == "success"
    assert root.findtext("message") == "pong"


async def test_message_is_cdata_like_the_live_api(sim: Client) -> None:
    async with sim.get("/moms/system.ping") as response:
        assert b"<message><![CDATA[pong]]></message>" in await response.read()


async def test_moms_json_is_labelled_text_xml(sim: Client) -> None:
    ctype, response = await call_json(sim, "/moms/system.ping")
    assert ctype == "text/xml"
    assert response == {"code": "1", "status": "success", "message": "pong"}


async def test_cm_json_is_labelled_application_json(sim: Client) -> None:
    ctype, response = await call_json(sim, "/cm/keyword.check", {"keyword": "SIM"})
    assert ctype.startswith("application/json")
    assert response["available"] == "true"


async def test_transaction_send_success_json_and_xml(sim: Client) -> None:
    _, response = await call_json(sim, "/moms/transaction.send", SEND)
    assert response["code"] == "1"
    assert response["message"] == "API Request Accepted"
    assert response["message_id"].isdigit()
    assert len(response["hash"]) == 8
    _, root = await call_xml(sim, "/moms/transaction.send", SEND)
    assert (root.findtext("message_id") or "").isdigit()
    assert len(root.findtext("hash") or "") == 8


async def test_transaction_send_by_post_form(sim: Client) -> None:
    async with sim.post("/moms/transaction.send", data={**SEND, "format": "json"}) as response:
        body = json.loads(await response.read())
    assert body["response"]["code"] == "1"


@pytest.mark.parametrize(
    ("missing", "code"),
    [
        (("campaign_id", "from", "to", "message"), "430"),
        (("to",), "435"),
        (("message",), "439"),
        (("to", "message"), "435"),
    ],
)
async def test_transaction_send_missing_parameters(
    sim: Client, missing: tuple[str, ...], code: str
) -> None:
    params = {k: v for k, v in SEND.items() if k not in missing}
    _, response = await call_json(sim, "/moms/transaction.send", params)
    assert response["code"] == code
    assert response["status"] == "error"


async def test_transaction_send_without_from_is_accepted(sim: Client) -> None:
    """Real client libraries send no ``from``; the live API accepts that, so the simulator does."""
    params = {k: v for k, v in SEND.items() if k != "from"}
    _, response = await call_json(sim, "/moms/transaction.send", params)
    assert (response["code"], response["status"]) == ("1", "success")
    assert response["message_id"].isdigit()
    _, response = await call_json(sim, "/moms/transaction.send", {**params, "to": "15550000606"})
    assert response["code"] == "606"  # the recipient still chooses the outcome


async def test_code_433_is_still_available_on_demand(sim: Client) -> None:
    _, response = await call_json(sim, "/moms/transaction.send", SEND, **{"X-Sim-Code": "433"})
    assert (response["code"], response["message"]) == ("433", 'Missing "from" parameter.')


@pytest.mark.parametrize("missing", ["campaign_id", "to", "message"])
async def test_an_explicit_code_wins_over_the_parameter_checks(sim: Client, missing: str) -> None:
    """X-Sim-Code is followed even for a call the parameter checks would refuse."""
    params = {k: v for k, v in SEND.items() if k != missing}
    _, response = await call_json(sim, "/moms/transaction.send", params, **{"X-Sim-Code": "606"})
    assert response["code"] == "606"
    _, response = await call_json(sim, "/moms/transaction.send", params, **{"X-Sim-Code": "1"})
    assert response["code"] == "1"


async def test_an_explicit_code_does_not_pass_the_credential_or_method_checks(
    sim: Client, locked_sim: Client
) -> None:
    """Only the parameter checks give way: a wrong method or credentials are refused first."""
    _, response = await call_json(locked_sim, "/moms/system.ping", **{"X-Sim-Code": "606"})
    assert (response["code"], response["message"]) == ("0", "Mogreet: 403 Forbidden")
    _, response = await call_json(sim, "/moms/nothing.here", **{"X-Sim-Code": "606"})
    assert response["code"] == "404"


async def test_other_methods_give_the_generic_required_parameter_error(sim: Client) -> None:
    _, response = await call_json(sim, "/moms/user.info")
    assert response == {
        "code": "0",
        "status": "error",
        "message": "Mogreet: Required Parameter(s) Missing",
    }


@pytest.mark.parametrize("path", ["/moms/nothing.here", "/moms/media.upload", "/cm/user.info"])
async def test_unknown_object_method_is_404(sim: Client, path: str) -> None:
    _, response = await call_json(sim, path, {"number": "1", "name": "x"})
    assert response["code"] == "404"


async def test_any_credentials_are_accepted_by_default(sim: Client) -> None:
    _, response = await call_json(sim, "/moms/system.ping", {"client_id": "x", "token": "y"})
    assert response["code"] == "1"


@pytest.mark.parametrize(
    "creds",
    [
        {},
        {"client_id": "cid-1", "token": "wrong"},
        {"client_id": "other", "token": "s3cr3t-t0ken-Zq9"},
    ],
)
async def test_wrong_credentials_get_the_live_403(
    locked_sim: Client, creds: dict[str, str]
) -> None:
    _, response = await call_json(locked_sim, "/moms/transaction.send", {**SEND, **creds})
    assert response == {"code": "0", "status": "error", "message": "Mogreet: 403 Forbidden"}


async def test_right_credentials_pass_in_query_or_form(locked_sim: Client) -> None:
    creds = {"client_id": "cid-1", "token": "s3cr3t-t0ken-Zq9"}
    _, response = await call_json(locked_sim, "/moms/system.ping", creds)
    assert response["message"] == "pong"
    async with locked_sim.post("/moms/system.ping", data={**creds, "format": "json"}) as resp:
        assert json.loads(await resp.read())["response"]["code"] == "1"


async def test_every_catalog_code_by_recipient(sim: Client, catalog: Catalog) -> None:
    """to=1555000XXXX gives MoMS code int(XXXX) for every code of the catalog."""
    for code in catalog.vendors["moms"].codes:
        params = {**SEND, "to": f"1555000{int(code):04d}"}
        _, response = await call_json(sim, "/moms/transaction.send", params)
        assert response["code"] == code
        assert response["status"] == ("success" if code == "1" else "error")


async def test_every_catalog_code_by_header(sim: Client, catalog: Catalog) -> None:
    """Each code comes with the simulator's own text (vendor_codes.yaml), not the catalog's."""
    texts = load_sim_codes().moms
    for code in catalog.vendors["moms"].codes:
        _, root = await call_xml(sim, "/moms/system.ping", **{"X-Sim-Code": code})
        assert root.get("code") == code
        if code != "1":
            assert root.findtext("message") == texts[code]


async def test_the_proxy_parser_reads_every_code_as_the_catalog_says(
    sim: Client, catalog: Catalog
) -> None:
    for code, entry in catalog.vendors["moms"].codes.items():
        for fmt in ("xml", "json"):
            params = {**SEND, "format": fmt}
            async with sim.get(
                "/moms/transaction.send", params=params, headers={"X-Sim-Code": code}
            ) as r:
                reply = parse_reply("moms", await r.read(), r.headers["Content-Type"])
                outcome = classify_reply(catalog, "moms", reply, r.status)
            assert reply.code == code
            assert outcome.code == entry.resolve(reply.message)
            assert outcome.code == entry.canonical


async def test_user_number_selects_the_code_too(sim: Client) -> None:
    _, response = await call_json(sim, "/moms/user.info", {"number": "15550000604"})
    assert response["code"] == "604"


async def test_sim_message_header_replaces_the_message(sim: Client, catalog: Catalog) -> None:
    """Code 0 with the live API's texts: the proxy's message rules can be exercised."""
    _, response = await call_json(
        sim, "/moms/system.ping", **{"X-Sim-Code": "0", "X-Sim-Message": "invalid number"}
    )
    assert response == {"code": "0", "status": "error", "message": "invalid number"}


async def test_transaction_lookup_payload(sim: Client) -> None:
    _, response = await call_json(sim, "/moms/transaction.lookup", {"message_id": "1"})
    transaction = response["transaction"]
    assert transaction["status"] == "COMPLETE"
    assert transaction["history"][0]["event"] == "Transaction Created"
    _, root = await call_xml(sim, "/moms/transaction.lookup", {"hash": "abc"})
    assert len(root.findall("transaction/history/entry")) == 3


async def test_user_info_payload(sim: Client) -> None:
    _, response = await call_json(sim, "/moms/user.info", {"number": "13105551234"})
    assert response["number"] == "13105551234"
    assert response["carrier_name"]
    assert response["handset_name"]


async def test_user_transactions_payload(sim: Client) -> None:
    _, response = await call_json(sim, "/moms/user.transactions", {"number": "13105551234"})
    assert response["transactions"][0]["to"] == "13105551234"


@pytest.mark.parametrize(
    ("path", "params", "key"),
    [
        ("/cm/list.create", {"name": "vip"}, "list_id"),
        ("/cm/list.info", {"list_id": "8228"}, "list"),
        ("/cm/list.list", {}, "lists"),
        ("/cm/media.list", {}, "media_list"),
        ("/cm/keyword.list", {}, "keywords"),
    ],
)
async def test_cm_payloads(sim: Client, path: str, params: dict[str, str], key: str) -> None:
    _, response = await call_json(sim, path, params)
    assert response["code"] == "1"
    assert response[key]


async def media_upload(sim: Client, content_type: str | None, name: str = "pic") -> dict[str, Any]:
    form = aiohttp.FormData()
    form.add_field("name", name)
    form.add_field("format", "json")
    if content_type is not None:
        form.add_field("file", b"\x89PNG...." * 100, filename="a.png", content_type=content_type)
    async with sim.post("/cm/media.upload", data=form) as response:
        return dict(json.loads(await response.read())["response"])


async def test_media_upload_success(sim: Client) -> None:
    response = await media_upload(sim, "image/png")
    assert response["message"] == "media correctly uploaded"
    assert response["media"]["name"] == "pic"
    assert response["media"]["content_id"].isdigit()
    assert response["media"]["smart_url"].startswith("http://m.mogreet.com/oc/")


async def test_media_upload_refusals(sim: Client) -> None:
    assert (await media_upload(sim, "text/plain"))["code"] == "462"
    assert (await media_upload(sim, None))["code"] == "460"
    assert (await media_upload(sim, "image/png", name=""))["code"] == "443"


async def test_media_upload_over_150_mb_is_461(
    aiohttp_client: Callable[..., Awaitable[Client]],
) -> None:
    small = await aiohttp_client(create_sim_app(SimSettings(max_media_bytes=100)))
    assert (await media_upload(small, "image/png"))["code"] == "461"
