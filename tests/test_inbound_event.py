"""proxy.inbound.event: the webhook event, its status mapping and its JSON Schema.

``validate_event`` is imported by the fuzz tests: every event any test builds is checked
against docs/event.schema.json.
"""

import base64
import json
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
import yaml

from proxy.inbound import (
    Address,
    Callback,
    Deliver,
    DeliveryReport,
    Echo,
    InboundTables,
    ReadReply,
    build_event,
    parse_callback,
    parse_inbound_tables,
)
from tests.test_inbound_mm7 import FIXTURES, REPORT, dr_body, fixture

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((ROOT / "docs" / "event.schema.json").read_text(encoding="utf-8"))
_VALIDATOR = jsonschema.Draft202012Validator(
    SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)
TABLES = parse_inbound_tables(yaml.safe_load((ROOT / "config" / "codes.yaml").read_text()))
ECHO = Echo(namespace=None, mm7_version="6.8.0", transaction_id="t-9")

# The mapping the issue specifies, transcribed independently of config/codes.yaml:
# MMStatus → (status, final).
DELIVERY = {
    "Retrieved": ("DELIVERED", True),
    "Expired": ("EXPIRED", True),
    "Rejected": ("REJECTED", True),
    "Deferred": ("DEFERRED", False),
    "Unrecognised": ("UNRECOGNISED", True),
    "Unrecognized": ("UNRECOGNISED", True),
    "Indeterminate": ("INDETERMINATE", True),
    "Forwarded": ("FORWARDED", True),
    "Unreachable": ("UNREACHABLE", False),
}
READ = {"Read": "READ", "Deleted": "DELETED_UNREAD", "Indeterminate": "INDETERMINATE"}


def validate_event(event: dict[str, Any]) -> None:
    """The event validates against docs/event.schema.json and survives a JSON round trip."""
    _VALIDATOR.validate(event)
    assert orjson.loads(orjson.dumps(event)) == event


def event_of(callback: Callback, tables: InboundTables = TABLES) -> dict[str, Any]:
    event = build_event(
        callback,
        route="mms-in",
        event_id="ev-1",
        received_at="2024-05-02T14:04:00Z",
        statuses=tables,
    )
    validate_event(event)
    return event


def report(mm_status: str) -> DeliveryReport:
    return DeliveryReport(
        echo=ECHO,
        message_id="m-1",
        recipient=Address("number", "15550100123"),
        sender=None,
        mm_status=mm_status,
        status_extension=None,
        status_text=None,
        timestamp=None,
        relay_server_id=None,
    )


def read_reply(mm_status: str) -> ReadReply:
    return ReadReply(
        echo=ECHO,
        message_id="m-1",
        recipient=Address("email", "someone@example.invalid"),
        sender=Address("short_code", "24273"),
        mm_status=mm_status,
        status_text="x",
        timestamp="2024-05-02T15:00:00Z",
        relay_server_id="relay",
    )


@pytest.mark.parametrize("word", sorted(DELIVERY))
@pytest.mark.parametrize("spelling", [str, str.lower, str.upper])
def test_delivery_status_mapping(word: str, spelling: Any) -> None:
    """Every TS 23.140 MMStatus, in any case, maps to its status and finality."""
    event = event_of(report(spelling(word)))
    assert (event["status"], event["final"]) == DELIVERY[word]
    assert event["vendor"]["mm_status"] == spelling(word)


@pytest.mark.parametrize("word", ["NotSupported", "Sent", "Delivered", "4"])
def test_unknown_delivery_status_keeps_the_raw_value(word: str) -> None:
    """A word outside the table is INDETERMINATE, not final, with the word kept."""
    event = event_of(report(word))
    assert (event["status"], event["final"], event["vendor"]["mm_status"]) == (
        "INDETERMINATE",
        False,
        word,
    )


