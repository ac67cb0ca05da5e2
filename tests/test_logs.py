"""Tests for proxy.observability.logs: JSON/console output, level filtering and the redaction processor."""

import io
import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from proxy.observability.logs import (
    REDACTED,
    SECRET_KEYS,
    configure_logging,
    get_logger,
    mask_msisdn,
    redact,
    redact_text,
)
from tests.conftest import configure_suite_logging

# Test data of our own; the suite-wide leak check watches tests/pii.py values, and these
# are written only to the per-test streams below, never to the suite's log sink.
PHONE = "+13108675309"
DIGITS = "13108675309"
MASKED = "********309"
TOKEN = "tkn-8Hq2-secret"
ANSI = re.compile(r"\x1b\[")


@pytest.fixture(autouse=True)
def _fresh_structlog() -> Iterator[None]:
    """Each test starts from structlog's defaults; the suite's logging comes back after."""
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()
    configure_suite_logging()


def capture(level: Any = "debug", fmt: Any = "json") -> io.StringIO:
    stream = io.StringIO()
    configure_logging(level, fmt, stream=stream)
    return stream


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def log_one(**kw: Any) -> dict[str, Any]:
    """Log one JSON event with ``kw`` and return it parsed."""
    stream = capture()
    get_logger("test").info("probe", **kw)
    (line,) = lines(stream)
    return line


# --- output -----------------------------------------------------------------------------
def test_json_is_one_valid_line_per_call_with_timestamp_level_event() -> None:
    """Each call writes exactly one JSON object, starting with timestamp, level, event."""
    stream = capture("info")
    log = get_logger("gateway_proxy")
    log.info("started", port=8080)
    log.warning("request", status=400, retryable=False)
    raw = stream.getvalue().splitlines()
    assert len(raw) == 2
    first, second = (json.loads(line) for line in raw)
    assert list(first)[:3] == ["timestamp", "level", "event"]
    assert (first["level"], first["event"], first["port"]) == ("info", "started", 8080)
    assert (second["level"], second["status"], second["retryable"]) == ("warning", 400, False)
    stamp = first["timestamp"]
    assert stamp.endswith(("Z", "+00:00"))
    parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    assert parsed.utcoffset() == UTC.utcoffset(None)


def test_json_renders_unknown_objects_as_text() -> None:
    """Values orjson cannot serialise are written with str(), never an exception."""

    class Thing:
        def __str__(self) -> str:
            return "thing-a"

    assert log_one(obj=Thing(), tags={"x", "y"} - {"y"})["obj"] == "thing-a"


def test_str_subclasses_are_redacted_as_text() -> None:
    """A str subclass (an enum member, a multidict value) is still masked."""

    class Tagged(str):
        __slots__ = ()

    assert log_one(to=Tagged(f"to {PHONE}"))["to"] == f"to {MASKED}"


def test_console_format_is_human_text_without_colours_off_a_tty() -> None:
    """Console lines show level, event and key=value pairs; no ANSI codes into a StringIO."""
    stream = capture("info", "console")
    get_logger().info("listening", port=8080)
    text = stream.getvalue()
    assert "listening" in text
    assert "port=8080" in text
    assert "info" in text
    assert not ANSI.search(text)
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


def test_console_colours_on_a_tty() -> None:
    """A terminal gets colours."""

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Tty()
    configure_logging("info", "console", stream=stream)
    get_logger().info("listening")
    assert ANSI.search(stream.getvalue())


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        ("debug", ["debug", "info", "warning", "error"]),
        ("info", ["info", "warning", "error"]),
        ("warning", ["warning", "error"]),
        ("error", ["error"]),
    ],
)
def test_level_filtering(level: str, expected: list[str]) -> None:
    """Only events at or above the configured level are written."""
    stream = capture(level)
    log = get_logger()
    for name in ("debug", "info", "warning", "error"):
        getattr(log, name)(f"at-{name}")
    assert [line["level"] for line in lines(stream)] == expected


def test_filtered_levels_do_no_work() -> None:
    """A filtered call never touches its arguments (no processors, no rendering)."""

    class Explodes:
        def __str__(self) -> str:
            raise AssertionError("rendered a filtered event")

    stream = capture("warning")
    get_logger().debug("quiet", value=Explodes())
    get_logger().info("quiet", value=Explodes())
    assert stream.getvalue() == ""


def test_reconfiguring_replaces_format_level_and_stream() -> None:
    """A second configure_logging call wins for loggers fetched afterwards."""
    first = capture("info", "json")
    get_logger().info("one")
    second = capture("error", "console")
    log = get_logger()
    log.warning("dropped")
    log.error("two")
    assert [line["event"] for line in lines(first)] == ["one"]
    text = second.getvalue()
    assert "two" in text
    assert "dropped" not in text
    assert not text.lstrip().startswith("{")


