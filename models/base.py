"""What every scorer returns, and the context it scores against."""

from __future__ import annotations

from dataclasses import dataclass

from engine.enrich import FamilyAmount
from engine.profile import RegistrantProfile

__all__ = ["Finding", "OrderContext"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One scorer's verdict on one aspect of an order.

    ``score`` is value / threshold: 1.0 or more means over the limit. ``hold``
    says whether this finding alone is grounds to hold the order.
    """

    code: str
    score: float
    value: float
    threshold: float
    detail: str
    hold: bool


@dataclass(frozen=True, slots=True)
class OrderContext:
    """An order as scorers see it: its family amounts and the profile *before* it."""

    purchaser_dea: str
    day: int
    amounts: tuple[FamilyAmount, ...]
    profile: RegistrantProfile
