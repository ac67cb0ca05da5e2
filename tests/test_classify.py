"""Classification precedence, fallbacks and message rules, without sockets."""

import pytest

from proxy.codes.catalog import Catalog
from proxy.codes.classify import classify_failure, classify_reply
from proxy.vendors.base import VendorReply


def mm7(code: str | None = None, **kw: object) -> VendorReply:
    return VendorReply(body_kind="vendor", code=code, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("code", "expected", "label"),
    [
        ("2002", "INVALID_ADDRESS", "2002"),
        ("1999", "OK", "other"),  # unknown 1xxx → 1000
        ("2099", "INVALID_REQUEST", "other"),  # → 2000
        ("3999", "UPSTREAM_ERROR", "other"),  # → 3000
        ("4099", "UPSTREAM_ERROR", "other"),  # → 4000
        ("5000", "UPSTREAM_ERROR", "other"),  # any other number → 3000
        ("42", "UPSTREAM_ERROR", "other"),
        ("12345", "UPSTREAM_ERROR", "other"),
        ("02002", "INVALID_ADDRESS", "2002"),
        ("-1", "UPSTREAM_ERROR", "other"),  # any other number → 3000
        ("abc", "UNKNOWN_CODE", "other"),
        ("²", "UNKNOWN_CODE", "other"),  # str.isdigit() is true, int() refuses it
        ("100²", "UNKNOWN_CODE", "other"),
        ("١٠٠٠", "UNKNOWN_CODE", "other"),  # Arabic-Indic digits: not an MM7 code
    ],
)
def test_mm7_codes_and_class_fallbacks(
    catalog: Catalog, code: str, expected: str, label: str
) -> None:
    outcome = classify_reply(catalog, "mm7", mm7(code), 200)
    assert outcome.code.name == expected
    assert outcome.vendor_code == code
    assert outcome.vendor_code_label == label


def test_vendor_code_wins_over_http_status(catalog: Catalog) -> None:
    assert classify_reply(catalog, "mm7", mm7("2002"), 500).code.name == "INVALID_ADDRESS"
    assert classify_reply(catalog, "moms", mm7("606"), 200).code.name == "RECIPIENT_OPTED_OUT"
    assert classify_reply(catalog, "moms", mm7("436"), 403).code.name == "INVALID_ADDRESS"


def test_a_success_code_with_an_error_status_is_no_success(catalog: Catalog) -> None:
    """Rule 1: the HTTP status is a signal too; a success code cannot outvote it."""
    for vendor, code, status in (("mm7", "1000", 500), ("moms", "1", 403)):
        outcome = classify_reply(catalog, vendor, mm7(code), status)
        assert not outcome.code.ok
        assert not outcome.retryable
        assert outcome.conflict == (
            f"success: {vendor} status {code}",
            f"failure: HTTP status {status}",
        )


def test_missing_status_text_is_filled_from_the_catalog(catalog: Catalog) -> None:
    outcome = classify_reply(catalog, "mm7", mm7("2002"), 500)
    assert outcome.message == "Address Error"
    assert outcome.detail == "mm7 status 2002: Address Error"
    sent = classify_reply(catalog, "mm7", mm7("2002", message="Bad To", details="x"), 500)
    assert sent.message == "Bad To"
    assert sent.detail == "mm7 status 2002: Bad To (x)"


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("Mogreet: 403 Forbidden", "PERMISSION_DENIED"),
        ("Mogreet: Required Parameter(s) Missing", "MISSING_PARAMETER"),
        ("invalid number", "INVALID_ADDRESS"),
        ("who knows", "REJECTED"),
    ],
)
def test_moms_code_zero_rules(catalog: Catalog, message: str, expected: str) -> None:
    reply = VendorReply(body_kind="vendor", code="0", status="error", message=message)
    assert classify_reply(catalog, "moms", reply, 200).code.name == expected


def test_unknown_moms_code(catalog: Catalog) -> None:
    unknown = VendorReply(body_kind="vendor", code="777", status="error")
    assert classify_reply(catalog, "moms", unknown, 200).code.name == "UNKNOWN_CODE"
    lucky = VendorReply(body_kind="vendor", code="777", status="Success")
    outcome = classify_reply(catalog, "moms", lucky, 200)
    assert (outcome.code.name, outcome.vendor_code_label) == ("OK", "other")


