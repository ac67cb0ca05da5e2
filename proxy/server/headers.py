"""Header policy for forwarding: hop-by-hop removal, X-Forwarded-*, request ids,
and the mapping of a gateway's ``Location`` back onto the proxy.

Pure functions over plain mappings, so the rules are testable without sockets.
"""

import random
import re
from collections.abc import Mapping, Sequence
from urllib.parse import SplitResult, urljoin, urlsplit, urlunsplit

from multidict import CIMultiDict, CIMultiDictProxy

# RFC 9110 §7.6.1 and the classic list (RFC 2616 §13.5.1): connection-specific fields
# that a proxy must not forward. Host is replaced by the upstream's.
HOP_BY_HOP = frozenset(
    {
        "connection", "keep-alive", "proxy-connection", "proxy-authenticate",
        "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade", "host",
    }
)  # fmt: skip
# Framing is the HTTP library's business on each leg. Content-Encoding stays: passthrough
# returns the gateway's body bytes exactly as they came.
_RESPONSE_DROP = HOP_BY_HOP | {"content-length", "date", "server"}
# The app's own reference for its delivery reports is the proxy's (the ledger keeps it):
# never sent to the gateway.
_REQUEST_DROP = HOP_BY_HOP | {"x-callback-data"}
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")
_PHONE_SHAPED = re.compile(r"(?<![0-9A-Za-z])\+?[0-9]{7,15}(?![0-9A-Za-z])")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")
# Fields naming a URL the app's client resolves against the proxy, not the gateway.
_RELOCATED = frozenset({"location", "content-location"})
# A URI reference is printable ASCII (RFC 3986 §2); anything else is left alone.
_URI_REFERENCE = re.compile(r"^[\x21-\x7e]+$")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _connection_tokens(headers: Mapping[str, str] | CIMultiDictProxy[str]) -> set[str]:
    tokens: set[str] = set()
    values = (
        headers.getall("Connection", [])
        if isinstance(headers, CIMultiDictProxy)
        else [headers.get("Connection", "")]
    )
    for value in values:
        tokens.update(t.strip().lower() for t in value.split(",") if t.strip())
    return tokens


def _without(
    headers: CIMultiDictProxy[str] | Mapping[str, str],
    drop: frozenset[str],
    into: CIMultiDict[str] | None = None,
) -> CIMultiDict[str]:
    """``headers`` minus ``drop`` and what ``Connection`` names, added to ``into``."""
    tokens = _connection_tokens(headers) if "Connection" in headers else None
    dropped = drop | tokens if tokens else drop
    out: CIMultiDict[str] = CIMultiDict() if into is None else into
    out.extend([(k, v) for k, v in headers.items() if k.lower() not in dropped])
    return out


def request_id_from(headers: Mapping[str, str]) -> str:
    """The app's ``X-Request-ID`` when it is a sane token, else a new one.

    An id holding a phone-number-shaped run of digits is replaced: request ids are
    logged as they are, and an app that uses the recipient as its id must not leak it.
    """
    incoming = headers.get("X-Request-ID")
    if incoming and _REQUEST_ID.match(incoming) and not _PHONE_SHAPED.search(incoming):
        return incoming
    return new_request_id()


# uuid4's version and variant bits (RFC 9562 §5.4), on a 128-bit integer.
_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)


def new_request_id() -> str:
    """A new id shaped like ``uuid.uuid4().hex``: unique, not secret (it is sent back).

    From ``random``'s generator (re-seeded in a forked worker) rather than ``os.urandom``:
    a system call per request buys an unpredictability no request id needs.
    """
    return f"{(random.getrandbits(128) & _UUID4_CLEAR) | _UUID4_SET:032x}"


def trace_id_from(headers: Mapping[str, str]) -> str | None:
    """The W3C trace id inside ``traceparent``, or None."""
    value = headers.get("traceparent")
    match = _TRACEPARENT.match(value.strip()) if value else None
    return match.group(1) if match else None


def upstream_request_headers(
    incoming: CIMultiDictProxy[str],
    *,
    request_id: str,
    client_ip: str | None,
    scheme: str,
    host: str | None,
    configured: Mapping[str, str],
    upstream_host: str | None = None,
) -> CIMultiDict[str]:
    """Headers to send upstream: the app's minus hop-by-hop (and ``X-Callback-Data``, the
    app's reference for its reports), plus X-Forwarded-* and ours.

    ``Content-Length`` is kept so a streamed body keeps its framing; configured
    headers (gateway credentials) replace the app's. ``upstream_host``, when given, is
    the ``Host`` field, first (RFC 9112 §3.2); a configured ``Host`` replaces it.
    """
    seed: CIMultiDict[str] | None = None
    if upstream_host is not None:
        seed = CIMultiDict(Host=upstream_host)
    out = _without(incoming, _REQUEST_DROP, seed)
    for name, value in configured.items():
        out[name] = value
    forwarded_for = incoming.get("X-Forwarded-For")
    if client_ip:
        out["X-Forwarded-For"] = f"{forwarded_for}, {client_ip}" if forwarded_for else client_ip
    out["X-Forwarded-Proto"] = scheme
    if host:
        out["X-Forwarded-Host"] = host
    out["X-Request-ID"] = request_id
    # The proxy reads the answer to classify it: ask for it uncompressed.
    out["Accept-Encoding"] = "identity"
    return out


