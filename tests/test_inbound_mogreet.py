"""Mogreet's incoming-message POST: the parser, the catalog's event words, the event, the
answer (all sans-io). Every event built here validates against docs/event.schema.json.

The fixtures (tests/fixtures/inbound/mogreet-*.xml) follow the shapes Mogreet documents
(developer.mogreet.com/docs/messaging/receiving) with the suite's own test numbers.
"""

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from proxy.inbound import (
    InboundTablesError,
    MogreetCallback,
    MogreetError,
    answer_mogreet,
    build_event,
    parse_inbound_tables,
    parse_mogreet,
    refuse_mogreet,
    with_submit,
)
from proxy.ledger import Correlation, utc_now
from tests.test_inbound_event import TABLES, validate_event

FIXTURES = Path(__file__).parent / "fixtures" / "inbound"
CODES = Path(__file__).resolve().parents[1] / "config" / "codes.yaml"
CAP = 2_097_152


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def parse(body: bytes, content_type: str | None = "text/xml") -> MogreetCallback | MogreetError:
    return parse_mogreet(body, content_type, CAP)


def event_of(callback: MogreetCallback, tables: Any = TABLES) -> dict[str, Any]:
    event = build_event(
        callback, route="mogreet-in", event_id="ev-1", received_at="2026-12-01T20:11:13.000Z",
        statuses=tables,
    )  # fmt: skip
    validate_event(event)
    return event


# --- the parser -------------------------------------------------------------------------


def test_an_mms_message_in() -> None:
    callback = parse(fixture("mogreet-message-in-mms.xml"))
    assert callback == MogreetCallback(
        event="message-in",
        campaign_id="20948",
        msisdn="13108675309",
        carrier="T-Mobile",
        message="KEYWORD here is my dog, <3 & all",  # CDATA kept as text, never as markup
        subject=None,
        images=(
            "http://media.example.invalid/mo-mms/images/4711_1.jpeg",
            "http://media.example.invalid/mo-mms/images/4711_2.PNG?v=2",
        ),
    )


def test_a_stop() -> None:
    callback = parse(fixture("mogreet-stop.xml"))
    assert isinstance(callback, MogreetCallback)
    assert (callback.event, callback.message, callback.carrier, callback.images) == (
        "stop", "Stop KEYWORD", None, (),
    )  # fmt: skip


def test_a_post_without_event_is_read() -> None:
    """The older documented samples (and Mogreet's starter app) have no <event>."""
    callback = parse(fixture("mogreet-no-event.xml"))
    assert isinstance(callback, MogreetCallback)
    assert (callback.event, callback.carrier, callback.images) == (None, "Verizon Wireless", ())


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b"", "text/xml", "empty"),
        (b"   \n", "text/xml", "empty"),
        (b"<html><body>502</body></html>", "text/html", "html"),
        (fixture("mogreet-xxe.xml"), "text/xml", "hostile"),
        (b"<mogreet><msisdn>1</msisdn>", "text/xml", "malformed"),
        (b"<response code='1'/>", "text/xml", "wrong_root"),
        (b"<m:mogreet xmlns:m='urn:x'><msisdn>1</msisdn></m:mogreet>", None, "wrong_root"),
        (b"<mogreet><event>message-in</event></mogreet>", None, "missing_field"),
        (b"<mogreet><msisdn>  </msisdn></mogreet>", None, "missing_field"),
        (fixture("mogreet-two-msisdns.xml"), None, "ambiguous"),
        (b"<mogreet><msisdn>1</msisdn><event>stop</event><event>message-in</event></mogreet>",
         None, "ambiguous"),
        (b'{"msisdn": "1"', "application/json", "malformed"),
        (b"[1, 2]", "application/json", "wrong_root"),
        (b'{"unrelated": true}', "application/json", "wrong_root"),
        (b'{"msisdn": ["1"]}', "application/json", "malformed"),
        (b'{"msisdn": "1", "images": [7]}', "application/json", "malformed"),
        (b'{"msisdn": "1", "msisdn": "2"}', "application/json", "ambiguous"),
        (b'{"message": "hi"}', "application/json", "missing_field"),
    ],
)  # fmt: skip
def test_refusals(body: bytes, content_type: str | None, reason: str) -> None:
    error = parse(body, content_type)
    assert isinstance(error, MogreetError)
    assert error.reason == reason
    assert "13108675309" not in error.detail  # fixed text, never the content


