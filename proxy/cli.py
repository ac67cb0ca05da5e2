"""The ``gateway-proxy`` command line (also ``python -m proxy``).

Subcommands: ``serve``, ``check-config``, ``codes``, ``translate``, ``simulate``, ``demo``.
Exit status: 0 on success, 2 for a usage or configuration error, 1 otherwise.
"""

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import orjson
from multidict import CIMultiDict

from proxy import __version__, demo, sim
from proxy.catalog import Catalog, CatalogError, load_catalog
from proxy.classify import classify_reply
from proxy.codes_table import render_codes
from proxy.config import ConfigError, load_config, resolve_config_path
from proxy.envelope import build_envelope
from proxy.logs import LogFormat, LogLevel, configure_logging, get_logger
from proxy.vendors import VendorName, parse_reply

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gateway-proxy",
        description="Reverse proxy that turns MM7 and MoMS gateway answers into one envelope.",
    )
    parser.add_argument("--version", action="version", version=f"gateway-proxy {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the proxy")
    serve.add_argument("--config", help="config file (default: $GATEWAY_PROXY_CONFIG)")
    serve.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    serve.add_argument("--log-format", choices=("json", "console"))

    check = sub.add_parser("check-config", help="validate a config file and exit")
    check.add_argument("path", nargs="?", help="config file (default: $GATEWAY_PROXY_CONFIG)")

    codes = sub.add_parser("codes", help="print the code catalog")
    codes.add_argument("--vendor", choices=("mm7", "moms"))
    codes.add_argument("--format", choices=("table", "json", "markdown"), default="table")
    codes.add_argument("--catalog", help="catalog file (default: the built-in one)")

    translate = sub.add_parser(
        "translate", help="print the envelope a captured gateway reply would produce"
    )
    translate.add_argument("--vendor", choices=("mm7", "moms"), required=True)
    translate.add_argument("--http-status", type=int, default=200)
    translate.add_argument("--content-type", default=None)
    translate.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="NAME:VALUE",
        help="a response header the reply came with (X-MM7-Status-Code, Retry-After, ...); "
        "repeatable",
    )
    translate.add_argument("--catalog", help="catalog file (default: the built-in one)")
    translate.add_argument("file", help="the captured body, or - for standard input")

    sim.add_simulate_arguments(sub.add_parser("simulate", help="run the gateway simulator"))
    demo.add_demo_arguments(
        sub.add_parser("demo", help="run the simulator and the proxy with a guide")
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = cast(str, args.command)
    if command == "serve":
        return _serve(args)
    if command == "check-config":
        return _check_config(args.path)
    if command == "codes":
        return _codes(args)
    if command == "translate":
        return _translate(args)
    if command == "simulate":
        try:
            settings = sim.settings_from_args(args)
        except ValueError as exc:
            print(f"gateway-proxy simulate: {exc}", file=sys.stderr)
            return EXIT_USAGE
        configure_logging("info", "console")
        sim.run_simulator(settings)
        return EXIT_OK
    return demo.run_demo(args)


def _serve(args: argparse.Namespace) -> int:
    from proxy.serve import run  # noqa: PLC0415 - aiohttp server only when serving

    path = resolve_config_path(args.config)
    try:
        config = load_config(path)
        load_catalog(config.catalog)
    except (ConfigError, CatalogError) as exc:
        configure_logging("info", "json")
        log = get_logger("gateway_proxy")
        for error in exc.errors:
            log.error("config_error", error=error)
        return EXIT_USAGE
    level = cast(LogLevel, args.log_level or config.log.level)
    fmt = cast(LogFormat, args.log_format or config.log.format)
    configure_logging(level, fmt)
    run(config)
    return EXIT_OK


def _check_config(path_arg: str | None) -> int:
    path = resolve_config_path(path_arg)
    try:
        config = load_config(path)
        catalog = load_catalog(config.catalog)
    except (ConfigError, CatalogError) as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        return EXIT_USAGE
    routes = ", ".join(f"{r.name} ({r.path_prefix} -> {r.vendor})" for r in config.routes)
    print(f"{path}: ok: {len(config.routes)} route(s): {routes}; catalog {catalog.source}")
    return EXIT_OK


def _load_catalog_or_report(path: str | None) -> Catalog | None:
    try:
        return load_catalog(Path(path) if path else None)
    except CatalogError as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        return None


def _codes(args: argparse.Namespace) -> int:
    catalog = _load_catalog_or_report(args.catalog)
    if catalog is None:
        return EXIT_USAGE
    sys.stdout.write(render_codes(catalog, vendor=args.vendor, fmt=args.format))
    return EXIT_OK


def _translate(args: argparse.Namespace) -> int:
    catalog = _load_catalog_or_report(args.catalog)
    if catalog is None:
        return EXIT_USAGE
    try:
        body = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        print(f"{args.file}: cannot read: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    headers: CIMultiDict[str] = CIMultiDict()
    for item in args.header:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            print(f"--header {item!r}: expected NAME:VALUE", file=sys.stderr)
            return EXIT_USAGE
        headers.add(name.strip(), value.strip())
    vendor = cast(VendorName, args.vendor)
    reply = parse_reply(vendor, body, headers.get("Content-Type", args.content_type))
    outcome = classify_reply(catalog, vendor, reply, args.http_status, headers=headers)
    envelope = build_envelope(outcome, request_id="translate", route=None)
    sys.stdout.write(orjson.dumps(envelope, option=orjson.OPT_INDENT_2).decode() + "\n")
    return EXIT_OK
