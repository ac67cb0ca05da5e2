"""The simulated MoMS / CM API (proxy/sim/moms.py) and the outcome mix (proxy/sim/outcome.py)."""

import argparse
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from lxml import etree

from proxy.catalog import Catalog
from proxy.classify import classify_reply
from proxy.sim import SimSettings, add_simulate_arguments, create_sim_app, settings_from_args
from proxy.sim.codes import load_sim_codes
from proxy.sim.outcome import MixError, load_mix, parse_mix, recipient_code
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
        (("from",), "433"),
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
    for code, entry in catalog.vendors["moms"].codes.items():
        _, root = await call_xml(sim, "/moms/system.ping", **{"X-Sim-Code": code})
        assert root.get("code") == code
        if code != "1":
            assert root.findtext("message") == entry.text


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


# --- the mix ----------------------------------------------------------------------------
async def codes_drawn(client: Client, n: int) -> list[str]:
    drawn = []
    for _ in range(n):
        _, response = await call_json(client, "/moms/transaction.send", SEND)
        drawn.append(response["code"])
    return drawn


async def test_seeded_mix_repeats_exactly(
    aiohttp_client: Callable[..., Awaitable[Client]], tmp_path: Path
) -> None:
    mix = tmp_path / "mix.yaml"
    mix.write_text('moms:\n  - {code: "1", weight: 1}\n  - {code: "606", weight: 1}\n')
    first = await aiohttp_client(create_sim_app(SimSettings(mix_path=mix, seed=7)))
    second = await aiohttp_client(create_sim_app(SimSettings(mix_path=mix, seed=7)))
    a, b = await codes_drawn(first, 40), await codes_drawn(second, 40)
    assert a == b
    assert set(a) == {"1", "606"}


async def test_mix_is_only_used_when_nothing_else_decides(
    aiohttp_client: Callable[..., Awaitable[Client]], tmp_path: Path
) -> None:
    mix = tmp_path / "mix.yaml"
    mix.write_text('moms:\n  - {code: "500"}\n')
    client = await aiohttp_client(create_sim_app(SimSettings(mix_path=mix)))
    assert await codes_drawn(client, 2) == ["500", "500"]
    _, response = await call_json(client, "/moms/transaction.send", {**SEND, "to": "15550000436"})
    assert response["code"] == "436"
    _, response = await call_json(client, "/moms/system.ping", **{"X-Sim-Code": "1"})
    assert response["code"] == "1"


def test_shipped_mix_is_valid() -> None:
    mix = parse_mix(
        __import__("yaml").safe_load((ROOT / "config" / "sim-mix.yaml").read_text()),
        load_sim_codes(),
    )
    assert mix.mm7
    assert mix.moms


def test_bad_mix_reports_every_problem() -> None:
    data = {
        "mm7": [{"code": "9999"}, {"fault": "explode"}, {"code": "1000", "weight": -1},
                {"code": "1000", "fault": "hang"}, "x"],
        "sms": [],
    }  # fmt: skip
    with pytest.raises(MixError) as info:
        parse_mix(data, load_sim_codes(), source="mix.yaml")
    text = str(info.value)
    for key in ("mm7[0].code", "mm7[1].fault", "mm7[2].weight", "mm7[3]", "mm7[4]", "sms"):
        assert f"mix.yaml: {key}" in text


def test_bad_mix_file_stops_the_app(tmp_path: Path) -> None:
    mix = tmp_path / "mix.yaml"
    mix.write_text("mm7: {code: 1}\n")
    with pytest.raises(MixError):
        create_sim_app(SimSettings(mix_path=mix))


@pytest.mark.parametrize(
    ("vendor", "recipient", "code"),
    [
        ("mm7", "+15550002002", "2002"),
        ("mm7", "+15550000000", "0"),
        ("mm7", "+15550009999", None),
        ("moms", "15550000436", "436"),
        ("moms", "15550000001", "1"),
        ("moms", "+1 (555) 000-0606", "606"),
        ("moms", "nodigits", None),
        ("moms", None, None),
    ],
)
def test_recipient_code(vendor: str, recipient: str | None, code: str | None) -> None:
    assert recipient_code(load_sim_codes(), vendor, recipient) == code


# --- settings ---------------------------------------------------------------------------
def parse(*argv: str) -> SimSettings:
    parser = argparse.ArgumentParser()
    add_simulate_arguments(parser)
    return settings_from_args(parser.parse_args(argv))


def test_settings_defaults() -> None:
    assert parse() == SimSettings(host="127.0.0.1", port=8090)


def test_settings_from_all_options() -> None:
    settings = parse(
        "--listen", "10.1.2.3:9000", "--latency", "20", "--seed", "3", "--mix", "m.yaml",
        "--client-id", "c", "--token", "s3cr3t-t0ken-Zq9",
    )  # fmt: skip
    assert settings == SimSettings("10.1.2.3", 9000, 20, 3, Path("m.yaml"), "c", "s3cr3t-t0ken-Zq9")
    assert "s3cr3t" not in repr(settings)


@pytest.mark.parametrize(
    "argv", [("--listen", "nohost"), ("--latency", "-1"), ("--listen", "h:99999")]
)
def test_bad_option_values_are_usage_errors(argv: tuple[str, ...]) -> None:
    with pytest.raises(SystemExit) as info:
        parse(*argv)
    assert info.value.code == 2


def test_client_id_without_token_is_refused() -> None:
    with pytest.raises(ValueError, match="--client-id and --token"):
        parse("--client-id", "c")


def test_settings_from_a_hand_made_namespace_are_checked() -> None:
    ns = argparse.Namespace(listen="x", latency=0, seed=None, mix=None)
    with pytest.raises(ValueError, match="--listen"):
        settings_from_args(ns)
    ns = argparse.Namespace(listen=":1", latency=-5, seed=None, mix=None)
    with pytest.raises(ValueError, match="--latency"):
        settings_from_args(ns)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (None, "cannot load"),
        ("mm7: [unclosed", "cannot load"),
        ("- just a list\n", "must be a mapping"),
        ("moms: {code: '1'}\n", "must be a list"),
        ("moms:\n  - [1]\n", "must be a mapping"),
        ("moms:\n  - {code: '1', colour: red}\n", "unknown keys"),
    ],
)
def test_mix_file_errors(tmp_path: Path, text: str | None, reason: str) -> None:
    path = tmp_path / "mix.yaml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(MixError, match=reason):
        load_mix(path, load_sim_codes())
