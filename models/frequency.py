"""Frequency: more orders than the registrant's cadence explains, and split orders.

Count: orders inside 72 hours (this one included) against the number the
registrant's own cadence explains (72 h / its median interval between orders).
The limit is that expectation plus ``min_excess`` orders, and at least
``min_count``; the detail gives the Poisson probability of such a count, for the
file. (A pure Poisson tail was too strict for daily buyers and too loose for
weekly ones on the tuning feed: real cadences are not Poisson.) Split orders:
several orders of one family inside 36 hours, more than the cadence explains by
``split_min_excess``, that together bring ``split_ratio`` times what the cadence
would (median order x expected orders in the window): the classic way to stay
under a per-order threshold.

>>> poisson_limit(1.0, 1e-4), poisson_limit(3.0, 1e-4), f"{poisson_tail(0.5, 5):.1e}"
(7, 12, '1.7e-04')
"""

from __future__ import annotations

import math
from functools import lru_cache

from sklearn.base import BaseEstimator

from models.base import Finding, OrderContext, lazy_finding
from models.features import COUNT_WINDOW_S, SPLIT_WINDOW_S

__all__ = ["FrequencyScorer", "poisson_limit", "poisson_tail"]


@lru_cache(maxsize=4096)
def poisson_tail(lam: float, k: int) -> float:
    """P(N >= k) for N ~ Poisson(lam)."""
    pmf, cdf = math.exp(-lam), 0.0
    for i in range(k):
        cdf += pmf
        pmf *= lam / (i + 1)
    return max(0.0, 1.0 - cdf)


@lru_cache(maxsize=4096)
def poisson_limit(lam: float, alpha: float) -> int:
    """Smallest k with P(N >= k) < alpha for N ~ Poisson(lam)."""
    pmf = math.exp(-lam)
    tail = 1.0  # P(N >= k) for k = 0
    k = 0
    while tail >= alpha and k < 10_000:
        tail -= pmf
        k += 1
        pmf *= lam / k
    return k


class FrequencyScorer(BaseEstimator):
    """Order counts vs own cadence (Poisson tail) and split orders vs the one-order limit."""

    name = "frequency"

    def __init__(
        self,
        min_excess: float = 4.0,
        min_count: int = 4,
        min_prior_orders: int = 6,
        split_min_excess: float = 2.0,
        split_ratio: float = 3.0,
        min_orders: int = 4,
    ) -> None:
        self.min_excess = min_excess
        self.min_count = min_count
        self.min_prior_orders = min_prior_orders
        self.split_min_excess = split_min_excess
        self.split_ratio = split_ratio
        self.min_orders = min_orders

    def fit(self, X=None, y=None) -> FrequencyScorer:  # noqa: N803 - scikit-learn naming
        """Nothing to learn across registrants: each is its own baseline."""
        return self

    def assess(self, ctx: OrderContext) -> list[Finding]:
        feats = ctx.features
        out = []
        interval = feats.interval
        if interval <= 0 or feats.prior_orders < self.min_prior_orders:
            return out
        lam = round(COUNT_WINDOW_S / interval, 2)
        limit = max(float(self.min_count), lam + self.min_excess)
        k = feats.count_window
        out.append(lazy_finding("frequency_count", round(k / limit, 4), float(k), round(limit, 2),
                                _count_detail, (k, interval, lam, limit), True))
        lam36 = SPLIT_WINDOW_S / interval
        expected = max(1.0, lam36)
        for f in feats.families:
            if f.window_orders < 2 or f.n < self.min_orders:
                continue
            ratio = f.window_units / (f.median_units * expected)
            excess = f.window_orders - lam36
            score = min(ratio / self.split_ratio, excess / self.split_min_excess)
            a = f.amount
            out.append(lazy_finding(
                "split_orders", round(score, 4), round(ratio, 3), self.split_ratio, _split_detail,
                (f, lam36, ratio, self.split_ratio, self.split_min_excess), True, a.family,
                a.schedule))
        return out


def _count_detail(k: int, interval: float, lam: float, limit: float) -> str:
    return (f"{k} orders within 72 hours; this registrant orders about every "
            f"{interval / 86400:.1f} days, so about {lam:.1f} are expected (limit {limit:.1f}; "
            f"a Poisson chance of {poisson_tail(lam, k):.1e} for {k} or more)")


def _split_detail(f, lam36: float, ratio: float, split_ratio: float, min_excess: float) -> str:
    return (f"{f.amount.family}: {f.window_orders} orders within 36 hours (about {lam36:.1f} "
            f"expected) total {f.window_units:,.0f} dosage units, {ratio:.1f}x what the usual "
            f"cadence brings (median order {f.median_units:,.0f} units; limits "
            f"{split_ratio:g}x and {min_excess:g} orders more than expected)")
