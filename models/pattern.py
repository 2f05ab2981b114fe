"""Pattern: a shift away from the registrant's normal buying, beyond any one order's size.

- first purchase of a drug family by an established registrant (IQVIA and
  Cardinal Health both flag it; DOMAIN.md section 5);
- a strength much above the strongest the registrant ever bought of the family,
  in an order that is also large in grams of base (a pharmacy adding a stronger
  tablet in normal quantities is not suspicious by itself);
- a steady ramp: the median order of a family over the last 30 days (this order
  included, at least three orders) at ``ramp_ratio`` times the 60th percentile of its
  orders before (at least three; ``models.features.RAMP_*``). A ramp scales every
  line, so the statistic is the lower median over the order's families (a stricter
  ``ramp_single_ratio`` when only one has enough orders): one family's swing does
  not trip it, no single order needs to be over any size limit, and a burst of
  normal orders or one spike (steps the other scorers judge) moves no median;
- volume: the same lower median of the last 30 days' daily rate over the year
  before (``volume_ratio``, ``volume_single_ratio``): more orders *or* larger ones;
- strength mix: the family's mg base per unit over the last 30 days (this order
  included) against the 335 days before (at least three orders), and this order's
  against the same: a registrant moving its buying to the stronger products of a family
  it has bought all along, which the strongest-ever test cannot see (a strength bought
  once before). The order itself must be of the stronger kind, so the usual orders after
  a shift has ended are not held for the month it stays in the window. The value is the
  smaller of the two ratios; the order's family with the largest value is reported;
- family mix: Jensen-Shannon divergence (base 2, so 0..1) between the last 30
  days' MME shares per family, this order included, and the 335 days before.

>>> same, apart = jensen_shannon({"a": 1.0}, {"a": 1.0}), jensen_shannon({"a": 1.0}, {"b": 1.0})
>>> round(same, 3), round(apart, 3)
(0.0, 1.0)
"""

from __future__ import annotations

import math

from sklearn.base import BaseEstimator

from models.base import Finding, OrderContext, lazy_finding

__all__ = ["PatternScorer", "jensen_shannon"]


def jensen_shannon(p: dict[str, float], q: dict[str, float]) -> float:
    """JS divergence in bits between two unnormalised non-negative mixes."""
    sp, sq = sum(p.values()), sum(q.values())
    if sp <= 0 or sq <= 0:
        return 0.0
    js = 0.0
    for k in sorted(p.keys() | q.keys()):  # a fixed order: same bits in every process
        a, b = p.get(k, 0.0) / sp, q.get(k, 0.0) / sq
        m = (a + b) / 2
        if a > 0:
            js += a * math.log2(a / m) / 2
        if b > 0:
            js += b * math.log2(b / m) / 2
    return js


