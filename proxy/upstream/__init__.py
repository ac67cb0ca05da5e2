"""The upstream side: every request the proxy sends, to a gateway or to an app's webhook.

One pool, one exchange and one error map serve both paths::

    endpoint.py    Endpoint: an upstream URL parsed once; ``target``/``url`` build every
                   address on it (the one place)
    pool.py        UpstreamPool: bounded keep-alive connections per endpoint (``take``,
                   ``connect``, ``release``); Deadlines: one timer for every exchange
    connection.py  Connection: one round trip at a time (the app's body streamed, the
                   answer read within its cap); it owns whether it sent a byte, whether
                   it expired, and whether it may be reused
    exchange.py    exchange(pool, endpoint, request, limits, deadline=...) → Answer: the
                   connection taken, the round trip, the answer decoded (decode.py)
    errors.py      ExchangeFailure(kind, detail, reached) and the one map from OS and
                   aiohttp errors; ``reached`` is False only when no byte was written
    webhook.py     post(): an event to an app's webhook, a Delivery whatever happens
    balance.py     Endpoints: a route's endpoints in try order (failover or round_robin),
                   open circuits skipped; the caller sends and reports each verdict
    breaker.py     Breaker: one endpoint's circuit (closed, open, half-open), sans-io

It speaks HTTP/1.1 over aiohttp's connection protocol, through the fence (proxy.aio.client):
nothing here names a private aiohttp name. Nothing here retries: proxy/server/flow.py
sends a request to the next endpoint only when ``ExchangeFailure.reached`` says the last
one never had it.
"""

from proxy.upstream.connection import Limits, Progress, Request
from proxy.upstream.decode import decode_content
from proxy.upstream.endpoint import Endpoint, endpoint_of
from proxy.upstream.errors import ExchangeFailure
from proxy.upstream.exchange import Answer, exchange
from proxy.upstream.pool import UpstreamPool
from proxy.upstream.webhook import Delivery, post

__all__ = [
    "Answer",
    "Delivery",
    "Endpoint",
    "ExchangeFailure",
    "Limits",
    "Progress",
    "Request",
    "UpstreamPool",
    "decode_content",
    "endpoint_of",
    "exchange",
    "post",
]
