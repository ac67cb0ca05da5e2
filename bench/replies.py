"""The fake gateway's fixed replies and the requests that fetch them (one source of truth).

The nginx gateway config (``bench.nginx``), the wrk mix (``bench.wrk``) and the tests all
read these. Each reply has its own path under a vendor prefix, so every target (the
gateway itself, nginx, the minimal proxy, gateway-proxy) is driven with the very same
requests: the proxies map ``/mm7``, ``/moms`` and ``/cm`` to the same paths upstream.

Bodies are single-line and free of ``'``, ``$`` and ``\\``, so they can be written
verbatim into a single-quoted nginx string (``bench.nginx`` checks this).
"""

from dataclasses import dataclass
from typing import Literal

Vendor = Literal["mm7", "moms"]

MM7_NS = "http://www.3gpp.org/ftp/Specs/archive/23_series/23.140/schema/REL-6-MM7-1-4"
SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"


@dataclass(frozen=True, slots=True)
class Reply:
    """One fixed gateway answer, and the request that asks for it."""

    name: str
    vendor: Vendor
    path: str
    status: int  # the gateway's HTTP status
    content_type: str  # as the gateway labels it (MoMS labels its JSON text/xml)
    body: bytes
    request_content_type: str
    request_body: bytes
    vendor_code: str  # what a correct classifier reads from ``body``
    ok: bool  # whether that code is a success


SUBMIT_REQ = (
    f'<env:Envelope xmlns:env="{SOAP_NS}"><env:Header>'
    f'<TransactionID xmlns="{MM7_NS}">bench-1</TransactionID></env:Header><env:Body>'
    f'<SubmitReq xmlns="{MM7_NS}"><MM7Version>6.8.0</MM7Version>'
    "<SenderIdentification><VASPID>bench</VASPID></SenderIdentification>"
    "<Recipients><To><Number>+15550001000</Number></To></Recipients>"
    "<Subject>hello</Subject></SubmitReq></env:Body></env:Envelope>"
).encode()

MOMS_SEND = b"client_id=1&token=t&campaign_id=1&from=21534&to=15550000001&message=hi&format=json"

_MM7_OK = (
    f'<?xml version="1.0" encoding="UTF-8"?><env:Envelope xmlns:env="{SOAP_NS}">'
    f'<env:Header><mm7:TransactionID xmlns:mm7="{MM7_NS}">bench-1</mm7:TransactionID>'
    f'</env:Header><env:Body><mm7:SubmitRsp xmlns:mm7="{MM7_NS}">'
    "<mm7:MM7Version>6.8.0</mm7:MM7Version><mm7:Status><mm7:StatusCode>1000</mm7:StatusCode>"
    "<mm7:StatusText>Success</mm7:StatusText></mm7:Status>"
    "<mm7:MessageID>302718189</mm7:MessageID></mm7:SubmitRsp></env:Body></env:Envelope>"
).encode()

_MM7_FAULT = (
    f'<?xml version="1.0" encoding="UTF-8"?><env:Envelope xmlns:env="{SOAP_NS}">'
    f'<env:Header><mm7:TransactionID xmlns:mm7="{MM7_NS}">bench-1</mm7:TransactionID>'
    "</env:Header><env:Body><env:Fault><faultcode>env:Client</faultcode>"
    "<faultstring>Client error</faultstring><detail>"
    f'<mm7:RSErrorRsp xmlns:mm7="{MM7_NS}"><mm7:MM7Version>6.8.0</mm7:MM7Version>'
    "<mm7:Status><mm7:StatusCode>2002</mm7:StatusCode>"
    "<mm7:StatusText>Address Error</mm7:StatusText></mm7:Status></mm7:RSErrorRsp>"
    "</detail></env:Fault></env:Body></env:Envelope>"
).encode()

_MOMS_436 = (
    b'<?xml version="1.0" encoding="UTF-8"?><response status="error" code="436">'
    b'<message>Invalid "to" parameter.</message></response>'
)

_MOMS_OK_JSON = (
    b'{"response": {"status": "success", "code": 1, "message": "Message queued",'
    b' "message_id": "7762913", "hash": "b1946ac92492d2347c6235b4d2611184"}}'
)

MM7_SUBMIT_OK = Reply(
    "mm7_submit_ok", "mm7", "/mm7/submit-ok", 200, "text/xml; charset=utf-8", _MM7_OK,
    "text/xml; charset=utf-8", SUBMIT_REQ, "1000", ok=True,
)  # fmt: skip
MM7_FAULT_2002 = Reply(
    "mm7_fault_2002", "mm7", "/mm7/submit-fault", 500, "text/xml; charset=utf-8", _MM7_FAULT,
    "text/xml; charset=utf-8", SUBMIT_REQ, "2002", ok=False,
)  # fmt: skip
MOMS_XML_436 = Reply(
    "moms_xml_436", "moms", "/moms/transaction.send-436", 200, "text/xml", _MOMS_436,
    "application/x-www-form-urlencoded", MOMS_SEND, "436", ok=False,
)  # fmt: skip
MOMS_JSON_OK = Reply(
    "moms_json_ok", "moms", "/moms/transaction.send-ok", 200, "text/xml", _MOMS_OK_JSON,
    "application/x-www-form-urlencoded", MOMS_SEND, "1", ok=True,
)  # fmt: skip

#: The wrk mix: one of each, round-robin.
REPLIES: tuple[Reply, ...] = (MM7_SUBMIT_OK, MM7_FAULT_2002, MOMS_XML_436, MOMS_JSON_OK)

#: The gateway answers this one with ``MM7_SUBMIT_OK``'s body after ``SLOW_SECONDS``.
SLOW_PATH = "/mm7/slow"
SLOW_SECONDS = 2
#: The gateway reads the whole request body (any size), then answers ``MOMS_JSON_OK``.
UPLOAD_PATH = "/cm/upload"
