"""End to end: every catalog code, fault and reply shape, from the simulator through the proxy.

The simulator (proxy/tools/sim) is the upstream and the oracle: it shares no code with the proxy
(tests/test_sim_codes.py checks that). The proxy (proxy/server/) classifies its answers.
Each vendor code of the catalog must come out as the catalog's canonical code, whatever
reply shape (X-Sim-Shape) the simulator lays it out in.
"""

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from proxy.codes.catalog import Catalog
from proxy.tools.sim import SimSettings, create_sim_app
from proxy.tools.sim.mm7 import submit_request
from tests.conftest import ProxyFactory, make_config

Client = TestClient[Any, Any]


@pytest.fixture
async def through_proxy(
    aiohttp_server: Callable[..., Awaitable[TestServer]], proxy_client: ProxyFactory
) -> Client:
    """The proxy with routes /mm7, /moms, /cm in front of one simulator."""
    sim = await aiohttp_server(create_sim_app(SimSettings()))
    timeout = {"connect": 1, "total": 1}  # small: hang and drip end as TIMEOUT quickly
    config = make_config(
        {"name": "mms", "path_prefix": "/mm7", "vendor": "mm7",
         "upstream": str(sim.make_url("/mm7")), "timeout": timeout},
        {"name": "moms", "path_prefix": "/moms", "vendor": "moms",
         "upstream": str(sim.make_url("/moms")), "timeout": timeout},
        {"name": "cm", "path_prefix": "/cm", "vendor": "moms",
         "upstream": str(sim.make_url("/cm")), "timeout": timeout},
    )  # fmt: skip
    return await proxy_client(config)


async def mm7(client: Client, number: str, **headers: str) -> tuple[int, dict[str, Any]]:
    body = submit_request(number)
    headers.setdefault("Content-Type", "text/xml")
    async with client.post("/mm7", data=body, headers=headers) as response:
        return response.status, await response.json(content_type=None)


async def moms(client: Client, to: str, **headers: str) -> tuple[int, dict[str, Any]]:
    # No "from": real client libraries do not send it (the simulator does not need it).
    params = {"campaign_id": "1", "to": to, "message": "hi"}
    async with client.get("/moms/transaction.send", params=params, headers=headers) as response:
        return response.status, await response.json(content_type=None)


def check(status: int, envelope: dict[str, Any], catalog: Catalog, canonical: str) -> None:
    code = catalog[canonical]
    assert envelope["code"] == canonical
    assert status == envelope["status"] == code.status
    assert envelope["ok"] is code.ok
    assert envelope["category"] == code.category


async def test_every_mm7_code_by_recipient(through_proxy: Client, catalog: Catalog) -> None:
    """Vendor code 0 ("Connection error") is sent as a literal StatusCode 0: CONNECTION_ERROR."""
    for code, entry in catalog.vendors["mm7"].codes.items():
        status, envelope = await mm7(through_proxy, f"+1555000{int(code):04d}")
        check(status, envelope, catalog, entry.canonical.name)
        assert envelope["vendor"]["name"] == "mm7"
        assert envelope["vendor"]["code"] == code
        assert envelope["vendor"]["transaction_id"] == "demo-1"
        assert envelope["route"] == "mms"
        if entry.canonical.ok:
            assert envelope["data"]["message_id"]
            assert envelope["data"]["mm7_version"] == "6.8.0"


async def test_every_mm7_code_by_header(through_proxy: Client, catalog: Catalog) -> None:
    for code, entry in catalog.vendors["mm7"].codes.items():
        status, envelope = await mm7(through_proxy, "+15550009999", **{"X-Sim-Code": code})
        check(status, envelope, catalog, entry.canonical.name)
        assert envelope["vendor"]["code"] == code


async def test_every_moms_code_by_recipient(through_proxy: Client, catalog: Catalog) -> None:
    for code, entry in catalog.vendors["moms"].codes.items():
        status, envelope = await moms(through_proxy, f"1555000{int(code):04d}")
        check(status, envelope, catalog, entry.canonical.name)
        assert envelope["vendor"] == {
            **envelope["vendor"],
            "name": "moms",
            "code": code,
            "http_status": 200,
        }
        if entry.canonical.ok:
            assert envelope["data"]["message_id"]
            assert envelope["data"]["hash"]


