"""proxy.ledger's pure parts: the headers, the scope, the fingerprint and the record bytes."""

import hashlib
import itertools

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.ledger import (
    MAX_CALLBACK_DATA_BYTES,
    Correlation,
    Fingerprinter,
    HeaderProblem,
    RecordError,
    Scope,
    StoredAnswer,
    fingerprint_of,
    parse_callback_data,
    parse_idempotency_key,
    utc_now,
)
from proxy.ledger.records import (
    decode_answer,
    decode_correlation,
    encode_answer,
    encode_correlation,
)

KEY_255 = "k" * 255


@pytest.mark.parametrize(
    ("values", "key"),
    [
        (None, None),
        ([], None),
        ("8e03978e-40d5-43e8-bc93-6894a57f9324", "8e03978e-40d5-43e8-bc93-6894a57f9324"),
        (["8e03978e-40d5-43e8-bc93-6894a57f9324"], "8e03978e-40d5-43e8-bc93-6894a57f9324"),
        ('"8e03978e-40d5-43e8-bc93-6894a57f9324"', "8e03978e-40d5-43e8-bc93-6894a57f9324"),
        ("  padded\t", "padded"),  # OWS around a field value is not part of it
        ('"with\\"quote\\"and\\\\"', 'with"quote"and\\'),  # sf escapes undone
        ("a", "a"),
        (KEY_255, KEY_255),
        (f'"{KEY_255}"', KEY_255),
        ("!#$%&'()*+,-./:;<=>?@[]^_`{|}~", "!#$%&'()*+,-./:;<=>?@[]^_`{|}~"),
        ('abc"def', 'abc"def'),  # a bare token may hold a quote, just not start with one
    ],
)
def test_usable_keys(values: str | list[str] | None, key: str | None) -> None:
    assert parse_idempotency_key(values) == key


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ("", "is empty"),
        ("   ", "is empty"),
        ('""', "is empty"),
        ("k" * 256, "longer than 255"),
        (f'"{"k" * 256}"', "longer than 255"),
        ("two words", "visible ASCII"),
        ('"two words"', "visible ASCII"),  # legal in an sf-string, not in a key
        ("caf\u00e9", "visible ASCII"),
        ("tab\tinside", "visible ASCII"),
        ("nul\x00", "visible ASCII"),
        ('"unterminated', "quoted string"),
        ('"bad \\n escape"', "quoted string"),
        ('"k";param=1', "without parameters"),
        ('"a" "b"', "without parameters"),
        (["one", "two"], "more than once"),
    ],
)
def test_unusable_keys_say_why_without_quoting_the_value(
    values: str | list[str], reason: str
) -> None:
    problem = parse_idempotency_key(values)
    assert isinstance(problem, HeaderProblem)
    assert reason in problem.reason
    for line in [values] if isinstance(values, str) else values:
        if line.strip():
            assert line.strip() not in problem.reason


@given(st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1,
               max_size=255).filter(lambda k: not k.startswith('"')))  # fmt: skip
def test_any_visible_token_is_its_own_key_and_quoting_names_the_same_key(key: str) -> None:
    assert parse_idempotency_key(key) == key
    quoted = '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'
    assert parse_idempotency_key(quoted) == key


@given(st.text(max_size=300))
def test_any_header_value_gives_a_key_none_or_a_problem(value: str) -> None:
    result = parse_idempotency_key(value)
    if isinstance(result, str):
        assert 1 <= len(result) <= 255
        assert all(0x21 <= ord(c) <= 0x7E for c in result)
    else:
        assert result is None or isinstance(result, HeaderProblem)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (None, None),
        ("", None),
        ("order-4711", "order-4711"),
        ('{"order": 4711, "shop": "eu"}', '{"order": 4711, "shop": "eu"}'),
        ("x" * MAX_CALLBACK_DATA_BYTES, "x" * MAX_CALLBACK_DATA_BYTES),
        ("caf\u00e9", "caf\u00e9"),
    ],
)
def test_callback_data(values: str | None, expected: str | None) -> None:
    assert parse_callback_data(values) == expected


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ("x" * (MAX_CALLBACK_DATA_BYTES + 1), "longer than 1024 bytes"),
        ("\u00e9" * 513, "longer than 1024 bytes"),  # 1026 bytes of UTF-8
        ("line\nbreak", "control characters"),
        (["a", "b"], "more than once"),
    ],
)
def test_unusable_callback_data(values: str | list[str], reason: str) -> None:
    problem = parse_callback_data(values)
    assert isinstance(problem, HeaderProblem)
    assert reason in problem.reason


