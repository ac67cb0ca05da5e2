"""The HTTP edge and the request pipeline.

app.py        create_app: the application, its state (keys.py) and lifecycle;
              ``runner``: served through the guarded connection handler (proxy.aio)
handle.py     handle: the pipeline of values, route → identify → admit → forward →
              classify → respond → observe; ``last_resort``, the one catch-all
clients.py    pure: who may send (``clients``: the app's Proxy-Authorization key)
flow.py       the forward stage's flow control: a rate limit's queue, failover over
              the route's endpoints, a throttled request paused and resent
result.py     Result: what forwarding one request produced
routing.py    pure: the request line → a route, an inbound route, or a refusal
admission.py  max_in_flight, the drain, and ``admitted``: the one way in
headers.py    pure header policy: hop-by-hop, X-Forwarded-*, request ids, Location
respond.py    pure: an Outcome (and the gateway's answer) → the reply to send
admin.py      /metrics, /healthz, /readyz on their own port
"""

from proxy.server.app import StartupError, create_app, create_inbound_app, limits_of, runner
from proxy.server.keys import (
    CATALOG_KEY,
    CLIENTS_KEY,
    CONFIG_KEY,
    ENDPOINTS_KEY,
    INBOUND_METRICS_KEY,
    LIMITS_KEY,
    LOOP_KEY,
    METRICS_KEY,
    READINESS_KEY,
    REGISTRY_KEY,
    SERVED_KEY,
    TRAFFIC_KEY,
    UPSTREAM_KEY,
    WEBHOOKS_KEY,
)

__all__ = [
    "CATALOG_KEY",
    "CLIENTS_KEY",
    "CONFIG_KEY",
    "ENDPOINTS_KEY",
    "INBOUND_METRICS_KEY",
    "LIMITS_KEY",
    "LOOP_KEY",
    "METRICS_KEY",
    "READINESS_KEY",
    "REGISTRY_KEY",
    "SERVED_KEY",
    "TRAFFIC_KEY",
    "UPSTREAM_KEY",
    "WEBHOOKS_KEY",
    "StartupError",
    "create_app",
    "create_inbound_app",
    "limits_of",
    "runner",
]
