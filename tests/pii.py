"""Personal data and secrets the suite sends through the proxy.

Tests that put a phone number or a credential into traffic take it from here, so the
suite-wide leak check in conftest.py knows what must never reach a log line or a
metric label.
"""

MSISDNS = (
    "+13108675309",
    "13108675309",
    "+15550002002",
    "15550000436",
    "+447700900123",
    "4915112345678",
)
SECRETS = (
    "s3cr3t-t0ken-Zq9",
    "cl1ent-s3cret-Yx8",
    "dXNlcjpwYXNzd29yZA==",
    "hunter2-passw0rd",
)
# The digits of each MSISDN: a leak is any of these digit strings, with or without '+'.
MSISDN_DIGITS = tuple(sorted({m.lstrip("+") for m in MSISDNS}))


def leaks(text: str) -> list[str]:
    """Which test MSISDNs or secrets appear in ``text``."""
    return [m for m in MSISDN_DIGITS if m in text] + [s for s in SECRETS if s in text]
