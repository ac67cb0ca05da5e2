"""Structured logs: JSON lines (or a console view for humans), always redacted.

``configure_logging`` sets up structlog once per process (and again whenever it is called:
tests and command-line flags reconfigure). Every event goes through the same chain::

    merge_contextvars → add_log_level → timestamp (UTC ISO-8601) → format_exc_info
        → redact → renderer (orjson JSON line | ConsoleRenderer)

``redact`` is always on and sits directly before the renderer, so nothing that reaches
the output has skipped it: not bound context, not exception tracebacks (they are turned
into text first, then redacted), not records from the standard library's ``logging``
(aiohttp, asyncio), which are routed through the same chain at warning and above.

Logging never stalls the proxy. When the stream is a real file descriptor (stdout, by
default), rendered, redacted lines go to a bounded in-memory buffer that one daemon thread
writes out (``log_sink.py``); a log collector that cannot keep up costs dropped lines,
counted by ``dropped_lines()``, never a blocked event loop. ``flush_logs``/``close_logs``
write what is buffered at shutdown, bounded by a timeout, and run at exit anyway. In-memory
streams (tests) are written directly, so what was logged can be read at once.

What redaction does, and how it keeps every line cheap: ``proxy.observability.redact``.
"""

import logging
import sys
import time
from collections.abc import Callable
from typing import IO, Any, Literal, TextIO, cast

import orjson

# structlog imports rich, when it is installed (a development tool pulls it in), for the
# console renderer's tracebacks: 3.4 MB of resident memory in every process, which the
# proxy never uses (JSON is for machines; the console view then shows plain tracebacks).
# Hidden while structlog loads; importing rich later works as usual.
if "rich" not in sys.modules:
    sys.modules["rich"] = None  # type: ignore[assignment] # makes ``import rich`` fail
    try:
        import structlog
    finally:
        del sys.modules["rich"]
import structlog
from structlog.typing import (
    EventDict,
    FilteringBoundLogger,
    Processor,
    WrappedLogger,
)

from proxy.observability.log_sink import (
    FLUSH_SECONDS,
    SinkHandler,
    SinkLoggerFactory,
    close_logs,
    dropped_lines,
    flush_logs,
    sink_for,
)
from proxy.observability.redact import REDACTED, SECRET_KEYS, mask_msisdn, redact, redact_text

__all__ = [
    "FLUSH_SECONDS",
    "REDACTED",
    "SECRET_KEYS",
    "LogFormat",
    "LogLevel",
    "close_logs",
    "configure_logging",
    "dropped_lines",
    "emit",
    "flush_logs",
    "get_logger",
    "mask_msisdn",
    "redact",
    "redact_text",
]

LogFormat = Literal["json", "console"]
LogLevel = Literal["debug", "info", "warning", "error"]

_LEVELS: dict[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


class _UtcStamper:
    """structlog processor: ``timestamp``, as TimeStamper(fmt="iso", utc=True) writes it
    (``2026-01-31T12:00:00.123456Z``), formatting the date and time once per second."""

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        micros = int((now - second) * 1_000_000)
        event_dict["timestamp"] = f"{self._prefix}.{micros:06d}Z" if micros else self._prefix + "Z"
        return event_dict


def _dumps(obj: Any, **_: Any) -> str:
    # orjson is several times faster than json; structlog's JSONRenderer passes default=.
    # Keys are strings but in odd nested values: the option for those costs every line.
    try:
        return orjson.dumps(obj, default=str).decode()
    except TypeError:  # orjson.JSONEncodeError: a key that is no str
        return orjson.dumps(obj, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def _renderer(fmt: LogFormat, stream: IO[str]) -> Processor:
    if fmt == "console":
        isatty = getattr(stream, "isatty", None)
        colors = bool(isatty()) if callable(isatty) else False
        return structlog.dev.ConsoleRenderer(colors=colors)
    return structlog.processors.JSONRenderer(serializer=_dumps)


_STDLIB_HANDLER = "gateway_proxy.observability.logs"


def _route_stdlib(
    level: int, pre_chain: list[Processor], tail: list[Processor], handler: logging.Handler
) -> None:
    """Send stdlib ``logging`` records (aiohttp, asyncio) through the same redacting chain.

    Only warnings and above: aiohttp's info-level access log would duplicate our own
    per-request line. Replaces the handler a previous call installed.
    """
    root = logging.getLogger()
    for old in list(root.handlers):
        if old.get_name() == _STDLIB_HANDLER:
            root.removeHandler(old)
    handler.set_name(_STDLIB_HANDLER)
    handler.setLevel(max(level, logging.WARNING))
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *pre_chain],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail],
        )
    )
    root.addHandler(handler)


