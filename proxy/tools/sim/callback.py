"""The relay calling the VASP back: delivery reports sent in the background (aiohttp edge).

``Reporter`` is made with the app (``create_sim_app``) and kept in ``REPORTER_KEY``. Its
``lifecycle`` (a cleanup context) opens one ``ClientSession`` at start-up when
``--callback-url`` is set and, at shutdown, cancels the reports still pending, then closes
it. ``schedule(report)`` starts one named task per report and keeps it in a set until it
is done (asyncio itself keeps only a weak reference to a task). Each task::

    wait    callback_delay_ms (the relay's time to deliver the message)
    send    POST the DeliveryReportReq (report.py) to the callback URL, one attempt
            bounded by callback_timeout_s
    read    the HTTP status and the answer's StatusCode (mm7_request.answer_status)
    judge   report.verdict: accepted or refused ends it; retry (no answer, HTTP 5xx,
            StatusCode 4006) sends it again after callback_backoff_ms, doubling, for at
            most callback_attempts attempts in all

``post_incoming(incoming)`` plays Mogreet instead: it POSTs one incoming message
(incoming.py) to ``--moms-callback-url`` now, with the same retries (incoming.verdict:
no answer or a 5xx is retried), and returns what came of it, for the trigger's answer.

Every attempt is logged as the relay sees it (``delivery_report``: message id, MMStatus,
attempt, HTTP status, StatusCode, verdict; ``mogreet_incoming``: event, attempt, HTTP
status, verdict), never the addresses or the message. Errors on the way::

    aiohttp.ClientError, OSError   no answer (refused, reset, bad answer): retry
    TimeoutError                   no answer within callback_timeout_s: retry
"""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from proxy.observability.logs import get_logger
from proxy.tools.sim import incoming as mogreet
from proxy.tools.sim.mm7 import CONTENT_TYPE
from proxy.tools.sim.mm7_request import answer_status
from proxy.tools.sim.report import DeliveryReport, Verdict, delivery_report_request, verdict
from proxy.tools.sim.settings import SimSettings

Sleep = Callable[[float], Awaitable[None]]
_ANSWER_CAP = 64 * 1024  # an answer is a short *Rsp; more is read and dropped
_CHUNK = 16 * 1024


@dataclass(frozen=True, slots=True)
class Posted:
    """What came of one incoming message: the final verdict, its last HTTP status (None:
    no answer) and how many attempts it took."""

    url: str
    verdict: Verdict
    http_status: int | None
    attempts: int


