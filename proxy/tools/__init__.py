"""Tools around the proxy, none on its request path.

sim/             the gateway simulator: an independent oracle (it shares no parsing
                 or codes with the proxy)
demo.py          ``gateway-proxy demo``: simulator, proxy and webhook, with a guide
demo_webhook.py  the demo's webhook, printing each event it gets
"""