async def test_every_moms_code_by_header(through_proxy: Client, catalog: Catalog) -> None:
    for code, entry in catalog.vendors["moms"].codes.items():
        async with through_proxy.get(
            "/moms/system.ping", params={"format": "json"}, headers={"X-Sim-Code": code}
        ) as response:
            envelope = await response.json(content_type=None)
        check(response.status, envelope, catalog, entry.canonical.name)


@pytest.mark.parametrize(
    ("message", "canonical"),
    [
        ("Mogreet: 403 Forbidden", "PERMISSION_DENIED"),
        ("Mogreet: Required Parameter(s) Missing", "MISSING_PARAMETER"),
        ("invalid number", "INVALID_ADDRESS"),
        ("something else", "REJECTED"),
    ],
)
async def test_moms_code_0_message_rules(
    through_proxy: Client, catalog: Catalog, message: str, canonical: str
) -> None:
    status, envelope = await moms(
        through_proxy, "15550001234", **{"X-Sim-Code": "0", "X-Sim-Message": message}
    )
    check(status, envelope, catalog, canonical)


async def test_cm_route_media_upload(through_proxy: Client, catalog: Catalog) -> None:
    async with through_proxy.post(
        "/cm/media.upload", params={"name": "pic", "url": "http://example.com/a.png"}
    ) as response:
        envelope = await response.json(content_type=None)
    check(response.status, envelope, catalog, "OK")
    assert envelope["data"]["media"]["smart_url"].startswith("http://m.mogreet.com/oc/")


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        ("refuse", "connection_lost"),  # accepted, then closed before any answer
        ("reset", "connection_lost"),
        ("hang", "timeout"),
        ("drip", "timeout"),
        ("oversize", "too_large"),
        ("malformed", "unparseable"),
    ],
)
@pytest.mark.parametrize("vendor", ["mm7", "moms"])
async def test_faults_through_the_proxy(
    through_proxy: Client, catalog: Catalog, vendor: str, fault: str, kind: str
) -> None:
    send = mm7 if vendor == "mm7" else moms
    status, envelope = await send(through_proxy, "+15550001234", **{"X-Sim-Fault": fault})
    check(status, envelope, catalog, catalog.transport[kind].name)  # type: ignore[index]


@pytest.mark.parametrize(("fault", "http_status"), [("html502", 502), ("empty", 200)])
@pytest.mark.parametrize("vendor", ["mm7", "moms"])
async def test_body_faults_are_classified_by_http_status(
    through_proxy: Client, catalog: Catalog, vendor: str, fault: str, http_status: int
) -> None:
    send = mm7 if vendor == "mm7" else moms
    status, envelope = await send(through_proxy, "+15550001234", **{"X-Sim-Fault": fault})
    check(status, envelope, catalog, catalog.for_http_status(http_status).name)
    assert envelope["vendor"]["http_status"] == http_status


# --- reply shapes (X-Sim-Shape): the same outcomes, laid out the way some gateways do ----
@pytest.mark.parametrize("shape", ["status-header", "status-header-empty"])
async def test_status_header_2002_is_an_invalid_address(through_proxy: Client, shape: str) -> None:
    """The status only in X-MM7-Status-Code (a bare Fault, or no body at all)."""
    status, envelope = await mm7(through_proxy, "+15550002002", **{"X-Sim-Shape": shape})
    assert (status, envelope["code"], envelope["vendor"]["code"]) == (
        400,
        "INVALID_ADDRESS",
        "2002",
    )


@pytest.mark.parametrize("shape", ["status-header", "status-header-empty"])
async def test_every_mm7_code_in_a_status_header(
    through_proxy: Client, catalog: Catalog, shape: str
) -> None:
    """Fault codes come with their HTTP status (500); success codes with HTTP 200."""
    for code, entry in catalog.vendors["mm7"].codes.items():
        status, envelope = await mm7(
            through_proxy, "+15550009999", **{"X-Sim-Code": code, "X-Sim-Shape": shape}
        )
        check(status, envelope, catalog, entry.canonical.name)
        assert envelope["vendor"]["code"] == code