def test_moms_success_without_code(catalog: Catalog) -> None:
    reply = VendorReply(body_kind="vendor", status="success", data={"message_id": "9"})
    outcome = classify_reply(catalog, "moms", reply, 200)
    assert outcome.code.name == "OK"
    assert outcome.data == {"message_id": "9"}


@pytest.mark.parametrize(
    ("fault", "status", "expected"),
    [
        ("Client", 500, "INVALID_REQUEST"),
        ("Server", 500, "UPSTREAM_ERROR"),
        ("Sender", 400, "INVALID_REQUEST"),
        ("Client.Authentication", 500, "UNAUTHENTICATED"),  # most specific first
        ("VersionMismatch", 500, "UNSUPPORTED_OPERATION"),
        ("Weird", 503, "UPSTREAM_UNAVAILABLE"),  # unknown faultcode: HTTP fallback
    ],
)
def test_fault_without_mm7_status(catalog: Catalog, fault: str, status: int, expected: str) -> None:
    reply = VendorReply(body_kind="vendor", fault_code=fault, message="boom", fault=True)
    outcome = classify_reply(catalog, "mm7", reply, status)
    assert outcome.code.name == expected
    assert outcome.vendor_code is None
    assert outcome.vendor_code_label == "none"
    assert outcome.message == "boom"


@pytest.mark.parametrize(
    ("kind", "status", "expected", "failure"),
    [
        ("html", 502, "UPSTREAM_UNAVAILABLE", None),
        ("html", 403, "PERMISSION_DENIED", None),
        ("empty", 200, "INVALID_UPSTREAM_RESPONSE", "unparseable"),
        ("empty", 504, "TIMEOUT", None),
        ("malformed", 200, "INVALID_UPSTREAM_RESPONSE", "unparseable"),
        ("malformed", 429, "RATE_LIMITED", None),  # plain text: the status explains it
        ("unrecognized", 401, "UNAUTHENTICATED", None),
        ("hostile", 200, "INVALID_UPSTREAM_RESPONSE", "unparseable"),
        ("hostile", 403, "INVALID_UPSTREAM_RESPONSE", "unparseable"),
    ],
)
def test_bodies_without_a_code(
    catalog: Catalog, kind: str, status: int, expected: str, failure: str | None
) -> None:
    reply = VendorReply(body_kind=kind)  # type: ignore[arg-type]
    outcome = classify_reply(catalog, "moms", reply, status)
    assert outcome.code.name == expected
    assert outcome.failure == failure
    assert outcome.http_status == status
    assert outcome.detail


def test_success_data_only_on_success(catalog: Catalog) -> None:
    ok = classify_reply(catalog, "mm7", mm7("1000", data={"message_id": "m1"}), 200)
    assert ok.data == {"message_id": "m1"}
    failed = classify_reply(catalog, "mm7", mm7("2002", data={"message_id": "m1"}), 500)
    assert failed.data == {}


@pytest.mark.parametrize(
    ("kind", "expected", "failure"),
    [
        ("connect", "CONNECTION_ERROR", "connect"),
        ("timeout", "TIMEOUT", "timeout"),
        ("connection_lost", "CONNECTION_LOST", "connection_lost"),
        ("too_large", "INVALID_UPSTREAM_RESPONSE", "too_large"),
        ("request_too_large", "REQUEST_TOO_LARGE", "request_too_large"),
        ("route_not_found", "ROUTE_NOT_FOUND", "route_not_found"),
        ("client_closed", "CLIENT_CLOSED_REQUEST", "client_closed"),
    ],
)
def test_transport_failures(
    catalog: Catalog, kind: str, expected: str, failure: str | None
) -> None:
    outcome = classify_failure(catalog, kind, "what happened")  # type: ignore[arg-type]
    assert outcome.code.name == expected
    assert outcome.vendor == "proxy"
    assert outcome.failure == failure
    assert outcome.detail == "what happened"


@pytest.mark.parametrize(("status", "expected"), [(204, "OK"), (304, "OK"), (404, "NOT_FOUND")])
def test_answers_that_cannot_carry_a_body(catalog: Catalog, status: int, expected: str) -> None:
    reply = VendorReply(body_kind="empty")
    outcome = classify_reply(catalog, "mm7", reply, status, bodiless=True)
    assert (outcome.code.name, outcome.failure) == (expected, None)
    assert classify_reply(catalog, "mm7", reply, 200).code.name == "INVALID_UPSTREAM_RESPONSE"
