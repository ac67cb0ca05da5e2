"""What a gateway's answer means, and how the proxy tells it: the catalog, the verdict,
the envelope.

    catalog.py   the code catalog (config/codes.yaml) loaded, checked and indexed once
    classify.py  pure: the parsed reply's signals, its HTTP status and headers (or the
                 failure to get an answer) → Outcome, by the rules of README "Codes"
    envelope.py  pure: Outcome → the uniform JSON envelope (RFC 9457 on errors), or the
                 X-Gateway-* headers of a passthrough answer
    table.py     the catalog as tables (``gateway-proxy codes``; README's code tables)
"""
