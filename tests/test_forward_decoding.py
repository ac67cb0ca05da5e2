"""Decode whole or fail (README "Codes", rule 8): proxy/upstream/decode.py ``decode_content``, and
what an answer whose body cannot be decoded becomes.

A body decoded in part used to fall back to the HTTP status: for a 500 that is the
*retryable* UPSTREAM_UNAVAILABLE, although the gateway answered with a code the proxy
never read.
"""

import gzip
import zlib
from typing import Any

import pytest
from aiohttp import web

from proxy.upstream import ExchangeFailure, decode_content

NS = "http://www.3gpp.org/ftp/Specs/archive/23_series/23.140/schema/REL-6-MM7-1-4"
REFUSED = (
    f'<env:Envelope xmlns:env="http://schemas.xmlsoap.org/soap/envelope/" xmlns:mm7="{NS}">'
    "<env:Body><env:Fault><faultcode>env:Client</faultcode><faultstring>x</faultstring>"
    "<detail><mm7:RSErrorRsp><mm7:Status><mm7:StatusCode>2002</mm7:StatusCode>"
    "</mm7:Status></mm7:RSErrorRsp></detail></env:Fault></env:Body></env:Envelope>"
).encode()


def members(*parts: bytes) -> bytes:
    """One gzip member per part (RFC 1952 §2.2: a gzip file is a series of members)."""
    return b"".join(gzip.compress(part) for part in parts)


def raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(members(REFUSED), id="one-member"),
        pytest.param(members(REFUSED[:100], REFUSED[100:]), id="two-members"),
        pytest.param(members(b"", REFUSED), id="an-empty-first-member"),
        pytest.param(members(*(REFUSED[i : i + 7] for i in range(0, len(REFUSED), 7))), id="many"),
        pytest.param(members(REFUSED) + b"\x00" * 8, id="zero-padding"),
    ],
)
def test_every_gzip_member_is_decoded(body: bytes) -> None:
    assert decode_content(body, "gzip", 1 << 20) == REFUSED
    assert decode_content(body, "x-gzip", 1 << 20) == REFUSED


def test_deflate_with_and_without_the_zlib_wrapper() -> None:
    assert decode_content(zlib.compress(REFUSED), "deflate", 1 << 20) == REFUSED
    assert decode_content(raw_deflate(REFUSED), "Deflate", 1 << 20) == REFUSED


def test_codings_are_undone_in_reverse_order_of_application() -> None:
    twice = gzip.compress(zlib.compress(REFUSED))
    assert decode_content(twice, "deflate, gzip", 1 << 20) == REFUSED
    assert decode_content(gzip.compress(REFUSED), "identity, gzip", 1 << 20) == REFUSED


@pytest.mark.parametrize(
    ("body", "coding", "reason"),
    [
        pytest.param(gzip.compress(REFUSED)[:-9], "gzip", "truncated", id="gzip-truncated"),
        pytest.param(b"not gzip at all", "gzip", "corrupt", id="not-gzip"),
        pytest.param(members(REFUSED) + b"trailing junk", "gzip", "not a gzip member", id="junk"),
        pytest.param(members(REFUSED) + b"\x1f\x8b\x08", "gzip", "truncated", id="a-cut-member"),
        pytest.param(zlib.compress(REFUSED)[:-4], "deflate", "truncated", id="deflate-truncated"),
        pytest.param(zlib.compress(REFUSED) + b"more", "deflate", "followed", id="deflate-junk"),
        pytest.param(REFUSED, "br", "'br'", id="unknown-coding"),
        pytest.param(REFUSED, "gzip, compress", "'compress'", id="one-unknown-of-two"),
    ],
)
def test_a_body_that_cannot_be_decoded_whole_is_refused(
    body: bytes, coding: str, reason: str
) -> None:
    with pytest.raises(ExchangeFailure) as failure:
        decode_content(body, coding, 1 << 20)
    assert failure.value.kind == "unparseable"
    assert reason in failure.value.detail
    assert failure.value.detail.startswith("the gateway's answer could not be decoded")


def test_the_limit_holds_across_members() -> None:
    bomb = members(*(b"a" * 60_000 for _ in range(4)))
    with pytest.raises(ExchangeFailure) as failure:
        decode_content(bomb, "gzip", 100_000)
    assert failure.value.kind == "too_large"
    assert decode_content(bomb, "gzip", 240_000) == b"a" * 240_000


def test_an_empty_body_has_nothing_to_decode() -> None:
    assert decode_content(b"", "gzip", 10) == b""


def compressed(body: bytes, coding: str, status: int = 500, **headers: str) -> web.Response:
    response = web.Response(status=status, body=body, content_type="text/xml")
    response.headers["Content-Encoding"] = coding
    response.headers.update(headers)
    return response


async def test_a_multi_member_answer_keeps_the_gateways_code(one_route_proxy: Any) -> None:
    async def gateway(request: web.Request) -> web.Response:
        return compressed(members(b"", REFUSED[:90], REFUSED[90:]), "gzip")

    client = await one_route_proxy(gateway)
    env = await (await client.post("/gw", data=b"<x/>")).json()
    assert (env["code"], env["retryable"], env["vendor"]["code"]) == (
        "INVALID_ADDRESS",
        False,
        "2002",
    )


async def test_an_undecodable_answer_is_invalid_never_the_http_fallback(
    one_route_proxy: Any,
) -> None:
    async def gateway(request: web.Request) -> web.Response:
        return compressed(gzip.compress(REFUSED)[:-12], "gzip", 503)

    client = await one_route_proxy(gateway)
    resp = await client.post("/gw", data=b"<x/>")
    env = await resp.json()
    assert (resp.status, env["code"], env["retryable"]) == (502, "INVALID_UPSTREAM_RESPONSE", False)
    assert "could not be decoded: gzip data ends before its end" in env["detail"]


async def test_two_content_encoding_lines_are_both_undone(one_route_proxy: Any) -> None:
    async def gateway(request: web.Request) -> web.Response:
        response = web.Response(status=500, body=gzip.compress(zlib.compress(REFUSED)))
        response.headers.add("Content-Encoding", "deflate")
        response.headers.add("Content-Encoding", "gzip")
        return response

    client = await one_route_proxy(gateway)
    env = await (await client.post("/gw", data=b"<x/>")).json()
    assert env["code"] == "INVALID_ADDRESS"