@pytest.mark.parametrize("word", sorted(READ))
@pytest.mark.parametrize("spelling", [str, str.lower, str.upper])
def test_read_status_mapping(word: str, spelling: Any) -> None:
    """Read → READ, Deleted → DELETED_UNREAD, Indeterminate → INDETERMINATE, any case."""
    event = event_of(read_reply(spelling(word)))
    assert event["event"] == "read_reply"
    assert (event["status"], event["final"]) == (READ[word], True)


def test_unknown_read_status() -> None:
    """An unknown read status is INDETERMINATE, not final, with the word kept."""
    event = event_of(read_reply("Opened"))
    assert (event["status"], event["final"], event["vendor"]["mm_status"]) == (
        "INDETERMINATE",
        False,
        "Opened",
    )


def test_delivery_report_event_from_a_fixture() -> None:
    """Every field of a delivery report event, from a REL-6 fixture."""
    callback = parse_callback(*fixture("deliveryreport-rel6-default-ns.xml"), 1 << 20)
    assert isinstance(callback, DeliveryReport)
    assert event_of(callback) == {
        "event": "delivery_report",
        "id": "ev-1",
        "route": "mms-in",
        "received_at": "2024-05-02T14:04:00Z",
        "timestamp": "2024-05-02T14:03:51.749Z",
        "message_id": "msg-7f3a9c",
        "recipient": {"type": "number", "value": "15550100123"},
        "sender": {"type": "short_code", "value": "24273"},
        "status": "DELIVERED",
        "final": True,
        "status_extension": None,
        "submit": None,
        "vendor": {
            "name": "mm7",
            "mm_status": "Retrieved",
            "status_text": "Message retrieved by the handset",
            "transaction_id": "dr-0001",
            "relay_server_id": "relay-east-1",
            "mm7_version": "6.8.0",
        },
    }


def test_status_extension_is_carried() -> None:
    """A REL-6 MMStatusExtension reaches the event as sent."""
    callback = parse_callback(*fixture("deliveryreport-soap12.xml"), 1 << 20)
    assert isinstance(callback, DeliveryReport)
    event = event_of(callback)
    assert (event["status"], event["status_extension"]) == ("REJECTED", "RejectionByMMSRecipient")


def test_read_reply_event_has_no_status_extension() -> None:
    """A read reply event has its own shape: no status_extension."""
    callback = parse_callback(*fixture("readreply-rel6.xml"), 1 << 20)
    assert isinstance(callback, ReadReply)
    event = event_of(callback)
    assert "status_extension" not in event
    assert (event["status"], event["vendor"]["relay_server_id"]) == ("DELETED_UNREAD", "relay-west")


def test_message_event_parts_text_and_base64() -> None:
    """A message event: text parts as text, the others as base64 of their exact bytes."""
    callback = parse_callback(*fixture("deliver-related-smil.http"), 1 << 20)
    assert isinstance(callback, Deliver)
    event = event_of(callback)
    assert event["event"] == "message"
    assert event["sender"] == {"type": "email", "value": "someone@example.invalid"}
    assert event["recipient"] == {"type": "short_code", "value": "24273"}
    assert event["recipients"] == {"to": [event["recipient"]], "cc": [], "bcc": []}
    assert event["vendor"]["mm_status"] is None
    assert event["message_id"] is None
    smil, text, gif = event["parts"]
    assert "text" not in smil
    assert base64.b64decode(smil["base64"]).startswith(b"<smil>")
    assert text == {
        "content_type": "text/plain",
        "content_id": "txt",
        "content_location": "note.txt",
        "text": "Voilà la photo, à bientôt",
    }
    assert base64.b64decode(gif["base64"]).startswith(b"GIF89a")


