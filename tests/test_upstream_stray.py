"""Bytes after a complete answer (proxy/upstream/ ``AnswerBound``): discarded, and that
connection is not reused. The answer stands; it is not a protocol error.

The gateway here is a raw socket server, so that the tests send exactly the bytes they
mean: a ``Content-Length`` that undercounts the body, in one write or several.
"""

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.conftest import ProxyFactory, make_config

OPTED_OUT = b'<response code="606" status="error"><message>out</message></response>'


@dataclass
class RawGateway:
    """Answers every request on a connection with ``answer(n)`` (n: the request's number)."""

    answer: Callable[[int], list[bytes]]
    connections: int = 0
    requests: int = 0
    heads: list[bytes] = field(default_factory=list)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.heads.append(head)
                self.requests += 1
                for piece in self.answer(self.requests):
                    writer.write(piece)
                    await writer.drain()
                    await asyncio.sleep(0.02)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def raw_gateway() -> AsyncIterator[Callable[..., Any]]:
    servers: list[asyncio.Server] = []

    async def start(answer: Callable[[int], list[bytes]]) -> tuple[RawGateway, int]:
        gateway = RawGateway(answer)
        server = await asyncio.start_server(gateway.serve, "127.0.0.1", 0)
        servers.append(server)
        return gateway, server.sockets[0].getsockname()[1]

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


def head(length: int, extra: bytes = b"", eol: bytes = b"\r\n") -> bytes:
    lines = [b"HTTP/1.1 200 OK", b"Content-Type: text/xml", b"Content-Length: %d" % length]
    return eol.join(lines) + eol + extra + eol


async def proxy_to(proxy_client: ProxyFactory, port: int) -> Any:
    config = make_config(
        {
            "name": "gw",
            "vendor": "moms",
            "path_prefix": "/gw",
            "upstream": f"http://127.0.0.1:{port}",
        }
    )
    return await proxy_client(config)


@pytest.mark.parametrize(
    "pieces",
    [
        pytest.param([head(len(OPTED_OUT)) + OPTED_OUT + b"\r\nstray junk\r\n"], id="one-write"),
        pytest.param(
            [head(len(OPTED_OUT)) + OPTED_OUT + b"HTTP/1.1 200 OK\r\n\r\n"], id="a-second-head"
        ),
        pytest.param([head(len(OPTED_OUT)), OPTED_OUT + b"<more/>"], id="body-and-junk-later"),
        pytest.param([head(len(OPTED_OUT)) + OPTED_OUT, b"late junk"], id="junk-after-the-answer"),
        pytest.param(
            [b"HTTP/1.1 100 Continue\r\n\r\n" + head(len(OPTED_OUT)) + OPTED_OUT + b"xyz"],
            id="after-an-interim-head",
        ),
        pytest.param(
            [head(len(OPTED_OUT), eol=b"\n") + OPTED_OUT + b"\n\njunk"], id="bare-lf-head"
        ),
    ],
)
async def test_bytes_after_the_answer_are_dropped_and_the_answer_stands(
    raw_gateway: Any, proxy_client: ProxyFactory, pieces: list[bytes]
) -> None:
    gateway, port = await raw_gateway(lambda n: pieces)
    client = await proxy_to(proxy_client, port)
    for _ in range(3):
        env = await (await client.get("/gw/transaction.send")).json()
        assert (env["code"], env["vendor"]["code"]) == ("RECIPIENT_OPTED_OUT", "606")
        # Stray bytes that come once the next request is on its way cannot be told from
        # its answer (nginx cannot either); these arrive while the connection idles.
        await asyncio.sleep(0.1)
    assert gateway.requests == 3
    assert gateway.connections == 3  # none of those connections was used again


async def test_a_clean_answer_keeps_its_connection(
    raw_gateway: Any, proxy_client: ProxyFactory
) -> None:
    gateway, port = await raw_gateway(lambda n: [head(len(OPTED_OUT)) + OPTED_OUT])
    client = await proxy_to(proxy_client, port)
    for _ in range(3):
        env = await (await client.get("/gw/transaction.send")).json()
        assert env["code"] == "RECIPIENT_OPTED_OUT"
    assert (gateway.requests, gateway.connections) == (3, 1)


async def test_a_chunked_answer_is_read_whole(raw_gateway: Any, proxy_client: ProxyFactory) -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n%b\r\n0\r\n\r\n" % (len(OPTED_OUT), OPTED_OUT)
    )
    gateway, port = await raw_gateway(lambda n: [chunked[:40], chunked[40:]])
    client = await proxy_to(proxy_client, port)
    for _ in range(2):
        env = await (await client.get("/gw/transaction.send")).json()
        assert env["code"] == "RECIPIENT_OPTED_OUT"
    assert gateway.connections == 1
