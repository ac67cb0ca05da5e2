"""The simulator's codes, vendor names, request builder and settings (proxy/tools/sim/codes.py,
datafile.py, outcome.py, mm7.submit_request, settings.py): its table is its own, strictly
checked and in step with the catalog; wrong names fail loudly, options take effect."""

import ast
import json
import re
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient

from proxy.cli import build_parser
from proxy.codes.catalog import load_catalog
from proxy.tools.sim import create_sim_app, settings_from_args
from proxy.tools.sim.codes import (
    SIM_VENDORS,
    CodesError,
    Mm7Layout,
    SimVendor,
    builtin_path,
    load_sim_codes,
    parse_sim_codes,
)
from proxy.tools.sim.mm7 import MM7_NS, parse_request, submit_request
from proxy.tools.sim.outcome import Mix, MixEntry, MixError, parse_mix
from proxy.tools.sim.settings import parse_listen

Client = TestClient[Any, Any]
ROOT = Path(__file__).resolve().parent.parent
SIM_DIR = ROOT / "proxy" / "tools" / "sim"
#: What the simulator must not use: the proxy's parsers, catalog and classifier, and its
#: inbound side (the relay's delivery reports are the simulator's own).
# The proxy's parsers, its codes (catalog, classifier, envelope) and its inbound side.
FORBIDDEN_MODULES = ("proxy.vendors", "proxy.codes", "proxy.inbound")
_CATALOG_FILE = re.compile(r"(?<!vendor_)codes\.yaml")


def builtin_data() -> Any:
    return yaml.safe_load(builtin_path().read_text(encoding="utf-8"))


# --- the table: the simulator's own, in step with the catalog ----------------------------
@pytest.mark.parametrize("vendor", SIM_VENDORS)
def test_the_simulator_and_the_catalog_know_the_same_codes(vendor: SimVendor) -> None:
    """Both tables are written independently; they must still list the same vendor codes."""
    sim = set(load_sim_codes().table(vendor))
    catalog = set(load_catalog().vendors[vendor].codes)
    assert sim - catalog == set(), f"{vendor}: only the simulator knows these"
    assert catalog - sim == set(), f"{vendor}: only the catalog knows these"


def test_the_table_ships_inside_the_package() -> None:
    """proxy/tools/sim/vendor_codes.yaml: hatchling puts it in the wheel with the package."""
    assert builtin_path() == SIM_DIR / "vendor_codes.yaml"
    assert builtin_path().is_file()


def test_mm7_layouts_keep_the_relays_behaviour() -> None:
    """1xxx: HTTP 200 with the Rsp; 2xxx: a Client Fault; the rest a Server Fault (HTTP 500)."""
    codes = load_sim_codes()
    for code in codes.mm7:
        layout = codes.layout(code)
        if len(code) == 4 and code.startswith("1"):
            assert layout == Mm7Layout(200, "rsp"), code
        elif len(code) == 4 and code.startswith("2"):
            assert layout == Mm7Layout(500, "fault", "Client"), code
        else:
            assert layout == Mm7Layout(500, "fault", "Server"), code


@pytest.mark.parametrize(
    ("code", "layout"),
    [
        ("1999", Mm7Layout(200, "rsp")),
        ("2099", Mm7Layout(500, "fault", "Client")),
        ("4099", Mm7Layout(500, "fault", "Server")),
        ("7", Mm7Layout(500, "fault", "Server")),
        ("12345", Mm7Layout(500, "fault", "Server")),
    ],
)
def test_codes_outside_the_table_get_their_class_layout(code: str, layout: Mm7Layout) -> None:
    assert load_sim_codes().layout(code) == layout


def bad(data: Any) -> list[str]:
    with pytest.raises(CodesError) as info:
        parse_sim_codes(data, source="t.yaml")
    return info.value.errors


def with_entry(vendor: str, code: Any, entry: Any) -> Any:
    data = builtin_data()
    data[vendor]["codes"][code] = entry
    return data


