"""The relay's delivery reports, sans-io (proxy/tools/sim/report.py, mm7_request.answer_status):
which MMStatus, the DeliveryReportReq, and how the relay takes the VASP's answer. The last
tests check that the proxy's inbound side and the simulator understand each other."""

import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from proxy.inbound import DeliveryReport as ProxyReport
from proxy.inbound import build_answer, parse_callback
from proxy.inbound.types import Address, CallbackError
from proxy.tools.sim.codes import load_sim_codes
from proxy.tools.sim.mm7 import render_reply
from proxy.tools.sim.mm7_request import Mm7Address, answer_status, parse_request
from proxy.tools.sim.report import (
    DEFAULT_SENDER,
    RECIPIENT_STATUSES,
    STATUS_TEXTS,
    DeliveryReport,
    choose_mm_status,
    delivery_report_request,
    report_for,
    verdict,
)
from tests.test_sim_callback import fault, rsp, submit_body

ROOT = Path(__file__).resolve().parent.parent
WHEN = datetime(2024, 5, 2, 14, 3, 51, tzinfo=UTC)
TO = Mm7Address("Number", "+15550001234")


def report(
    mm_status: str = "Retrieved",
    *,
    message_id: str = "302718193",
    recipient: Mm7Address = TO,
    date: datetime = WHEN,
) -> DeliveryReport:
    return DeliveryReport(message_id, recipient, DEFAULT_SENDER, mm_status, date)


# --- choosing the MMStatus ------------------------------------------------------------
@pytest.mark.parametrize(
    ("headers", "recipient", "expected"),
    [
        ({}, "+15550001234", "Retrieved"),
        ({}, None, "Retrieved"),
        ({}, "+15550009001", "Expired"),
        ({}, "15550009007", "Unreachable"),
        ({}, "+15550009000/TYPE=PLMN", "Retrieved"),
        ({}, "user9003@example.invalid", "Deferred"),
        ({}, "+15550009008", "Retrieved"),  # outside the table
        ({}, "no digits", "Retrieved"),
        ({"X-Sim-MMStatus": "Forwarded"}, "+15550009001", "Forwarded"),  # the header wins
        ({"X-Sim-MMStatus": "  Gone  "}, None, "Gone"),  # any word, stripped
        ({"X-Sim-MMStatus": "  "}, "+15550009002", "Rejected"),  # blank: not given
    ],
)
def test_the_mm_status_is_chosen_by_header_then_recipient(
    headers: dict[str, str], recipient: str | None, expected: str
) -> None:
    assert choose_mm_status(headers, recipient) == expected


def test_recipient_suffixes_are_no_mm7_codes() -> None:
    """A recipient that picks an MMStatus still gets its submit accepted (1000)."""
    assert not set(RECIPIENT_STATUSES) & set(load_sim_codes().mm7)
    assert set(RECIPIENT_STATUSES.values()) == set(STATUS_TEXTS)


def test_the_docs_list_the_recipient_table() -> None:
    """docs/simulator.md's table: the suffixes, their MMStatus and its StatusText."""
    doc = (ROOT / "docs" / "simulator.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\s*\| `…(\d{4})` \| `(\w+)` \| ([^|]+) \|", doc, re.MULTILINE)
    assert {suffix: word for suffix, word, _ in rows} == dict(RECIPIENT_STATUSES)
    assert {word: text for _, word, text in rows} == dict(STATUS_TEXTS)


def test_report_for_needs_a_recipient_and_defaults_the_sender() -> None:
    with_sender = submit_body(
        "+15550009001",
        sender="<mm7:SenderAddress><mm7:Number>+15550000100</mm7:Number></mm7:SenderAddress>",
    )
    req = parse_request(with_sender.encode(), "text/xml")
    made = report_for(req, "42", {}, WHEN)
    assert made == DeliveryReport(
        "42", Mm7Address("Number", "+15550009001"), Mm7Address("Number", "+15550000100"),
        "Expired", WHEN,
    )  # fmt: skip
    bare = parse_request(submit_body("+15550001234").encode(), "text/xml")
    assert report_for(bare, "42", {}, WHEN) == report(message_id="42", date=WHEN)
    nobody = parse_request(
        submit_body("x").replace("<mm7:Number>x</mm7:Number>", "").encode(), "text/xml"
    )
    assert report_for(nobody, "42", {}, WHEN) is None