def test_module_level_logger_follows_configuration_at_first_use() -> None:
    """get_logger() at import time is lazy: it logs with the config in force when used."""
    early = get_logger("module")
    stream = capture("info")
    early.info("late-bound")
    assert lines(stream)[0]["event"] == "late-bound"


def test_context_variables_are_merged_and_redacted() -> None:
    """Values bound with structlog.contextvars appear on the line, redacted too."""
    stream = capture()
    structlog.contextvars.bind_contextvars(request_id="abc123", to=PHONE)
    try:
        get_logger().info("inside")
    finally:
        structlog.contextvars.clear_contextvars()
    (line,) = lines(stream)
    assert line["request_id"] == "abc123"
    assert line["to"] == MASKED


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_exception_tracebacks_are_redacted(fmt: Any) -> None:
    """log.exception writes the traceback, with MSISDNs and tokens masked inside it."""
    stream = capture("info", fmt)
    try:
        raise ValueError(f"bad recipient {PHONE} token={TOKEN}")
    except ValueError:
        get_logger().exception("boom")
    text = stream.getvalue()
    assert "ValueError: bad recipient" in text
    assert MASKED in text
    assert DIGITS not in text
    assert TOKEN not in text


def test_stdlib_logging_goes_through_redaction_at_warning_and_above() -> None:
    """aiohttp/asyncio records (stdlib logging) are JSON lines, redacted; info is dropped."""
    stream = capture("debug")
    aio = logging.getLogger("aiohttp.server")
    aio.error("Error handling request to %s", f"/mm7?to={PHONE}&token={TOKEN}")
    logging.getLogger("aiohttp.access").info("GET /x?to=%s", PHONE)
    (line,) = lines(stream)
    assert line["level"] == "error"
    assert line["logger"] == "aiohttp.server"
    assert line["event"] == f"Error handling request to /mm7?to={MASKED}&token={REDACTED}"


def test_stdlib_handler_is_replaced_not_duplicated() -> None:
    """Reconfiguring leaves one of our handlers on the root logger, on the new stream."""
    first = capture()
    second = capture()
    logging.getLogger("x").warning("once")
    assert first.getvalue() == ""
    assert len(lines(second)) == 1


# --- MSISDNs ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "digits",
    ["+13108675309", "13108675309", "%2B13108675309", "%2b13108675309", "3108675309"],
)
def test_mask_msisdn_keeps_the_last_three_digits(digits: str) -> None:
    """Any form of a number masks to a fixed-width mask plus its last 3 digits."""
    assert mask_msisdn(digits) == MASKED


def test_mask_hides_the_length() -> None:
    """7 and 15 digit numbers mask to the same width."""
    assert mask_msisdn("5550123") == "********123"
    assert mask_msisdn("+491511234567890") == "********890"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/mm7/recipients/13108675309", f"/mm7/recipients/{MASKED}"),
        ("/moms/transaction.send?to=%2B13108675309&x=1", f"/moms/transaction.send?to={MASKED}&x=1"),
        ("to=+13108675309,+447700900123", f"to={MASKED},********123"),
        ('Invalid "to": 13108675309.', f'Invalid "to": {MASKED}.'),
        ("<Number>+13108675309</Number>", f"<Number>{MASKED}</Number>"),
        ("+13108675309/TYPE=PLMN", f"{MASKED}/TYPE=PLMN"),
        ("tel:5550123", "tel:********123"),
        ("user13108675309x", f"user{MASKED}x"),
    ],
)
def test_msisdns_in_text_are_masked(text: str, expected: str) -> None:
    """7-15 digit runs bounded by non-digits are masked wherever they sit in text."""
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-23T17:54:52.123456+00:00",
        "took 0.0123 s",
        "message id 369500617770864640",
        "short code 123456",
        "HTTP 503 after 2 retries",
        "code 2002 / 4001",
        "10.0.0.1:8080",
        "Basic authentication failed",
        "plain words only",
    ],
)
def test_non_msisdn_text_is_left_alone(text: str) -> None:
    """Timestamps, 16+ digit ids, short codes, decimals and statuses are not MSISDNs."""
    assert redact_text(text) == text


def test_event_path_query_and_vendor_message_are_masked() -> None:
    """MSISDNs in the event itself and in string fields are masked."""
    line = log_one(
        path=f"/moms/transaction.send?to={PHONE}",
        vendor_message=f"Invalid recipient {DIGITS}",
    )
    assert line["path"] == f"/moms/transaction.send?to={MASKED}"
    assert line["vendor_message"] == f"Invalid recipient {MASKED}"
    stream = capture()
    get_logger().info(f"sent to {PHONE}")
    assert lines(stream)[0]["event"] == f"sent to {MASKED}"


