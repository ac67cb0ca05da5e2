"""The canary of the fence (proxy/aio/): every private aiohttp name it relies on still
exists, with the shape it relies on. An aiohttp upgrade that breaks the proxy fails here,
one test per name, before anything else does.

``test_every_private_name_the_fence_uses_has_a_canary`` keeps this list whole: a new
private use in proxy/aio/ without a check here fails.
"""

import ast
import asyncio
import inspect
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.base_protocol import BaseProtocol
from aiohttp.client_proto import ResponseHandler
from aiohttp.helpers import rfc822_formatted_time
from aiohttp.http import SERVER_SOFTWARE, HttpVersion11
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.http_parser import HttpRequestParserPy, RawResponseMessage
from aiohttp.http_writer import StreamWriter, _serialize_headers
from aiohttp.test_utils import TestServer, make_mocked_request
from aiohttp.web_protocol import RequestHandler, RequestPayloadError
from aiohttp.web_request import BaseRequest
from aiohttp.web_urldispatcher import UrlMappingMatchInfo
from multidict import CIMultiDict

from tests.test_architecture import FENCE, PRIVATE

# The names checked below, attribute names and imported ones alike.
CHECKED = {
    # server.py
    "_messages", "_request_in_progress", "_request_count", "_reading_paused", "_parser",
    "_read_bufsize", "_max_msg_queue_size", "_upgraded", "_loop", "_kwargs", "_make_server",
    "_match_info", "_finish",
    # writer.py
    "_serialize_headers", "_write", "_prepare_hook", "_eof_sent", "_body_length",
    "_keep_alive", "_cookies",
    # client.py
    "_drain_helper",
    # testing.py
    "_make_runner",
}  # fmt: skip


def parameters(function: Callable[..., Any]) -> set[str]:
    return set(inspect.signature(function).parameters)


async def a_request_handler() -> RequestHandler:
    """A RequestHandler as aiohttp's server makes one for a connection."""

    async def handler(request: BaseRequest) -> web.StreamResponse:
        return web.Response()

    return web.Server(handler)()


# --- server.py ------------------------------------------------------------------------------


async def test_the_request_handlers_parser_state_is_there() -> None:
    handler = await a_request_handler()
    for name in ("_messages", "_request_in_progress", "_request_count", "_reading_paused",
                 "_parser", "_read_bufsize", "_max_msg_queue_size", "_upgraded", "_loop"):  # fmt: skip
        assert hasattr(handler, name), f"RequestHandler.{name} is gone"
    assert isinstance(handler._request_count, int)
    assert isinstance(handler._request_in_progress, bool)
    assert isinstance(handler._reading_paused, bool)
    assert len(handler._messages) == 0  # a deque of parsed requests


def test_the_request_handler_methods_the_guard_overrides_keep_their_signatures() -> None:
    assert parameters(RequestHandler.handle_error) >= {"request", "status", "exc", "message"}
    assert parameters(RequestHandler.finish_response) >= {"request", "resp", "start_time"}
    assert parameters(RequestHandler.resume_reading) >= {"resume_parser"}
    assert inspect.iscoroutinefunction(RequestHandler.finish_response)
    for name in ("connection_made", "connection_lost", "data_received", "force_close",
                 "log_access", "max_line_size", "max_field_size", "max_headers"):  # fmt: skip
        assert hasattr(RequestHandler, name) or name.startswith("max_"), name


def test_the_python_request_parser_takes_what_the_guard_gives_it() -> None:
    assert parameters(HttpRequestParserPy.__init__) >= {
        "protocol", "loop", "limit", "max_line_size", "max_field_size", "max_headers",
        "payload_exception", "auto_decompress", "max_msg_queue_size",
    }  # fmt: skip
    assert issubclass(LineTooLong, HttpProcessingError)
    assert issubclass(RequestPayloadError, Exception)


async def test_the_server_and_the_runner_keep_what_the_guarded_runner_reads() -> None:
    server = web.Server(_ok)  # type: ignore[arg-type]
    assert hasattr(server, "_loop")
    assert isinstance(server._kwargs, dict)
    assert hasattr(server, "request_factory")
    assert hasattr(server, "handler_cancellation")
    assert inspect.iscoroutinefunction(web.AppRunner._make_server)


async def _ok(request: web.Request) -> web.Response:
    return web.Response()


def test_match_info_can_be_built_and_set_on_a_request() -> None:
    app = web.Application()
    route = app.router.add_route("*", "/{tail:.*}", _ok)
    info = UrlMappingMatchInfo({}, route)
    info.add_app(app)
    info.freeze()
    assert callable(info.expect_handler)
    request = make_mocked_request("GET", "/x", app=app)
    request._match_info = info
    assert request.app is app
    assert callable(request._finish)


# --- writer.py ------------------------------------------------------------------------------


