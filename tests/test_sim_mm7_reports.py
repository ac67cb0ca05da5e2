"""What the simulated relay reports, and when (proxy/tools/sim/app.py, report.py): after each
accepted SubmitReq, a REL-6-MM7-1-4 DeliveryReportReq for its MessageID, recipient and
sender, with the MMStatus the request chose (``X-Sim-MMStatus``, the recipient's suffix).

The inbound endpoint and the reporter's clock are tests/test_sim_callback.py's.
"""

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime

import pytest
from aiohttp.test_utils import TestServer
from lxml import etree

from proxy.tools.sim.mm7 import SOAP_NS
from proxy.tools.sim.report import RECIPIENT_STATUSES, STATUS_TEXTS
from tests.test_sim_callback import (
    StartInbound,
    StartRelay,
    inbound_servers,
    relay_starter,
    submit_body,
    text,
)
from tests.test_sim_mm7 import _PARSER, NS, SCHEMA_DIR, Client


@pytest.fixture
async def inbound(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> AsyncIterator[StartInbound]:
    async with inbound_servers(aiohttp_server) as start:
        yield start


@pytest.fixture
def relay(aiohttp_client: Callable[..., Awaitable[Client]]) -> StartRelay:
    return relay_starter(aiohttp_client)


# --- the report: when, to whom, what it says --------------------------------------------
async def test_an_accepted_submit_is_reported_with_its_message_id(
    inbound: StartInbound, relay: StartRelay
) -> None:
    """A DeliveryReportReq for the SubmitRsp's MessageID, recipient and sender arrives."""
    endpoint = await inbound()
    sim = await relay(endpoint.url)
    message_id = await sim.submit("+15550001234")
    doc = await endpoint.next_report()
    assert await sim.reporter.wait_idle() == ["accepted"]
    tid = doc.find("env:Header/mm7:TransactionID", NS)
    assert tid is not None
    assert tid.get(f"{{{SOAP_NS}}}mustUnderstand") == "1"
    assert tid.text == f"dr-{message_id}"
    req = "env:Body/mm7:DeliveryReportReq/mm7:"
    assert text(doc, req + "MM7Version") == "6.8.0"
    assert text(doc, req + "MMSRelayServerID") == "gateway-proxy-sim"
    assert message_id
    assert text(doc, req + "MessageID") == message_id
    assert text(doc, req + "Recipient/mm7:Number") == "+15550001234"
    assert text(doc, req + "Sender/mm7:ShortCode") == "21534"  # the SubmitReq named none
    date = text(doc, req + "Date") or ""
    assert datetime.fromisoformat(date).utcoffset() is not None
    assert text(doc, req + "MMStatus") == "Retrieved"
    assert text(doc, req + "StatusText") == STATUS_TEXTS["Retrieved"]
    headers, _ = endpoint.requests[0]
    assert headers["Content-Type"].startswith("text/xml")
    assert headers["SOAPAction"] == '""'


async def test_the_report_is_valid_rel6_mm7(inbound: StartInbound, relay: StartRelay) -> None:
    """Every known MMStatus gives a DeliveryReportReq valid against the REL-6 subset."""
    schema = etree.XMLSchema(etree.parse(str(SCHEMA_DIR / "soap-envelope-subset.xsd"), _PARSER))
    endpoint = await inbound()
    sim = await relay(endpoint.url)
    for word in STATUS_TEXTS:
        await sim.submit("+15550001234", **{"X-Sim-MMStatus": word})
        doc = await endpoint.next_report()
        assert schema.validate(doc), (word, schema.error_log)


async def test_the_report_keeps_the_address_kinds_of_the_submit(
    inbound: StartInbound, relay: StartRelay
) -> None:
    endpoint = await inbound()
    sim = await relay(endpoint.url)
    sender = "<mm7:SenderAddress><mm7:ShortCode>12345</mm7:ShortCode></mm7:SenderAddress>"
    await sim.post(submit_body("user@example.invalid", element="RFC2822Address", sender=sender))
    doc = await endpoint.next_report()
    req = "env:Body/mm7:DeliveryReportReq/mm7:"
    assert text(doc, req + "Recipient/mm7:RFC2822Address") == "user@example.invalid"
    assert text(doc, req + "Sender/mm7:ShortCode") == "12345"


@pytest.mark.parametrize(("suffix", "word"), sorted(RECIPIENT_STATUSES.items()))
async def test_the_recipient_s_suffix_chooses_the_mm_status(
    inbound: StartInbound, relay: StartRelay, suffix: str, word: str
) -> None:
    """+1555000<suffix>: the submit succeeds (9000..9007 are no codes), the report says word."""
    endpoint = await inbound()
    sim = await relay(endpoint.url)
    assert await sim.submit(f"+1555000{suffix}")
    doc = await endpoint.next_report()
    assert text(doc, "env:Body/mm7:DeliveryReportReq/mm7:MMStatus") == word


@pytest.mark.parametrize("word", ["Expired", "Deferred", "Unreachable", "Vanished", "retrieved"])
async def test_the_header_chooses_the_mm_status_as_is(
    inbound: StartInbound, relay: StartRelay, word: str
) -> None:
    """X-Sim-MMStatus wins over the recipient; unknown words and spellings pass through."""
    endpoint = await inbound()
    sim = await relay(endpoint.url)
    await sim.submit("+15550009002", **{"X-Sim-MMStatus": f" {word} "})  # 9002: Rejected
    doc = await endpoint.next_report()
    req = "env:Body/mm7:DeliveryReportReq/mm7:"
    assert text(doc, req + "MMStatus") == word
    assert text(doc, req + "StatusText") == STATUS_TEXTS.get(word, "Simulated status")


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Sim-Code": "2002"},  # a Fault
        {"X-Sim-Code": "1100"},  # partial success: not 1000
        {"X-Sim-Shape": "dotted-fault-401"},  # 1000, but answered HTTP 401
        {"X-Sim-Fault": "empty"},  # a transport fault: the relay said nothing useful
    ],
    ids=["fault", "partial", "401-shape", "fault-empty"],
)
async def test_only_an_accepted_submit_is_reported(
    inbound: StartInbound, relay: StartRelay, headers: dict[str, str]
) -> None:
    """The report that arrives is the one for the later, accepted submit."""
    endpoint = await inbound()
    sim = await relay(endpoint.url)
    async with sim.client.post(
        "/mm7", data=submit_body("+15550001234"), headers={"Content-Type": "text/xml", **headers}
    ) as response:
        await response.read()
    accepted = await sim.submit()
    doc = await endpoint.next_report()
    assert text(doc, "env:Body/mm7:DeliveryReportReq/mm7:MessageID") == accepted
    assert await sim.reporter.wait_idle() == ["accepted"]
    assert len(endpoint.requests) == 1


async def test_other_requests_are_not_reported(inbound: StartInbound, relay: StartRelay) -> None:
    endpoint = await inbound()
    sim = await relay(endpoint.url)
    cancel = submit_body("+15550001234").replace("SubmitReq", "CancelReq")
    await sim.post(cancel)
    accepted = await sim.submit()
    doc = await endpoint.next_report()
    assert text(doc, "env:Body/mm7:DeliveryReportReq/mm7:MessageID") == accepted
    assert len(endpoint.requests) == 1


async def test_a_success_shape_is_reported_too(inbound: StartInbound, relay: StartRelay) -> None:
    endpoint = await inbound()
    sim = await relay(endpoint.url)
    message_id = await sim.submit(**{"X-Sim-Shape": "nested-details"})
    doc = await endpoint.next_report()
    assert text(doc, "env:Body/mm7:DeliveryReportReq/mm7:MessageID") == message_id