class PatternScorer(BaseEstimator):
    """New family, new stronger strength, steady ramp, and family-mix shift."""

    name = "pattern"

    def __init__(
        self,
        min_prior_orders: int = 6,
        strength_ratio: float = 1.8,
        ramp_ratio: float = 1.6,
        ramp_single_ratio: float = 2.1,
        volume_ratio: float = 4.5,
        volume_single_ratio: float = 6.0,
        strength_grams_ratio: float = 3.0,
        strength_mix_ratio: float = 4.0,
        mix_threshold: float = 0.5,
        mix_min_history_days: int = 60,
    ) -> None:
        self.min_prior_orders = min_prior_orders
        self.strength_ratio = strength_ratio
        self.ramp_ratio = ramp_ratio
        self.ramp_single_ratio = ramp_single_ratio
        self.volume_ratio = volume_ratio
        self.volume_single_ratio = volume_single_ratio
        self.strength_grams_ratio = strength_grams_ratio
        self.strength_mix_ratio = strength_mix_ratio
        self.mix_threshold = mix_threshold
        self.mix_min_history_days = mix_min_history_days

    def fit(self, X=None, y=None) -> PatternScorer:  # noqa: N803 - scikit-learn naming
        """Nothing to learn across registrants: each is its own baseline."""
        return self

    def assess(self, ctx: OrderContext) -> list[Finding]:
        feats = ctx.features
        if feats.cold or feats.prior_orders < self.min_prior_orders:
            return []
        out = []
        shifted, shift = None, 0.0  # the family whose shift comes nearest to holding
        for f in feats.families:
            a = f.amount
            if f.strength_before > 0.0:
                s = min(f.strength_recent, a.strength_mg) / f.strength_before
                if shifted is None or s > shift:
                    shifted, shift = f, s
            if f.n == 0 and a.family not in ctx.profile.families:
                out.append(Finding(
                    "pattern_new_family", 1.0, 0.0, 1.0,
                    f"{a.family}: first purchase of this drug family after "
                    f"{feats.history_days} days and {feats.prior_orders} orders without it "
                    f"({a.units:,.0f} units, {a.grams:.2f} g base)",
                    hold=True, family=a.family, schedule=a.schedule))
                continue
            if f.n >= 3 and f.max_strength > 0:
                ratio = a.strength_mg / f.max_strength
                score = min(ratio / self.strength_ratio, f.ratio_grams / self.strength_grams_ratio)
                out.append(lazy_finding(
                    "pattern_strength", round(score, 4), round(ratio, 3), self.strength_ratio,
                    _strength_detail, (f, ratio, self.strength_ratio, self.strength_grams_ratio),
                    True, a.family, a.schedule))
        ramps = [f.size_trend for f in feats.families if f.size_trend > 0.0]
        volumes = [f.trend for f in feats.families if f.trend != 1.0]
        for code, ratios, limits, text in (
            ("pattern_ramp", ramps, (self.ramp_ratio, self.ramp_single_ratio), _RAMP),
            ("pattern_volume", volumes, (self.volume_ratio, self.volume_single_ratio), _VOLUME),
        ):
            if ratios:
                out.append(_lower_median_finding(code, ratios, limits, text))
        if shifted is not None:
            out.append(lazy_finding(
                "pattern_strength_mix", round(shift / self.strength_mix_ratio, 4),
                round(shift, 3), self.strength_mix_ratio, _strength_mix_detail,
                (shifted, shift, self.strength_mix_ratio), True, shifted.amount.family,
                shifted.amount.schedule))
        if feats.history_days >= self.mix_min_history_days:
            out.append(self._mix(ctx))
        return out

    def _mix(self, ctx: OrderContext) -> Finding:
        recent = {a.family: a.mme for a in ctx.amounts}
        before: dict[str, float] = {}
        day = ctx.day
        for fam, hist in ctx.profile.families.items():
            spans = hist.spans(day)  # windows 7, 30, 90, 365 days
            last30 = spans[1][2]
            recent[fam] = recent.get(fam, 0.0) + last30
            before[fam] = spans[3][2] - last30
        js = jensen_shannon(recent, before)
        top = max(recent, key=lambda k: recent[k] / (before.get(k, 0.0) + 1e-9))
        return Finding(
            "pattern_mix", round(js / self.mix_threshold, 4), round(js, 4), self.mix_threshold,
            f"family mix (MME shares) of the last 30 days differs from the year before by "
            f"Jensen-Shannon {js:.2f} (limit {self.mix_threshold:g}); largest relative "
            f"increase: {top}",
            hold=True)


_RAMP = ("over the last 30 days, in {n} of this order's families, this registrant's "
         "median order was {lo:.1f}x to {hi:.1f}x the 60th percentile of its orders before "
         "(lower median "
         "{low:.1f}x; limit {limit:g}x): a steady increase in order size, whatever the "
         "size of each order")
_VOLUME = ("over the last 30 days this registrant bought {n} of this order's families at "
           "{lo:.1f}x to {hi:.1f}x their daily rate of the year before (lower median "
           "{low:.1f}x; limit {limit:g}x)")


def _lower_median_finding(
    code: str, ratios: list[float], limits: tuple[float, float], text: str
) -> Finding:
    """The lower median of per-family ratios against the limit for that many families."""
    xs = sorted(ratios)
    low, n = xs[(len(xs) - 1) // 2], len(xs)
    limit = limits[0] if n >= 2 else limits[1]
    detail = text.format(n=n, lo=xs[0], hi=xs[-1], low=low, limit=limit)
    return Finding(code, round(low / limit, 4), round(low, 3), limit, detail, hold=True)


def _strength_mix_detail(f, shift: float, limit: float) -> str:
    return (f"{f.amount.family}: this order's {f.amount.strength_mg:.1f} mg base per unit and "
            f"the {f.strength_recent:.1f} mg average of this registrant's last 30 days (this "
            f"order included) are at least {shift:.1f}x the {f.strength_before:.1f} mg average "
            f"of the 335 days before (limit {limit:g}x for both): buying stronger products "
            f"of a family it already buys")


def _strength_detail(f, ratio: float, strength_ratio: float, grams_ratio: float) -> str:
    a = f.amount
    return (f"{a.family}: {a.strength_mg:.1f} mg base per unit is {ratio:.1f}x the "
            f"strongest this registrant ever bought of this family "
            f"({f.max_strength:.1f} mg), and {f.ratio_grams:.1f}x its median order in "
            f"grams of base (limits {strength_ratio:g}x and "
            f"{grams_ratio:g}x)")
