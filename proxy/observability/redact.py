"""Redaction: MSISDNs and secrets masked in every log line (``redact``, the structlog
processor that ``proxy.observability.logs`` runs directly before the renderer).

What it does:

- MSISDNs: any run of 7 to 15 digits bounded by non-digits, with an optional leading
  ``+`` or ``%2B``, in any string at any depth (keys and values), and any int of 7 to
  15 digits, becomes ``********`` plus its last 3 digits. The mask has a fixed width so
  the line does not reveal the number's length. Runs of 16 or more digits (message ids)
  are not MSISDNs. ``request_id``, ``trace_id``, ``span_id``, ``traceparent`` and
  ``timestamp`` are ids, not text: digit runs in them are kept. Ints under size, time and
  status keys (``bytes_in``, ``duration_s``, ``status``...) are kept.
- Secrets: the value of any key that ends in a name of ``SECRET_KEYS`` (case, ``-`` and
  ``_`` ignored) becomes ``[REDACTED]``; inside text, so do ``token=...`` query
  parameters, ``"token": "..."`` JSON, ``token: ...`` prose, ``<Password>...</Password>``
  XML, ``Authorization:``/``Cookie:`` header lines and ``Bearer``/``Basic`` credentials.

Nothing here raises on odd values: unknown objects are rendered with ``str()`` and then
redacted, and very deep structures are flattened to text.

Every log line pays for this, so the common cases are fast paths: a key's kind is looked
up once, short strings and strings with no digit or ``=:<+/`` are kept at once, and a
string found clean before is kept without another scan.
"""

import functools
import re
from collections.abc import MutableMapping
from typing import Any

# structlog's own names for these (structlog.typing), spelled out: importing structlog here
# would run before proxy.observability.logs keeps rich out of it.
EventDict = MutableMapping[str, Any]
WrappedLogger = Any

__all__ = ["REDACTED", "SECRET_KEYS", "mask_msisdn", "redact", "redact_text"]

SECRET_KEYS: frozenset[str] = frozenset(
    {
        "token",
        "access_token",
        "refresh_token",
        "auth_token",
        "x-auth-token",
        "password",
        "passwd",
        "passphrase",
        "secret",
        "client_secret",
        "client_id",  # MoMS: the account half of its credentials (a route's query sets it)
        "api_key",
        "apikey",
        "x-api-key",
        "private_key",
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
    }
)

REDACTED = "[REDACTED]"
_MASK = "********"
# Redaction recurses into nested values; past this depth a value is flattened to text.
_MAX_DEPTH = 16
_FIRST_KEYS = ("timestamp", "level", "event")

# Key handling works on a normalised key: lower case, without '-' and '_'.
_SECRET_SUFFIXES = tuple(sorted({k.replace("-", "").replace("_", "") for k in SECRET_KEYS}))
_ID_KEYS = frozenset({"requestid", "traceid", "spanid", "traceparent", "timestamp"})
_NUMERIC_KEYS = frozenset(
    {"status", "pid", "port", "bytesin", "bytesout", "durations", "upstreamdurations"}
)
_NUMERIC_SUFFIXES = ("status", "bytes", "seconds", "count", "total")

# Every name in SECRET_KEYS contains one of these (tests check it), and so does every
# text form redacted below ("Bearer", "Basic", "user:pass@" URLs).
_SECRET_HINTS = (
    "token", "pass", "secret", "key", "auth", "cookie", "bearer", "basic", "://", "client_id",
)  # fmt: skip

