"""Per-order features, computed once from the profile *before* the order.

Every scorer and the isolation forest read the same numbers, so a hold's reasons
and its forest score never disagree about what the history was. Order sizes are
compared on a log scale (orders are multiplicative: a 4x order is as unusual for
a small pharmacy as for a distributor) with median and MAD, which one earlier
spike does not drag the way a mean and standard deviation would.

>>> from engine.enrich import FamilyAmount
>>> from engine.profile import RegistrantProfile
>>> p = RegistrantProfile()
>>> for i in range(8):
...     p.apply(f"25X{i:06d}", 20000 + 7 * i, "x", [("oxycodone", 100.0 + i, 0.9, 1.0)])
>>> a = FamilyAmount("oxycodone", "2", True, 800.0, 7.2, 1.0, 9.0, ("n",))
>>> f = order_features("BP1234563", 20056, 20056 * 86400.0, (a,), p)
>>> fam = f.families[0]
>>> fam.n, round(fam.ratio_units, 2), fam.z_units > 4
(8, 7.73, True)
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from dataclasses import dataclass

from engine.enrich import FamilyAmount
from engine.profile import FamilyHistory, RegistrantProfile

__all__ = ["FamilyFeatures", "OrderFeatures", "order_features", "FEATURES", "SIGMA_FLOOR"]

SIGMA_FLOOR = 0.25  # log scale: whole packages make tiny MADs meaningless
SPLIT_WINDOW_S = 36 * 3600.0
COUNT_WINDOW_S = 72 * 3600.0
COLD_DAYS = 28
COLD_ORDERS = 4
TREND_MIN_PRIOR_DAYS = 30
RAMP_WINDOW_S = 30 * 86400.0
RAMP_MIN_RECENT = 3  # orders of the family in the last 30 days, this one included: with
# three or more, one spike among them is not the median
RAMP_MIN_EARLIER = 3  # ... and earlier orders in the ring to compare with
# ... at their 60th percentile, not their median: a registrant buying one or two packages
# has a median that flips between them by chance (tuned on seeds 11, 12:
# benchmarks/README.md)
RAMP_EARLIER_QUANTILE = 0.6
STRENGTH_MIN_EARLIER = 3  # orders of the family in the year before the last 30 days
FEATURES = (
    "log_units", "log_grams", "families", "max_z_units", "max_z_grams", "max_split_ratio",
    "count_ratio", "max_strength_ratio", "max_trend", "first_purchases", "gap_ratio",
)


@dataclass(slots=True)
class FamilyFeatures:
    """One family of the order against that family's own recent orders."""

    amount: FamilyAmount
    n: int  # prior orders of this family in the ring
    median_units: float
    median_grams: float
    sigma_units: float  # robust sigma of log units (MAD x 1.4826, floored)
    sigma_grams: float
    z_units: float
    z_grams: float
    ratio_units: float  # this order / median order
    ratio_grams: float
    max_strength: float  # highest mg base per unit ever bought (0: none)
    max_units: float  # largest prior order in the ring (0: none)
    max_grams: float
    window_units: float  # this order plus prior orders inside SPLIT_WINDOW_S
    window_orders: int
    trend: float  # daily rate over the last 30 days (this order included) / the year before
    size_trend: float = 0.0  # median order of the last 30 days (with this one) / before; 0: unknown
    strength_recent: float = 0.0  # mg base per unit over the last 30 days, this order included
    strength_before: float = 0.0  # ... over the 335 days before (0: too few orders to say)


