"""What the tests need of aiohttp's internals (the fence): aiohttp's ``TestServer`` on a
runner of the proxy's choosing (it overrides ``TestServer._make_runner``), and an app's
body stream as the server hands it over (on aiohttp's ``BaseProtocol``). Only the tests
import this module: it pulls in aiohttp.test_utils."""

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import StreamReader, web
from aiohttp.base_protocol import BaseProtocol
from aiohttp.test_utils import TestServer


class GuardedTestServer(TestServer):
    """aiohttp's ``TestServer`` on a runner made by ``runner(app, **kwargs)``."""

    def __init__(
        self, app: web.Application, runner: Callable[..., web.AppRunner], **kwargs: Any
    ) -> None:
        super().__init__(app, **kwargs)
        self._runner_factory = runner

    async def _make_runner(self, **kwargs: Any) -> web.AppRunner:
        return self._runner_factory(self.app, **kwargs)


def body_stream(data: bytes, *, eof: bool = True) -> StreamReader:
    """An app's body as the server hands it over: a stream on a connected protocol."""
    protocol = BaseProtocol(asyncio.get_running_loop())
    protocol.transport = asyncio.Transport()
    stream = StreamReader(protocol, 2**16)
    stream.feed_data(data)
    if eof:
        stream.feed_eof()
    return stream


__all__ = ["GuardedTestServer", "body_stream"]
