"""The gateway simulator: an MM7 relay and the MoMS/CM API, with every code on demand.

``gateway-proxy simulate`` serves it; ``gateway-proxy demo`` puts it behind the proxy; the
project's end-to-end tests and benchmarks use it as their upstream, so it is their oracle:
it imports nothing from the proxy's parsers, catalog, classifier or inbound side
(``proxy.vendors``, ``proxy.codes.catalog``, ``proxy.codes.classify``, ``proxy.inbound``,
``proxy.inbound.handler``) and never reads ``config/codes.yaml``; a bug in those cannot pass on
both sides of a test. With ``--callback-url`` it also plays the relay calling back: a
DeliveryReportReq after each accepted SubmitReq; with ``--moms-callback-url``, Mogreet
posting a subscriber's incoming message (``POST /sim/mogreet/incoming``). Modules:

    settings.py        SimSettings and the ``simulate`` command-line options
    datafile.py        the one toolkit for its YAML files (``file: key: reason`` errors)
    codes.py           its own vendor codes, texts and MM7 layouts (``vendor_codes.yaml``)
    outcome.py         choosing the answer: X-Sim-Fault, X-Sim-Code, the recipient, the
                       --mix; and its reply shape (X-Sim-Shape)
    reply.py           ``Reply``: one finished answer (status, content type, body, headers)
    mm7_request.py     read a VASP request (lxml and the stdlib email package)
    mm7.py             render SubmitRsp/CancelRsp/... or a SOAP Fault, in a reply shape;
                       ``submit_request``, the SubmitReq the demo, benchmarks and tests send
    moms.py            validate a MoMS/CM call, build its payload, render XML, JSON, JSONP
    faults.py          transport faults: refuse, hang, drip, reset, oversize, html502,
                       empty, malformed; ``reply_response`` (a ``Reply`` as a response)
    report.py          the relay's delivery reports: the MMStatus (X-Sim-MMStatus, the
                       recipient), the DeliveryReportReq, the verdict on the VASP's answer
    incoming.py        Mogreet's incoming-message POST: the ``<mogreet>`` document from
                       the trigger's parameters, the verdict on the answer
    callback.py        ``Reporter``: sends the reports in the background, with retries;
                       posts Mogreet's incoming messages on demand
    app.py             the aiohttp app (routes, latency, lifecycle) and ``run_simulator``

All but ``faults``, ``callback`` and ``app`` (the aiohttp edge) are sans-io (no aiohttp
import).
"""

from proxy.tools.sim.app import create_sim_app, run_simulator
from proxy.tools.sim.settings import SimSettings, add_simulate_arguments, settings_from_args

__all__ = [
    "SimSettings",
    "add_simulate_arguments",
    "create_sim_app",
    "run_simulator",
    "settings_from_args",
]
