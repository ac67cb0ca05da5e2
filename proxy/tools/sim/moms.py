"""The simulated Mogreet MoMS / CM API: validate a call, build its payload, render it (sans-io).

A call is ``GET|POST /moms/<object>.<method>`` or ``/cm/<object>.<method>`` with its
parameters (query and form merged). Like the live API, every answer is HTTP 200 and the
outcome is in the body: ``<response status=".." code=".."><message>..</message>...``, or with
``format=json`` the same as ``{"response": {...}}``. The live ``/moms/*`` API labels its JSON
``text/xml``; ``/cm/*`` labels it ``application/json``.

``refusal`` and ``parameter_error`` apply the live API's checks in its order:
credentials (code 0, "Mogreet: 403 Forbidden"), unknown ``object.method`` (404), then
missing parameters (transaction.send: 430 campaign_id, 435 to, 439 message; ``from`` is
optional, as real client libraries do not send it and the live API evidently accepts
that; other methods: the live API's code 0 "Required Parameter(s) Missing", or the CM
codes 443/444/460) and a bad media upload (461, 462). The messages are the simulator's
own table (codes.py). ``success`` builds the payload of a successful call; ``render``
serialises any answer, in XML, JSON, or JSON wrapped in a JSONP callback (shape
``jsonp``).
"""

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from lxml import etree

from proxy.tools.sim.outcome import MomsShape
from proxy.tools.sim.reply import Reply, in_gzip_members

Api = Literal["moms", "cm"]
Format = Literal["xml", "json"]

FORBIDDEN = "Mogreet: 403 Forbidden"
REQUIRED_MISSING = "Mogreet: Required Parameter(s) Missing"
MAX_MEDIA_BYTES = 150 * 1024 * 1024
_MEDIA_TYPES = ("image/", "audio/", "video/")
JSONP_CALLBACK = "callback"  # the callback of a ``jsonp`` answer without ``callback=``
JSONP_CONTENT_TYPE = "text/javascript; charset=utf-8"
_JS_NAME = re.compile(r"^[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*$")

# Which object.method each API serves. system.ping answers on both.
METHODS: Mapping[Api, frozenset[str]] = {
    "moms": frozenset(
        {"system.ping", "transaction.send", "transaction.lookup", "user.info", "user.lookup",
         "user.transactions"}
    ),
    "cm": frozenset(
        {"system.ping", "media.upload", "media.list", "list.create", "list.info", "list.list",
         "keyword.check", "keyword.list"}
    ),
}  # fmt: skip
# Required parameters in the order the live API checks them; None = the generic answer.
_REQUIRED: Mapping[str, tuple[tuple[tuple[str, ...], str | None], ...]] = {
    "transaction.send": ((("campaign_id",), "430"), (("to",), "435"), (("message",), "439")),
    "transaction.lookup": ((("message_id", "hash"), None),),
    "user.info": ((("number",), None),),
    "user.lookup": ((("number",), None),),
    "user.transactions": ((("number",), None),),
    "media.upload": ((("name",), "443"),),
    "list.create": ((("name",), "443"),),
    "list.info": ((("list_id",), "444"),),
    "keyword.check": ((("keyword",), "443"),),
}  # fmt: skip
# The element name of one list item in XML answers.
_ITEM_TAGS = {
    "history": "entry", "transactions": "transaction", "media_list": "media",
    "lists": "list", "keywords": "keyword",
}  # fmt: skip
_CARRIERS = (("2", "T-Mobile"), ("4", "Verizon Wireless"), ("5", "AT&T"), ("6", "Sprint"))


class IdSource(Protocol):
    """Where ids and random tokens come from (the app's seeded ``Chooser``)."""

    def next_id(self) -> int: ...

    def token(self, length: int = 8) -> str: ...


@dataclass(frozen=True, slots=True)
class Upload:
    """A file part of a multipart call, already drained (only its size is kept)."""

    filename: str
    content_type: str
    size: int


@dataclass(frozen=True, slots=True)
class MomsCall:
    """One API call: which API, ``object.method``, its parameters and drained upload."""

    api: Api
    method: str  # "transaction.send"
    params: Mapping[str, str]
    upload: Upload | None = None

    @property
    def format(self) -> Format:
        """``json`` when the call asks ``format=json``, else ``xml``."""
        return "json" if self.params.get("format", "").lower() == "json" else "xml"

    @property
    def recipient(self) -> str | None:
        """The number the outcome may be chosen by: ``to``, else ``number``."""
        return self.params.get("to") or self.params.get("number") or None


