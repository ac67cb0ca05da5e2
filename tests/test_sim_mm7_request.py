"""The relay's own reading of VASP requests (proxy/tools/sim/mm7_request.py): not the proxy's
parsers, so that the end-to-end tests have an independent oracle."""

import base64
from collections.abc import Awaitable, Callable

import pytest

from proxy.tools.sim import SimSettings, create_sim_app
from proxy.tools.sim.mm7 import Mm7RequestError, parse_request
from tests.test_sim_mm7 import Client, post, soap, status_code, submit


@pytest.fixture
async def sim(aiohttp_client: Callable[..., Awaitable[Client]]) -> Client:
    return await aiohttp_client(create_sim_app(SimSettings()))


async def test_multipart_related_start_may_name_a_later_part(sim: Client) -> None:
    """The relay's own reader (mm7_request.py) follows start= past a leading text part."""
    boundary = "late"
    body = (
        f"--{boundary}\r\nContent-Type: text/plain\r\nContent-ID: <note>\r\n\r\nhello\r\n"
        f"--{boundary}\r\nContent-Type: text/xml\r\nContent-ID: <env>\r\n\r\n"
        f"{submit('+15550002003')}\r\n--{boundary}--\r\n"
    )
    ctype = f'multipart/related; boundary={boundary}; type="text/xml"; start="<env>"'
    _, _, doc = await post(sim, body, **{"Content-Type": ctype})
    assert status_code(doc) == "2003"


async def test_multipart_related_soap_part_may_be_base64(sim: Client) -> None:
    encoded = base64.encodebytes(submit("+15550002002").encode()).decode()
    body = (
        "--b64\r\nContent-Type: text/xml\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        f"{encoded}\r\n--b64--\r\n"
    )
    _, _, doc = await post(sim, body, **{"Content-Type": "multipart/related; boundary=b64"})
    assert status_code(doc) == "2002"


def test_parse_request_skips_comments_and_reads_the_first_recipient() -> None:
    body = soap(
        "SubmitReq",
        "<!-- a note --><mm7:Recipients><mm7:Cc><mm7:ShortCode> 12004 </mm7:ShortCode></mm7:Cc>"
        "<mm7:To><mm7:Number>+15550002002</mm7:Number></mm7:To></mm7:Recipients>",
    ).replace("<env:Body>", "<env:Body><!-- before the request -->")
    request = parse_request(body.encode(), "text/xml")
    assert (request.kind, request.response_kind) == ("SubmitReq", "SubmitRsp")
    assert (request.transaction_id, request.mm7_version, request.recipient) == (
        "tx-42",
        "6.8.0",
        "12004",
    )


@pytest.mark.parametrize(
    ("body", "details"),
    [
        (b"", "empty"),
        (b"   \n", "empty"),
        (b"<html><body>502</body></html>", "HTML"),
        (b"<a><b></a>", "not well-formed"),
        (b'<!DOCTYPE x SYSTEM "http://example.invalid/x.dtd"><x/>', "DTDs"),
    ],
)
def test_parse_request_says_why_it_refuses(body: bytes, details: str) -> None:
    with pytest.raises(Mm7RequestError) as info:
        parse_request(body, "text/xml")
    assert info.value.code == "4004"
    assert details in info.value.details