@dataclass(slots=True)
class OrderFeatures:
    """The whole order: its families plus the registrant's cadence and size."""

    families: tuple[FamilyFeatures, ...]
    history_days: int
    prior_orders: int
    interval: float  # median seconds between the registrant's orders (0: unknown)
    count_window: int  # orders inside COUNT_WINDOW_S, this one included
    since_last: float  # seconds since the previous order (-1: none)
    volume_week: float  # dosage units per week over the last 90 days
    cold: bool  # too little own history: peers judge
    peer_group: str = ""  # set by the pipeline from the trained peer baselines

    def vector(self) -> list[float]:
        """The isolation forest's input, in ``FEATURES`` order."""
        fams = self.families
        interval = self.interval
        units = sum([f.amount.units for f in fams])
        grams = sum([f.amount.grams for f in fams])
        expected = COUNT_WINDOW_S / interval if interval > 0 else 1.0
        # the maxima as max() takes them (first value, then any greater), in one pass
        zu = zg = split = strength = trend = None
        first = 0
        for f in fams:
            v = f.z_units
            if zu is None or v > zu:
                zu = v
            v = f.z_grams
            if zg is None or v > zg:
                zg = v
            v = _split_ratio(f, interval)
            if split is None or v > split:
                split = v
            v = f.amount.strength_mg / f.max_strength if f.max_strength > 0 else 1.0
            if strength is None or v > strength:
                strength = v
            v = f.trend
            if trend is None or v > trend:
                trend = v
            if f.n == 0:
                first += 1
        return [
            math.log1p(units),
            math.log1p(grams * 1000.0),
            float(len(fams)),
            0.0 if zu is None else zu,
            0.0 if zg is None else zg,
            0.0 if split is None else split,
            self.count_window / max(expected, 1.0),
            1.0 if strength is None else strength,
            1.0 if trend is None else trend,
            0.0 if self.cold else float(first),
            (self.since_last / interval) if interval > 0 and self.since_last >= 0 else 1.0,
        ]


def _strength_ratio(f: FamilyFeatures) -> float:
    return f.amount.strength_mg / f.max_strength if f.max_strength > 0 else 1.0


def _split_ratio(f: FamilyFeatures, interval: float) -> float:
    if f.n == 0 or f.window_orders < 2:
        return 0.0
    return f.window_units / (f.median_units * max(1.0, SPLIT_WINDOW_S / max(interval, 1.0)))


