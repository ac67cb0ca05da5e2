"""The catalog maps every vendor code as the issue's tables say (tests/ holds its own copy)."""

import re
from pathlib import Path

import pytest
import yaml

from proxy.codes.catalog import Catalog, CatalogError, load_catalog, parse_catalog

# The product's tables, transcribed independently of config/codes.yaml.
CANONICAL = {
    "OK": (200, False, "success"),
    "PARTIAL_SUCCESS": (200, False, "success"),
    "INVALID_REQUEST": (400, False, "client"),
    "MISSING_PARAMETER": (400, False, "client"),
    "INVALID_PARAMETER": (400, False, "client"),
    "INVALID_ADDRESS": (400, False, "client"),
    "NOT_FOUND": (404, False, "client"),
    "UNKNOWN_METHOD": (404, False, "client"),
    "ROUTE_NOT_FOUND": (404, False, "client"),
    "NOT_POSSIBLE": (409, False, "client"),
    "REQUEST_TOO_LARGE": (413, False, "client"),
    "UNSUPPORTED_OPERATION": (501, False, "client"),
    "UNAUTHENTICATED": (401, False, "auth"),
    "PERMISSION_DENIED": (403, False, "auth"),
    "UNKNOWN_RECIPIENT": (422, False, "recipient"),
    "RECIPIENT_OPTED_OUT": (422, False, "recipient"),
    "RECIPIENT_BLOCKED": (422, False, "recipient"),
    "RECIPIENT_UNSUPPORTED": (422, False, "recipient"),
    "INVALID_CONTENT": (422, False, "content"),
    "UNSUPPORTED_MEDIA_TYPE": (415, False, "content"),
    "CONTENT_TOO_LARGE": (413, False, "content"),
    "REJECTED": (422, False, "upstream"),
    "RATE_LIMITED": (429, True, "upstream"),
    "UPSTREAM_ERROR": (502, False, "upstream"),
    "INVALID_UPSTREAM_RESPONSE": (502, False, "upstream"),
    "UNKNOWN_CODE": (502, False, "upstream"),
    "UPSTREAM_UNAVAILABLE": (503, True, "upstream"),
    "CONNECTION_ERROR": (502, True, "network"),
    "CONNECTION_LOST": (502, False, "network"),
    "TIMEOUT": (504, False, "network"),
}

MM7 = {
    "CONNECTION_ERROR": "0",
    "OK": "1000",
    "PARTIAL_SUCCESS": "1100",
    "INVALID_REQUEST": "2000 2007 4004",
    "PERMISSION_DENIED": "2001 4007 4008",
    "INVALID_ADDRESS": "2002",
    "UNKNOWN_RECIPIENT": "2003",
    "INVALID_CONTENT": "2004",
    "NOT_FOUND": "2005 2006 2009",
    "UNAUTHENTICATED": "2008 4001",
    "UPSTREAM_ERROR": "3000 4000 4005",
    "NOT_POSSIBLE": "3001",
    "REJECTED": "3002",
    "UNSUPPORTED_OPERATION": "3003 4002 4003",
    "RECIPIENT_UNSUPPORTED": "3004",
    "UPSTREAM_UNAVAILABLE": "4006",
}
MOMS = {
    "OK": "1",
    "REJECTED": "0 400 600 601",
    "PERMISSION_DENIED": "403",
    "UNKNOWN_METHOD": "404",
    "MISSING_PARAMETER": "430 433 435 437 438 439 443",
    "INVALID_PARAMETER": "431 440 444 445 463",
    "NOT_FOUND": "432",
    "INVALID_ADDRESS": "434 436",
    "INVALID_REQUEST": "460",
    "CONTENT_TOO_LARGE": "461",
    "UNSUPPORTED_MEDIA_TYPE": "462",
    "UPSTREAM_ERROR": "500",
    "RECIPIENT_UNSUPPORTED": "602 603 605",
    "RECIPIENT_BLOCKED": "604",
    "RECIPIENT_OPTED_OUT": "606",
    "INVALID_CONTENT": "607",
}
# The vendor pages' code tables, transcribed into the repository (tests read nothing else).
DATA = Path(__file__).resolve().parent / "data"
PAGES = [("mm7", "mm7-status-codes"), ("moms", "moms-error-codes")]
# Codes the catalog holds beyond a page's list: MoMS answers "0" for several failures
# (its page shows one only in a sample answer), and the message tells them apart.
NOT_LISTED = {"mm7": set(), "moms": {"0"}}
# Where the catalog's text is longer than the page's: the page shortens 3GPP TS 23.140's
# "Multimedia content refused" to "Multimedia".
EXTENDED = {("mm7", "2004")}