def test_nested_containers_ints_bytes_and_keys_are_masked() -> None:
    """Dicts, lists, tuples, sets at any depth, int values, bytes and dict keys."""
    line = log_one(
        details={"recipients": [PHONE, {"to": int(DIGITS)}], "pair": ("a", DIGITS)},
        to=int(DIGITS),
        neg=-int(DIGITS),
        raw=f"<to>{PHONE}</to>".encode(),
        numbers={DIGITS: "x"},
        many={PHONE},
    )
    assert line["details"] == {"recipients": [MASKED, {"to": MASKED}], "pair": ["a", MASKED]}
    assert (line["to"], line["neg"]) == (MASKED, MASKED)
    assert line["raw"] == f"<to>{MASKED}</to>"
    assert line["numbers"] == {MASKED: "x"}
    assert line["many"] == [MASKED]
    assert DIGITS not in json.dumps(line)


def test_objects_are_masked_through_their_text() -> None:
    """An object (a URL, an exception) is redacted through str(), like the renderer sees it."""

    class Url:
        def __str__(self) -> str:
            return f"https://gw.example/send?to={PHONE}&token={TOKEN}"

    line = log_one(url=Url(), error=ValueError(f"no route to {PHONE}"))
    assert line["url"] == f"https://gw.example/send?to={MASKED}&token={REDACTED}"
    assert line["error"] == f"no route to {MASKED}"


def test_deep_structures_are_flattened_and_still_masked() -> None:
    """Past the depth limit a value becomes text; it is still redacted."""
    deep: Any = PHONE
    for _ in range(40):
        deep = [deep]
    assert DIGITS not in json.dumps(log_one(deep=deep))


def test_ids_metrics_and_small_numbers_are_left_alone() -> None:
    """Id keys keep their digit runs; sizes, durations, statuses and short ints are kept."""
    request_id = "9f1c2b7e45612345678a4c3b8e6f0a1b"  # a uuid4().hex with a long digit run
    line = log_one(
        request_id=request_id,
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
        status=503,
        vendor_http_status=500,
        duration_s=12345678.5,
        upstream_duration_s=0.0123,
        bytes_in=12345678,
        bytes_out=1048576,
        max_response_bytes=10485760,
        count=3,
        short=123456,
        message_id=369500617770864640,
        ratio=13108675309.0,
        ok=True,
        nothing=None,
    )
    assert line["request_id"] == request_id
    assert line["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert (line["status"], line["vendor_http_status"]) == (503, 500)
    assert (line["duration_s"], line["upstream_duration_s"]) == (12345678.5, 0.0123)
    assert (line["bytes_in"], line["bytes_out"], line["max_response_bytes"]) == (
        12345678,
        1048576,
        10485760,
    )
    assert (line["count"], line["short"], line["message_id"]) == (3, 123456, 369500617770864640)
    assert (line["ratio"], line["ok"], line["nothing"]) == (13108675309.0, True, None)
    assert line["timestamp"].count(":") == 2  # the timestamp itself is untouched


def test_id_keys_still_lose_secrets() -> None:
    """Id keys skip MSISDN masking only: a token in a client-supplied id is still redacted."""
    assert log_one(request_id=f"token={TOKEN}")["request_id"] == f"token={REDACTED}"


# --- secrets ------------------------------------------------------------------------------
@pytest.mark.parametrize("key", sorted(SECRET_KEYS))
def test_every_secret_key_is_redacted_by_key(key: str) -> None:
    """The value under any SECRET_KEYS name is replaced, whatever its type."""
    line = log_one(**{key: TOKEN, "nested": {key.upper(): 12345, "list": [{key: [TOKEN]}]}})
    assert line[key] == REDACTED
    assert line["nested"] == {key.upper(): REDACTED, "list": [{key: REDACTED}]}


@pytest.mark.parametrize(
    "key", ["Authorization", "X-API-KEY", "mogreet_token", "clientSecret", "DB_Password"]
)
def test_secret_keys_match_by_suffix_case_and_separator(key: str) -> None:
    """Case, '-' vs '_' and a prefix do not hide a secret key."""
    assert log_one(headers={key: TOKEN})["headers"] == {key: REDACTED}


def test_secret_key_none_and_bool_are_kept() -> None:
    """None and booleans under a secret key say 'absent' or 'set'; they are not secret."""
    line = log_one(token=None, password=True)
    assert (line["token"], line["password"]) == (None, True)


def test_non_secret_keys_are_not_redacted() -> None:
    """Keys that merely contain a secret word in the middle keep their values."""
    line = log_one(token_count=3, tokens="some", keyword="STOP", passes="2")
    assert (line["token_count"], line["tokens"], line["keyword"], line["passes"]) == (
        3,
        "some",
        "STOP",
        "2",
    )


def test_every_secret_key_has_a_fast_path_hint() -> None:
    """The cheap pre-check must see every secret name, or text secrets would slip past."""
    from proxy.observability.redact import _SECRET_HINTS

    for key in SECRET_KEYS:
        assert any(hint in key for hint in _SECRET_HINTS), key


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "/moms/send?client_id=7&token=abc&to=x",
            f"/moms/send?client_id={REDACTED}&token={REDACTED}&to=x",
        ),
        ("GET /api?password=p%40ss#frag", f"GET /api?password={REDACTED}"),
        ("next=%2Fcb%3Ftoken%3Dabc", f"next=%2Fcb%3Ftoken%3D{REDACTED}"),
        ("token=&x=1", "token=&x=1"),
        ('{"token": "abc", "x": 1}', f'{{"token": "{REDACTED}", "x": 1}}'),
        ("{'client_secret': 'a b'}", f"{{'client_secret': '{REDACTED}'}}"),
        ('{\\"token\\":\\"abc\\"}', f'{{\\"token\\":\\"{REDACTED}\\"}}'),
        ("Invalid token: abc123, try again", f"Invalid token: {REDACTED}, try again"),
        ("apiKey=zz clientSecret: yy", f"apiKey={REDACTED} clientSecret: {REDACTED}"),
        ("Authorization: Basic dXNlcjpwYXNz", f"Authorization: {REDACTED}"),
        ("authorization: Bearer eyJ0.eyJ1.c2ln", f"authorization: {REDACTED}"),
        ("Proxy-Authorization: Basic dXNlcjpwYXNz", f"Proxy-Authorization: {REDACTED}"),
        ("Cookie: sid=abc; theme=dark", f"Cookie: {REDACTED}"),
        ('{"Authorization": "Basic dXNlcjpwYXNz"}', f'{{"Authorization": "{REDACTED}"}}'),
        ("Authorization=Basic dXNlcjpwYXNz&x=1", f"Authorization={REDACTED}&x=1"),
        ("sent Bearer eyJhbGciOiJIUzI1NiJ9 upstream", f"sent Bearer {REDACTED} upstream"),
        ("<mm7:Password>hunter</mm7:Password>", f"<mm7:Password>{REDACTED}</mm7:Password>"),
        ('<token type="x">abc</token>', f'<token type="x">{REDACTED}</token>'),
        ("https://user:pa55@gw.example/mm7", f"https://user:{REDACTED}@gw.example/mm7"),
    ],
)
def test_secrets_in_text_are_redacted(text: str, expected: str) -> None:
    """Query strings, JSON-ish text, prose, headers, XML and URLs lose their secrets."""
    assert redact_text(text) == expected


