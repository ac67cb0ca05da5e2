"""Render the catalog for people: a terminal table, JSON, or the README's Markdown.

The README's code table is ``gateway-proxy codes --format markdown``; a test keeps
them in sync, so the catalog file stays the single source.
"""

from collections.abc import Iterator
from typing import Any, Literal

import orjson

from proxy.codes.catalog import Catalog
from proxy.vendors.base import VENDOR_NAMES

Format = Literal["table", "json", "markdown"]


def catalog_as_dict(catalog: Catalog, vendor: str | None = None) -> dict[str, Any]:
    """A JSON-ready view of the catalog (optionally one vendor only)."""
    vendors = [vendor] if vendor else list(VENDOR_NAMES)
    return {
        "canonical": [
            {
                "code": c.name,
                "status": c.status,
                "retryable": c.retryable,
                "category": c.category,
                "title": c.title,
                "type": c.type,
            }
            for c in catalog.canonical.values()
        ],
        "vendors": {
            name: [
                {
                    "code": v.code,
                    "canonical": v.canonical.name,
                    "text": v.text,
                    "rules": [
                        {"match": r.pattern.pattern, "canonical": r.canonical.name} for r in v.rules
                    ],
                }
                for v in catalog.vendors[name].codes.values()
            ]
            for name in vendors
        },
    }


def render_codes(catalog: Catalog, *, vendor: str | None = None, fmt: Format = "table") -> str:
    """The catalog as text in ``fmt``."""
    data = catalog_as_dict(catalog, vendor)
    if fmt == "json":
        return orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n"
    return "\n".join(_rows(data, markdown=fmt == "markdown")) + "\n"


def _rows(data: dict[str, Any], *, markdown: bool) -> Iterator[str]:
    canonical = [
        [c["code"], str(c["status"]), "yes" if c["retryable"] else "no", c["category"], c["title"]]
        for c in data["canonical"]
    ]
    yield from _table(["code", "HTTP", "retryable", "category", "title"], canonical, markdown)
    for vendor, codes in data["vendors"].items():
        yield ""
        rows = []
        for entry in codes:
            meaning = entry["canonical"]
            if entry["rules"]:
                rules = "; ".join(f"/{r['match']}/ → {r['canonical']}" for r in entry["rules"])
                meaning += f" (message rules: {rules})"
            rows.append([entry["code"], meaning, entry["text"]])
        yield from _table([f"{vendor} code", "canonical", "vendor text"], rows, markdown)


def _table(header: list[str], rows: list[list[str]], markdown: bool) -> Iterator[str]:
    if markdown:
        yield "| " + " | ".join(header) + " |"
        yield "|" + "|".join("---" for _ in header) + "|"
        for row in rows:
            yield "| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |"
        return
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, ["-" * w for w in widths], *rows]:
        yield "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
