"""README "Safe retries and delivery reports": the retry loop, run exactly as an app would
copy it, against a real proxy with a SQLite ledger and a gateway that counts its sends.

- a retryable answer (the relay's 4006) releases the key: the loop's next attempt is sent
  and succeeds; running the loop again with the key replays that success, unsent;
- an app whose own timeout is shorter than the gateway's answer hangs up mid-send: the
  gateway had the request, so every resend under the key gets CLIENT_CLOSED_REQUEST (the
  outcome is unknown), never a second send. That is why the README asks for an app
  timeout above the route's timeout.total.
"""

import asyncio
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import requests
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry

from proxy.server import create_app
from proxy.tools.sim.mm7 import render_reply, submit_request
from tests.conftest import make_config

ROOT = Path(__file__).resolve().parent.parent
SUBMIT = submit_request("+15550001000", transaction_id="retry-1").encode()


def readme_send_once() -> Callable[..., dict[str, Any]]:
    """The README's ``send_once``, compiled from its text."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(
        r"<!-- retry-loop:start -->\n```python\n(.*?)```\n<!-- retry-loop:end -->", readme, re.S
    )
    assert block, "the README shows a retry loop"
    namespace: dict[str, Any] = {}
    exec(block.group(1), namespace)  # noqa: S102 - the README's own snippet
    send_once: Callable[..., dict[str, Any]] = namespace["send_once"]
    return send_once


class Gateway:
    """An MM7 relay that counts every SubmitReq it gets and answers with ``codes`` in turn
    (the last one for ever), each after ``delay`` seconds."""

    def __init__(self, codes: list[str], delay: float = 0.0) -> None:
        self.codes, self.delay, self.sends = codes, delay, 0

    async def submit(self, request: web.Request) -> web.Response:
        await request.read()
        self.sends += 1
        code = self.codes[min(self.sends, len(self.codes)) - 1]
        await asyncio.sleep(self.delay)
        reply = render_reply(
            response_kind="SubmitRsp", transaction_id="retry-1", code=code,
            text=f"status {code}", message_id=f"m-{self.sends}",
        )  # fmt: skip
        headers = {"Retry-After": "0"} if code == "4006" else {}
        return web.Response(
            status=reply.status, body=reply.body, content_type="text/xml", headers=headers
        )

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/mm7", self.submit)
        return app


async def _proxy(
    aiohttp_server: Callable[..., Awaitable[TestServer]], gateway: Gateway, tmp_path: Path
) -> str:
    upstream = await aiohttp_server(gateway.app(), host="127.0.0.1")
    config = make_config(
        {"name": "mms", "path_prefix": "/mm7", "upstream": str(upstream.make_url("/mm7")),
         "timeout": {"connect": 2, "total": 10}},
        ledger={"path": str(tmp_path / "ledger.sqlite3")},
    )  # fmt: skip
    proxy = await aiohttp_server(create_app(config, registry=CollectorRegistry()), host="127.0.0.1")
    return str(proxy.make_url("/mm7"))


async def test_a_retryable_answer_is_retried_and_the_success_replayed(
    aiohttp_server: Callable[..., Awaitable[TestServer]], tmp_path: Path
) -> None:
    send_once = readme_send_once()
    gateway = Gateway(["4006", "1000"])
    url = await _proxy(aiohttp_server, gateway, tmp_path)
    with requests.Session() as session:
        first = await asyncio.to_thread(send_once, session, url, SUBMIT, "order-8812-mms")
        assert (first["code"], gateway.sends) == ("OK", 2)
        again = await asyncio.to_thread(send_once, session, url, SUBMIT, "order-8812-mms")
    assert again == first  # the kept answer, request_id included
    assert gateway.sends == 2


async def test_an_app_that_hangs_up_never_sends_twice(
    aiohttp_server: Callable[..., Awaitable[TestServer]], tmp_path: Path
) -> None:
    send_once = readme_send_once()
    gateway = Gateway(["1000"], delay=1.5)  # slower than the app's own timeout below
    url = await _proxy(aiohttp_server, gateway, tmp_path)
    with requests.Session() as session:
        envelope = await asyncio.to_thread(
            send_once, session, url, SUBMIT, "order-8813-mms", timeout=0.5
        )
    assert (envelope["code"], envelope["retryable"]) == ("CLIENT_CLOSED_REQUEST", False)
    assert "unknown" in envelope["detail"]
    await asyncio.sleep(gateway.delay)  # the cancelled send would have answered by now
    assert gateway.sends == 1