def test_token_and_msisdn_in_one_query_string() -> None:
    """Both kinds of redaction apply to the same string."""
    path = f"/moms/transaction.send?client_id=12&token={TOKEN}&to={PHONE}"
    assert log_one(path=path)["path"] == (
        f"/moms/transaction.send?client_id={REDACTED}&token={REDACTED}&to={MASKED}"
    )


def test_redact_processor_is_usable_on_its_own() -> None:
    """redact() is a plain structlog processor: a dict in, a redacted dict out."""
    out = redact(None, "info", {"event": f"to {PHONE}", "password": "x", "level": "info"})
    assert out == {"level": "info", "event": f"to {MASKED}", "password": REDACTED}
    assert list(out) == ["level", "event", "password"]


# --- properties ---------------------------------------------------------------------------
surrounding = st.text(st.characters(categories=("L", "P", "Zs")), max_size=30)
phones = st.tuples(
    st.sampled_from(["", "+", "%2B"]),
    st.text(st.sampled_from("0123456789"), min_size=7, max_size=15),
)


@given(before=surrounding, phone=phones, after=surrounding)
def test_any_embedded_msisdn_is_masked(before: str, phone: tuple[str, str], after: str) -> None:
    """For any 7-15 digit number in any digit-free text, the full number never survives."""
    prefix, digits = phone
    out = redact_text(before + prefix + digits + after)
    assert digits not in out
    if REDACTED not in out:  # a generated "token=" before it may swallow it whole
        assert "********" + digits[-3:] in out


@given(st.text())
def test_redact_text_is_total(text: str) -> None:
    """Any string in, a string out, with no 7-15 digit ASCII run left standing alone."""
    out = redact_text(text)
    assert isinstance(out, str)
    assert not re.search(r"(?<![0-9])[0-9]{7,15}(?![0-9])", out)