@pytest.mark.parametrize(
    ("data", "line"),
    [
        ({**builtin_data(), "colour": 1}, "t.yaml: colour: unknown key (expected one of mm7, moms, version)"),
        ({**builtin_data(), "version": 2}, "t.yaml: version: 2: only version 1 is known"),
        ({"version": 1, "mm7": builtin_data()["mm7"]}, "t.yaml: moms: is required"),
        (with_entry("mm7", "1000", {"text": "ok", "http": 200, "reply": "rsp", "colour": 1}),
         't.yaml: mm7.codes."1000".colour: unknown key'),
        (with_entry("mm7", "1000", {"text": "ok", "http": 200, "reply": "rsp", "faultcode": "Client"}),
         't.yaml: mm7.codes."1000".faultcode: only a fault has a faultcode'),
        (with_entry("mm7", "2002", {"text": "x", "http": 500, "reply": "fault"}),
         't.yaml: mm7.codes."2002".faultcode: must be one of Client, Server, got None'),
        (with_entry("mm7", "2002", {"text": "x", "http": 500, "reply": "fault", "faultcode": "Sender"}),
         't.yaml: mm7.codes."2002".faultcode: must be one of Client, Server, got \'Sender\''),
        (with_entry("mm7", "2002", {"text": "x", "http": 700, "reply": "fault", "faultcode": "Client"}),
         't.yaml: mm7.codes."2002".http: must be an integer 200..599'),
        (with_entry("mm7", "2002", {"text": "x", "http": 500, "reply": "soap", "faultcode": "Client"}),
         't.yaml: mm7.codes."2002".reply: must be one of rsp, fault, got \'soap\''),
        (with_entry("mm7", "2002", {"http": 500, "reply": "fault", "faultcode": "Client"}),
         't.yaml: mm7.codes."2002".text: is required'),
        (with_entry("mm7", "02002", {"text": "x", "http": 500, "reply": "fault", "faultcode": "Client"}),
         't.yaml: mm7.codes."02002": a code is a number without leading zeros'),
        (with_entry("moms", 606, {"text": "x"}), "t.yaml: moms.codes: key 606 must be a string"),
        (with_entry("moms", "606", {"text": ""}), 't.yaml: moms.codes."606".text: must be a non-empty string'),
        (with_entry("moms", "606", {"text": "x", "http": 200}), 't.yaml: moms.codes."606".http: unknown key'),
        (with_entry("moms", "606", "User opted out."), 't.yaml: moms.codes."606": must be a mapping'),
        ({**builtin_data(), "moms": {"codes": {}}}, "t.yaml: moms.codes: must list at least one code"),
        ({**builtin_data(), "mm7": {**builtin_data()["mm7"], "unlisted": {"1": {"http": 200, "reply": "rsp"}}}},
         "t.yaml: mm7.unlisted.default: is required"),
        ({**builtin_data(), "mm7": {**builtin_data()["mm7"], "unlisted": {"x": {}, "default": {"http": 500, "reply": "fault", "faultcode": "Server"}}}},
         "t.yaml: mm7.unlisted.x: unknown key"),
        ([1, 2], "t.yaml: (root): must be a mapping"),
    ],
)  # fmt: skip
def test_a_bad_table_is_refused_with_file_key_reason(data: Any, line: str) -> None:
    errors = bad(data)
    assert any(error.startswith(line) for error in errors), errors


def test_every_problem_of_a_table_is_reported_at_once() -> None:
    data = with_entry("mm7", "2002", {"text": "", "http": 0, "reply": "fault"})
    data["moms"]["codes"]["606"] = {"txt": "x"}
    errors = bad(data)
    for key in ('mm7.codes."2002".text', 'mm7.codes."2002".http', 'mm7.codes."2002".faultcode',
                'moms.codes."606".txt', 'moms.codes."606".text'):  # fmt: skip
        assert any(e.startswith(f"t.yaml: {key}: ") for e in errors), (key, errors)


