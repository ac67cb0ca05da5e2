"""gateway-proxy: one envelope for every MM7 and MoMS gateway answer.

How a request flows, and where each step lives. ``server/handle.py``'s ``handle`` is this
list, each stage a function that returns the value the next one takes::

    app ──► aio/server.py      aiohttp's connection handler, guarded (head deadline,
            │                  parser refusals as envelopes, any method; no router)
            ├─ route    server/routing.py    pure ``decide`` → RouteMatch, InboundMatch
            │                                or Refusal (no route, absolute-URI, dot
            │                                segments)
            ├─ admit    server/admission.py  ``admitted``: max_in_flight, the drain; the
            │                                one way in, for sends and callbacks alike
            ├─ pace     server/flow.py       flow control: a rate limit's queue (flow/),
            │                                failover over the route's endpoints and their
            │                                circuits (upstream/balance.py, breaker.py),
            │                                a throttled request paused and resent
            ├─ forward  upstream/            ``exchange``: the body streamed to the
            │                                route's endpoint over the one keep-alive pool,
            │                                within a deadline; every OS/aiohttp error
            │                                mapped once (errors.py) to an
            │                                ExchangeFailure(kind, reached)
            ├─ parse    vendors/             pure: bytes → VendorReply with every status
            │                                signal (mm7.py, moms.py; safexml.py)
            ├─ classify codes/classify.py    pure: the signals, the HTTP status, headers →
            │                                Outcome, against the catalog (codes/catalog.py,
            │                                from config/codes.yaml)
            ├─ respond  server/respond.py    pure: passthrough or the envelope
            │                                (codes/envelope.py: RFC 9457 on errors)
            └─ observe  observability/       one counter, histograms and one redacted
                                             structured log line (written off the loop)

    relay ──► the same edge, an inbound route: inbound/ reads the callback (pure), posts
              one JSON event to the app's webhook (upstream/webhook.py: the same pool),
              and answers the relay once the app has
    operator ──► server/admin.py on ``admin_listen``: /metrics, /healthz, /readyz

The rooms::

    aio/            the fence: every private aiohttp name, and only there (pinned, with a
                    canary test)
    server/         the HTTP edge and the pipeline: app.py (create_app, state in typed
                    AppKeys: keys.py), handle.py, routing, admission, headers, respond
    upstream/       endpoints, the pool, one exchange, the error map, webhooks; choosing
                    an endpoint (balance.py) and its circuit breaker (breaker.py)
    flow/           rate limits: the token bucket, a route's queue, the Redis store
    vendors/        the gateways' answers parsed (sans-io, hostile-XML-safe)
    codes/          the catalog, the verdict, the envelope
    inbound/        relay callbacks: parse, event, answer (sans-io); handler.py, the HTTP side
    observability/  metrics, the log line, logging, redaction
    config/         the YAML → frozen objects; the one loader of data files
    process/        serve (signals, drain), --workers, listening ports
    tools/          the gateway simulator (an independent oracle), the demo
    cli.py          the command line, a table of subcommands
    vocab.py        every closed set of names (vendors, categories, failure kinds, reasons)
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