def test_an_oversize_post_is_not_read() -> None:
    error = parse_mogreet(fixture("mogreet-stop.xml"), "text/xml", 10)
    assert error == MogreetError("oversize", "the request is larger than 10 bytes")


def test_the_same_value_twice_is_that_value() -> None:
    body = b"<mogreet><msisdn>1555</msisdn><msisdn> 1555 </msisdn><event>stop</event></mogreet>"
    callback = parse(body)
    assert isinstance(callback, MogreetCallback)
    assert (callback.msisdn, callback.event) == ("1555", "stop")


def test_namespaced_and_unknown_elements_are_data() -> None:
    body = (
        b"<mogreet xmlns:x='urn:other'><x:msisdn>999</x:msisdn><msisdn>1555</msisdn>"
        b"<x:images><image>http://a.invalid/x.jpg</image></x:images><!-- note -->"
        b"<images><x:image>http://a.invalid/y.jpg</x:image><image>http://a.invalid/z.gif</image>"
        b"<other>ignored</other></images><shortcode>21534</shortcode></mogreet>"
    )
    callback = parse(body)
    assert isinstance(callback, MogreetCallback)
    assert callback.msisdn == "1555"
    assert callback.images == ("http://a.invalid/z.gif",)


def test_every_images_element_counts() -> None:
    body = (
        b"<mogreet><msisdn>1</msisdn><images><image>http://a.invalid/1.jpg</image></images>"
        b"<images><image>http://a.invalid/2.jpg</image><image> </image></images></mogreet>"
    )
    callback = parse(body)
    assert isinstance(callback, MogreetCallback)
    assert callback.images == ("http://a.invalid/1.jpg", "http://a.invalid/2.jpg")


def test_encodings_are_read_as_declared() -> None:
    body = '<?xml version="1.0" encoding="ISO-8859-1"?><mogreet><msisdn>1</msisdn>' \
        "<message>caf\u00e9</message></mogreet>"  # fmt: skip
    callback = parse(body.encode("latin-1"))
    assert isinstance(callback, MogreetCallback)
    assert callback.message == "caf\u00e9"


@pytest.mark.parametrize(
    "body",
    [
        b'{"event": "message-in", "campaign_id": 20948, "msisdn": 13108675309, "carrier": '
        b'"T-Mobile", "message": "hi", "subject": null, "images": ["http://a.invalid/1.jpg"]}',
        b'{"mogreet": {"event": "message-in", "campaign_id": "20948", "msisdn": "13108675309",'
        b' "carrier": "T-Mobile", "message": "hi", "images": {"image": "http://a.invalid/1.jpg"}}}',
        b'\xef\xbb\xbf {"mogreet": {"event": "message-in", "campaign_id": "20948", "msisdn": '
        b'"13108675309", "carrier": "T-Mobile", "message": "hi", "images": '
        b'[{"image": "http://a.invalid/1.jpg"}]}}',
    ],
)
def test_json_with_the_same_fields_is_read(body: bytes) -> None:
    """Inferred: Mogreet says "XML or JSON" and shows only XML."""
    callback = parse(body, None)
    assert callback == MogreetCallback(
        "message-in", "20948", "13108675309", "T-Mobile", "hi", None, ("http://a.invalid/1.jpg",)
    )


