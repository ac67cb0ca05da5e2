"""The vendor codes the simulator can produce, read from the proxy's catalog.

The simulator answers with exactly the codes (and status texts) the proxy classifies, so
the two can never drift apart: ``load_sim_codes`` reads the catalog once (the built-in
``config/codes.yaml`` by default) and keeps, per vendor, code → status text. A broken
catalog raises ``proxy.catalog.CatalogError``.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import assert_never

from proxy.catalog import Catalog, load_catalog
from proxy.vendors.base import VendorName


@dataclass(frozen=True, slots=True)
class SimCodes:
    """Code → the vendor's status text, for each vendor (``"0"``, ``"1000"``, ``"606"``...)."""

    mm7: Mapping[str, str]
    moms: Mapping[str, str]

    def table(self, vendor: VendorName) -> Mapping[str, str]:
        """The codes of ``vendor``. Any other name fails loudly (``AssertionError``)."""
        match vendor:
            case "mm7":
                return self.mm7
            case "moms":
                return self.moms
            case _:
                assert_never(vendor)

    def text(self, vendor: VendorName, code: str) -> str:
        """The status text for ``code``; a code outside the catalog gets a neutral text."""
        return self.table(vendor).get(code) or "Simulated status"


def sim_codes_from_catalog(catalog: Catalog) -> SimCodes:
    """Index an already loaded catalog."""
    return SimCodes(
        mm7={code: entry.text for code, entry in catalog.vendors["mm7"].codes.items()},
        moms={code: entry.text for code, entry in catalog.vendors["moms"].codes.items()},
    )


def load_sim_codes(path: str | os.PathLike[str] | None = None) -> SimCodes:
    """Load the catalog at ``path`` (default: the built-in one) and index its codes."""
    return sim_codes_from_catalog(load_catalog(path))


__all__ = ["SimCodes", "load_sim_codes", "sim_codes_from_catalog"]
