"""Choosing the outcome (proxy/tools/sim/outcome.py): the mix file, its draws, recipients."""

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import yaml

from proxy.tools.sim import SimSettings, create_sim_app
from proxy.tools.sim.codes import SimVendor, load_sim_codes
from proxy.tools.sim.outcome import MixError, load_mix, parse_mix, recipient_code
from tests.test_sim_moms import SEND, Client, call_json

ROOT = Path(__file__).resolve().parent.parent


async def codes_drawn(client: Client, n: int) -> list[str]:
    drawn = []
    for _ in range(n):
        _, response = await call_json(client, "/moms/transaction.send", SEND)
        drawn.append(response["code"])
    return drawn


async def test_seeded_mix_repeats_exactly(
    aiohttp_client: Callable[..., Awaitable[Client]], tmp_path: Path
) -> None:
    mix = tmp_path / "mix.yaml"
    mix.write_text('moms:\n  - {code: "1", weight: 1}\n  - {code: "606", weight: 1}\n')
    first = await aiohttp_client(create_sim_app(SimSettings(mix_path=mix, seed=7)))
    second = await aiohttp_client(create_sim_app(SimSettings(mix_path=mix, seed=7)))
    a, b = await codes_drawn(first, 40), await codes_drawn(second, 40)
    assert a == b
    assert set(a) == {"1", "606"}


async def test_mix_is_only_used_when_nothing_else_decides(
    aiohttp_client: Callable[..., Awaitable[Client]], tmp_path: Path
) -> None:
    mix = tmp_path / "mix.yaml"
    mix.write_text('moms:\n  - {code: "500"}\n')
    client = await aiohttp_client(create_sim_app(SimSettings(mix_path=mix)))
    assert await codes_drawn(client, 2) == ["500", "500"]
    _, response = await call_json(client, "/moms/transaction.send", {**SEND, "to": "15550000436"})
    assert response["code"] == "436"
    _, response = await call_json(client, "/moms/system.ping", **{"X-Sim-Code": "1"})
    assert response["code"] == "1"


def test_shipped_mix_is_valid() -> None:
    mix = parse_mix(
        yaml.safe_load((ROOT / "config" / "sim-mix.yaml").read_text()),
        load_sim_codes(),
    )
    assert mix.mm7
    assert mix.moms


def test_bad_mix_reports_every_problem() -> None:
    data = {
        "mm7": [{"code": "9999"}, {"fault": "explode"}, {"code": "1000", "weight": -1},
                {"code": "1000", "fault": "hang"}, "x"],
        "sms": [],
    }  # fmt: skip
    with pytest.raises(MixError) as info:
        parse_mix(data, load_sim_codes(), source="mix.yaml")
    text = str(info.value)
    for key in ("mm7[0].code", "mm7[1].fault", "mm7[2].weight", "mm7[3]", "mm7[4]", "sms"):
        assert f"mix.yaml: {key}" in text


def test_bad_mix_file_stops_the_app(tmp_path: Path) -> None:
    mix = tmp_path / "mix.yaml"
    mix.write_text("mm7: {code: 1}\n")
    with pytest.raises(MixError):
        create_sim_app(SimSettings(mix_path=mix))


@pytest.mark.parametrize(
    ("vendor", "recipient", "code"),
    [
        ("mm7", "+15550002002", "2002"),
        ("mm7", "+15550000000", "0"),
        ("mm7", "+15550009999", None),
        ("moms", "15550000436", "436"),
        ("moms", "15550000001", "1"),
        ("moms", "+1 (555) 000-0606", "606"),
        ("moms", "nodigits", None),
        ("moms", None, None),
    ],
)
def test_recipient_code(vendor: SimVendor, recipient: str | None, code: str | None) -> None:
    assert recipient_code(load_sim_codes(), vendor, recipient) == code


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (None, "cannot read"),
        ("mm7: [unclosed", "not valid YAML: line 1"),
        ("- just a list\n", "must be a mapping"),
        ("moms: {code: '1'}\n", "must be a list"),
        ("moms:\n  - [1]\n", "must be a mapping"),
        ("moms:\n  - {code: '1', colour: red}\n", r"moms\[0\]\.colour: unknown key"),
    ],
)
def test_mix_file_errors(tmp_path: Path, text: str | None, reason: str) -> None:
    path = tmp_path / "mix.yaml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(MixError, match=reason):
        load_mix(path, load_sim_codes())