def _pairs(table: dict[str, str]) -> list[tuple[str, str]]:
    return [(code, canonical) for canonical, codes in table.items() for code in codes.split()]


def vendor_page(name: str) -> dict[str, str]:
    """Code -> text, from ``tests/data/<name>.tsv``: a ``code<TAB>text`` header, then rows."""
    text = (DATA / f"{name}.tsv").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines[0] == "code\ttext", f"{name}.tsv: unexpected header {lines[0]!r}"
    rows = [line.split("\t") for line in lines[1:]]
    table = dict(rows)
    assert len(table) == len(rows), f"{name}.tsv: a code is listed twice"
    assert all(code.isdigit() and text for code, text in table.items()), name
    return table


def _sentences(text: str) -> list[str]:
    """The sentences of ``text`` as lower-case words: case, punctuation and quotes aside."""
    sentences = re.split(r"(?<=[.!?])\s+", text.strip())
    words = [" ".join(re.findall(r"[a-z0-9_]+", s.casefold())) for s in sentences]
    return [w for w in words if w]


def _page_texts() -> list[tuple[str, str, str]]:
    return [
        (vendor, code, text) for vendor, page in PAGES for code, text in vendor_page(page).items()
    ]


@pytest.mark.parametrize(("name", "expected"), CANONICAL.items())
def test_canonical_codes(catalog: Catalog, name: str, expected: tuple[int, bool, str]) -> None:
    code = catalog[name]
    assert (code.status, code.retryable, code.category) == expected
    assert code.title
    assert code.type == f"urn:gateway-proxy:problem:{name}"


@pytest.mark.parametrize(("code", "canonical"), _pairs(MM7))
def test_mm7_code_maps(catalog: Catalog, code: str, canonical: str) -> None:
    entry = catalog.vendors["mm7"].codes[code]
    assert entry.canonical.name == canonical
    assert entry.text, "StatusText is filled from the catalog when a relay omits it"


@pytest.mark.parametrize(("code", "canonical"), _pairs(MOMS))
def test_moms_code_maps(catalog: Catalog, code: str, canonical: str) -> None:
    assert catalog.vendors["moms"].codes[code].canonical.name == canonical


@pytest.mark.parametrize(("vendor", "page", "table"), [(*PAGES[0], MM7), (*PAGES[1], MOMS)])
def test_every_code_on_the_vendor_page_is_in_the_catalog(
    catalog: Catalog, vendor: str, page: str, table: dict[str, str]
) -> None:
    documented = set(vendor_page(page))
    assert documented, "the vendor page's table is empty"
    ours = set(catalog.vendors[vendor].codes)
    assert documented <= ours, f"missing from the catalog: {sorted(documented - ours)}"
    assert ours == documented | NOT_LISTED[vendor], f"not on the page: {sorted(ours - documented)}"
    assert ours == {c for c, _ in _pairs(table)}


