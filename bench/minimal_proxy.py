"""The good Python peer: the least an aiohttp proxy must do for what gateway-proxy does.

One shared ``ClientSession``, the app's body streamed upstream, the answer read whole,
its status code found with lxml (MM7 ``StatusCode``; MoMS ``<response code=...>``, or
the JSON ``response.code`` that MoMS labels ``text/xml``), and a small orjson answer.
No metrics, no logs, no catalog, no config file. Same event loop as gateway-proxy
(uvloop when installed); a listen backlog of 4096 (the kernel caps it at somaxconn).
``/mm7...`` is MM7, anything else MoMS; the path and query go to ``--upstream`` unchanged.

    python -m bench.minimal_proxy --listen 127.0.0.1:8480 --upstream http://127.0.0.1:8490
"""

import argparse
import asyncio
import signal
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import aiohttp
import orjson
from aiohttp import web
from lxml import etree

_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
     "upgrade", "host"}
)  # fmt: skip
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
_JSON = "application/json"
SESSION = web.AppKey("session", aiohttp.ClientSession)
UPSTREAM = web.AppKey("upstream", str)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the gateway said: its code (None when none was found) and whether it is a success."""

    vendor: str
    code: str | None
    ok: bool


def classify(vendor: str, body: bytes) -> Verdict:
    """Read the vendor code from a gateway body; never raises."""
    if vendor == "mm7":
        code = _mm7_code(body)
        return Verdict("mm7", code, code is not None and code.startswith("1"))
    status, code = _moms_status_code(body)
    return Verdict("moms", code, status == "success")


def _mm7_code(body: bytes) -> str | None:
    try:
        root = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError:
        return None
    found = root.find(".//{*}StatusCode")
    return found.text.strip() if found is not None and found.text else None


def _moms_status_code(body: bytes) -> tuple[str | None, str | None]:
    if body.lstrip()[:1] == b"{":
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None, None
        response = document.get("response") if isinstance(document, dict) else None
        if not isinstance(response, dict):
            return None, None
        status, code = response.get("status"), response.get("code")
        return None if status is None else str(status), None if code is None else str(code)
    try:
        root = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError:
        return None, None
    return root.get("status"), root.get("code")


async def forward(request: web.Request) -> web.Response:
    """Stream the request upstream, classify the answer, answer with a small JSON object."""
    vendor = "mm7" if request.path.startswith("/mm7") else "moms"
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
    body = request.content if request.body_exists else None
    url = request.app[UPSTREAM] + request.path_qs
    try:
        async with request.app[SESSION].request(
            request.method, url, headers=headers, data=body, allow_redirects=False
        ) as upstream:
            payload = await upstream.read()
            status = upstream.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        error = {"ok": False, "error": type(exc).__name__}
        return web.Response(status=502, body=orjson.dumps(error), content_type=_JSON)
    verdict = classify(vendor, payload)
    answer = {"ok": verdict.ok, "vendor": vendor, "code": verdict.code, "http_status": status}
    return web.Response(
        status=200 if verdict.ok else 422, body=orjson.dumps(answer), content_type=_JSON
    )


def create_app(upstream: str) -> web.Application:
    """The proxy app; its one ``ClientSession`` lives and dies with the app."""
    app = web.Application(client_max_size=0)
    app[UPSTREAM] = upstream.rstrip("/")

    async def session_ctx(app: web.Application) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=30)
        async with aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        ) as session:
            app[SESSION] = session
            yield

    app.cleanup_ctx.append(session_ctx)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


async def serve(host: str, port: int, upstream: str) -> None:
    """Serve until SIGTERM or SIGINT."""
    runner = web.AppRunner(create_app(upstream), access_log=None, handle_signals=False)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        # aiohttp's default backlog (128) overflows under a burst of new connections.
        await web.TCPSite(runner, host, port, backlog=4096).start()
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.minimal_proxy", description=__doc__)
    parser.add_argument("--listen", default="127.0.0.1:8480", help="HOST:PORT")
    parser.add_argument("--upstream", required=True, help="the gateway's base URL")
    args = parser.parse_args(argv)
    host, _, port = str(args.listen).rpartition(":")
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # the same fallback as gateway-proxy's serve.run
        pass
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(serve(host, int(port), str(args.upstream)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
