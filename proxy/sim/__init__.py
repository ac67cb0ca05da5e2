"""The gateway simulator: an MM7 relay and the MoMS/CM API, with every code on demand.

``gateway-proxy simulate`` serves it; ``gateway-proxy demo`` puts it behind the proxy; the
project's end-to-end tests and benchmarks use it as their upstream. Modules:

    settings.py  SimSettings and the ``simulate`` command-line options
    codes.py     the vendor codes and status texts, read from the proxy's catalog
    outcome.py   choosing the answer: X-Sim-Fault, X-Sim-Code, the recipient, the --mix
    reply.py     ``Reply``: one finished answer (status, content type, body)
    mm7.py       read a VASP request, render SubmitRsp/CancelRsp/... or a SOAP Fault;
                 ``submit_request``, the SubmitReq the demo, benchmarks and tests send
    moms.py      validate a MoMS/CM call, build its payload, render XML or JSON
    faults.py    transport faults: refuse, hang, drip, reset, oversize, html502, empty,
                 malformed; ``reply_response`` (a ``Reply`` as an aiohttp response)
    app.py       the aiohttp app (routes, latency, lifecycle) and ``run_simulator``

``reply``, ``codes``, ``outcome``, ``mm7`` and ``moms`` are sans-io (no aiohttp import);
``faults`` and ``app`` are the aiohttp edge.
"""

from proxy.sim.app import create_sim_app, run_simulator
from proxy.sim.settings import SimSettings, add_simulate_arguments, settings_from_args

__all__ = [
    "SimSettings",
    "add_simulate_arguments",
    "create_sim_app",
    "run_simulator",
    "settings_from_args",
]