# --- compiled once: this runs on every log line ----------------------------------------
# A string with none of these characters can hold neither an MSISDN nor a secret.
_TRIGGER = re.compile(r"[0-9=:<+/]")
_MSISDN = re.compile(r"(?<![0-9])(?:\+|%2[Bb])?[0-9]{7,15}(?![0-9])")
# Every MSISDN holds 7 digits in a row; finding those is several times cheaper than _MSISDN.
_SEVEN_DIGITS = re.compile(r"[0-9]{7}")
# One alternative per secret name, each word separator optional: "api_key" also
# matches "apiKey", "api-key" and "apikey".
_NAMES = "|".join(
    sorted((r"[-_]?".join(re.split(r"[-_]", name)) for name in SECRET_KEYS), key=len, reverse=True)
)
# A key is any word ending in a secret name: "token", "mogreet_token", "clientSecret".
# In _KEY_VALUE the word's start is left out of the match (it stays as it is anyway), which
# spares the regex engine a lazy scan at every word.
_KEY_NAME = rf"[A-Za-z0-9_-]*?(?:{_NAMES})"
_SCHEMES = r"(?:basic|bearer|digest|negotiate|ntlm|token|apikey)"
_KEY_VALUE = re.compile(
    rf"(?P<key>{_NAMES})(?P<quote>\\?[\"']?)(?P<sep>[ \t]*(?:[:=]|%3[Dd])[ \t]*)"
    r"(?P<value>\\\"(?:(?!\\\").)*\\\"|\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'"
    rf"|(?:{_SCHEMES}[ \t]+)?[^\s,;&\"'<>]+)",
    re.IGNORECASE,
)
# Header lines carry the rest of the line ("Basic x", "a=1; b=2"): redact all of it.
_HEADER_LINE = re.compile(
    r"(?P<key>(?<![A-Za-z0-9_-])(?:proxy-)?authorization|(?<![A-Za-z0-9_-])(?:set-)?cookie)"
    r"(?P<sep>[ \t]*:[ \t]*)(?P<value>[^\"'\r\n]+)",
    re.IGNORECASE,
)
_XML_ELEMENT = re.compile(
    rf"(?P<open><(?:[A-Za-z0-9_.-]+:)?{_KEY_NAME}(?:\s[^<>]*)?>)"
    r"(?P<value>[^<]+)(?=</)",
    re.IGNORECASE,
)
# A bare credential after its scheme; it must hold a digit or base64 punctuation so that
# prose such as "Basic authentication failed" stays readable.
# user:password@ in URLs.
_USERINFO = re.compile(
    r"(?P<head>(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*):[^/\s@]*@"
)
_BARE_CREDENTIAL = re.compile(
    r"(?<![A-Za-z0-9])(?P<scheme>bearer|basic)[ \t]+"
    r"(?=[A-Za-z0-9._~+/-]*[0-9+/=])[A-Za-z0-9._~+/=-]{8,}",
    re.IGNORECASE,
)


def mask_msisdn(digits: str) -> str:
    """Mask a phone number to a fixed ``********`` plus its last 3 digits.

    ``digits`` may carry a leading ``+`` or ``%2B``: ``"+13108675309"`` → ``"********309"``.
    Characters other than digits are dropped; never raises.
    """
    # Only the last 3 digits survive, so the '2' of a '%2B' prefix never shows.
    return _MASK + "".join(c for c in digits if "0" <= c <= "9")[-3:]


def _mask_match(match: re.Match[str]) -> str:
    return mask_msisdn(match.group(0))


def _redact_key_value(match: re.Match[str]) -> str:
    value = match.group("value")
    if value.startswith('\\"'):
        masked = f'\\"{REDACTED}\\"'
    elif value[0] in "\"'":
        masked = value[0] + REDACTED + value[0]
    else:
        masked = REDACTED
    return match.group("key") + match.group("quote") + match.group("sep") + masked


def _may_hold_secret(value: str) -> bool:
    # Case-insensitive regexes cost ~0.2 µs per character; a lower() and a few substring
    # tests cost almost nothing, and most log strings hold none of these words.
    lowered = value.lower()
    for hint in _SECRET_HINTS:  # noqa: SIM110 - a plain loop beats any() with a generator
        if hint in lowered:
            return True
    return False


def _redact_secrets(value: str) -> str:
    if not _may_hold_secret(value):
        return value
    if ":" in value:
        value = _HEADER_LINE.sub(rf"\g<key>\g<sep>{REDACTED}", value)
    if "<" in value:
        value = _XML_ELEMENT.sub(rf"\g<open>{REDACTED}", value)
    if "://" in value:
        value = _USERINFO.sub(rf"\g<head>:{REDACTED}@", value)
    value = _KEY_VALUE.sub(_redact_key_value, value)
    return _BARE_CREDENTIAL.sub(rf"\g<scheme> {REDACTED}", value)


def redact_text(value: str) -> str:
    """Return ``value`` with MSISDNs masked and secrets replaced by ``[REDACTED]``.

    Pure and total: any string in, a string out. Strings that cannot hold either (too short,
    or without digits and ``=:<+/``) are returned as they are, cheaply.
    """
    if len(value) < 7 or _TRIGGER.search(value) is None:
        return value
    return _mask_msisdns(_redact_secrets(value))


