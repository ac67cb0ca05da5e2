"""Transport faults of the simulator (proxy/tools/sim/faults.py), by header and by the mix."""

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from lxml import etree

from proxy.tools.sim import SimSettings, create_sim_app, faults
from proxy.tools.sim.faults import DRIP_BYTES, HTML_502, OVERSIZE_BYTES
from proxy.tools.sim.mm7 import submit_request
from proxy.tools.sim.reply import Reply

Client = TestClient[Any, Any]
MM7_BODY = submit_request("+15550001234")
PING = "/moms/system.ping"


@pytest.fixture
async def sim(aiohttp_client: Callable[..., Awaitable[Client]]) -> Client:
    return await aiohttp_client(create_sim_app(SimSettings()))


async def send(
    sim: Client,
    vendor: str,
    fault: str,
    client_timeout: aiohttp.ClientTimeout | None = None,
    /,
    **headers: str,
) -> aiohttp.ClientResponse:
    headers["X-Sim-Fault"] = fault
    extra: dict[str, Any] = {"timeout": client_timeout} if client_timeout else {}
    if vendor == "mm7":
        return await sim.post("/mm7", data=MM7_BODY, headers=headers, **extra)
    return await sim.get(PING, headers=headers, **extra)


@pytest.mark.parametrize("vendor", ["mm7", "moms"])
async def test_refuse_closes_without_an_answer(sim: Client, vendor: str) -> None:
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await send(sim, vendor, "refuse")


@pytest.mark.parametrize("vendor", ["mm7", "moms"])
async def test_hang_never_answers(sim: Client, vendor: str) -> None:
    timeout = aiohttp.ClientTimeout(total=0.3)
    with pytest.raises(TimeoutError):
        await send(sim, vendor, "hang", timeout)


async def raw_exchange(sim: Client, vendor: str, **headers: str) -> bytes:
    """Send one request over a plain TCP connection; read until the server ends it.

    Returns everything received when the server closes normally (FIN); a TCP reset (RST)
    surfaces as ``ConnectionResetError``.
    """
    body = MM7_BODY.encode() if vendor == "mm7" else b""
    target = "POST /mm7" if vendor == "mm7" else f"GET {PING}"
    lines = [f"{target} HTTP/1.1", "Host: sim", f"Content-Length: {len(body)}",
             "Connection: close", *(f"{k}: {v}" for k, v in headers.items())]  # fmt: skip
    reader, writer = await asyncio.open_connection(sim.host, sim.port)
    try:
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await writer.drain()
        received = b""
        while chunk := await reader.read(65536):
            received += chunk
        return received
    finally:
        writer.close()


@pytest.mark.parametrize("vendor", ["mm7", "moms"])
async def test_reset_breaks_the_body_midway(sim: Client, vendor: str) -> None:
    response = await send(sim, vendor, "reset")
    assert response.status == 200
    assert response.content_length is not None
    with pytest.raises(aiohttp.ClientPayloadError):
        await response.read()


@pytest.mark.parametrize("vendor", ["mm7", "moms"])
async def test_reset_is_a_tcp_reset_not_a_normal_close(sim: Client, vendor: str) -> None:
    """A FIN after half the body would also break the body: the socket must see an RST."""
    complete = await raw_exchange(sim, vendor)  # the same call without the fault: a FIN
    assert complete.startswith(b"HTTP/1.1 200")
    with pytest.raises(ConnectionResetError):
        await raw_exchange(sim, vendor, **{"X-Sim-Fault": "reset"})


@pytest.mark.parametrize("vendor", ["mm7", "moms"])
async def test_drip_sends_the_answer_a_little_at_a_time(sim: Client, vendor: str) -> None:
    response = await send(sim, vendor, "drip")
    first = await response.content.readany()
    assert 0 < len(first) <= DRIP_BYTES
    assert response.content_length is not None
    assert len(first) < response.content_length
    response.close()


async def test_drip_delivers_the_whole_valid_answer(sim: Client) -> None:
    response = await send(sim, "mm7", "drip", **{"X-Sim-Drip-Ms": "0"})
    body = await response.read()
    assert b"<mm7:StatusCode>1000</mm7:StatusCode>" in body
    etree.fromstring(body)


