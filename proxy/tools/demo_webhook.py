"""The demo's webhook: a tiny app that prints every event the proxy posts to it.

``gateway-proxy demo`` runs it as a child process, ``python -m proxy.tools.demo_webhook --listen
HOST:PORT``, where the demo config's inbound routes deliver (``deliver_to``). It plays the
application's side of an inbound route:

* ``POST`` (any path) with a JSON body: printed on stdout as one block, ``webhook
  received:`` and the event pretty-printed, then answered ``200`` (so the proxy answers
  the relay 1000);
* a body that is not JSON: a one-line note, answered ``400`` (the proxy then refuses the
  callback: 3002, not retried);
* ``GET /healthz``: ``ok``, the demo's start-up probe.

Events are personal data: this prints them on purpose, for a demo with made-up numbers.
"""

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web

from proxy.config import parse_address

PREFIX = "webhook received:"
MAX_EVENT_BYTES = 16 * 1024 * 1024  # a DeliverReq's content comes inside the event, base64
Printer = Callable[[str], None]
_PRINTER_KEY: web.AppKey[Printer] = web.AppKey("demo_webhook_printer")


def _print(text: str) -> None:
    # One write and a flush per block: the demo's other processes share this terminal, and
    # a whole block written at once is not interleaved with their lines.
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def render_event(event: Any) -> str:
    """The block printed for one event: the prefix, then the event as indented JSON."""
    return f"{PREFIX} {json.dumps(event, indent=2)}"


async def _receive(request: web.Request) -> web.Response:
    raw = await request.read()
    try:
        event = json.loads(raw)
    except ValueError:
        request.app[_PRINTER_KEY](f"webhook: {len(raw)} bytes that are not JSON; answered 400")
        return web.json_response({"error": "expected a JSON event"}, status=400)
    request.app[_PRINTER_KEY](render_event(event))
    return web.json_response({"received": True})


async def _healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


def create_webhook_app(printer: Printer = _print) -> web.Application:
    """The webhook app; ``printer`` gets each block to show (default: stdout)."""
    app = web.Application(client_max_size=MAX_EVENT_BYTES)
    app[_PRINTER_KEY] = printer
    app.router.add_get("/healthz", _healthz)
    app.router.add_post("/{tail:.*}", _receive)
    return app


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m proxy.tools.demo_webhook --listen HOST:PORT``: serve until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m proxy.tools.demo_webhook")
    parser.add_argument("--listen", default="127.0.0.1:9000", metavar="HOST:PORT")
    ns = parser.parse_args(argv)
    try:
        address = parse_address(ns.listen, default_host="127.0.0.1")
    except ValueError as exc:
        parser.error(f"--listen: {exc}")

    def started(_banner: str) -> None:  # run_app calls it once the port is bound
        print(f"demo webhook on http://{address} (prints each event it receives)", flush=True)

    web.run_app(
        create_webhook_app(),
        host=address.host,
        port=address.port,
        print=started,
        shutdown_timeout=1.0,
        access_log=None,
    )


__all__ = ["MAX_EVENT_BYTES", "PREFIX", "Printer", "create_webhook_app", "main", "render_event"]

if __name__ == "__main__":  # pragma: no cover - run as a child process by the demo
    main()