@dataclass(frozen=True, slots=True)
class Answer:
    """One API answer before serialisation."""

    code: str
    message: str
    payload: Mapping[str, Any]

    @property
    def status(self) -> str:
        """The body's ``status`` attribute: ``success`` for code 1, else ``error``."""
        return "success" if self.code == "1" else "error"


def refusal(
    call: MomsCall, texts: Mapping[str, str], client_id: str | None, token: str | None
) -> Answer | None:
    """The live API's refusals before it looks at parameters: wrong credentials (when
    ``client_id`` is set) and an unknown ``object.method``; or None to go on. ``texts``
    is the simulator's MoMS table (code → message)."""
    if client_id is not None and (
        call.params.get("client_id") != client_id or call.params.get("token") != token
    ):
        return Answer("0", FORBIDDEN, {})
    if call.method not in METHODS[call.api]:
        return Answer("404", texts["404"], {})
    return None


def parameter_error(
    call: MomsCall, texts: Mapping[str, str], max_media_bytes: int = MAX_MEDIA_BYTES
) -> Answer | None:
    """A missing parameter, or a media upload over ``max_media_bytes`` or of the wrong
    type; or None to go on. ``texts`` is the simulator's MoMS table."""
    for names, code in _REQUIRED.get(call.method, ()):
        if not any(call.params.get(n, "").strip() for n in names):
            if code is None:
                return Answer("0", REQUIRED_MISSING, {})
            return Answer(code, texts[code], {})
    if call.method == "media.upload":
        return _check_media(call, texts, max_media_bytes)
    return None


def _check_media(call: MomsCall, texts: Mapping[str, str], max_bytes: int) -> Answer | None:
    if call.upload is None and not call.params.get("url"):
        return Answer("460", texts["460"], {})
    if call.upload is not None:
        if call.upload.size > max_bytes:
            return Answer("461", texts["461"], {})
        if not call.upload.content_type.startswith(_MEDIA_TYPES):
            return Answer("462", texts["462"], {})
    return None


def success(call: MomsCall, ids: IdSource) -> Answer:
    """The payload of a successful call, shaped like the live API's."""
    p = call.params
    number = p.get("to") or p.get("number") or "13108675309"
    if call.method == "transaction.send":
        return Answer(
            "1", "API Request Accepted", {"message_id": str(ids.next_id()), "hash": ids.token()}
        )
    if call.method == "transaction.lookup":
        now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S +0000")
        events = ("Transaction Created", "MMS Sent", "Transaction Complete")
        transaction = {
            "campaign_id": p.get("campaign_id", "20948"), "from": "21534", "from_name": "21534",
            "to": "3108675309", "to_name": "3108675309", "content_id": "", "status": "COMPLETE",
            "history": [{"timestamp": now, "event": e} for e in events],
        }  # fmt: skip
        return Answer("1", "transaction found", {"transaction": transaction})
    if call.method in ("user.info", "user.lookup"):
        # The carrier follows the number's last digit: stable answers for the same number.
        last = int(number[-1]) if number[-1:].isdigit() else 0
        carrier_id, carrier = _CARRIERS[last % len(_CARRIERS)]
        return Answer(
            "1",
            "user info",
            {
                "number": number, "carrier_id": carrier_id, "carrier_name": carrier,
                "handset_id": "12025", "handset_name": "Samsung Galaxy Nexus SCH-i515",
            },
        )  # fmt: skip
    if call.method == "user.transactions":
        item = {
            "campaign_id": "20861", "campaign_name": "simulated campaign",
            "datestamp": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            "hash": ids.token(), "message_id": str(ids.next_id()), "from": "21534", "to": number,
        }  # fmt: skip
        return Answer("1", "user transactions", {"transactions": [item]})
    return _cm_success(call, ids)


def _media(name: str, ids: IdSource) -> dict[str, str]:
    return {
        "name": name,
        "content_id": str(ids.next_id()),
        "smart_url": f"http://m.mogreet.com/oc/{ids.token(9)}",
    }


