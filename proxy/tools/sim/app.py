"""The simulator's aiohttp application: routes, handlers and lifecycle.

Routes::

    POST      /mm7[/...]                 the MM7 relay (mm7.py)
    GET|POST  /moms/<object>.<method>    the MoMS API (moms.py)
    GET|POST  /cm/<object>.<method>      the CM API (moms.py)
    POST      /sim/mogreet/incoming      play Mogreet: POST an incoming message to
                                         --moms-callback-url now (incoming.py), answer
                                         what came of it as JSON
    GET       /  and  /healthz           a usage note / "ok" (for start-up probes)

Each handler is a short list of stages: a header-requested fault that needs no request
(refuse, hang) → read the request → the vendor's own refusals → choose the outcome
(outcome.py) → a fault (faults.py) or the answer, rendered in the chosen reply shape. An
accepted SubmitReq (1000) is answered first and then, with ``--callback-url``, reported on
in the background (report.py, callback.py). ``--latency`` is a middleware. State
(settings, the simulator's own code table, the seeded chooser, the reporter) lives in
``web.AppKey``s. A bad ``X-Sim-*`` header gets a plain-text HTTP 400 from the simulator.
"""

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import cast

from aiohttp import BodyPartReader, web

from proxy.config import Address
from proxy.process.ports import PortError, bind
from proxy.tools.sim import faults, mm7, moms
from proxy.tools.sim.callback import REPORTER_KEY, Reporter, Sleep
from proxy.tools.sim.codes import SimCodes, load_sim_codes
from proxy.tools.sim.datafile import SimDataError
from proxy.tools.sim.faults import reply_response
from proxy.tools.sim.incoming import IncomingError, incoming_from_params
from proxy.tools.sim.outcome import (
    Chooser,
    DirectiveError,
    FaultName,
    Mix,
    Mm7Shape,
    MomsShape,
    ShapeName,
    header_code,
    header_fault,
    header_shape,
    load_mix,
)
from proxy.tools.sim.reply import Reply
from proxy.tools.sim.report import DeliveryReport, report_for
from proxy.tools.sim.settings import SimSettings
from proxy.tools.sim.throttle import Throughput, throttled

SETTINGS_KEY = web.AppKey("sim_settings", SimSettings)
CODES_KEY = web.AppKey("sim_codes", SimCodes)
CHOOSER_KEY = web.AppKey("sim_chooser", Chooser)
#: ``--tps``: the relay's throughput (None: unlimited).
THROUGHPUT_KEY: web.AppKey[Throughput | None] = web.AppKey("sim_throughput")

MESSAGE_HEADER = "X-Sim-Message"  # MoMS: replace the answer's message text
HTTP_STATUS_HEADER = "X-Sim-Http-Status"  # MM7: the HTTP status of a Fault (default: table)
_MAX_FIELD_BYTES = 64 * 1024
_CHUNK = 64 * 1024

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

USAGE = """gateway-proxy simulator
POST /mm7                        MM7 relay (SOAP or multipart/related)
GET|POST /moms/<object>.<method> MoMS API (format=json for JSON)
GET|POST /cm/<object>.<method>   CM API
Outcome: X-Sim-Fault: refuse|hang|drip|reset|oversize|html502|empty|malformed
         X-Sim-Code: <code>, or a recipient ending in the code (+15550002002 -> 2002)
Shape:   X-Sim-Shape: status-header|status-header-empty|status-header-twice|
                      nested-details|dotted-fault-401|multipart-late-soap (MM7),
                      jsonp (MoMS), gzip-members (both)
Throughput: with --tps N, over N requests a second: HTTP 429 (MM7: a Server.Throttled
         fault) with a Retry-After
Reports: with --callback-url, a DeliveryReportReq after each accepted SubmitReq; its
         MMStatus: X-Sim-MMStatus: <word>, or a recipient ending in 9000..9007
Mogreet: with --moms-callback-url, POST /sim/mogreet/incoming?msisdn=N&message=TEXT
         [&event=message-in|stop|...&campaign_id=&carrier=&subject=&image=URL...]
         posts an incoming message there, as Mogreet does
"""


@web.middleware
async def _latency(request: web.Request, handler: _Handler) -> web.StreamResponse:
    delay = request.app[SETTINGS_KEY].latency_ms
    if delay > 0:
        await asyncio.sleep(delay / 1000)
    return await handler(request)


