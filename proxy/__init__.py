"""gateway-proxy: one envelope for every MM7 and MoMS gateway answer.

How a request flows, and which module owns each step. ``server.handle`` is this list,
each stage a function that returns the value the next one takes::

    app ──► server.py    aiohttp app on ``listen``; ``handle`` runs the stages below,
            │            called straight from the guarded connection handler (protocol.py:
            │            head deadline, parser refusals as envelopes, any method; no router)
            │
            ├─ route     routing.py   pure ``decide(routes, method, target)`` → ``RouteMatch``
            │                         or ``Refusal`` (no route → ROUTE_NOT_FOUND; absolute-URI,
            │                         CONNECT and dot-segment paths → INVALID_REQUEST)
            ├─ forward   forward.py   stream the body to the route's upstream over the one
            │                         keep-alive pool (upstream.py: HTTP/1.1 on aiohttp's
            │                         connection protocol, never a retry) →
            │                         ``UpstreamAnswer``; every aiohttp/OS error is mapped
            │                         here, once, to a ``ProxyFailure`` kind (vocab.py's
            │                         ``FailureKind``)
            ├─ parse     vendors/     pure: bytes + content type in, ``VendorReply`` out
            │                         (mm7.py, moms.py; hostile-XML-safe: safexml.py)
            ├─ classify  classify.py  pure: ``VendorReply`` + status + headers, or a failure
            │                         kind → ``Outcome``, against the catalog (catalog.py,
            │                         loaded from ``config/codes.yaml``)
            ├─ respond   respond.py   pure ``decide_reply``: passthrough or the envelope
            │                         (envelope.py: RFC 9457 on errors) → ``Reply``
            └─ observe   metrics.py, observe.py   one counter increment, histograms and one
                                      redacted structured log line (logs.py, written off
                                      the event loop by log_sink.py)

    operator ──► admin.py  ``admin_listen``: /metrics, /healthz, /readyz
    serve.py  both servers in one event loop; SIGTERM → not ready → drain → stop
    workers.py  ``serve --workers N``: N such processes on one port (SO_REUSEPORT); the
              parent serves the admin port, /metrics adding up every worker

Shared ground: vocab.py holds every closed set of names (vendors, categories, failure
kinds, faults); loading.py is the one way to read a data file (config.py, catalog.py and
the simulator's tables all report ``file: key: reason``). Configuration is parsed once
into frozen objects; state that lives for the process (config, catalog, the upstream
pool, the ClientSession for the app's webhooks, metrics) sits in typed ``web.AppKey``s
(server.py). The command line (cli.py, a table of subcommands) serves, checks configs,
prints the catalog, translates captured replies offline and runs the gateway simulator
(sim/, an independent oracle: it shares no parsing or codes with the proxy) and the demo
(demo.py).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
