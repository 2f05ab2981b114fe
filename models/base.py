"""What every scorer returns, and the context it scores against."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.enrich import FamilyAmount
from engine.profile import RegistrantProfile

if TYPE_CHECKING:
    from models.features import OrderFeatures

__all__ = ["Finding", "OrderContext"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One scorer's verdict on one aspect of an order.

    ``score`` is value / threshold on the scorer's own scale: 1.0 or more means
    over the limit. ``hold`` says whether this finding may be grounds to hold the
    order (informational findings such as a cold start never are); the decide step
    compares ``score`` with the configured factor for this code, schedule, family,
    registrant type and registrant. ``family`` and ``schedule`` are empty for
    findings about the whole order.
    """

    code: str
    score: float
    value: float
    threshold: float
    detail: str
    hold: bool
    family: str = ""
    schedule: str = ""


@dataclass(frozen=True, slots=True)
class OrderContext:
    """An order as scorers see it: its family amounts and the profile *before* it.

    ``t`` is the signing time in epoch seconds (0 means the start of ``day``);
    ``features`` are computed once per order and shared by every scorer.
    """

    purchaser_dea: str
    day: int
    amounts: tuple[FamilyAmount, ...]
    profile: RegistrantProfile
    t: float = 0.0
    features: OrderFeatures | None = field(default=None, compare=False)
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