@web.middleware
async def _throughput(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """``--tps``: a request over the relay's throughput gets its vendor's throttling.
    The simulator's own endpoints (``/``, ``/healthz``, ``/sim/...``: playing Mogreet) are
    no gateway traffic and never count."""
    throughput = request.app[THROUGHPUT_KEY]
    vendor = "mm7" if request.path.startswith("/mm7") else "moms"
    if throughput is None or request.path in ("/", "/healthz") or request.path.startswith("/sim/"):
        return await handler(request)
    if throughput.admit(time.monotonic()):
        return await handler(request)
    return reply_response(throttled(vendor, throughput.tps, throughput.retry_after()))


@web.middleware
async def _directives(request: web.Request, handler: _Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except DirectiveError as exc:
        return web.Response(status=400, text=f"simulator: {exc}\n")


async def _read_capped(request: web.Request, cap: int) -> bytes | None:
    """The request body, or None (after draining it) when it is longer than ``cap``."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(_CHUNK):
        size += len(chunk)
        if size <= cap:
            chunks.append(chunk)
    return b"".join(chunks) if size <= cap else None


async def _apply_fault(
    fault: FaultName, request: web.Request, material: faults.FaultMaterial | None
) -> web.StreamResponse:
    hang_seconds = request.app[SETTINGS_KEY].hang_seconds
    return await faults.apply(fault, request, material, hang_seconds=hang_seconds)


async def handle_mm7(request: web.Request) -> web.StreamResponse:
    """The MM7 relay: ``POST /mm7[/...]`` with a SOAP or ``multipart/related`` request.

    Answers the matching ``*Rsp`` or a SOAP Fault (the HTTP status of the code's table
    entry, or ``X-Sim-Http-Status``) in the chosen reply shape, or carries out a fault; a
    bad ``X-Sim-*`` header raises ``DirectiveError`` (HTTP 400 by the middleware).
    """
    fault = header_fault(request.headers)  # read once; passed on to the chooser
    if fault in faults.IMMEDIATE:
        return await _apply_fault(fault, request, None)
    shape = cast(Mm7Shape | None, header_shape(request.headers, "mm7"))
    fault_status = _fault_status(request)
    cap = request.app[SETTINGS_KEY].max_mm7_request_bytes
    body = await _read_capped(request, cap)
    chooser = request.app[CHOOSER_KEY]
    message_id = str(chooser.next_id())
    try:
        if body is None:
            raise mm7.Mm7RequestError("2004", f"content over {cap} bytes")
        req = mm7.parse_request(body, request.headers.get("Content-Type"))
    except mm7.Mm7RequestError as exc:
        # The relay cannot read the request: it answers so whatever X-Sim-Code says.
        tid = exc.transaction_id
        answer = _mm7_answer(request, "RSErrorRsp", tid, exc.code, details=exc.details)
        reply = _mm7_render(request, answer, shape, fault_status)
        if fault is not None:
            return await _apply_fault(fault, request, _mm7_material(reply, tid))
        return reply_response(reply)
    choice = chooser.choose("mm7", request.headers, req.recipient, fault=fault, shape=shape)
    if choice.fault is not None:
        ok = _mm7_answer(
            request, req.response_kind, req.transaction_id, "1000", message_id=message_id
        )
        material = _mm7_material(_mm7_render(request, ok), req.transaction_id, message_id)
        return await _apply_fault(choice.fault, request, material)
    code = choice.code or "1000"
    answer = _mm7_answer(
        request, req.response_kind, req.transaction_id, code, message_id=message_id
    )
    reply = _mm7_render(request, answer, cast(Mm7Shape | None, choice.shape), fault_status)
    report = _accepted_report(request, req, reply, code, message_id)
    if report is None:
        return reply_response(reply)
    return await _answer_then_report(request, reply, report)


def _accepted_report(
    request: web.Request, req: mm7.Mm7Request, reply: Reply, code: str, message_id: str
) -> DeliveryReport | None:
    """The report on a SubmitReq the relay accepted (1000, HTTP 2xx), if callbacks are on."""
    accepted = req.kind == "SubmitReq" and code == "1000" and 200 <= reply.status < 300
    if not accepted or request.app[REPORTER_KEY].url is None:
        return None
    return report_for(req, message_id, request.headers, datetime.now(UTC))


async def _answer_then_report(
    request: web.Request, reply: Reply, report: DeliveryReport
) -> web.StreamResponse:
    """Send the SubmitRsp, then schedule its report: a report never precedes its answer."""
    response = reply_response(reply)
    await response.prepare(request)
    await response.write_eof()
    request.app[REPORTER_KEY].schedule(report)
    return response


def _mm7_material(
    reply: Reply, transaction_id: str | None, message_id: str = "0"
) -> faults.FaultMaterial:
    tid = transaction_id or "unknown"
    return faults.FaultMaterial(
        reply=reply,
        oversize=lambda size: mm7.oversize_body(tid, message_id, size),
        malformed=mm7.malformed_body(tid),
    )


def _fault_status(request: web.Request) -> int | None:
    value = request.headers.get(HTTP_STATUS_HEADER, "").strip()
    if not value:
        return None
    if not value.isdigit() or not 200 <= int(value) <= 599:
        raise DirectiveError(f"{HTTP_STATUS_HEADER}: expected 200..599, got {value!r}")
    return int(value)


def _mm7_answer(
    request: web.Request,
    kind: str,
    transaction_id: str | None,
    code: str,
    *,
    message_id: str | None = None,
    details: str | None = None,
) -> mm7.Mm7Answer:
    text = request.app[CODES_KEY].text("mm7", code)
    return mm7.Mm7Answer(kind, transaction_id, code, text, message_id, details)


def _mm7_render(
    request: web.Request,
    answer: mm7.Mm7Answer,
    shape: Mm7Shape | None = None,
    fault_status: int | None = None,
) -> Reply:
    codes = request.app[CODES_KEY]
    return mm7.render_answer(codes, answer, shape=shape, fault_status=fault_status)


async def _moms_params(request: web.Request) -> tuple[dict[str, str], moms.Upload | None]:
    """Query and form parameters merged (form wins), and the drained upload if any."""
    params = dict(request.query)
    upload: moms.Upload | None = None
    if request.method != "POST" or not request.can_read_body:
        return params, None
    if request.content_type.startswith("multipart/"):
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader) or part.name is None:
                continue
            if part.filename is not None:
                size = 0
                while chunk := await part.read_chunk(_CHUNK):
                    size += len(chunk)  # drained, never held: uploads may be 150 MB
                ctype = part.headers.get("Content-Type", "application/octet-stream")
                upload = moms.Upload(part.filename, ctype.lower(), size)
            else:
                raw = await part.read_chunk(_MAX_FIELD_BYTES)
                params[part.name] = raw.decode("utf-8", "replace")
    else:
        form = await request.post()
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
    return params, upload


async def handle_moms(request: web.Request) -> web.StreamResponse:
    """The MoMS and CM APIs: ``GET|POST /moms/<object>.<method>`` and ``/cm/...``.

    Always HTTP 200 with the outcome in the body (XML, JSON with ``format=json``, JSONP
    with the ``jsonp`` shape), or a fault; a bad ``X-Sim-*`` header raises
    ``DirectiveError`` (HTTP 400 by the middleware).
    """
    fault = header_fault(request.headers)  # read once; passed on to the chooser
    if fault in faults.IMMEDIATE:
        return await _apply_fault(fault, request, None)
    shape = header_shape(request.headers, "moms")
    api: moms.Api = "cm" if request.path.startswith("/cm/") else "moms"
    params, upload = await _moms_params(request)
    call = moms.MomsCall(api, request.match_info["call"], params, upload)
    answer, fault, shape = _moms_answer(request, call, fault, shape)
    message = request.headers.get(MESSAGE_HEADER)
    if message:
        answer = moms.Answer(answer.code, message, answer.payload)
    moms_shape = cast(MomsShape | None, shape)
    reply = moms.render(api, call.format, answer, shape=moms_shape, callback=params.get("callback"))
    if fault is not None:
        material = faults.FaultMaterial(
            reply=reply, oversize=moms.oversize_body, malformed=moms.malformed_body()
        )
        return await _apply_fault(fault, request, material)
    return reply_response(reply)


def _moms_answer(
    request: web.Request, call: moms.MomsCall, fault: FaultName | None, shape: ShapeName | None
) -> tuple[moms.Answer, FaultName | None, ShapeName | None]:
    """The answer to ``call``, the fault to apply to it, and its reply shape.

    The live API's refusals (credentials, unknown method) come first; an explicit
    ``X-Sim-Code`` then wins over the parameter checks (so a fault can be injected into a
    real client's call whatever it sends); then the recipient, the mix, success.
    """
    codes = request.app[CODES_KEY]
    settings = request.app[SETTINGS_KEY]
    answer = moms.refusal(call, codes.moms, settings.client_id, settings.token)
    if answer is None and header_code(request.headers) is None:
        answer = moms.parameter_error(call, codes.moms, settings.max_media_bytes)
    if answer is not None:
        return answer, fault, None if fault is not None else shape  # a fault has no shape
    chooser = request.app[CHOOSER_KEY]
    choice = chooser.choose("moms", request.headers, call.recipient, fault=fault, shape=shape)
    code = choice.code or "1"
    if code == "1" or choice.fault is not None:
        return moms.success(call, chooser), choice.fault, choice.shape
    return moms.Answer(code, codes.text("moms", code), {}), None, choice.shape


async def handle_incoming(request: web.Request) -> web.Response:
    """``POST /sim/mogreet/incoming``: post one incoming message as Mogreet, now.

    The fields come as query or form parameters (the form wins; ``image`` repeats).
    Answers JSON ``{"posted_to", "verdict", "http_status", "attempts"}`` once the proxy
    answered (or the attempts ran out); 409 without ``--moms-callback-url``, 400 without
    an ``msisdn``.
    """
    params = dict(request.query)
    images = request.query.getall("image", [])
    if request.can_read_body:
        form = await request.post()
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
        images = [*images, *(v for v in form.getall("image", []) if isinstance(v, str))]
    try:
        incoming = incoming_from_params(params, images)
    except IncomingError as exc:
        return web.Response(status=400, text=f"simulator: {exc}\n")
    posted = await request.app[REPORTER_KEY].post_incoming(incoming)
    if posted is None:
        return web.Response(status=409, text="simulator: no --moms-callback-url is set\n")
    return web.json_response(
        {"posted_to": posted.url, "verdict": posted.verdict,
         "http_status": posted.http_status, "attempts": posted.attempts}
    )  # fmt: skip


async def handle_index(request: web.Request) -> web.Response:
    """``GET /``: a plain-text usage note."""
    return web.Response(text=USAGE)


async def handle_healthz(request: web.Request) -> web.Response:
    """``GET /healthz``: ``ok`` (the demo's and the benchmarks' start-up probe)."""
    return web.Response(text="ok\n")


def create_sim_app(settings: SimSettings, *, sleep: Sleep = asyncio.sleep) -> web.Application:
    """Build the simulator app. Raises ``MixError`` / ``CodesError`` for bad files.

    ``sleep`` is how the reporter waits its delay and backoffs (tests observe them).
    """
    codes = load_sim_codes()
    mix = load_mix(settings.mix_path, codes) if settings.mix_path is not None else Mix()
    app = web.Application(middlewares=[_throughput, _directives, _latency])
    app[SETTINGS_KEY] = settings
    app[THROUGHPUT_KEY] = Throughput(settings.tps) if settings.tps is not None else None
    app[CODES_KEY] = codes
    app[CHOOSER_KEY] = Chooser(codes, mix, settings.seed)
    app[REPORTER_KEY] = reporter = Reporter(settings, sleep=sleep)
    app.cleanup_ctx.append(reporter.lifecycle)
    app.router.add_get("/", handle_index)
    app.router.add_get("/healthz", handle_healthz)
    app.router.add_post("/sim/mogreet/incoming", handle_incoming)
    app.router.add_post("/mm7", handle_mm7)
    app.router.add_post("/mm7/{tail:.*}", handle_mm7)
    for prefix in ("/moms", "/cm"):
        app.router.add_route("GET", prefix + "/{call}", handle_moms)
        app.router.add_route("POST", prefix + "/{call}", handle_moms)
    return app


def run_simulator(settings: SimSettings) -> None:
    """Serve until SIGINT/SIGTERM (blocking). In-flight requests get 2 s to finish.

    A bad mix file or code table is reported on stderr and exits with status 2.
    """
    try:
        app = create_sim_app(settings)
    except SimDataError as exc:
        print("\n".join(exc.errors), file=sys.stderr)
        raise SystemExit(2) from None
    try:
        sock = bind(Address(settings.host, settings.port))
    except PortError as exc:
        print(f"gateway-proxy simulate: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    reports = f"; delivery reports to {settings.callback_url}" if settings.callback_url else ""
    if settings.moms_callback_url:
        reports += f"; Mogreet incoming messages to {settings.moms_callback_url}"
    if settings.tps is not None:
        reports += f"; throttling above {settings.tps:g} requests per second"
    print(  # the one start-up line of a command-line tool
        f"gateway-proxy simulator on http://{settings.host}:{settings.port} "
        f"(MM7: POST /mm7, MoMS: /moms/<object>.<method>, CM: /cm/<object>.<method>){reports}",
        flush=True,
    )
    # run_app turns SIGINT and SIGTERM into a graceful exit (GracefulExit → cleanup).
    web.run_app(
        app,
        sock=sock,
        print=None,
        shutdown_timeout=2.0,
        handler_cancellation=True,
        access_log=None,
    )


__all__ = [
    "CHOOSER_KEY",
    "CODES_KEY",
    "HTTP_STATUS_HEADER",
    "MESSAGE_HEADER",
    "REPORTER_KEY",
    "SETTINGS_KEY",
    "THROUGHPUT_KEY",
    "USAGE",
    "create_sim_app",
    "handle_healthz",
    "handle_incoming",
    "handle_index",
    "handle_mm7",
    "handle_moms",
    "run_simulator",
]
