"""The ``gateway-proxy`` command line (also ``python -m proxy``), built from one table.

``COMMANDS`` lists each subcommand with a one-line summary, a description, its options
and the function that runs it; ``build_parser`` and ``main`` only walk that table. What a
command needs is imported when it runs, so ``serve`` loads no simulator or demo code.
Exit status: ``Exit.OK`` (0), ``Exit.FAIL`` (1), ``Exit.USAGE`` (2: a usage or
configuration error; argparse uses it too).
"""

import argparse
import enum
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson
from multidict import CIMultiDict

from proxy import __version__
from proxy.codes.catalog import Catalog, CatalogError, load_catalog
from proxy.config import (
    DEFAULT_CONFIG_PATH,
    ENV_CONFIG,
    ConfigError,
    load_config,
    resolve_config_path,
)
from proxy.observability.logs import configure_logging, get_logger
from proxy.vocab import LOG_FORMATS, LOG_LEVELS, VENDOR_NAMES, LogFormat, LogLevel, VendorName


class Exit(enum.IntEnum):
    """The process exit statuses."""

    OK = 0
    FAIL = 1
    USAGE = 2


EXIT_OK, EXIT_FAIL, EXIT_USAGE = Exit.OK, Exit.FAIL, Exit.USAGE
_CONFIG_HELP = f"config file (default: ${ENV_CONFIG}, else {DEFAULT_CONFIG_PATH})"
_CATALOG_HELP = "code catalog file (default: the built-in one)"


@dataclass(frozen=True, slots=True)
class Command:
    """One subcommand: its name, one-line summary, description, options and runner."""

    name: str
    summary: str
    description: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


_WORKERS_HELP = (
    "proxy processes sharing `listen` (SO_REUSEPORT; default 1, one process). With N > 1 a "
    "supervising parent serves `admin_listen`, /metrics adding up every worker "
    "(prometheus_client multiprocess mode: no exemplars); SIGTERM drains every worker"
)


def _worker_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        count = 0
    if not 1 <= count <= 256:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to 256, got {text!r}")
    return count


def _serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help=_CONFIG_HELP)
    parser.add_argument("--log-level", choices=LOG_LEVELS, help="override the config's log.level")
    parser.add_argument(
        "--log-format", choices=LOG_FORMATS, help="override the config's log.format"
    )
    parser.add_argument("--workers", type=_worker_count, default=1, metavar="N", help=_WORKERS_HELP)


def _check_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", nargs="?", help=_CONFIG_HELP)


def _codes_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--vendor", choices=VENDOR_NAMES, help="only this vendor's codes")
    parser.add_argument(
        "--format",
        choices=("table", "json", "markdown"),
        default="table",
        help="output format (default: table; markdown is what the README holds)",
    )
    parser.add_argument("--catalog", help=_CATALOG_HELP)


def _translate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--vendor", choices=VENDOR_NAMES, required=True, help="the gateway that sent the reply"
    )
    parser.add_argument(
        "--http-status",
        type=int,
        default=200,
        metavar="N",
        help="the HTTP status the reply came with (default: 200, assumed unless given)",
    )
    parser.add_argument(
        "--content-type", default=None, metavar="TYPE", help="the reply's Content-Type header"
    )
    parser.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="NAME:VALUE",
        help="a response header the reply came with (X-MM7-Status-Code, Retry-After, ...); "
        "repeatable",
    )
    parser.add_argument("--catalog", help=_CATALOG_HELP)
    parser.add_argument("file", help="the captured body, or - for standard input")


def _simulate_arguments(parser: argparse.ArgumentParser) -> None:
    from proxy.tools.sim.settings import add_simulate_arguments  # noqa: PLC0415 - lazy

    add_simulate_arguments(parser)


def _demo_arguments(parser: argparse.ArgumentParser) -> None:
    from proxy.tools.demo import add_demo_arguments  # noqa: PLC0415 - lazy

    add_demo_arguments(parser)


def _simulate(args: argparse.Namespace) -> int:
    from proxy.tools import sim  # noqa: PLC0415 - the simulator only when simulating

    try:
        settings = sim.settings_from_args(args)
    except ValueError as exc:
        print(f"gateway-proxy simulate: {exc}", file=sys.stderr)
        return Exit.USAGE
    configure_logging("info", "console")
    sim.run_simulator(settings)
    return Exit.OK


