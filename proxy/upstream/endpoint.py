"""Where requests go: an ``Endpoint`` parsed once from an upstream URL, and the one
function that builds an address on it (``Endpoint.target``, ``Endpoint.url``)."""

from dataclasses import dataclass

from yarl import URL


@dataclass(frozen=True, slots=True)
class Endpoint:
    """An upstream (a gateway, or an app's webhook): parsed once from its URL."""

    scheme: str
    host: str
    port: int
    host_header: str  # host[:port], the port only when not the scheme's default
    base_path: str  # the URL's path, without a trailing slash ("" for "/")

    @property
    def key(self) -> tuple[str, str, int]:
        """What the pool keeps connections by."""
        return self.scheme, self.host, self.port

    @property
    def name(self) -> str:
        """``host:port`` (``[v6]:port``): how logs, metrics and envelopes name it, with no
        path and no credentials."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def target(self, rest_path: str = "", raw_query: str = "") -> str:
        """The request-target sent upstream: the base path, the rest (still encoded), the
        raw query."""
        target = self.base_path + rest_path or "/"
        return f"{target}?{raw_query}" if raw_query else target

    def url(self, rest_path: str = "", raw_query: str = "") -> str:
        """The absolute URL of ``target`` (what a ``Location`` is resolved against)."""
        return f"{self.scheme}://{self.host_header}{self.target(rest_path, raw_query)}"


def endpoint_of(upstream: str) -> Endpoint:
    """The ``Endpoint`` of an ``http://`` or ``https://`` URL (validated by the config).

    Raises ``ValueError`` for anything else.
    """
    url = URL(upstream, encoded=True)
    host, port = url.host, url.port
    if url.scheme not in ("http", "https") or host is None or port is None:
        raise ValueError(f"not an http(s) URL with a host: {upstream!r}")
    host_header = url.host_port_subcomponent
    return Endpoint(url.scheme, host, port, host_header or host, url.raw_path.rstrip("/"))


__all__ = ["Endpoint", "endpoint_of"]