def test_headers_serialize_as_the_writer_expects() -> None:
    head = _serialize_headers("HTTP/1.1 200 OK", CIMultiDict({"A": "1"}))
    assert head == b"HTTP/1.1 200 OK\r\nA: 1\r\n\r\n"
    with pytest.raises(ValueError, match=r"(?i)newline|character"):
        _serialize_headers("GET / HTTP/1.1", CIMultiDict({"A": "1\r\nB: 2"}))


def test_the_stream_writer_and_request_hooks_are_there() -> None:
    assert parameters(StreamWriter._write) >= {"chunk"}
    assert hasattr(StreamWriter, "output_size") or "output_size" in inspect.getsource(
        StreamWriter.__init__
    )
    assert inspect.iscoroutinefunction(BaseRequest._prepare_hook)
    assert parameters(BaseRequest._prepare_hook) >= {"response"}


def test_a_response_has_the_state_write_eof_leaves() -> None:
    response = web.Response(body=b"x")
    for name in ("_eof_sent", "_body_length", "_keep_alive", "_cookies"):
        assert hasattr(response, name), f"StreamResponse.{name} is gone"
    assert response._eof_sent is False
    assert isinstance(rfc822_formatted_time(), str)
    assert isinstance(SERVER_SOFTWARE, str)
    assert HttpVersion11 == (1, 1)


# --- client.py ------------------------------------------------------------------------------


async def test_the_response_protocol_offers_what_the_pool_uses() -> None:
    protocol = ResponseHandler(asyncio.get_running_loop())
    assert inspect.iscoroutinefunction(protocol._drain_helper)
    assert parameters(protocol.set_response_params) >= {
        "skip_payload", "read_until_eof", "auto_decompress", "max_line_size",
        "max_field_size", "max_headers", "read_bufsize",
    }  # fmt: skip
    for name in ("read", "writing_paused", "should_close", "is_connected", "force_close",
                 "data_received", "transport", "close"):  # fmt: skip
        assert hasattr(protocol, name), f"ResponseHandler.{name} is gone"
    for name in ("code", "headers", "should_close"):
        assert hasattr(RawResponseMessage, name), f"RawResponseMessage.{name} is gone"


async def test_no_attribute_the_fence_adds_shadows_one_of_aiohttps() -> None:
    """AnswerBound and GuardedRequestHandler add state to aiohttp's classes: none of it may
    reuse a name aiohttp's own code keeps there."""
    from proxy.aio.client import AnswerBound
    from proxy.aio.server import GuardedRequestHandler

    for ours, theirs in ((AnswerBound, ResponseHandler), (GuardedRequestHandler, RequestHandler)):
        added = set(ours.__slots__) if "__slots__" in vars(ours) else set()
        added |= {n for n in vars(ours) if not n.startswith("__")}
        added |= _assigned_in_init(ours)
        inherited = {n for cls in theirs.__mro__ for n in vars(cls)}
        inherited |= {n for cls in theirs.__mro__ for n in getattr(cls, "__slots__", ())}
        overridden = {"data_received", "connection_made", "connection_lost", "resume_reading",
                      "handle_error", "finish_response", "__init__"}  # fmt: skip
        # Names in CHECKED are aiohttp's own state, written on purpose (``_parser``).
        assert (added & inherited) - overridden - CHECKED == set(), ours.__name__


def _assigned_in_init(cls: type) -> set[str]:
    tree = ast.parse(inspect.getsource(cls))
    return {
        node.attr for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
        and isinstance(node.value, ast.Name) and node.value.id == "self"
    }  # fmt: skip


# --- testing.py -----------------------------------------------------------------------------


def test_the_test_server_still_makes_its_runner_in_one_place() -> None:
    assert inspect.iscoroutinefunction(TestServer._make_runner)
    assert parameters(BaseProtocol.__init__) >= {"loop"}


# --- the list is whole ----------------------------------------------------------------------


def fence_private_uses() -> Iterator[str]:
    """Private aiohttp names proxy/aio/ reads, calls, imports or overrides."""
    for path in FENCE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in PRIVATE:
                yield node.attr
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("aiohttp"):
                yield from (a.name for a in node.names if a.name.startswith("_"))
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name in PRIVATE:
                yield node.name


def fence_own_names() -> set[str]:
    """Names the fence's classes define themselves (AppHandler's ``_handler``, ...)."""
    own: set[str] = set()
    for path in FENCE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
                and isinstance(node.value, ast.Name) and node.value.id == "self"
                and node.attr not in CHECKED
            ):  # fmt: skip
                own.add(node.attr)
    return own


def test_every_private_name_the_fence_uses_has_a_canary() -> None:
    unchecked = set(fence_private_uses()) - CHECKED - fence_own_names()
    assert unchecked == set(), f"add a canary check for: {sorted(unchecked)}"


def test_the_fence_is_a_package_of_its_own() -> None:
    assert (FENCE / "__init__.py").is_file()
    assert Path(FENCE).name == "aio"
