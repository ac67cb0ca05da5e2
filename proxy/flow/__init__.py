"""Flow control: a route's rate limit, a queue rather than a flood.

    bucket.py   the token bucket (sans-io) and a throttling answer's pause (Retry-After)
    limiter.py  Limiter: a route's FIFO queue of requests waiting for a token, and the
                process's own bucket as its token source (LocalSource)
    store.py    ``store: redis://``: the bucket shared by every process and replica (a
                server-side script through the ``redis`` client), with the fallback to
                the process's own bucket while Redis cannot be reached

Failover and circuit breakers are the upstream room's (upstream/balance.py,
upstream/breaker.py); proxy/server/flow.py puts the two together around each send.
"""