def _demo(args: argparse.Namespace) -> int:
    from proxy.tools.demo import run_demo  # noqa: PLC0415 - the demo only when asked for

    return run_demo(args)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser for every subcommand in ``COMMANDS``.

    With ``only``, only that subcommand gets its options: the others are listed, but their
    option builders (which import the simulator and the demo) do not run, so ``serve``
    starts without that code in memory.
    """
    parser = argparse.ArgumentParser(
        prog="gateway-proxy",
        description="Reverse proxy that turns MM7 and MoMS gateway answers into one envelope.",
    )
    parser.add_argument("--version", action="version", version=f"gateway-proxy {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        sub_parser = sub.add_parser(
            command.name, help=command.summary, description=command.description
        )
        if only is None or command.name == only:
            command.add_arguments(sub_parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # The top level has only flags, so the first other word names the command.
    chosen = next((word for word in argv if not word.startswith("-")), None)
    known = chosen if any(c.name == chosen for c in COMMANDS) else None
    args = build_parser(known).parse_args(argv)
    return next(c for c in COMMANDS if c.name == args.command).run(args)


def _serve(args: argparse.Namespace) -> int:
    from proxy.process.serve import ListenError, run  # noqa: PLC0415 - the server only when serving
    from proxy.server import StartupError  # noqa: PLC0415 - the server only when serving

    path = resolve_config_path(args.config)
    try:
        config = load_config(path)
        load_catalog(config.catalog)
    except (ConfigError, CatalogError) as exc:
        configure_logging("info", args.log_format or "json")
        log = get_logger("gateway_proxy")
        for error in exc.errors:
            # ``key`` and ``reason`` apart: redaction may hide the value after a secret's
            # name in ``error`` ("Authorization: ..."), but a reason names variables, never
            # their values, so it stays readable.
            file, _, rest = error.partition(": ")
            key, _, reason = rest.partition(": ")
            log.error("config_error", error=error, file=file, key=key, reason=reason or None)
        return EXIT_USAGE
    level: LogLevel = args.log_level or config.log.level
    fmt: LogFormat = args.log_format or config.log.format
    configure_logging(level, fmt)
    try:
        if args.workers > 1:
            from proxy.process.workers import run_workers  # noqa: PLC0415 - only with --workers

            return run_workers(config, args.workers, level, fmt)
        run(config)
    except StartupError as exc:  # a busy port, unreadable TLS files, a ledger file
        event = "listen_error" if isinstance(exc, ListenError) else "startup_error"
        get_logger("gateway_proxy").error(event, error=str(exc))
        return Exit.FAIL
    return EXIT_OK


def _check_config(args: argparse.Namespace) -> int:
    path = resolve_config_path(args.path)
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
    from proxy.codes.table import render_codes  # noqa: PLC0415

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
    vendor: VendorName = args.vendor
    from proxy.codes.classify import classify_reply  # noqa: PLC0415
    from proxy.codes.envelope import build_envelope  # noqa: PLC0415
    from proxy.server.headers import content_type_of  # noqa: PLC0415
    from proxy.vendors import parse_reply  # noqa: PLC0415

    content_type = content_type_of(headers) if "Content-Type" in headers else args.content_type
    namespaces = catalog.vendors[vendor].namespaces
    reply = parse_reply(vendor, body, content_type, namespaces)
    outcome = classify_reply(catalog, vendor, reply, args.http_status, headers=headers)
    envelope = build_envelope(outcome, request_id="translate", route=None)
    sys.stdout.write(orjson.dumps(envelope, option=orjson.OPT_INDENT_2).decode() + "\n")
    return EXIT_OK


COMMANDS: tuple[Command, ...] = (
    Command(
        "serve",
        "run the proxy",
        "Serve app traffic on `listen` and /metrics, /healthz, /readyz on `admin_listen`, "
        "until SIGTERM or SIGINT.",
        _serve_arguments,
        _serve,
    ),
    Command(
        "check-config",
        "validate a config file and its catalog, then exit",
        "Check a config (and the catalog it names) the way serve would; print every "
        "problem as file: key: reason. Exit 0 when valid, 2 otherwise.",
        _check_arguments,
        _check_config,
    ),
    Command(
        "codes",
        "print the code catalog",
        "Print the canonical codes and each vendor's codes, as a table, JSON or Markdown.",
        _codes_arguments,
        _codes,
    ),
    Command(
        "translate",
        "print the envelope a captured gateway reply would produce",
        "Classify a captured gateway body offline and print its envelope. The reply is "
        "assumed to have come with HTTP 200 unless --http-status is given.",
        _translate_arguments,
        _translate,
    ),
    Command(
        "simulate",
        "run the gateway simulator",
        "Play an MM7 relay and the MoMS/CM API on one port, with every vendor code and "
        "transport fault on demand (docs/simulator.md).",
        _simulate_arguments,
        _simulate,
    ),
    Command(
        "demo",
        "run the simulator and the proxy with a guide",
        "Start the simulator and the proxy in front of it, and print a guide of requests "
        "to try. Ctrl-C stops every process of the demo.",
        _demo_arguments,
        _demo,
    ),
)