def content_type_of(headers: CIMultiDictProxy[str] | Mapping[str, str]) -> str | None:
    """The answer's Content-Type; a repeated one as its field lines joined with ``,``
    (as HTTP combines them), so the parsers see every charset label it gave."""
    if isinstance(headers, CIMultiDictProxy | CIMultiDict):
        values = headers.getall("Content-Type", [])
        if len(values) > 1:
            return ", ".join(values)
        return values[0] if values else None
    return headers.get("Content-Type")


def downstream_response_headers(upstream: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    """A gateway's response headers fit to return unchanged (passthrough mode)."""
    return _without(upstream, _RESPONSE_DROP)


def rewrite_location(
    value: str,
    *,
    request_url: str,
    upstream: str,
    path_prefix: str,
    others: Sequence[tuple[str, str]] = (),
) -> str:
    """A gateway's ``Location`` (or ``Content-Location``) as the app's client needs it.

    ``request_url`` is the URL the proxy requested upstream, ``upstream`` the route's
    upstream (origin and base path) and ``path_prefix`` its prefix on the proxy;
    ``others`` are the other routes' (upstream, path_prefix) pairs. The reference is
    first resolved against ``request_url`` (RFC 3986 §5, dot segments removed). When the
    result lies under a route's upstream (this route's first, then the one with the
    longest base path), it becomes the same place under that route's prefix: a
    path-absolute reference (``/prefix/rest?query#fragment``), so it works behind any
    Host. Otherwise a relative reference on the gateway's origin becomes its absolute URL,
    so the client reaches what the gateway meant rather than the proxy, which has no such
    path. An absolute reference, one to another origin, userinfo, a same-document
    reference (``#frag``: the client resolves it against the proxied URL) or a malformed
    value comes back unchanged. Never raises.
    """
    if value.startswith("#") or not _URI_REFERENCE.match(value):
        return value
    try:  # ValueError: a bad port or IPv6 literal, not a reference we can map
        target = urlsplit(urljoin(request_url, value))
        candidates = [(upstream, path_prefix), *others]
        mapped = _into_route(target, candidates)
        gateway = _origin(urlsplit(request_url)) == _origin(target)
    except ValueError:
        return value
    if mapped is not None:
        return mapped
    if not gateway or urlsplit(value).scheme or "@" in target.netloc:
        return value  # another origin, or absolute already: as sent
    path = _remove_dot_segments(target.path) or "/"
    return urlunsplit((target.scheme, target.netloc, path, target.query, target.fragment))


def _into_route(target: SplitResult, routes: Sequence[tuple[str, str]]) -> str | None:
    """``target`` under the prefix of the first route whose upstream holds it, or None."""
    if "@" in target.netloc:
        return None
    path = _remove_dot_segments(target.path) or "/"
    origin = _origin(target)
    best: tuple[int, int, str] | None = None  # (-len(base path), order, mapped)
    for order, (upstream, prefix) in enumerate(routes):
        base = urlsplit(upstream)
        if _origin(base) != origin:
            continue
        base_path = base.path.rstrip("/")
        if path != base_path and not path.startswith(base_path + "/"):
            continue
        mapped = prefix + path[len(base_path) :]
        if mapped.startswith("//"):  # would read as a host name: no path-absolute form
            continue
        rank = (0 if order == 0 else -len(base_path), order, mapped)
        if best is None or rank < best:
            best = rank
    if best is None:
        return None
    return urlunsplit(("", "", best[2], target.query, target.fragment))


def rewrite_locations(
    headers: CIMultiDict[str],
    *,
    request_url: str,
    upstream: str,
    path_prefix: str,
    others: Sequence[tuple[str, str]] = (),
) -> CIMultiDict[str]:
    """``headers`` with each ``Location``/``Content-Location`` put through
    ``rewrite_location``; every other field is kept as it is, in order."""
    return CIMultiDict(
        (
            name,
            rewrite_location(
                value,
                request_url=request_url,
                upstream=upstream,
                path_prefix=path_prefix,
                others=others,
            )
            if name.lower() in _RELOCATED
            else value,
        )
        for name, value in headers.items()
    )


def _origin(parts: SplitResult) -> tuple[str, str, int | None]:
    """Scheme, host and port, compared case-insensitively with default ports filled in."""
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme)


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4 for an absolute path. ``urljoin`` leaves an absolute reference's
    dot segments in place, and ``/api/../admin`` is not under ``/api``. (yarl keeps them
    too for a URL it is told is encoded; decoding it would turn ``%2F`` in the query into
    a ``/``.)"""
    segments = path.split("/")
    kept: list[str] = []
    for segment in segments:
        if segment == "..":
            if len(kept) > 1:
                kept.pop()
        elif segment != ".":
            kept.append(segment)
    if segments[-1] in (".", ".."):  # "/a/b/.." names the directory "/a/"
        kept.append("")
    return "/".join(kept)
