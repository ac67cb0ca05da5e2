"""The relay's delivery reports (sans-io): which MMStatus, the DeliveryReportReq, the verdict.

After the relay accepts a SubmitReq (StatusCode 1000) it tells the VASP what became of
the message: a DeliveryReportReq (TS 23.140 MM7_delivery_report.REQ) posted to the
simulator's ``--callback-url``. callback.py sends it; this module decides what it says and
what the answer means.

``choose_mm_status(headers, recipient)``, highest first:

1. header ``X-Sim-MMStatus: <word>``: that word, passed through as is (stripped), so a
   word outside the standard's list or another spelling can be tested too;
2. the recipient: its last four digits, when ``RECIPIENT_STATUSES`` has them
   (``…9001`` → Expired). 9000..9007 are no MM7 codes, so the submit itself succeeds;
3. ``Retrieved``.

``delivery_report_request(report)`` renders a REL-6-MM7-1-4 DeliveryReportReq (SOAP 1.1)::

    Header/TransactionID (mustUnderstand="1")
    Body/DeliveryReportReq{MM7Version, MMSRelayServerID, MessageID, Recipient{<address>},
                           Sender{<address>}, Date, MMStatus, StatusText}

``verdict(http_status, status_code)`` is how the relay takes the VASP's answer::

    accepted  HTTP 2xx and a StatusCode 1xxx
    retry     no answer at all (connection error, timeout), HTTP 5xx, or StatusCode 4006
    refused   anything else (HTTP 200 with 3002, a 4xx, 2xx without a status): not resent
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from proxy.tools.sim.mm7 import MM7_VERSION, mm7_element, serialize, soap_envelope
from proxy.tools.sim.mm7_request import Mm7Address, Mm7Request
from proxy.tools.sim.outcome import recipient_suffix

MMSTATUS_HEADER = "X-Sim-MMStatus"
DEFAULT_MM_STATUS = "Retrieved"
#: The relay's name in its reports.
RELAY_SERVER_ID = "gateway-proxy-sim"
#: Who a report names as the sender when the SubmitReq named none (the demo's short code).
DEFAULT_SENDER = Mm7Address("ShortCode", "21534")
#: TS 23.140 MMStatus words (REL-6 mmDeliveryStatusType) and the relay's StatusText.
STATUS_TEXTS: Mapping[str, str] = {
    "Retrieved": "Message retrieved by the recipient",
    "Expired": "Message expired before it was retrieved",
    "Rejected": "Message rejected by the recipient",
    "Deferred": "Retrieval deferred by the recipient",
    "Unrecognised": "Message not recognised by the recipient",
    "Indeterminate": "Delivery status cannot be determined",
    "Forwarded": "Message forwarded without being retrieved",
    "Unreachable": "Recipient unreachable for now",
}
#: A recipient's last four digits (as a number) → the MMStatus of its report.
RECIPIENT_STATUSES: Mapping[str, str] = {
    "9000": "Retrieved", "9001": "Expired", "9002": "Rejected", "9003": "Deferred",
    "9004": "Unrecognised", "9005": "Indeterminate", "9006": "Forwarded", "9007": "Unreachable",
}  # fmt: skip
_OTHER_TEXT = "Simulated status"

Verdict = Literal["accepted", "refused", "retry"]
RETRY_STATUS_CODE = "4006"  # Service unavailable: "try again later"


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """One report the relay sends: which message, for whom, and what became of it."""

    message_id: str
    recipient: Mm7Address
    sender: Mm7Address
    mm_status: str
    date: datetime

    @property
    def transaction_id(self) -> str:
        """The relay's TransactionID for this report (the same on every attempt)."""
        return f"dr-{self.message_id}"

    @property
    def status_text(self) -> str:
        """The StatusText sent with ``mm_status`` (a neutral one for unknown words)."""
        return STATUS_TEXTS.get(self.mm_status, _OTHER_TEXT)


def choose_mm_status(headers: Mapping[str, str], recipient: str | None) -> str:
    """The MMStatus to report: the header, else the recipient's suffix, else Retrieved."""
    named = headers.get(MMSTATUS_HEADER, "").strip()
    if named:
        return named
    suffix = recipient_suffix(recipient)
    return RECIPIENT_STATUSES.get(suffix or "", DEFAULT_MM_STATUS)


def report_for(
    request: Mm7Request, message_id: str, headers: Mapping[str, str], now: datetime
) -> DeliveryReport | None:
    """The report on an accepted SubmitReq, or None when it names no recipient.

    The report is about the request's first recipient; its sender is the request's
    ``SenderAddress``, else ``DEFAULT_SENDER``.
    """
    if request.to is None:
        return None
    mm_status = choose_mm_status(headers, request.recipient)
    sender = request.sender or DEFAULT_SENDER
    return DeliveryReport(message_id, request.to, sender, mm_status, now)


def _date(moment: datetime) -> str:
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def delivery_report_request(report: DeliveryReport) -> bytes:
    """The DeliveryReportReq for ``report`` (see the module docstring), UTF-8 XML."""
    env, body = soap_envelope(report.transaction_id)
    req = mm7_element(body, "DeliveryReportReq")
    mm7_element(req, "MM7Version", MM7_VERSION)
    mm7_element(req, "MMSRelayServerID", RELAY_SERVER_ID)
    mm7_element(req, "MessageID", report.message_id)
    for name, address in (("Recipient", report.recipient), ("Sender", report.sender)):
        mm7_element(mm7_element(req, name), address.kind, address.value)
    mm7_element(req, "Date", _date(report.date))
    mm7_element(req, "MMStatus", report.mm_status)
    mm7_element(req, "StatusText", report.status_text)
    return serialize(env)


def verdict(http_status: int | None, status_code: str | None) -> Verdict:
    """How the relay takes the answer to a report (None: no answer came at all)."""
    if http_status is None or http_status >= 500 or status_code == RETRY_STATUS_CODE:
        return "retry"
    if 200 <= http_status < 300 and status_code is not None and _is_success(status_code):
        return "accepted"
    return "refused"


def _is_success(status_code: str) -> bool:
    return len(status_code) == 4 and status_code.isdigit() and status_code.startswith("1")


__all__ = [
    "DEFAULT_MM_STATUS",
    "DEFAULT_SENDER",
    "MMSTATUS_HEADER",
    "RECIPIENT_STATUSES",
    "RELAY_SERVER_ID",
    "RETRY_STATUS_CODE",
    "STATUS_TEXTS",
    "DeliveryReport",
    "Verdict",
    "choose_mm_status",
    "delivery_report_request",
    "report_for",
    "verdict",
]
