"""The DEA-formula baseline (Chemical Handler's Manual, DOMAIN.md section 1).

Hold an order when it exceeds the customer's average monthly purchases of the
drug family over the last 12 months times 3 (Schedule II) or 8 (III-V). It is
always computed and reported, so every smarter score can be compared with it.
Quantities are grams of base, comparable across strengths. With less than
``min_history_days`` of own history, the formula has no baseline: it reports a
cold start instead of holding (the peer models judge such orders).

>>> from engine.profile import RegistrantProfile
>>> from engine.enrich import FamilyAmount
>>> from models.base import OrderContext
>>> p = RegistrantProfile()
>>> for i in range(12):
...     p.apply(f"25X0000{i:02d}", 20000 + 30 * i, "x", [("oxycodone", 100, 1.0, 1500)])
>>> big = FamilyAmount("oxycodone", "2", True, 400, 4.0, 6000, 10.0, ("99901-0102-01",))
>>> [f.code for f in FormulaBaseline().assess(OrderContext("BP1234563", 20360, (big,), p))]
['formula_baseline']
"""

from __future__ import annotations

from sklearn.base import BaseEstimator

from models.base import Finding, OrderContext, lazy_finding

__all__ = ["FormulaBaseline"]

_DAYS_PER_MONTH = 365.25 / 12


class FormulaBaseline(BaseEstimator):
    """12-month average monthly purchases x multiplier, per drug family, in grams of base."""

    name = "formula"

    def __init__(
        self,
        multiplier_schedule_2: float = 3.0,
        multiplier_schedule_3_5: float = 8.0,
        window_days: int = 365,
        min_history_days: int = 28,
        hold: bool = True,
    ) -> None:
        self.multiplier_schedule_2 = multiplier_schedule_2
        self.multiplier_schedule_3_5 = multiplier_schedule_3_5
        self.window_days = window_days
        self.min_history_days = min_history_days
        self.hold = hold  # False: always computed and reported, never holds alone

    def fit(self, X=None, y=None) -> FormulaBaseline:  # noqa: N803 - scikit-learn naming
        """Nothing to learn: the formula reads the registrant's own profile."""
        return self

    def assess(self, ctx: OrderContext) -> list[Finding]:
        profile, day = ctx.profile, ctx.day
        history = profile.history_days(day)
        if history < self.min_history_days:
            return [
                Finding(
                    "formula_cold_start",
                    0.0,
                    float(history),
                    float(self.min_history_days),
                    f"{history} days of own history, fewer than the {self.min_history_days} "
                    "the formula needs; no formula threshold applies",
                    hold=False,
                )
            ]
        span_days = min(history, self.window_days)
        months = max(span_days / _DAYS_PER_MONTH, 1.0)
        findings = []
        for amount in ctx.amounts:
            hist = profile.families.get(amount.family)
            grams = hist.window(day, self.window_days)[1] if hist else 0.0
            mult = (
                self.multiplier_schedule_2
                if amount.schedule_class == "2"
                else self.multiplier_schedule_3_5
            )
            threshold = grams / months * mult
            ratio = amount.grams / threshold if threshold > 0 else float("inf")
            findings.append(lazy_finding(
                "formula_baseline", min(ratio, 1e9), round(amount.grams, 4), round(threshold, 4),
                _detail, (amount, ratio, mult, months, grams), self.hold, amount.family,
                amount.schedule))
        return findings


def _detail(amount, ratio: float, mult: float, months: float, grams: float) -> str:
    verb = "exceeds" if ratio > 1.0 else "is within"
    return (f"{amount.family}: order of {amount.grams:.2f} g base {verb} "
            f"{mult:g} x the {months:.1f}-month average monthly purchase "
            f"({grams / months:.2f} g)")