def configure_logging(
    level: LogLevel = "info",
    fmt: LogFormat = "json",
    *,
    stream: IO[str] | None = None,
    buffered: bool | None = None,
) -> None:
    """Configure structlog (and stdlib logging) to write redacted events to ``stream``.

    ``level`` filters at the bound logger, so filtered calls cost one no-op method call.
    ``fmt`` is ``json`` (one JSON object per line) or ``console`` (for humans; colours
    only on a terminal). ``stream`` defaults to ``sys.stdout`` at call time. Calling again
    replaces the previous configuration, for loggers not yet used (structlog caches a
    logger's configuration on its first use).

    ``buffered`` (default: whether ``stream`` has a file descriptor) writes through a
    bounded buffer and a writer thread, so a blocked stream drops lines instead of
    blocking the caller; ``False`` writes directly. Raises ``KeyError`` on an unknown
    level, ``ValueError`` if ``buffered`` is true and ``stream`` has no file descriptor.
    """
    out = sys.stdout if stream is None else stream
    level_no = _LEVELS[level]
    pre_chain: list[Processor] = [
        structlog.processors.add_log_level,
        _UtcStamper(),
    ]
    # Tracebacks become text before redact, so exception messages are redacted too.
    tail: list[Processor] = [
        structlog.processors.format_exc_info,
        redact,
        _renderer(fmt, out),
    ]
    sink = None if buffered is False else sink_for(out)
    if buffered and sink is None:
        raise ValueError(f"buffered logging needs a stream with a file descriptor: {out!r}")
    factory: Callable[..., WrappedLogger]
    handler: logging.Handler
    if sink is None:
        factory = structlog.WriteLoggerFactory(file=cast(TextIO, out))
        handler = logging.StreamHandler(out)
    else:
        factory = SinkLoggerFactory(sink)
        handler = SinkHandler(sink)
    chain = [structlog.contextvars.merge_contextvars, *pre_chain, *tail]
    structlog.configure(
        processors=chain,
        wrapper_class=structlog.make_filtering_bound_logger(level_no),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    _EMITTER.set(level_no, chain, factory().msg)
    _route_stdlib(level_no, pre_chain, tail, handler)


class _Emitter:
    """The configured chain and output, for ``emit``: what a bound logger runs, without it."""

    __slots__ = ("chain", "level_no", "write")

    def __init__(self) -> None:
        self.level_no = 0
        self.chain: list[Processor] = []  # empty until configure_logging: structlog's own
        self.write: Callable[[str], None] | None = None

    def set(self, level_no: int, chain: list[Processor], write: Callable[[str], None]) -> None:
        self.level_no, self.chain, self.write = level_no, chain, write


_EMITTER = _Emitter()


def emit(level: LogLevel, event: str, fields: dict[str, Any]) -> None:
    """Log ``event`` with ``fields`` (taken over, not copied) at ``level``.

    The line is the one ``get_logger().<level>(event, **fields)`` writes: the same
    processors, redaction included, and the same output, as configured last. It skips the
    bound logger's per-call work, which is a real share of a line that every request
    writes (observe.py). Below the configured level it costs one comparison.
    """
    emitter = _EMITTER
    if _LEVELS[level] < emitter.level_no:
        return
    if emitter.write is None:  # not configured: structlog's defaults
        getattr(structlog.get_logger(), level)(event, **fields)
        return
    fields["event"] = event
    rendered: Any = fields
    for processor in emitter.chain:
        rendered = processor(None, level, rendered)
    emitter.write(rendered)


def get_logger(name: str | None = None) -> FilteringBoundLogger:
    """A logger for the current configuration.

    ``name`` says at the call site whose logger it is; it is not written to the lines,
    which carry only the keys the caller binds. The logger is a lazy proxy: it takes the
    configuration in force when it first logs, so module-level loggers are fine as long
    as ``configure_logging`` runs before their first line.
    """
    args = () if name is None else (name,)
    return cast(FilteringBoundLogger, structlog.get_logger(*args))