def _cm_success(call: MomsCall, ids: IdSource) -> Answer:
    p = call.params
    if call.method == "media.upload":
        return Answer("1", "media correctly uploaded", {"media": _media(p["name"], ids)})
    if call.method == "media.list":
        item = {"type": "image", "filename": "sim.jpg", **_media("sim", ids)}
        return Answer("1", "media list retrieved", {"media_list": [item]})
    if call.method == "list.create":
        return Answer("1", "list created", {"list_id": ids.next_id()})
    if call.method == "list.info":
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        info = {"id": p["list_id"], "name": "sim", "type": "uploaded", "total": "0",
                "created": stamp, "updated": stamp, "last_used": ""}  # fmt: skip
        return Answer("1", "list retrieved", {"list": info})
    if call.method == "list.list":
        return Answer("1", "lists retrieved", {"lists": [{"id": "8228", "name": "sim", "type": "uploaded"}]})  # fmt: skip  # noqa: E501
    if call.method == "keyword.check":
        return Answer("1", "Keyword available", {"available": "true"})
    if call.method == "keyword.list":
        return Answer("1", "keywords retrieved", {"keywords": [{"name": "SIM", "master": "true"}]})
    return Answer("1", "pong", {})  # system.ping


def _xml_value(parent: etree._Element, key: str, value: Any) -> None:
    el = etree.SubElement(parent, key)
    if isinstance(value, Mapping):
        for k, v in value.items():
            _xml_value(el, str(k), v)
    elif isinstance(value, list):
        for item in value:
            _xml_value(el, _ITEM_TAGS.get(key, "item"), item)
    else:
        el.text = str(value)


def _json_text(answer: Answer) -> str:
    body = {"response": {"code": answer.code, "status": answer.status,
                         "message": answer.message, **answer.payload}}  # fmt: skip
    return json.dumps(body, indent="\t", ensure_ascii=False)


def render(
    call_api: Api,
    fmt: Format,
    answer: Answer,
    *,
    shape: MomsShape | None = None,
    callback: str | None = None,
) -> Reply:
    """Serialise ``answer`` as the live API would (always HTTP 200).

    Shape ``jsonp``: the JSON answer (whatever ``fmt``) as ``callback({...});``, with the
    call's ``callback`` when it is a JavaScript name, else ``JSONP_CALLBACK``. Shape
    ``gzip-members``: the usual answer, gzip-coded in three members (``in_gzip_members``).
    """
    if shape == "gzip-members":
        return in_gzip_members(render(call_api, fmt, answer, callback=callback))
    if shape == "jsonp":
        name = callback if callback and _JS_NAME.match(callback) else JSONP_CALLBACK
        return Reply(200, JSONP_CONTENT_TYPE, f"{name}({_json_text(answer)});\n".encode())
    if fmt == "json":
        # The live /moms/* API labels its JSON text/xml; /cm/* labels it correctly.
        ctype = "text/xml" if call_api == "moms" else "application/json; charset=utf-8"
        return Reply(200, ctype, (_json_text(answer) + "\n").encode())
    root = etree.Element("response", code=answer.code, status=answer.status)
    etree.SubElement(root, "message").text = etree.CDATA(answer.message)
    for key, value in answer.payload.items():
        _xml_value(root, key, value)
    # The live API's own declaration (lxml would write single quotes and no standalone).
    xml = b'<?xml version="1.0" encoding="UTF-8" standalone="no"?>' + etree.tostring(
        root, encoding="UTF-8", pretty_print=True
    )
    return Reply(200, "text/xml" if call_api == "moms" else "application/xml", xml)


def oversize_body(size: int) -> bytes:
    """A valid-looking success answer of at least ``size`` bytes."""
    answer = Answer("1", "API Request Accepted", {"message_id": "1", "hash": "x" * size})
    return render("moms", "xml", answer).body


def malformed_body() -> bytes:
    """Broken XML with no code in it: an unclosed, mis-nested answer."""
    return b'<?xml version="1.0"?><response status="err\n    <message><![CDATA[API Request Acce'


__all__ = [
    "FORBIDDEN",
    "JSONP_CALLBACK",
    "JSONP_CONTENT_TYPE",
    "MAX_MEDIA_BYTES",
    "METHODS",
    "REQUIRED_MISSING",
    "Answer",
    "Api",
    "Format",
    "IdSource",
    "MomsCall",
    "Upload",
    "malformed_body",
    "oversize_body",
    "parameter_error",
    "refusal",
    "render",
    "success",
]
