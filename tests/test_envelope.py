"""The envelope's shape, content types and passthrough headers."""

import orjson

from proxy.codes.catalog import Catalog
from proxy.codes.classify import Outcome, classify_failure
from proxy.codes.envelope import build_envelope, passthrough_headers, render
from tests.conftest import validate_envelope


def test_success_envelope(catalog: Catalog) -> None:
    outcome = Outcome(code=catalog["OK"], vendor="moms", vendor_code="1", data={"hash": "h"})
    env = build_envelope(outcome, request_id="r1", route="moms")
    validate_envelope(env)
    status, content_type, body = render(env)
    assert (status, content_type) == (200, "application/json")
    assert orjson.loads(body) == env
    assert env["ok"] is True
    assert env["data"] == {"hash": "h"}


def test_problem_envelope(catalog: Catalog) -> None:
    outcome = classify_failure(catalog, "timeout", "slow")
    env = build_envelope(outcome, request_id="r2", route="mms")
    status, content_type, _ = render(env)
    assert (status, content_type) == (504, "application/problem+json")
    # RFC 9457 members
    assert {"type", "title", "status", "detail", "instance"} <= env.keys()
    assert env["instance"] == "urn:request:r2"


def test_passthrough_headers_never_carry_unsafe_codes(catalog: Catalog) -> None:
    outcome = Outcome(
        code=catalog["UNKNOWN_CODE"],
        vendor="mm7",
        vendor_code="20\r\n02",
        vendor_code_label="other",
    )
    headers = passthrough_headers(outcome, "r3")
    assert headers["X-Gateway-Vendor-Code"] == "other"
    assert headers["X-Gateway-Retryable"] == "false"
    none = passthrough_headers(Outcome(code=catalog["OK"], vendor="mm7"), "r4")
    assert "X-Gateway-Vendor-Code" not in none  # no value to carry: left out, never empty
    assert none["X-Gateway-Code"] == "OK"


def test_schema_lists_exactly_the_catalog_codes(catalog: Catalog) -> None:
    from tests.conftest import SCHEMA

    assert set(SCHEMA["properties"]["code"]["enum"]) == set(catalog.canonical)