@given(st.binary(max_size=600), st.sampled_from([None, "text/xml", "application/json"]))
def test_any_bytes_give_a_callback_or_a_refusal(body: bytes, content_type: str | None) -> None:
    from proxy.inbound.mogreet import _parse

    result = _parse(body, content_type, CAP)  # the inner parser: the guard is never needed
    assert isinstance(result, MogreetCallback | MogreetError)
    if isinstance(result, MogreetCallback):
        validate_event(event_of(result))


@given(
    st.fixed_dictionaries(
        {"msisdn": st.text(min_size=1).filter(str.strip)},
        optional={
            name: st.one_of(st.none(), st.text(), st.integers())
            for name in ("event", "campaign_id", "carrier", "message", "subject")
        },
    )
)
def test_any_json_object_with_an_msisdn_gives_a_valid_event(fields: dict[str, Any]) -> None:
    import json

    result = parse(json.dumps(fields).encode(), "application/json")
    assert isinstance(result, MogreetCallback)
    event_of(result)


# --- the catalog's event words ----------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "event", "known"),
    [
        ("message-in", "message", True),
        ("MESSAGE-IN", "message", True),
        ("stop", "opt_out", True),
        (" Stop ", "opt_out", True),
        (None, "message", True),  # no <event>: the older samples' incoming message
        ("opt-in", "opt_in", True),
        ("optin", "opt_in", True),
        ("unsubscribe-all", "message", False),  # unknown: delivered, word kept
    ],
)
def test_event_words_are_catalog_data(word: str | None, event: str, known: bool) -> None:
    resolution = TABLES.moms.resolve(word)
    assert (resolution.event, resolution.known) == (event, known)


def test_a_maintainer_can_map_a_word_in_yaml_alone() -> None:
    data = yaml.safe_load(CODES.read_text(encoding="utf-8"))
    data["inbound"]["moms"]["events"]["quit"] = "opt_out"
    data["inbound"]["moms"]["unknown"] = "opt_in"
    tables = parse_inbound_tables(data)
    callback = MogreetCallback("QUIT", None, "1555", None, "quit", None, ())
    assert event_of(callback, tables)["event"] == "opt_out"
    other = MogreetCallback("something", None, "1555", None, None, None, ())
    assert event_of(other, tables)["event"] == "opt_in"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda m: m["events"].__setitem__("stop", "unsubscribe"),
         "inbound.moms.events.stop: must be one of message, opt_out, opt_in"),
        (lambda m: m["events"].__setitem__("STOP", "opt_out"),
         "inbound.moms.events.STOP: the same word as 'stop'"),
        (lambda m: m.pop("missing"), "inbound.moms.missing: is required"),
        (lambda m: m.__setitem__("colour", "red"), "inbound.moms.colour: unknown key"),
    ],
)  # fmt: skip
def test_a_bad_moms_table_is_refused_precisely(change: Any, expected: str) -> None:
    data = copy.deepcopy(yaml.safe_load(CODES.read_text(encoding="utf-8")))
    change(data["inbound"]["moms"])
    with pytest.raises(InboundTablesError) as error:
        parse_inbound_tables(data, source="codes.yaml")
    assert any(expected in line for line in error.value.errors), error.value.errors


def test_the_moms_table_is_required() -> None:
    data = yaml.safe_load(CODES.read_text(encoding="utf-8"))
    del data["inbound"]["moms"]
    with pytest.raises(InboundTablesError) as error:
        parse_inbound_tables(data, source="codes.yaml")
    assert "codes.yaml: inbound.moms: is required" in error.value.errors


# --- the event ----------------------------------------------------------------------------


