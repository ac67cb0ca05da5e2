"""The ledger stage's pure parts: the body's fingerprint as it streams (and is sent again),
and the request headers it reads."""

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from proxy.config import ConfigError
from proxy.ledger import fingerprint_of
from proxy.server.idempotency import BodyHash, Keys, Refused, read_keys
from tests.conftest import make_config


def chunked(body: bytes, cuts: list[int]) -> list[tuple[bytes, int]]:
    """``body`` in pieces at ``cuts``, each with its offset."""
    points = sorted({0, len(body), *(c % (len(body) + 1) for c in cuts)})
    return [(body[a:b], a) for a, b in itertools.pairwise(points)]


@given(
    body=st.binary(max_size=2048),
    first=st.lists(st.integers(min_value=0), max_size=8),
    again=st.lists(st.integers(min_value=0), max_size=8),
    sent_before=st.integers(min_value=0),
)
def test_the_fingerprint_is_the_whole_body_once_however_it_is_sent(
    body: bytes, first: list[int], again: list[int], sent_before: int
) -> None:
    """A held body failed over to the next endpoint is fed again from offset 0, in other
    pieces: the fingerprint is still that of the body, sent once."""
    tap = BodyHash("POST", "/mm7?x=1")
    pieces = chunked(body, first)
    cut = sent_before % (len(pieces) + 1)
    for chunk, offset in pieces[:cut]:  # the first attempt got this far
        tap(chunk, offset)
    for chunk, offset in chunked(body, again):  # the next attempt sends it all
        tap(chunk, offset)
    assert tap.digest() == fingerprint_of("POST", "/mm7?x=1", body)


@given(st.binary(min_size=1, max_size=256))
def test_another_body_or_target_is_another_fingerprint(body: bytes) -> None:
    tap = BodyHash("POST", "/mm7")
    tap(body, 0)
    assert tap.digest() != fingerprint_of("POST", "/mm7", body + b"x")
    assert tap.digest() != fingerprint_of("POST", "/mm7/", body)
    assert tap.digest() != fingerprint_of("PUT", "/mm7", body)


def headers(**values: str) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict({k.replace("_", "-"): v for k, v in values.items()}))


def test_read_keys() -> None:
    plain = make_config({"name": "m", "path_prefix": "/m", "upstream": "http://gw.test/"})
    strict = make_config(
        {"name": "m", "path_prefix": "/m", "upstream": "http://gw.test/",
         "require_idempotency_key": True},
        ledger={},
    )  # fmt: skip
    route, required = plain.routes[0], strict.routes[0]
    assert read_keys(headers(), route) == Keys(None, None)
    assert read_keys(headers(Idempotency_Key="k1", X_Callback_Data="ref"), route) == Keys(
        "k1", "ref"
    )
    assert read_keys(headers(Idempotency_Key='"k1"'), route) == Keys("k1", None)
    missing = read_keys(headers(), required)
    assert isinstance(missing, Refused)
    assert missing.kind == "idempotency_key_missing"
    bad = read_keys(headers(Idempotency_Key="a b"), route)
    assert isinstance(bad, Refused)
    assert (bad.kind, "a b" in bad.detail) == ("idempotency_key_invalid", False)
    data = read_keys(headers(X_Callback_Data="x" * 1025), route)
    assert isinstance(data, Refused)
    assert data.kind == "callback_data_invalid"


def test_require_idempotency_key_needs_a_ledger() -> None:
    with pytest.raises(ConfigError) as info:
        make_config(
            {"name": "m", "path_prefix": "/m", "upstream": "http://gw.test/",
             "require_idempotency_key": True}
        )  # fmt: skip
    assert info.value.errors == [
        "<test>: routes[0].require_idempotency_key: needs a ledger (the top-level ledger: "
        "section) to keep the keys in"
    ]


def test_a_client_webhook_needs_a_ledger() -> None:
    route = {"name": "m", "path_prefix": "/m", "upstream": "http://gw.test/"}
    clients = [{"name": "checkout", "key": "${CHECKOUT_KEY}", "webhook": "http://app.test/ev"}]
    with pytest.raises(ConfigError) as info:
        make_config(route, clients=clients)
    assert info.value.errors == [
        "<test>: clients[0].webhook: needs a ledger (the top-level ledger: section): a report "
        "finds its client through the send the ledger remembers"
    ]
    assert make_config(route, clients=clients, ledger={}).clients[0].webhook == "http://app.test/ev"


def test_a_key_stays_in_flight_as_long_as_its_send_can_take() -> None:
    """A marker that expired under a send still waiting in the rate limit's queue would let
    a resend through: the queue's max_wait counts too."""
    from proxy.ledger import in_flight_ttl
    from proxy.server.idempotency import _longest_send

    base = {"name": "m", "path_prefix": "/m", "upstream": "http://gw.test/",
            "timeout": {"connect": 2, "total": 30}}  # fmt: skip
    plain = make_config(base).routes[0]
    paced = make_config({**base, "rate_limit": {"per_second": 5, "max_wait": 20}}).routes[0]
    assert _longest_send(plain) == 30
    assert _longest_send(paced) == 50
    assert in_flight_ttl(_longest_send(paced)) > 50