@pytest.mark.parametrize(
    ("holder", "expected"),
    [
        ("<mm7:SenderAddress>relay@example.invalid</mm7:SenderAddress>",
         Mm7Address("RFC2822Address", "relay@example.invalid")),
        ("<mm7:SenderAddress> 21534 </mm7:SenderAddress>", Mm7Address("Number", "21534")),
        ("<mm7:SenderAddress><mm7:Other>1</mm7:Other></mm7:SenderAddress>", None),
        ("<mm7:SenderAddress/>", None),
    ],
)  # fmt: skip
def test_the_sender_address_may_be_bare_text(holder: str, expected: Mm7Address | None) -> None:
    req = parse_request(submit_body("+15550001234", sender=holder).encode(), "text/xml")
    assert req.sender == expected


# --- the DeliveryReportReq ---------------------------------------------------------------
@pytest.mark.parametrize(
    "date",
    [WHEN, WHEN.replace(tzinfo=None), WHEN.astimezone(timezone(timedelta(hours=2)))],
    ids=["utc", "naive-as-utc", "offset"],
)
def test_the_date_is_utc(date: datetime) -> None:
    body = delivery_report_request(report(date=date))
    assert b"<mm7:Date>2024-05-02T14:03:51Z</mm7:Date>" in body


def test_the_report_escapes_what_it_carries() -> None:
    body = delivery_report_request(report("<b>&", recipient=Mm7Address("ShortCode", "a&b")))
    assert b"<mm7:MMStatus>&lt;b&gt;&amp;</mm7:MMStatus>" in body
    assert b"<mm7:ShortCode>a&amp;b</mm7:ShortCode>" in body
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n')


# --- reading the answer; the verdict ----------------------------------------------------
@pytest.mark.parametrize(
    ("body", "code"),
    [
        (rsp("1000")[1], "1000"),
        (fault("4006")[1], "4006"),
        (render_reply(response_kind="DeliveryReportRsp", transaction_id="t", code="3002",
                      text="refused").body, "3002"),
        (b"<Envelope><Body><Fault><Detail><X><Status><StatusCode>4006</StatusCode>"
         b"</Status></X></Detail></Fault></Body></Envelope>", "4006"),  # SOAP 1.2 Detail
        (b"<Envelope><Body><!-- c --><DeliveryReportRsp><Status><StatusCode> 1000 "
         b"</StatusCode></Status></DeliveryReportRsp></Body></Envelope>", "1000"),
        (b"<Envelope><Body><Fault><faultcode>x</faultcode></Fault></Body></Envelope>", None),
        (b"<Envelope><Body/></Envelope>", None),
        (b"<Envelope/>", None),
        (b"", None),
        (b"<html><body>502</body></html>", None),
        (b"not xml <", None),
        (b'<!DOCTYPE x [<!ENTITY e "1000">]><x>&e;</x>', None),
    ],
)  # fmt: skip
def test_answer_status_reads_the_vasp_s_status(body: bytes, code: str | None) -> None:
    assert answer_status(body) == code


@pytest.mark.parametrize(
    ("http_status", "status_code", "expected"),
    [
        (200, "1000", "accepted"),
        (202, "1100", "accepted"),
        (None, None, "retry"),
        (500, "4006", "retry"),
        (503, None, "retry"),
        (500, "3002", "retry"),  # any 5xx is "try later" for the relay
        (200, "4006", "retry"),
        (200, "3002", "refused"),
        (200, "2007", "refused"),
        (200, None, "refused"),
        (200, "10000", "refused"),
        (404, None, "refused"),
        (302, "1000", "refused"),
    ],
)
def test_the_verdict(http_status: int | None, status_code: str | None, expected: str) -> None:
    assert verdict(http_status, status_code) == expected


# --- the simulator and the proxy's inbound side understand each other --------------------
def test_the_proxy_reads_the_simulator_s_report() -> None:
    parsed = parse_callback(delivery_report_request(report("Expired")), "text/xml", 1 << 20)
    assert isinstance(parsed, ProxyReport)
    assert (parsed.message_id, parsed.mm_status, parsed.relay_server_id) == (
        "302718193", "Expired", "gateway-proxy-sim",
    )  # fmt: skip
    assert parsed.recipient == Address("number", "+15550001234")
    assert parsed.sender == Address("short_code", "21534")
    assert parsed.timestamp == "2024-05-02T14:03:51Z"
    assert parsed.status_text == STATUS_TEXTS["Expired"]
    assert parsed.echo.transaction_id == "dr-302718193"


@pytest.mark.parametrize(
    ("code", "expected"), [(1000, "accepted"), (3002, "refused"), (4006, "retry")]
)
def test_the_simulator_reads_the_proxy_s_answers(code: int, expected: str) -> None:
    parsed = parse_callback(delivery_report_request(report()), "text/xml", 1 << 20)
    assert not isinstance(parsed, CallbackError)
    answer = build_answer(parsed, code)
    assert answer_status(answer.body) == str(code)
    assert verdict(answer.status, answer_status(answer.body)) == expected