def test_a_scope_is_client_route_and_key_and_stores_none_of_them() -> None:
    base = Scope("checkout", "mms", "k-1")
    ids = {
        base.storage_id,
        Scope("billing", "mms", "k-1").storage_id,
        Scope("checkout", "moms", "k-1").storage_id,
        Scope("checkout", "mms", "k-2").storage_id,
        # length-prefixed parts: moving a character across a boundary is another scope
        Scope("checkou", "tmms", "k-1").storage_id,
    }
    assert len(ids) == 5
    assert base.storage_id == Scope("checkout", "mms", "k-1").storage_id
    assert len(base.storage_id) == 64
    assert "k-1" not in base.storage_id


@given(st.binary(max_size=4096), st.lists(st.integers(0, 4096), max_size=8))
def test_a_streamed_fingerprint_is_the_whole_body_s(body: bytes, cuts: list[int]) -> None:
    fingerprinter = Fingerprinter("POST", "/mm7?x=1")
    edges = sorted({0, len(body), *(c % (len(body) + 1) for c in cuts)})
    for start, end in itertools.pairwise(edges):
        fingerprinter.update(memoryview(body)[start:end])
    assert fingerprinter.digest() == fingerprint_of("POST", "/mm7?x=1", body)


def test_the_fingerprint_covers_method_path_query_and_body() -> None:
    base = fingerprint_of("POST", "/moms/transaction.send?to=1", b"message=hi")
    others = {
        fingerprint_of("PUT", "/moms/transaction.send?to=1", b"message=hi"),
        fingerprint_of("POST", "/moms/transaction.lookup?to=1", b"message=hi"),
        fingerprint_of("POST", "/moms/transaction.send?to=2", b"message=hi"),
        fingerprint_of("POST", "/moms/transaction.send?to=1", b"message=ho"),
        fingerprint_of("POST", "/moms/transaction.send?to=1message=hi", b""),
    }
    assert base not in others
    assert len(others) == 5
    assert base == fingerprint_of("post", "/moms/transaction.send?to=1", b"message=hi")
    assert base.startswith("sha256:")
    assert len(base) == len("sha256:") + 64
    # The body's hash goes in, not the body: nothing of the request is readable in it.
    assert hashlib.sha256(b"message=hi").hexdigest() not in base


ANSWER = StoredAnswer(
    status=504,
    headers=(("Content-Type", "application/problem+json"), ("Retry-After", "1")),
    body=b'{"code":"TIMEOUT"}\n\x00\xff binary \n tail',
)


def test_an_answer_record_round_trips_bytes_exactly() -> None:
    raw = encode_answer("sha256:" + "a" * 64, ANSWER)
    assert decode_answer(raw) == ("sha256:" + "a" * 64, ANSWER)
    empty = StoredAnswer(204, (), b"")
    assert decode_answer(encode_answer("f", empty)) == ("f", empty)


def test_a_correlation_record_round_trips() -> None:
    record = Correlation("req-1", "anonymous", None, "order-4711", utc_now(), "mms")
    assert decode_correlation(encode_correlation(record)) == record
    assert record.as_submit() == {
        "request_id": "req-1", "client": "anonymous", "idempotency_key": None,
        "callback_data": "order-4711", "submitted_at": record.submitted_at, "route": "mms",
    }  # fmt: skip


def test_callback_data_is_bounded_in_the_record_too() -> None:
    with pytest.raises(ValueError, match="1024"):
        Correlation("r", "c", None, "x" * 1025, utc_now(), "mms")


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json\nbody",
        b'{"v":2,"fingerprint":"f","status":200,"headers":[]}\nbody',
        b'{"v":1,"fingerprint":"f","status":"200","headers":[]}\nbody',
        b'{"v":1,"fingerprint":"f","status":200,"headers":[["only-name"]]}\nbody',
        b'{"v":1,"fingerprint":"f","status":200,"headers":[]}',  # no separator
        b"[1]\n",
    ],
)
def test_unreadable_answer_records_raise_record_error(raw: bytes) -> None:
    with pytest.raises(RecordError):
        decode_answer(raw)


@pytest.mark.parametrize(
    "data",
    [
        {"v": 1},
        {"v": 1, "request_id": 1, "client": "c", "submitted_at": "t", "route": "r"},
        {"v": 1, "request_id": "r", "client": "c", "submitted_at": "t", "route": "r",
         "callback_data": 7},
        {"v": 1, "request_id": "r", "client": "c", "submitted_at": "t", "route": "r",
         "callback_data": "x" * 2000},
    ],
)  # fmt: skip
def test_unreadable_correlation_records_raise_record_error(data: dict[str, object]) -> None:
    with pytest.raises(RecordError):
        decode_correlation(orjson.dumps(data))


def test_utc_now_is_rfc_3339_utc() -> None:
    from datetime import UTC, datetime, timedelta, timezone

    moment = datetime(2026, 12, 1, 21, 11, 13, 42000, tzinfo=timezone(timedelta(hours=1)))
    assert utc_now(moment) == "2026-12-01T20:11:13.042Z"
    assert utc_now(datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04:05.000Z"
    assert utc_now().endswith("Z")
    assert datetime.fromisoformat(utc_now()).tzinfo == UTC
