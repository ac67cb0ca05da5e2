"""Personal data and secrets the suite sends through the proxy.

Tests that put a phone number or a credential into traffic take it from here, so the
suite-wide leak check in conftest.py knows what must never reach a log line or a
metric label.
"""

import base64
import re

MSISDNS = (
    "+13108675309",
    "13108675309",
    "+15550002002",
    "15550000436",
    "+447700900123",
    "4915112345678",
)
# The apps' keys (clients), MoMS credentials set by a route's query, a relay's Basic
# credentials and an inbound route's signing secret (issue 20).
CHECKOUT_KEY = "ck-checkout-9f3Kq2LmZ7"
REPORTS_KEY = "ck-reports-4Wx8Rt6Yp1"
MOMS_CLIENT_ID = "moms-cl1ent-Id7Q"
MOMS_TOKEN = "moms-t0ken-Hq5Zr9"
RELAY_USER = "relay-user"
RELAY_PASSWORD = "relay-passw0rd-Tz4"
SIGNING_SECRET = "whsec-S1gn1ng-Kx7Pq3"


def basic(user: str, password: str) -> str:
    """The credentials of ``Basic`` as they go on the wire."""
    return base64.b64encode(f"{user}:{password}".encode()).decode()


SECRETS = (
    "s3cr3t-t0ken-Zq9",
    "cl1ent-s3cret-Yx8",
    "dXNlcjpwYXNzd29yZA==",
    "hunter2-passw0rd",
    CHECKOUT_KEY,
    REPORTS_KEY,
    MOMS_CLIENT_ID,
    MOMS_TOKEN,
    RELAY_PASSWORD,
    SIGNING_SECRET,
    basic("checkout", CHECKOUT_KEY),
    basic(RELAY_USER, RELAY_PASSWORD),
)
# The digits of each MSISDN: a leak is any of these digit strings, with or without '+'.
MSISDN_DIGITS = tuple(sorted({m.lstrip("+") for m in MSISDNS}))


# Any phone-number-shaped run (7 to 15 digits, optional '+') that the redactor would mask.
_PHONE_SHAPED = re.compile(r"(?<![0-9])\+?[0-9]{7,15}(?![0-9])")
# Keys whose values are ids or measurements, not text (the redactor keeps their digits).
ID_KEYS = frozenset({"request_id", "trace_id", "span_id", "traceparent", "timestamp"})


def phone_shaped(value: object, key: str = "") -> list[str]:
    """Unmasked phone-number-shaped strings anywhere in a logged value (ids exempt)."""
    if key in ID_KEYS:
        return []
    if isinstance(value, str):
        return _PHONE_SHAPED.findall(value)
    if isinstance(value, dict):
        return [hit for k, v in value.items() for hit in phone_shaped(v, str(k))]
    if isinstance(value, list):
        return [hit for v in value for hit in phone_shaped(v, key)]
    return []


def leaks(text: str) -> list[str]:
    """Which test MSISDNs or secrets appear in ``text``."""
    return [m for m in MSISDN_DIGITS if m in text] + [s for s in SECRETS if s in text]
