"""Where requests go: an ``Endpoint`` parsed once from an upstream URL, and the one
function that builds an address on it (``Endpoint.target``, ``Endpoint.url``).

An endpoint may carry its route's TLS settings (``tls``: the pool keeps connections by
them too, so two routes to one host with different certificates never share one) and
query parameters set on every request (``query``: MoMS credentials), which
``target`` puts in place of any the app sent.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, unquote_plus

from yarl import URL

from proxy.config import UpstreamTLS

#: What the pool keeps connections by: scheme, host, port and the TLS settings.
EndpointKey = tuple[str, str, int, UpstreamTLS | None]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """An upstream (a gateway, or an app's webhook): parsed once from its URL."""

    scheme: str
    host: str
    port: int
    host_header: str  # host[:port], the port only when not the scheme's default
    base_path: str  # the URL's path, without a trailing slash ("" for "/")
    tls: UpstreamTLS | None = None
    # (name, "name=value" encoded) of each parameter ``target`` sets: credentials, so
    # out of repr.
    query: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    @property
    def key(self) -> EndpointKey:
        """What the pool keeps connections by."""
        return self.scheme, self.host, self.port, self.tls

    @property
    def server_name(self) -> str:
        """The name the gateway's certificate is verified against (and sent as SNI)."""
        tls = self.tls
        return tls.server_name if tls is not None and tls.server_name else self.host

    @property
    def name(self) -> str:
        """``host:port`` (``[v6]:port``): how logs, metrics and envelopes name it, with no
        path and no credentials."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def target(self, rest_path: str = "", raw_query: str = "") -> str:
        """The request-target sent upstream: the base path, the rest (still encoded), the
        raw query (with the endpoint's ``query`` parameters in place of the app's)."""
        target = self.base_path + rest_path or "/"
        if self.query:
            raw_query = with_parameters(raw_query, self.query)
        return f"{target}?{raw_query}" if raw_query else target

    def url(self, rest_path: str = "", raw_query: str = "") -> str:
        """The absolute URL of ``target`` (what a ``Location`` is resolved against)."""
        return f"{self.scheme}://{self.host_header}{self.target(rest_path, raw_query)}"


def endpoint_of(
    upstream: str,
    *,
    tls: UpstreamTLS | None = None,
    query: Mapping[str, str] | None = None,
) -> Endpoint:
    """The ``Endpoint`` of an ``http://`` or ``https://`` URL (validated by the config),
    with its route's ``tls`` and ``query``. Raises ``ValueError`` for anything else.
    """
    url = URL(upstream, encoded=True)
    host, port = url.host, url.port
    if url.scheme not in ("http", "https") or host is None or port is None:
        raise ValueError(f"not an http(s) URL with a host: {upstream!r}")
    host_header = url.host_port_subcomponent
    encoded = tuple(
        (name, f"{quote(name, safe='')}={quote(value, safe='')}")
        for name, value in (query or {}).items()
    )
    return Endpoint(
        url.scheme, host, port, host_header or host, url.raw_path.rstrip("/"), tls, encoded
    )


def with_parameters(raw_query: str, parameters: tuple[tuple[str, str], ...]) -> str:
    """``raw_query`` without any parameter named in ``parameters`` (however the app
    encoded its name), then each of ``parameters``' encoded ``name=value`` pairs."""
    names = {name for name, _ in parameters}
    kept = [
        pair
        for pair in raw_query.split("&")
        if pair and unquote_plus(pair.partition("=")[0]) not in names
    ]
    return "&".join([*kept, *(pair for _, pair in parameters)])


__all__ = ["Endpoint", "EndpointKey", "endpoint_of", "with_parameters"]