def test_message_event_recipient_lists() -> None:
    """recipient is the first To; recipients keeps To, Cc and Bcc in order."""
    callback = parse_callback(*fixture("deliver-plain-recipients.xml"), 1 << 20)
    assert isinstance(callback, Deliver)
    event = event_of(callback)
    assert event["recipient"] == {"type": "short_code", "value": "24273"}
    assert [a["value"] for a in event["recipients"]["to"]] == ["24273", "15550100200"]
    assert event["recipients"]["cc"] == [{"type": "email", "value": "cc@example.invalid"}]
    assert (event["subject"], event["priority"], event["linked_id"]) == (
        "Café & pictures <soon>",
        "High",
        "linked-77",
    )
    assert event["parts"] == []


def test_message_without_recipients_has_a_null_recipient() -> None:
    """A DeliverReq naming no recipient gives recipient null (still a valid event)."""
    callback = parse_callback(*fixture("deliver-late-soap12.http"), 1 << 20)
    assert isinstance(callback, Deliver)
    assert event_of(callback)["recipient"] is None


def test_every_parsed_fixture_gives_a_valid_event() -> None:
    """Each fixture that parses into a callback builds an event that validates."""
    built = 0
    for path in sorted(FIXTURES.iterdir()):
        callback = parse_callback(*fixture(path.name), 1 << 20)
        if isinstance(callback, DeliveryReport | ReadReply | Deliver):
            event_of(callback)
            built += 1
    assert built >= 10


def test_schema_statuses_are_the_catalogs() -> None:
    """The schema's status enum is exactly config/codes.yaml's delivery_statuses."""
    assert set(SCHEMA["$defs"]["status"]["enum"]) == set(TABLES.statuses)


def test_schema_refuses_what_the_event_must_not_be() -> None:
    """The schema is strict: an extra key, a null report recipient, a part with both bodies."""
    callback = parse_callback(dr_body(REPORT), None, 1 << 20)
    assert isinstance(callback, DeliveryReport)
    good = event_of(callback)
    for bad in (
        {**good, "extra": 1},
        {**good, "recipient": None},
        {**good, "status": "delivered"},
        {**good, "event": "message"},
        {**good, "vendor": {**good["vendor"], "name": "moms"}},
    ):
        with pytest.raises(jsonschema.ValidationError):
            _VALIDATOR.validate(bad)
    message = parse_callback(*fixture("deliver-plain-recipients.xml"), 1 << 20)
    assert isinstance(message, Deliver)
    good_message = event_of(message)
    part = {"content_type": "text/plain", "content_id": None, "content_location": None}
    _VALIDATOR.validate({**good_message, "parts": [{**part, "text": "a"}]})
    for bad_part in ({**part, "text": "a", "base64": "YQ=="}, part, {**part, "base64": "!!"}):
        with pytest.raises(jsonschema.ValidationError):
            _VALIDATOR.validate({**good_message, "parts": [bad_part]})
    with pytest.raises(jsonschema.ValidationError):
        _VALIDATOR.validate({**good_message, "sender": None})


def test_reports_always_carry_submit_and_messages_never() -> None:
    """A report's ``submit`` is null until the ledger says otherwise (so an app sees one
    shape with or without a ledger); the schema requires it on reports and refuses it on
    messages, which answer no send."""
    for callback in (report("Retrieved"), read_reply("Read")):
        event = event_of(callback)
        assert event["submit"] is None
        without = {k: v for k, v in event.items() if k != "submit"}
        with pytest.raises(jsonschema.ValidationError, match="submit"):
            _VALIDATOR.validate(without)
    message = parse_callback(*fixture("deliver-plain-recipients.xml"), 1 << 20)
    assert isinstance(message, Deliver)
    event = event_of(message)
    assert "submit" not in event
    with pytest.raises(jsonschema.ValidationError):
        _VALIDATOR.validate({**event, "submit": None})


def test_building_events_does_not_log(log_lines: Any) -> None:
    """Events are PII: building them writes no log line."""
    event_of(report("Retrieved"))
    callback = parse_callback(*fixture("deliver-nested-mixed.http"), 1 << 20)
    assert isinstance(callback, Deliver)
    event_of(callback)
    assert log_lines() == []
