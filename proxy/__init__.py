"""gateway-proxy: one envelope for every MM7 and MoMS gateway answer.

How a request flows, and which module owns each step::

    app ──► server.py   aiohttp app on ``listen``; the handler is a short list of stages
            │
            ├─ route     server.py    the route whose ``path_prefix`` holds the path (prefixes
            │                         never overlap: config.py refuses that); no route →
            │                         ROUTE_NOT_FOUND; absolute-URI targets are refused
            ├─ forward   forward.py   stream the body to the route's upstream over the one
            │                         shared ClientSession; every aiohttp/OS error is mapped
            │                         here, once, to a ``ProxyFailure`` kind (connect, timeout,
            │                         connection_lost, too_large, request_too_large, ...)
            ├─ parse     vendors/     pure functions: bytes + status + content type in,
            │                         ``VendorReply`` out (mm7.py, moms.py; hostile-XML-safe)
            ├─ classify  classify.py  pure: ``VendorReply`` or ``FailureKind`` + HTTP status
            │                         → ``Outcome`` against the catalog (catalog.py, loaded
            │                         from ``config/codes.yaml``)
            ├─ envelope  envelope.py  render the uniform JSON envelope (RFC 9457 on errors),
            │                         or the gateway's own answer in passthrough mode
            └─ observe   metrics.py, logs.py   one counter increment, histograms and one
                                      redacted structured log line per request

    operator ──► admin.py  ``admin_listen``: /metrics, /healthz, /readyz
    serve.py  both servers in one event loop; SIGTERM → not ready → drain → stop

Configuration is parsed once into frozen objects (config.py); state that lives for the
process (config, catalog, ClientSession, metrics) sits in typed ``web.AppKey``s
(server.py). The command line (cli.py) serves, checks configs, prints the catalog,
translates captured replies offline and runs the gateway simulator (sim/).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
