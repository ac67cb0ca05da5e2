"""What operators see: metrics per code, one structured log line per request, redaction.

metrics.py   the Prometheus collectors (names and labels are the product's API)
record.py    the per-request log line, built from the request's Outcome
logs.py      structlog's configuration; redaction always on (redact.py)
log_sink.py  log lines written off the event loop, from a bounded buffer
redact.py    MSISDNs, tokens and secrets masked before a line is written
"""