class Reporter:
    """Sends the relay's delivery reports to ``settings.callback_url`` in the background.

    ``sleep`` waits the delay and the backoffs (tests pass one that records them).
    """

    def __init__(self, settings: SimSettings, *, sleep: Sleep = asyncio.sleep) -> None:
        self.url = settings.callback_url
        self.moms_url = settings.moms_callback_url
        self._delay = settings.callback_delay_ms / 1000
        self._attempts = max(1, settings.callback_attempts)
        self._backoff = settings.callback_backoff_ms / 1000
        self._timeout = aiohttp.ClientTimeout(total=settings.callback_timeout_s)
        self._sleep = sleep
        self._session: aiohttp.ClientSession | None = None  # open between start and stop
        self._tasks: set[asyncio.Task[Verdict]] = set()
        self._log = get_logger("gateway_proxy.tools.sim")

    async def lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        """The app's cleanup context: the session while the app runs (with a URL only)."""
        if self.url is None and self.moms_url is None:
            yield
            return
        async with aiohttp.ClientSession(timeout=self._timeout) as session:
            self._session = session
            try:
                yield
            finally:
                self._session = None
                await self._cancel_pending()

    def schedule(self, report: DeliveryReport) -> None:
        """Send ``report`` in the background (nothing when no callback URL is set)."""
        if self._session is None or self.url is None:
            return
        task = asyncio.get_running_loop().create_task(
            self._deliver(self._session, self.url, report),
            name=f"sim-report-{report.message_id}",
        )
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Verdict]) -> None:
        self._tasks.discard(task)
        # The task is the outermost edge of a report: a bug in it is logged, not lost.
        if not task.cancelled() and (exc := task.exception()) is not None:
            self._log.error("delivery_report_failed", task=task.get_name(), exc_info=exc)

    async def wait_idle(self) -> list[Verdict]:
        """Wait for every report scheduled so far; their final verdicts, in no order."""
        return list(await asyncio.gather(*self._tasks)) if self._tasks else []

    async def _cancel_pending(self) -> None:
        pending = list(self._tasks)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if pending:
            self._log.info("delivery_reports_dropped", count=len(pending), reason="shutdown")

    async def _deliver(
        self, session: aiohttp.ClientSession, url: str, report: DeliveryReport
    ) -> Verdict:
        """Wait the delay, then send until accepted, refused or out of attempts."""
        await self._sleep(self._delay)
        body = delivery_report_request(report)
        backoff, attempt = self._backoff, 1
        while True:
            http_status, status_code, error = await self._send(session, url, body)
            outcome = verdict(http_status, status_code)
            again = outcome == "retry" and attempt < self._attempts
            seen = {"http_status": http_status, "status_code": status_code, "error": error}
            self._log.info(
                "delivery_report",
                message_id=report.message_id,
                mm_status=report.mm_status,
                url=url,
                attempt=attempt,
                attempts=self._attempts,
                **{key: value for key, value in seen.items() if value is not None},
                verdict=outcome,
                **({"retry_in_s": backoff} if again else {}),
            )
            if not again:
                return outcome
            await self._sleep(backoff)
            backoff, attempt = backoff * 2, attempt + 1

    async def _send(
        self,
        session: aiohttp.ClientSession,
        url: str,
        body: bytes,
        headers: dict[str, str] | None = None,
    ) -> tuple[int | None, str | None, str | None]:
        """One attempt: (HTTP status, the answer's StatusCode, an error); the status is None
        when no answer came."""
        headers = headers or {"Content-Type": CONTENT_TYPE, "SOAPAction": '""'}
        try:
            async with session.post(url, data=body, headers=headers) as response:
                answer = await _read_capped(response)
                return response.status, answer_status(answer), None
        except TimeoutError:
            return None, None, "timeout"
        except (aiohttp.ClientError, OSError) as exc:
            return None, None, type(exc).__name__

    async def post_incoming(self, incoming: mogreet.Incoming) -> Posted | None:
        """POST ``incoming`` as Mogreet, now, until accepted, refused or out of attempts.
        None when no ``--moms-callback-url`` is set."""
        if self._session is None or self.moms_url is None:
            return None
        body = mogreet.incoming_request(incoming)
        headers = {"Content-Type": mogreet.CONTENT_TYPE}
        backoff, attempt = self._backoff, 1
        while True:
            http_status, _, error = await self._send(self._session, self.moms_url, body, headers)
            outcome = mogreet.incoming_verdict(http_status)
            again = outcome == "retry" and attempt < self._attempts
            seen = {"http_status": http_status, "error": error}
            self._log.info(
                "mogreet_incoming",
                mogreet_event=incoming.event,
                url=self.moms_url,
                attempt=attempt,
                attempts=self._attempts,
                **{key: value for key, value in seen.items() if value is not None},
                verdict=outcome,
                **({"retry_in_s": backoff} if again else {}),
            )
            if not again:
                return Posted(self.moms_url, outcome, http_status, attempt)
            await self._sleep(backoff)
            backoff, attempt = backoff * 2, attempt + 1


async def _read_capped(response: aiohttp.ClientResponse) -> bytes:
    """Up to ``_ANSWER_CAP`` bytes of the answer; the rest is read and dropped."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(_CHUNK):
        if size < _ANSWER_CAP:
            chunks.append(chunk[: _ANSWER_CAP - size])
        size += len(chunk)
    return b"".join(chunks)


REPORTER_KEY = web.AppKey("sim_reporter", Reporter)

__all__ = ["REPORTER_KEY", "Posted", "Reporter", "Sleep"]
