"""Answer Mogreet: the HTTP response to one incoming-message POST (pure).

Mogreet documents the POST, not what it expects back nor how it retries, so the answer
says everything in its HTTP status, the one signal every webhook sender reads, with a
short plain-text body (``OK`` on success, as Mogreet's own starter app answers)::

    the app's webhook answered 2xx              200 OK          taken: Mogreet is done
    the app refused it (a 4xx other than        422             understood and refused:
      408/425/429)                                              not to be resent unchanged
    no answer, a timeout, 5xx, 3xx, 408, 425,   503             try again later: nothing
      429                                                       is acknowledged and lost
    the POST cannot be read (mogreet.py)        400 (413 over   never forwarded to the app
                                                max_request_bytes)
    the proxy shed it or is shutting down       503             try again later

So Mogreet gets a 2xx only once the app has the event, and a 5xx whenever resending can
help. ``answer_mogreet`` and ``refuse_mogreet`` return the same ``Answer`` as the MM7
side (answer.py): ``(status, content_type, body)``.
"""

from proxy.inbound.answer import Answer
from proxy.inbound.types import MogreetError

CONTENT_TYPE = "text/plain; charset=utf-8"
#: The answer when the proxy cannot take the POST now (shed, shutting down): retry later.
RETRY_STATUS = 503
#: The app's webhook refused the event (its 4xx): understood, not to be resent unchanged.
REFUSED_STATUS = 422
_LATER = frozenset({408, 425, 429})  # 4xx statuses that ask for a later attempt


def answer_mogreet(webhook_status: int | None) -> Answer:
    """The answer once the app's webhook answered ``webhook_status`` (None: no answer)."""
    if webhook_status is not None and 200 <= webhook_status < 300:
        return _answer(200, "OK")
    if (
        webhook_status is not None
        and 400 <= webhook_status < 500
        and (webhook_status not in _LATER)
    ):
        return _answer(REFUSED_STATUS, "refused by the application; do not resend unchanged")
    return _answer(RETRY_STATUS, "the application did not take it; try again later")


def refuse_mogreet(error: MogreetError) -> Answer:
    """The answer to a POST the proxy cannot take (see the module docstring)."""
    if error.reason == "unavailable":
        return _answer(RETRY_STATUS, error.detail)
    return _answer(413 if error.reason == "oversize" else 400, error.detail)


def _answer(status: int, text: str) -> Answer:
    return Answer(status, CONTENT_TYPE, (text + "\n").encode("utf-8"))


__all__ = ["CONTENT_TYPE", "REFUSED_STATUS", "RETRY_STATUS", "answer_mogreet", "refuse_mogreet"]