@pytest.mark.parametrize(("vendor", "code", "page_text"), _page_texts())
def test_the_catalog_text_agrees_with_the_vendor_page(
    catalog: Catalog, vendor: str, code: str, page_text: str
) -> None:
    """Each sentence of the catalog's text is one of the page's (it may leave some out)."""
    ours = _sentences(catalog.vendors[vendor].codes[code].text)
    theirs = _sentences(page_text)
    assert ours, "the catalog has no text for this code"
    if (vendor, code) in EXTENDED:
        assert " ".join(ours).startswith(" ".join(theirs) + " ")
    else:
        assert all(sentence in theirs for sentence in ours), (ours, theirs)


def test_moms_zero_has_the_three_message_rules(catalog: Catalog) -> None:
    zero = catalog.vendors["moms"].codes["0"]
    assert zero.resolve("Mogreet: 403 Forbidden").name == "PERMISSION_DENIED"
    assert zero.resolve("Mogreet: Required Parameter(s) Missing").name == "MISSING_PARAMETER"
    assert zero.resolve("invalid number").name == "INVALID_ADDRESS"
    assert zero.resolve("something else").name == "REJECTED"
    assert zero.resolve(None).name == "REJECTED"


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (401, "UNAUTHENTICATED"), (403, "PERMISSION_DENIED"), (404, "NOT_FOUND"),
        (408, "TIMEOUT"), (504, "TIMEOUT"), (413, "CONTENT_TOO_LARGE"),
        (415, "UNSUPPORTED_MEDIA_TYPE"), (429, "RATE_LIMITED"), (500, "UPSTREAM_UNAVAILABLE"),
        (502, "UPSTREAM_UNAVAILABLE"), (503, "UPSTREAM_UNAVAILABLE"), (400, "INVALID_REQUEST"),
        (418, "INVALID_REQUEST"), (505, "UPSTREAM_ERROR"), (599, "UPSTREAM_ERROR"),
        (200, "INVALID_UPSTREAM_RESPONSE"), (204, "INVALID_UPSTREAM_RESPONSE"),
    ],
)  # fmt: skip
def test_http_fallbacks(catalog: Catalog, status: int, expected: str) -> None:
    assert catalog.for_http_status(status).name == expected


def test_transport_kinds(catalog: Catalog) -> None:
    kinds = {k: v.name for k, v in catalog.transport.items()}
    assert kinds["connect"] == "CONNECTION_ERROR"
    assert kinds["timeout"] == "TIMEOUT"
    assert kinds["connection_lost"] == "CONNECTION_LOST"
    assert kinds["too_large"] == "INVALID_UPSTREAM_RESPONSE"
    assert kinds["request_too_large"] == "REQUEST_TOO_LARGE"


def test_a_maintainer_can_change_a_code_in_yaml_alone(tmp_path: Path) -> None:
    data = yaml.safe_load((Path(__file__).parents[1] / "config" / "codes.yaml").read_text())
    data["vendors"]["mm7"]["codes"]["2002"]["canonical"] = "UNKNOWN_RECIPIENT"
    path = tmp_path / "codes.yaml"
    path.write_text(yaml.safe_dump(data))
    assert load_catalog(path).vendors["mm7"].codes["2002"].canonical.name == "UNKNOWN_RECIPIENT"


def test_catalog_errors_name_the_key() -> None:
    data = yaml.safe_load((Path(__file__).parents[1] / "config" / "codes.yaml").read_text())
    data["vendors"]["moms"]["codes"]["606"]["canonical"] = "NO_SUCH_CODE"
    data["vendors"]["moms"]["codes"]["0"]["rules"][0]["match"] = "("
    data["canonical"]["OK"]["category"] = "great"
    del data["transport"]["timeout"]
    with pytest.raises(CatalogError) as info:
        parse_catalog(data, source="codes.yaml")
    text = str(info.value)
    assert "codes.yaml: vendors.moms.codes.606.canonical: unknown canonical code" in text
    assert "vendors.moms.codes.0.rules[0]" in text
    assert "canonical.OK.category" in text
    assert "transport.timeout: is required" in text


def test_unreadable_catalog(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="cannot read"):
        load_catalog(tmp_path / "missing.yaml")