def _median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else math.sqrt(s[n // 2 - 1] * s[n // 2])


def _robust_sorted(s: list[float]) -> tuple[float, float]:
    """(median, sigma of logs) of positive values ``s``, given sorted.

    The same numbers as sorting them here: the median, then the median of every
    value's ratio to it (value / median above it, median / value below), on a log scale.
    """
    n = len(s)
    h = n // 2
    med = s[h] if n % 2 else math.sqrt(s[h - 1] * s[h])
    inv = 1.0 / med
    # Spreads: value x (1 / median) from ``up`` on (ascending), median / value below it
    # (ascending downwards). Their h + 1 smallest, merged outwards from the median, give
    # the middle of all of them without building and sorting the list.
    up = bisect_left(s, med)
    lo = up - 1
    below = med / s[lo] if lo >= 0 else math.inf
    above = s[up] * inv if up < n else math.inf
    prev = mad = 0.0
    for _ in range(h + 1):
        prev = mad
        if above <= below:
            mad = above
            up += 1
            above = s[up] * inv if up < n else math.inf
        else:
            mad = below
            lo -= 1
            below = med / s[lo] if lo >= 0 else math.inf
    if not n % 2:
        mad = math.sqrt(prev * mad)
    return med, max(1.4826 * math.log(mad), SIGMA_FLOOR)


def _family(a: FamilyAmount, hist: FamilyHistory | None, t: float, day: int) -> FamilyFeatures:
    if hist is None or not hist.ring:
        return FamilyFeatures(a, 0, 0.0, 0.0, SIGMA_FLOOR, SIGMA_FLOOR, 0.0, 0.0, 1.0, 1.0,
                              hist.peak if hist else 0.0, 0.0, 0.0, a.units, 1, 1.0)
    cols = hist.columns()  # ring amounts are > 0 (profile.add)
    times, units, su, sg, unordered, stat_u, stat_g = cols
    n = len(su)
    if stat_u is None:
        stat_u = cols[5] = _robust_sorted(su)
    if stat_g is None:
        stat_g = cols[6] = _robust_sorted(sg)
    mu, sig_u = stat_u
    mg, sig_g = stat_g
    zu = math.log(max(a.units, 1e-9) / mu) / sig_u
    zg = math.log(max(a.grams, 1e-12) / mg) / sig_g
    lo = t - SPLIT_WINDOW_S
    w_units, w_orders = a.units, 1
    if not unordered:  # times ascending: the window is a suffix, summed in ring order
        i = bisect_right(times, lo)
        for u in units[i:]:
            w_units += u
        w_orders += n - i
    else:
        for i, ts in enumerate(times):
            if ts > lo:
                w_units += units[i]
                w_orders += 1
    trend = 1.0
    size_trend = _size_trend(cols, t, a.units)
    recent_mg = before_mg = 0.0
    span = min(day - hist.first_day, 365) - 30
    if span >= TREND_MIN_PRIOR_DAYS:
        spans = hist.spans(day)
        last30, year = spans[1], spans[3]
        prior = year[0] - last30[0]
        if prior > 0:
            trend = ((last30[0] + a.units) / 30.0) / (prior / span)
            prior_grams = year[1] - last30[1]
            if year[3] - last30[3] >= STRENGTH_MIN_EARLIER and prior_grams > 0:
                recent_mg = (last30[1] + a.grams) * 1000.0 / (last30[0] + a.units)
                before_mg = prior_grams * 1000.0 / prior
    return FamilyFeatures(a, n, mu, mg, sig_u, sig_g, zu, zg, a.units / mu, a.grams / mg,
                          hist.peak, su[-1], sg[-1], w_units, w_orders, trend, size_trend,
                          recent_mg, before_mg)


def _size_trend(cols: list, t: float, now: float) -> float:
    """Median order (units) of the last 30 days, this one included, over the earlier
    orders' 60th percentile (``RAMP_EARLIER_QUANTILE``).

    A ramp raises every order a little; a burst of normal orders or one spike moves
    neither side, so this tells a ramp from the steps other scorers already judge.
    0.0 (unknown) when either side has too few orders (``RAMP_MIN_RECENT``,
    ``RAMP_MIN_EARLIER``); an exact 1.0 is common (whole packages) and is a real value.
    """
    times, units = cols[0], cols[1]
    lo = t - RAMP_WINDOW_S
    if not cols[4]:  # times ascending: the last 30 days are a suffix
        i = bisect_right(times, lo)
        earlier, recent = units[:i], units[i:]
    else:
        earlier = [u for ts, u in zip(times, units, strict=True) if ts <= lo]
        recent = [u for ts, u in zip(times, units, strict=True) if ts > lo]
    if len(recent) + 1 < RAMP_MIN_RECENT or len(earlier) < RAMP_MIN_EARLIER:
        return 0.0
    s = sorted(earlier)
    return _median([*recent, now]) / s[min(len(s) - 1, int(RAMP_EARLIER_QUANTILE * len(s)))]


def order_features(
    dea: str, day: int, t: float, amounts: tuple[FamilyAmount, ...], profile: RegistrantProfile
) -> OrderFeatures:
    """Features of one order against ``profile`` as it was before the order."""
    histories = profile.families
    # Every family's windows at this day, once (see FamilyHistory.spans): the volume
    # here, the trend above, the family mix and the formula read the same numbers.
    volume = 0
    for h in histories.values():
        volume += h.spans(day)[2][0]
    fams = tuple([_family(a, histories.get(a.family), t, day) for a in amounts])
    times = profile.times
    interval, since_last, count = 0.0, -1.0, 1
    if times:
        since_last = t - times[-1]
        s = sorted(times)
        count += len(s) - bisect_right(s, t - COUNT_WINDOW_S)
        if len(s) >= 4:
            interval = _median([max(b - a, 3600.0) for a, b in zip(s, s[1:], strict=False)])
    history = profile.history_days(day)
    span = min(90, max(history, 1))
    volume = volume * 7.0 / span
    cold = history < COLD_DAYS or profile.orders < COLD_ORDERS
    return OrderFeatures(fams, history, profile.orders, interval, count, since_last,
                         volume, cold)
