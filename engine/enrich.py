"""Enrich: turn order lines into per-family amounts in the units DEA counts.

Amounts per family are what every scorer compares: dosage units, grams of base
(ARCOS: units x base weight per unit) and morphine milligram equivalents.
"""

from __future__ import annotations

from dataclasses import dataclass

from connectors.catalog import Catalog
from connectors.fastinit import builder
from connectors.orders import Order
from engine.records import Rejected, RejectReason

__all__ = ["FamilyAmount", "enrich"]


@dataclass(frozen=True, slots=True)
class FamilyAmount:
    """What one order asks for of one drug family."""

    family: str
    schedule: str  # the most restrictive schedule among the family's lines
    narcotic: bool
    units: float
    grams: float
    mme: float
    strength_mg: float  # unit-weighted mean base mg per dosage unit
    ndcs: tuple[str, ...]

    @property
    def schedule_class(self) -> str:
        return "2" if self.schedule.startswith(("1", "2")) else "3-5"


def enrich(order: Order, catalog: Catalog) -> tuple[FamilyAmount, ...]:
    """Per-family amounts, sorted by family name; unknown NDCs are rejected."""
    acc: dict[str, list] = {}
    for line in order.lines:
        product = catalog.get(line.ndc)
        if product is None:
            raise Rejected(
                RejectReason.UNKNOWN_NDC,
                f"line {line.line}: NDC {line.ndc} is not in the product catalog",
                order_number=order.order_number,
                purchaser_dea=order.purchaser.dea_number,
            )
        units = float(line.dosage_units)
        mg = units * product.base_mg_per_unit
        entry = acc.setdefault(product.family, [product.schedule, False, 0.0, 0.0, 0.0, []])
        if _rank(product.schedule) < _rank(entry[0]):
            entry[0] = product.schedule
        entry[1] = entry[1] or product.narcotic
        entry[2] += units
        entry[3] += mg / 1000.0
        entry[4] += mg * product.mme_factor
        entry[5].append(line.ndc)
    return tuple([
        _amount(family, e[0], e[1], e[2], e[3], e[4], (e[3] * 1000.0 / e[2]) if e[2] else 0.0,
                tuple(e[5]))
        for family, e in sorted(acc.items())
    ])


_amount = builder(FamilyAmount)  # FamilyAmount(*all fields), without __init__'s cost
_ORDER = ("1", "2", "2N", "3", "3N", "4", "5")
_RANKS = {s: i for i, s in enumerate(_ORDER)}


def _rank(schedule: str) -> int:
    rank = _RANKS.get(schedule)
    return _ORDER.index(schedule) if rank is None else rank  # (an unknown one raises)
