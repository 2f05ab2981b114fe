"""The product catalog: what each NDC is, in the units DEA reports in.

CSV with a header row. Columns: ``ndc, product, drug_code, family, schedule,
dosage_units_per_package, base_mg_per_unit, mme_factor``. ``schedule`` is one of
1, 2, 2N, 3, 3N, 4, 5 ("N" = non-narcotic half of II or III). ``mme_factor`` is
morphine milligram equivalents per mg of base (0 for non-opioids).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from connectors.identifiers import normalize_ndc

__all__ = ["Product", "Catalog", "CatalogError", "SCHEDULES"]

SCHEDULES = ("1", "2", "2N", "3", "3N", "4", "5")
_COLUMNS = (
    "ndc",
    "product",
    "drug_code",
    "family",
    "schedule",
    "dosage_units_per_package",
    "base_mg_per_unit",
    "mme_factor",
)


class CatalogError(ValueError):
    """The catalog file is unusable; the message names the file, row and column."""


@dataclass(frozen=True, slots=True)
class Product:
    ndc: str
    product: str
    drug_code: str
    family: str
    schedule: str
    dosage_units_per_package: int
    base_mg_per_unit: float
    mme_factor: float

    @property
    def narcotic(self) -> bool:
        """Schedules 2N and 3N are non-narcotic; 1 and 2 and plain 3 are narcotic."""
        return not self.schedule.endswith("N") and self.schedule in ("1", "2", "3")

    @property
    def schedule_class(self) -> str:
        """'2' for Schedule II (and 2N), '3-5' for Schedules III-V, as the formula groups them."""
        return "2" if self.schedule.startswith(("1", "2")) else "3-5"


class Catalog:
    """NDC -> Product lookup loaded from CSV."""

    def __init__(self, products: dict[str, Product], source: str = "<memory>") -> None:
        self.products = products
        self.source = source

    def __len__(self) -> int:
        return len(self.products)

    def get(self, ndc: str) -> Product | None:
        return self.products.get(ndc)

    @classmethod
    def load(cls, path: str | Path) -> Catalog:
        path = Path(path)
        if not path.is_file():
            raise CatalogError(
                f"catalog file {path} does not exist: set [catalog] path or --catalog"
            )
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in _COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise CatalogError(f"{path}: header lacks column(s) {', '.join(missing)}")
            products: dict[str, Product] = {}
            for row_no, row in enumerate(reader, start=2):
                product = _row(path, row_no, row)
                products[product.ndc] = product
        if not products:
            raise CatalogError(f"{path}: no products")
        return cls(products, str(path))


def _row(path: Path, row_no: int, row: dict[str, str]) -> Product:
    where = f"{path}:{row_no}"
    try:
        ndc = normalize_ndc(row["ndc"])
    except ValueError as exc:
        raise CatalogError(f"{where}: column ndc: {exc}") from None
    schedule = row["schedule"].strip().upper()
    if schedule not in SCHEDULES:
        raise CatalogError(f"{where}: column schedule {schedule!r} not in {SCHEDULES}")
    try:
        product = Product(
            ndc=ndc,
            product=row["product"].strip(),
            drug_code=row["drug_code"].strip(),
            family=row["family"].strip().lower(),
            schedule=schedule,
            dosage_units_per_package=int(row["dosage_units_per_package"]),
            base_mg_per_unit=float(row["base_mg_per_unit"]),
            mme_factor=float(row["mme_factor"] or 0),
        )
    except ValueError as exc:
        raise CatalogError(f"{where}: {exc}") from None
    if product.base_mg_per_unit <= 0 or product.dosage_units_per_package <= 0:
        raise CatalogError(f"{where}: columns base_mg_per_unit and dosage_units_per_package "
                           "must be > 0 (grams of base and dosage units are what is scored)")
    return product