@pytest.mark.parametrize(("vendor", "marker"), [("mm7", b"SubmitRsp"), ("moms", b"<response")])
async def test_oversize_is_a_large_valid_looking_answer(
    sim: Client, vendor: str, marker: bytes
) -> None:
    response = await send(sim, vendor, "oversize")
    body = await response.read()
    assert response.status == 200
    assert len(body) > 2 * 1024 * 1024
    assert len(body) >= OVERSIZE_BYTES
    assert marker in body
    etree.fromstring(body, etree.XMLParser(huge_tree=True))


@pytest.mark.parametrize("vendor", ["mm7", "moms"])
async def test_html502_is_a_load_balancer_page(sim: Client, vendor: str) -> None:
    response = await send(sim, vendor, "html502")
    assert response.status == 502
    assert response.headers["Content-Type"].startswith("text/html")
    assert await response.read() == HTML_502


@pytest.mark.parametrize("vendor", ["mm7", "moms"])
async def test_empty_is_a_200_without_body(sim: Client, vendor: str) -> None:
    response = await send(sim, vendor, "empty")
    assert response.status == 200
    assert await response.read() == b""


@pytest.mark.parametrize("vendor", ["mm7", "moms"])
async def test_malformed_is_broken_xml_without_a_code(sim: Client, vendor: str) -> None:
    response = await send(sim, vendor, "malformed")
    body = await response.read()
    assert response.status == 200
    with pytest.raises(etree.XMLSyntaxError):
        etree.fromstring(body)
    assert b"StatusCode" not in body
    assert b"code=" not in body


async def test_faults_apply_even_to_requests_the_relay_cannot_read(sim: Client) -> None:
    response = await sim.post("/mm7", data="garbage", headers={"X-Sim-Fault": "html502"})
    assert response.status == 502


async def test_faults_come_from_the_mix(
    aiohttp_client: Callable[..., Awaitable[Client]], tmp_path: Path
) -> None:
    mix = tmp_path / "mix.yaml"
    mix.write_text("mm7:\n  - {fault: empty}\nmoms:\n  - {fault: html502}\n")
    client = await aiohttp_client(create_sim_app(SimSettings(mix_path=mix, seed=1)))
    async with client.post("/mm7", data=MM7_BODY) as response:
        assert response.status == 200
        assert await response.read() == b""
    async with client.get(PING) as response:
        assert response.status == 502
    # A recipient code still wins over the mix.
    body = submit_request("+15550002002")
    async with client.post("/mm7", data=body) as response:
        assert b"<mm7:StatusCode>2002</mm7:StatusCode>" in await response.read()


async def test_refuse_from_the_mix(
    aiohttp_client: Callable[..., Awaitable[Client]], tmp_path: Path
) -> None:
    mix = tmp_path / "mix.yaml"
    mix.write_text("moms:\n  - {fault: refuse}\n")
    client = await aiohttp_client(create_sim_app(SimSettings(mix_path=mix)))
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await client.get(PING)


async def test_hang_gives_up_after_hang_seconds_and_closes(
    aiohttp_client: Callable[..., Awaitable[Client]],
) -> None:
    client = await aiohttp_client(create_sim_app(SimSettings(hang_seconds=0.2)))
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await send(client, "moms", "hang")


@pytest.mark.parametrize("fault", ["drip", "reset", "oversize", "malformed"])
async def test_faults_that_distort_an_answer_need_one(sim: Client, fault: Any) -> None:
    request: Any = object()  # never touched: the check comes first
    with pytest.raises(ValueError, match=fault):
        await faults.apply(fault, request, None)


async def test_an_unknown_fault_name_fails_loudly() -> None:
    """apply() is exhaustive over FaultName: a name outside it is a bug, not a malformed."""
    material = faults.FaultMaterial(Reply(200, "text/xml", b"<a/>"), lambda n: b"", b"<")
    request: Any = object()
    with pytest.raises(AssertionError):
        await faults.apply("explode", request, material)  # type: ignore[arg-type]
