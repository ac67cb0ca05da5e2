"""The simulator's codes, vendor names, request builder and settings (proxy/sim/codes.py,
outcome.py, mm7.submit_request, settings.py): wrong names fail loudly, options take effect."""

import ast
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from proxy.cli import build_parser
from proxy.sim import create_sim_app, settings_from_args
from proxy.sim.codes import load_sim_codes
from proxy.sim.mm7 import MM7_NS, parse_request, submit_request
from proxy.sim.outcome import Mix, MixEntry, MixError, parse_mix
from proxy.sim.settings import parse_listen

Client = TestClient[Any, Any]
ROOT = Path(__file__).resolve().parent.parent


def test_a_misspelled_vendor_fails_loudly() -> None:
    codes = load_sim_codes()
    assert "2002" in codes.table("mm7")
    assert "606" in codes.table("moms")
    with pytest.raises(AssertionError):
        codes.table("mms")  # type: ignore[arg-type]
    mix = Mix(mm7=(MixEntry(1.0, code="1000"),))
    assert mix.entries("mm7") == (MixEntry(1.0, code="1000"),)
    with pytest.raises(AssertionError):
        mix.entries("MoMS")  # type: ignore[arg-type]


def test_a_mix_names_only_known_vendors() -> None:
    with pytest.raises(MixError, match="mms: unknown key"):
        parse_mix({"mms": []}, load_sim_codes())


def test_submit_request_is_a_submit_the_relay_reads() -> None:
    body = submit_request("+15550002002", transaction_id="t<&>1")
    assert "'" not in body  # the demo guide single-quotes it for the shell
    assert MM7_NS in body
    request = parse_request(body.encode(), "text/xml")
    assert (request.kind, request.transaction_id, request.recipient) == (
        "SubmitReq",
        "t<&>1",
        "+15550002002",
    )
    assert submit_request("+1").count("demo-1") == 1  # the default TransactionID


def test_parse_listen_names_the_option() -> None:
    with pytest.raises(ValueError, match=r"^--sim-listen: expected HOST:PORT"):
        parse_listen("nowhere", option="--sim-listen")
    assert parse_listen("[::1]:9000") == ("::1", 9000)


async def test_simulate_credentials_reach_the_app(
    aiohttp_client: Callable[..., Awaitable[Client]],
) -> None:
    """`gateway-proxy simulate --client-id X --token Y` makes the MoMS API check them."""
    args = build_parser().parse_args(["simulate", "--client-id", "cid-9", "--token", "tok-9"])
    client = await aiohttp_client(create_sim_app(settings_from_args(args)))

    async def ping(**params: str) -> dict[str, Any]:
        async with client.get("/moms/system.ping", params={**params, "format": "json"}) as r:
            assert r.status == 200
            return dict(json.loads(await r.read())["response"])

    assert (await ping(client_id="cid-9", token="tok-9"))["code"] == "1"
    for wrong in (
        {"client_id": "cid-9", "token": "nope"},
        {"client_id": "x", "token": "tok-9"},
        {},
    ):
        answer = await ping(**wrong)
        assert (answer["code"], answer["message"]) == ("0", "Mogreet: 403 Forbidden")


@pytest.mark.parametrize("module", ["reply", "codes", "outcome", "mm7", "moms", "settings"])
def test_the_sans_io_modules_do_not_import_aiohttp(module: str) -> None:
    """Only faults.py and app.py (the aiohttp edge) may; the rest is tested with plain data."""
    tree = ast.parse((ROOT / "proxy" / "sim" / f"{module}.py").read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    assert not {name for name in imported if name.split(".")[0] == "aiohttp"}
    assert not imported & {"proxy.sim.app", "proxy.sim.faults"}