def test_an_unreadable_table_says_so(tmp_path: Path) -> None:
    with pytest.raises(CodesError, match=r"missing\.yaml: cannot read"):
        load_sim_codes(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("mm7: [unclosed", encoding="utf-8")
    with pytest.raises(CodesError, match=r"broken\.yaml: not valid YAML"):
        load_sim_codes(broken)


def test_a_table_file_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "codes.yaml"
    path.write_text(builtin_path().read_text(encoding="utf-8"), encoding="utf-8")
    assert load_sim_codes(path) == load_sim_codes()


# --- independence: nothing shared with what the simulator checks -------------------------
def sim_modules() -> list[Path]:
    modules = sorted(SIM_DIR.glob("*.py"))
    assert {p.name for p in modules} >= {
        "app.py", "callback.py", "codes.py", "mm7.py", "moms.py", "report.py",
    }  # fmt: skip
    return modules


def _docstrings(tree: ast.AST) -> set[int]:
    """The ids of the docstring nodes of ``tree`` (they may name what is not used)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def borrowed(source: str, package: str = "proxy.tools.sim") -> Iterator[str]:
    """What in ``source`` (a module of ``package``) uses the proxy's parsers, catalog,
    classifier or catalog file: imports (relative ones resolved), and string constants
    outside docstrings (``importlib.import_module("proxy.codes.catalog")``, ``"codes.yaml"``)."""
    tree = ast.parse(source)
    docstrings = _docstrings(tree)
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
        ):
            if _CATALOG_FILE.search(node.value):
                yield f"mentions {node.value!r}"
            names = [node.value]
        for name in names:
            if any(name == m or name.startswith(m + ".") for m in FORBIDDEN_MODULES):
                yield f"uses {name}"


@pytest.mark.parametrize("path", sim_modules(), ids=lambda p: p.name)
def test_the_simulator_shares_no_code_with_the_proxy(path: Path) -> None:
    """No module of proxy/tools/sim imports proxy.vendors, proxy.codes or proxy.inbound, or
    names the catalog file: a bug there must not pass on both sides of a test."""
    assert list(borrowed(path.read_text(encoding="utf-8"))) == []


def test_importing_the_simulator_loads_none_of_them() -> None:
    """Not even indirectly: a fresh interpreter imports every simulator module."""
    names = [f"proxy.tools.sim.{path.stem}" for path in sim_modules() if path.stem != "__init__"]
    code = (
        f"import importlib, sys\nfor name in {names!r}:\n    importlib.import_module(name)\n"
        "print('\\n'.join(sorted(sys.modules)))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    assert [
        m for m in loaded if any(m == f or m.startswith(f + ".") for f in FORBIDDEN_MODULES)
    ] == []


def test_the_sim_data_file_does_not_point_at_the_catalog() -> None:
    """Its comments may say where it does not come from; no value names the catalog file."""
    values = json.dumps(builtin_data())
    assert not _CATALOG_FILE.search(values)


@pytest.mark.parametrize(
    ("source", "finding"),
    [
        ("from proxy.vendors import parse_reply", "uses proxy.vendors"),
        ("from proxy.vendors.base import VENDOR_NAMES", "uses proxy.vendors.base"),
        ("import proxy.codes.catalog as c", "uses proxy.codes.catalog"),
        ("from proxy.codes import classify", "uses proxy.codes.classify"),
        ("from ...codes import catalog", "uses proxy.codes.catalog"),
        ("from ...vendors.safexml import parse_xml", "uses proxy.vendors.safexml"),
        ("from proxy.inbound import parse_callback", "uses proxy.inbound"),
        ("from proxy.inbound.answer import build_answer", "uses proxy.inbound.answer"),
        ("from ...inbound import handler", "uses proxy.inbound.handler"),
        (
            "import importlib\nm = importlib.import_module('proxy.codes.catalog')",
            "uses proxy.codes.catalog",
        ),
        ("PATH = 'config/codes.yaml'", "mentions 'config/codes.yaml'"),
    ],
)
def test_the_independence_check_catches_a_borrowing(source: str, finding: str) -> None:
    assert finding in list(borrowed(source))


def test_the_independence_check_allows_the_simulators_own_names() -> None:
    source = (
        '"""Not from proxy.codes.catalog, never config/codes.yaml."""\n'
        "from proxy.tools.sim.codes import SimVendor\nTABLE = 'vendor_codes.yaml'\n"
    )
    assert list(borrowed(source)) == []


# --- names, builders, settings -----------------------------------------------------------


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
    with pytest.raises(ValueError, match=r"^--sim-listen: must be HOST:PORT"):
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


@pytest.mark.parametrize(
    "module", ["reply", "datafile", "codes", "outcome", "mm7_request", "mm7", "moms", "settings"]
)
def test_the_sans_io_modules_do_not_import_aiohttp(module: str) -> None:
    """Only faults.py and app.py (the aiohttp edge) may; the rest is tested with plain data."""
    tree = ast.parse(
        (ROOT / "proxy" / "tools" / "sim" / f"{module}.py").read_text(encoding="utf-8")
    )
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    assert not {name for name in imported if name.split(".")[0] == "aiohttp"}
    assert not imported & {"proxy.tools.sim.app", "proxy.tools.sim.faults"}
