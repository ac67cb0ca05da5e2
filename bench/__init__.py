"""Benchmarks. None of them runs in ``make test``; their figures are never asserted.

``make bench`` (``python -m bench``) is the side-by-side run, ``bench.sidebyside``:
gateway-proxy against the fake gateway itself, nginx and a minimal aiohttp proxy.

* ``replies``        the fake gateway's four fixed answers and the requests for them
* ``nginx``          nginx configs and instances: the fake gateway, the reference proxy
* ``minimal_proxy``  the minimal aiohttp proxy (the good Python peer)
* ``targets``        start, probe, check and stop each target; the core layout
* ``wrk``            the wrk Lua mix and its results
* ``scenarios``      the bench's own clients: the 100 MB upload, the slow-gateway wave
* ``procs``          CPU time, RSS and descriptors of a process tree, from /proc
* ``results``        medians, ratios and the issue's targets (pure)
* ``report``         the printed tables (pure)

``make profile`` says on what the CPU and memory go: ``bench.profile`` (py-spy on
gateway-proxy and the minimal proxy under the same load: self time by function, pipeline
stages, and both side by side by module) and ``bench.imports`` (idle RSS by import).

``make bench`` then runs ``bench.ledger``: the message ledger's calls, what a key adds to a
request through the real proxy (``ledger_latency``), and the resend storm
(``ledger_storm``, through ``ledger_gateway``, a relay that counts its sends); it exits 1
when the relay sees a key sent twice.

On their own: ``python -m bench.overhead`` (what metrics and logs cost per request) and
``python -m bench.traffic`` (``make demo-traffic``: a realistic mix for the demo).
Shared plumbing of those two: ``common``.
"""