async def test_nested_details_1000_is_ok_not_4004(through_proxy: Client, catalog: Catalog) -> None:
    """Details holds a vendor element with a nested Status/StatusCode 4004: not the status."""
    status, envelope = await mm7(through_proxy, "+15550001000", **{"X-Sim-Shape": "nested-details"})
    check(status, envelope, catalog, "OK")
    assert envelope["vendor"]["code"] == "1000"
    assert envelope["data"]["message_id"]


async def test_every_mm7_code_with_nested_details(through_proxy: Client, catalog: Catalog) -> None:
    for code, entry in catalog.vendors["mm7"].codes.items():
        status, envelope = await mm7(
            through_proxy, "+15550009999", **{"X-Sim-Code": code, "X-Sim-Shape": "nested-details"}
        )
        check(status, envelope, catalog, entry.canonical.name)
        assert envelope["vendor"]["code"] == code


async def test_dotted_fault_401_is_unauthenticated(through_proxy: Client, catalog: Catalog) -> None:
    """HTTP 401 with faultcode env:Client.Auth and no MM7 status."""
    status, envelope = await mm7(
        through_proxy, "+15550009999", **{"X-Sim-Shape": "dotted-fault-401"}
    )
    check(status, envelope, catalog, "UNAUTHENTICATED")
    assert envelope["vendor"]["http_status"] == 401


async def test_every_mm7_code_in_a_late_soap_part(through_proxy: Client, catalog: Catalog) -> None:
    """multipart/related with a text/plain part first; start= names the SOAP part."""
    for code, entry in catalog.vendors["mm7"].codes.items():
        status, envelope = await mm7(
            through_proxy, f"+1555000{int(code):04d}", **{"X-Sim-Shape": "multipart-late-soap"}
        )
        check(status, envelope, catalog, entry.canonical.name)
        assert envelope["vendor"]["code"] == code
        assert envelope["vendor"]["transaction_id"] == "demo-1"


async def test_every_moms_code_as_jsonp(through_proxy: Client, catalog: Catalog) -> None:
    """The JSON answer wrapped in a JSONP callback: callback({...});"""
    for code, entry in catalog.vendors["moms"].codes.items():
        status, envelope = await moms(
            through_proxy, f"1555000{int(code):04d}", **{"X-Sim-Shape": "jsonp"}
        )
        check(status, envelope, catalog, entry.canonical.name)
        assert envelope["vendor"]["code"] == code


async def test_every_mm7_code_with_a_second_status_header_line(
    through_proxy: Client, catalog: Catalog
) -> None:
    """A stale ``X-MM7-Status-Code: 1000`` line first: only a success code stays one."""
    for code, entry in catalog.vendors["mm7"].codes.items():
        status, envelope = await mm7(
            through_proxy,
            "+15550009999",
            **{"X-Sim-Code": code, "X-Sim-Shape": "status-header-twice"},
        )
        expected = entry.canonical.name if entry.canonical.ok else catalog.conflict.name
        check(status, envelope, catalog, expected)
        assert envelope["retryable"] is False


async def test_every_code_in_gzip_members(through_proxy: Client, catalog: Catalog) -> None:
    """An empty member, then each half of the answer: every member is read."""
    for code, entry in catalog.vendors["mm7"].codes.items():
        status, envelope = await mm7(
            through_proxy, "+15550009999", **{"X-Sim-Code": code, "X-Sim-Shape": "gzip-members"}
        )
        check(status, envelope, catalog, entry.canonical.name)
        assert envelope["vendor"]["code"] == code
    for code, entry in catalog.vendors["moms"].codes.items():
        status, envelope = await moms(
            through_proxy, "15550009999", **{"X-Sim-Code": code, "X-Sim-Shape": "gzip-members"}
        )
        check(status, envelope, catalog, entry.canonical.name)
        assert envelope["vendor"]["code"] == code