def test_a_message_event() -> None:
    callback = parse(fixture("mogreet-message-in-mms.xml"))
    assert isinstance(callback, MogreetCallback)
    assert event_of(callback) == {
        "event": "message",
        "id": "ev-1",
        "route": "mogreet-in",
        "received_at": "2026-12-01T20:11:13.000Z",
        "timestamp": None,
        "message_id": None,
        "recipient": None,
        "sender": {"type": "number", "value": "13108675309"},
        "subject": None,
        "priority": None,
        "linked_id": None,
        "recipients": {"to": [], "cc": [], "bcc": []},
        "parts": [
            {"content_type": "text/plain", "content_id": None, "content_location": None,
             "text": "KEYWORD here is my dog, <3 & all"},
            {"content_type": "image/jpeg", "content_id": None,
             "content_location": "http://media.example.invalid/mo-mms/images/4711_1.jpeg",
             "url": "http://media.example.invalid/mo-mms/images/4711_1.jpeg"},
            {"content_type": "image/png", "content_id": None,
             "content_location": "http://media.example.invalid/mo-mms/images/4711_2.PNG?v=2",
             "url": "http://media.example.invalid/mo-mms/images/4711_2.PNG?v=2"},
        ],
        "vendor": {"name": "moms", "event": "message-in", "campaign_id": "20948",
                   "carrier": "T-Mobile"},
    }  # fmt: skip


def test_an_opt_out_event() -> None:
    callback = parse(fixture("mogreet-stop.xml"))
    assert isinstance(callback, MogreetCallback)
    event = event_of(callback)
    assert (event["event"], event["text"], event["sender"]) == (
        "opt_out", "Stop KEYWORD", {"type": "number", "value": "13108675309"},
    )  # fmt: skip
    assert "parts" not in event
    assert event["vendor"] == {"name": "moms", "event": "stop", "campaign_id": "20948",
                               "carrier": None}  # fmt: skip


def test_an_unknown_word_is_a_message_with_the_word_kept() -> None:
    callback = MogreetCallback("keyword-reply", "1", "1555", None, None, None, ("http://a/b",))
    event = event_of(callback)
    assert (event["event"], event["vendor"]["event"]) == ("message", "keyword-reply")
    assert event["parts"] == [{"content_type": "application/octet-stream", "content_id": None,
                               "content_location": "http://a/b", "url": "http://a/b"}]  # fmt: skip


def test_with_submit_adds_the_send_to_a_report() -> None:
    from tests.test_inbound_event import event_of as mm7_event_of
    from tests.test_inbound_event import report

    base = mm7_event_of(report("Retrieved"))
    record = Correlation("req-1", "checkout", "key-1", '{"order": 4711}', utc_now(), "mms")
    matched = with_submit(base, record.as_submit())
    validate_event(matched)
    assert matched["submit"] == record.as_submit()
    unmatched = with_submit(base, None)
    validate_event(unmatched)
    assert unmatched["submit"] is None
    assert base["submit"] is None  # the event given is not changed


def test_submit_is_checked_by_the_schema() -> None:
    import jsonschema

    from tests.test_inbound_event import event_of as mm7_event_of
    from tests.test_inbound_event import report

    bad = with_submit(mm7_event_of(report("Retrieved")), {"request_id": "r"})
    with pytest.raises(jsonschema.ValidationError):
        validate_event(bad)


# --- the answer ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("webhook", "status"),
    [
        (200, 200), (202, 200), (204, 200),
        (400, 422), (403, 422), (404, 422), (422, 422),
        (408, 503), (425, 503), (429, 503),
        (500, 503), (502, 503), (503, 503), (301, 503), (None, 503),
    ],
)  # fmt: skip
def test_mogreet_gets_2xx_only_after_the_app_s_2xx(webhook: int | None, status: int) -> None:
    answer = answer_mogreet(webhook)
    assert answer.status == status
    assert answer.content_type == "text/plain; charset=utf-8"
    assert (answer.body == b"OK\n") is (status == 200)


@pytest.mark.parametrize(
    ("reason", "status"),
    [("oversize", 413), ("malformed", 400), ("hostile", 400), ("missing_field", 400),
     ("ambiguous", 400), ("unavailable", 503)],
)  # fmt: skip
def test_refusals_are_answered_by_status(reason: Any, status: int) -> None:
    answer = refuse_mogreet(MogreetError(reason, "why"))
    assert (answer.status, answer.body) == (status, b"why\n")