def _mask_msisdns(value: str) -> str:
    return _MSISDN.sub(_mask_match, value) if _SEVEN_DIGITS.search(value) else value


# Strings ``redact`` found nothing to hide in, most of them the same few on every line
# (routes, codes, paths, details): seen again, they are kept without another scan. Only
# such strings are remembered, so this holds no MSISDN or secret; bounded by clearing.
_CLEAN: set[str] = set()
_CLEAN_MAX = 4096

# What a key says about its value; see _key_kind. The same few keys come back on every
# line: ``redact`` keeps their kinds in a plain dict (cheaper than the lru_cache call).
_KEY_KINDS: dict[str, int] = {}
_KEY_KINDS_MAX = 4096
_PLAIN, _SECRET, _ID, _NUMERIC = range(4)


@functools.lru_cache(maxsize=4096)
def _key_kind(key: str) -> int:
    """Classify a key once: the same few keys come back on every line."""
    norm = key.lower().replace("-", "").replace("_", "")
    if norm.endswith(_SECRET_SUFFIXES):
        return _SECRET
    if norm in _ID_KEYS:
        return _ID
    if norm in _NUMERIC_KEYS or norm.endswith(_NUMERIC_SUFFIXES):
        return _NUMERIC
    return _PLAIN


def _redact_value(kind: int, value: Any, depth: int) -> Any:
    """Redact ``value`` found under a key of ``kind``; containers pass ``kind`` down."""
    cls = value.__class__
    if cls is str:  # by far the most common: test it first
        if kind == _SECRET:
            return REDACTED
        return _redact_secrets(value) if kind == _ID else redact_text(value)
    if value is None or cls is bool or cls is float:
        return value
    if kind == _SECRET:
        return REDACTED
    if isinstance(value, int):
        if kind != _NUMERIC and 7 <= len(str(abs(value))) <= 15:
            return mask_msisdn(str(abs(value)))
        return value
    if isinstance(value, str):  # str subclasses
        return _redact_value(kind, str(value), depth)
    if depth >= _MAX_DEPTH:
        return redact_text(str(value))
    if isinstance(value, dict):
        return {
            (redact_text(k) if isinstance(k, str) else k): _redact_value(
                _key_kind(k) if isinstance(k, str) else kind, v, depth + 1
            )
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        items = [_redact_value(kind, v, depth + 1) for v in value]
        return tuple(items) if isinstance(value, tuple) else items
    if isinstance(value, bytes | bytearray):
        return _redact_value(kind, bytes(value).decode("utf-8", "replace"), depth)
    # URLs, exceptions, anything else: the renderer would str() it; redact that text.
    return _redact_value(kind, str(value), depth)


def redact(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: mask MSISDNs and secrets in every key and value of the event.

    Returns a new dict that starts with ``timestamp``, ``level`` and ``event`` (so JSON
    lines read well), followed by the other keys in their original order.
    """
    out: EventDict = {k: event_dict[k] for k in _FIRST_KEYS if k in event_dict}
    trigger, kinds = _TRIGGER.search, _KEY_KINDS
    for key, value in event_dict.items():
        kind = kinds.get(key)
        if kind is None:
            kind = _key_kind(key)
            if len(kinds) < _KEY_KINDS_MAX:
                kinds[key] = kind
        cls = value.__class__
        # Inlined fast paths of _redact_value: most values are short plain strings, or
        # numbers under size, time and status keys.
        if cls is str:
            if kind == _SECRET:
                out[key] = REDACTED
            elif len(value) < 7 or value in _CLEAN or trigger(value) is None:
                out[key] = value
            elif kind == _ID:  # unique values: not worth remembering
                out[key] = _redact_secrets(value)
            else:
                out[key] = masked = _mask_msisdns(_redact_secrets(value))
                if masked is value:
                    if len(_CLEAN) >= _CLEAN_MAX:
                        _CLEAN.clear()
                    _CLEAN.add(value)
        elif kind != _SECRET and (
            cls is float or cls is bool or value is None or (cls is int and kind == _NUMERIC)
        ):
            out[key] = value
        else:
            out[key] = _redact_value(kind, value, 0)
    return out
