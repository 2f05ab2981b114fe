"""The optimised profile and features give exactly what the straightforward code gave.

``FamilyHistory`` keeps sorted ring columns, sorted bucket days, cached window spans and
remembered roundings, and ``order_features`` reads them; scorers write finding texts
only when read. None of that may change a number. Here a shadow profile per registrant
runs the plain implementation the engine had before (kept below, small and unoptimised:
rolling sums advanced day by day, median/MAD re-sorted from the ring on every order), fed
the same orders as the pipeline, with profiles sent through their state JSON now and
then on both sides; every order's features, forest vector and every family's state and
windows must be equal to the last bit.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import date

import pytest

from config import load_settings
from connectors.feed import read_feed
from connectors.synthetic import generate
from engine.build import build_pipeline
from engine.profile import RETENTION_DAYS, RING, WINDOWS, RegistrantProfile
from engine.records import Decision
from engine.replay import replay
from models.base import Finding, lazy_finding
from models.features import (
    COLD_DAYS,
    COLD_ORDERS,
    COUNT_WINDOW_S,
    SIGMA_FLOOR,
    SPLIT_WINDOW_S,
    TREND_MIN_PRIOR_DAYS,
    FamilyFeatures,
    OrderFeatures,
)

# ---------------------------------------------------------------- the reference code


class RefHistory:
    def __init__(self) -> None:
        self.days: dict[int, list[float]] = {}
        self.ring: list[list[float]] = []
        self.peak = 0.0
        self.first_day: int | None = None
        self.last_day: int | None = None
        self.anchor: int | None = None
        self.sums = {w: [0.0, 0.0, 0.0, 0.0] for w in WINDOWS}

    def window(self, day: int, width: int) -> tuple:
        if width in self.sums and self.anchor is not None and day >= self.anchor:
            self.advance(day)
            return tuple(self.sums[width])
        lo, acc = day - width, [0.0, 0.0, 0.0, 0.0]
        for d, b in self.days.items():
            if lo < d <= day:
                for i in range(4):
                    acc[i] += b[i]
        return tuple(acc)

    def add(self, day: int, units: float, grams: float, mme: float, t: int) -> None:
        units, grams, mme = round(units, 3), round(grams, 6), round(mme, 3)
        if units > 0 and grams > 0:
            self.ring.append([t, units, grams])
            if len(self.ring) > RING:
                del self.ring[0]
            self.peak = max(self.peak, round(grams * 1000.0 / units, 4))
        b = self.days.setdefault(day, [0.0, 0.0, 0.0, 0.0])
        b[0], b[1], b[2] = round(b[0] + units, 3), round(b[1] + grams, 6), round(b[2] + mme, 3)
        b[3] += 1.0
        self.first_day = day if self.first_day is None else min(self.first_day, day)
        self.last_day = day if self.last_day is None else max(self.last_day, day)
        if self.anchor is None or day > self.anchor:
            self.advance(day)
        for w, s in self.sums.items():
            if day > self.anchor - w:
                s[0] += units
                s[1] += grams
                s[2] += mme
                s[3] += 1.0
        if self.last_day - self.first_day >= RETENTION_DAYS:
            for d in [d for d in self.days if d <= self.last_day - RETENTION_DAYS]:
                del self.days[d]

    def advance(self, day: int) -> None:
        old, self.anchor = self.anchor, day
        if old is None or day == old:
            return
        for w, s in self.sums.items():
            if day - old >= w:
                s[:] = [0.0, 0.0, 0.0, 0.0]
                continue
            for d in range(old - w + 1, day - w + 1):
                b = self.days.get(d)
                if b is not None:
                    for i in range(4):
                        s[i] -= b[i]

    def reload(self) -> None:
        """What a trip through the state JSON does: sums summed again from the buckets."""
        self.anchor = None
        sums = {w: self.window(self.last_day, w) for w in WINDOWS}
        self.anchor = self.last_day
        for w, s in self.sums.items():
            s[:] = sums[w]


@dataclass
class RefProfile:
    families: dict[str, RefHistory] = field(default_factory=dict)
    times: list[int] = field(default_factory=list)
    orders: int = 0
    first_day: int | None = None

    def apply(self, day: int, amounts, t: float) -> None:
        t = int(t)
        for a in amounts:
            self.families.setdefault(a.family, RefHistory()).add(day, a.units, a.grams, a.mme, t)
        self.times = (self.times + [t])[-32:]
        self.orders += 1
        self.first_day = day if self.first_day is None else min(self.first_day, day)


def _median(xs) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else math.sqrt(s[n // 2 - 1] * s[n // 2])


def _robust(values, x: float) -> tuple[float, float, float]:
    med = _median(values)
    inv = 1.0 / med
    sigma = max(1.4826 * math.log(_median([v * inv if v >= med else med / v for v in values])),
                SIGMA_FLOOR)
    return med, sigma, math.log(x / med) / sigma


def _family(a, hist: RefHistory | None, t: float, day: int) -> FamilyFeatures:
    ring = hist.ring if hist is not None else []
    if not ring:
        return FamilyFeatures(a, 0, 0.0, 0.0, SIGMA_FLOOR, SIGMA_FLOOR, 0.0, 0.0, 1.0, 1.0,
                              hist.peak if hist else 0.0, 0.0, 0.0, a.units, 1, 1.0)
    times, units, grams = zip(*ring, strict=True)
    mu, su, zu = _robust(units, max(a.units, 1e-9))
    mg, sg, zg = _robust(grams, max(a.grams, 1e-12))
    w_units, w_orders = a.units, 1
    for i, ts in enumerate(times):
        if ts > t - SPLIT_WINDOW_S:
            w_units += units[i]
            w_orders += 1
    trend, span = 1.0, min(day - hist.first_day, 365) - 30
    recent_mg = before_mg = 0.0
    if span >= TREND_MIN_PRIOR_DAYS:
        w30, w365 = hist.window(day, 30), hist.window(day, 365)
        last30 = w30[0]
        prior = w365[0] - last30
        if prior > 0:
            trend = ((last30 + a.units) / 30.0) / (prior / span)
            if w365[3] - w30[3] >= 3 and w365[1] - w30[1] > 0:
                recent_mg = (w30[1] + a.grams) * 1000.0 / (w30[0] + a.units)
                before_mg = (w365[1] - w30[1]) * 1000.0 / prior
    recent = [u for ts, u in zip(times, units, strict=True) if ts > t - 30 * 86400] + [a.units]
    earlier = [u for ts, u in zip(times, units, strict=True) if ts <= t - 30 * 86400]
    size_trend = 0.0
    if len(recent) >= 3 and len(earlier) >= 3:
        ranked = sorted(earlier)  # 60th percentile: the element at floor(0.6 n)
        size_trend = _median(recent) / ranked[min(len(ranked) - 1, math.floor(0.6 * len(ranked)))]
    return FamilyFeatures(a, len(ring), mu, mg, su, sg, zu, zg, a.units / mu, a.grams / mg,
                          hist.peak, max(units), max(grams), w_units, w_orders, trend, size_trend,
                          recent_mg, before_mg)


def ref_features(day: int, t: float, amounts, p: RefProfile) -> OrderFeatures:
    fams = tuple(_family(a, p.families.get(a.family), t, day) for a in amounts)
    interval, since_last, count = 0.0, -1.0, 1
    if p.times:
        since_last = t - p.times[-1]
        count += sum(1 for x in p.times if x > t - COUNT_WINDOW_S)
        if len(p.times) >= 4:
            s = sorted(p.times)
            interval = _median([max(b - a, 3600.0) for a, b in zip(s, s[1:], strict=False)])
    history = 0 if p.first_day is None else max(0, day - p.first_day)
    volume = (sum(h.window(day, 90)[0] for h in p.families.values()) * 7.0
              / min(90, max(history, 1)))
    cold = history < COLD_DAYS or p.orders < COLD_ORDERS
    return OrderFeatures(fams, history, p.orders, interval, count, since_last, volume, cold)


def ref_vector(f: OrderFeatures) -> list[float]:
    fams, iv = f.families, f.interval

    def split(x):
        if x.n == 0 or x.window_orders < 2:
            return 0.0
        return x.window_units / (x.median_units * max(1.0, SPLIT_WINDOW_S / max(iv, 1.0)))

    expected = COUNT_WINDOW_S / iv if iv > 0 else 1.0
    return [
        math.log1p(sum(x.amount.units for x in fams)),
        math.log1p(sum(x.amount.grams for x in fams) * 1000.0),
        float(len(fams)),
        max((x.z_units for x in fams), default=0.0),
        max((x.z_grams for x in fams), default=0.0),
        max((split(x) for x in fams), default=0.0),
        f.count_window / max(expected, 1.0),
        max((x.amount.strength_mg / x.max_strength if x.max_strength > 0 else 1.0
             for x in fams), default=1.0),
        max((x.trend for x in fams), default=1.0),
        float(sum(1 for x in fams if x.n == 0 and not f.cold)),
        (f.since_last / iv) if iv > 0 and f.since_last >= 0 else 1.0,
    ]


# ---------------------------------------------------------------- the comparison


@pytest.fixture(scope="module")
def feed(tmp_path_factory):
    out = tmp_path_factory.mktemp("equiv")
    generate(out, seed=19, registrants=60, days=90, start=date(2025, 1, 6), anomaly_rate=0.05,
             processes=1)
    settings = load_settings(out / "som.toml").with_overrides(
        verification={"time_rules_at": "signed"})
    return settings, list(read_feed(out / "feed.jsonl"))


def _family_state(h) -> list:
    return [h.first_day, h.last_day, [[d, *b] for d, b in h.days.items()], h.ring, h.peak]


def test_features_and_profiles_equal_the_reference(feed):
    settings, messages = feed
    pipeline = build_pipeline(settings)
    profiles: dict[str, RegistrantProfile] = {}
    shadows: dict[str, RefProfile] = {}
    checked = {"orders": 0, "families": 0}

    failures = []

    def on_context(ctx):  # (an exception here would become an internal_error rejection)
        shadow = shadows.setdefault(ctx.purchaser_dea, RefProfile())
        ref = ref_features(ctx.day, ctx.t, ctx.amounts, shadow)
        if ctx.features != ref or ctx.features.vector() != ref_vector(ref):
            failures.append((ctx.purchaser_dea, ctx.t, ctx.features, ref))
        for name, h in ctx.profile.families.items():  # every family, windows included
            r = shadow.families[name]
            if _family_state(h) != _family_state(r) or [
                h.window(ctx.day, w) for w in (*WINDOWS, 45)
            ] != [r.window(ctx.day, w) for w in (*WINDOWS, 45)]:
                failures.append((ctx.purchaser_dea, ctx.t, name))
            checked["families"] += 1
        shadow.apply(ctx.day, ctx.amounts, ctx.t)
        checked["orders"] += 1

    def on_outcome(outcome):
        # now and then a profile goes through its state JSON (a restarted worker)
        if isinstance(outcome, Decision) and checked["orders"] % 3 == 0:
            dea = outcome.purchaser_dea
            profiles[dea] = RegistrantProfile.from_state(json.loads(profiles[dea].dumps_state()))
            for h in shadows[dea].families.values():
                h.reload()

    pipeline.on_context = on_context
    summary = replay(pipeline, messages, profiles=profiles, on_outcome=on_outcome)
    assert failures[:3] == []
    assert "internal_error" not in summary.rejections_by_reason
    assert checked["orders"] == summary.held + summary.released > 500
    assert checked["families"] > 5 * checked["orders"]
    assert summary.held > 0


def test_lazy_finding_text_is_written_when_read_and_equals_a_plain_finding():
    calls = []

    def explain(*args):
        calls.append(args)
        return "oxycodone: {} units".format(*args)

    lazy = lazy_finding("size_own", 1.25, 5.0, 4.0, explain, (800,), True, "oxycodone", "2")
    assert not calls
    plain = Finding("size_own", 1.25, 5.0, 4.0, "oxycodone: 800 units", True, "oxycodone", "2")
    assert lazy == plain and plain == lazy and hash(lazy) == hash(plain)
    assert lazy.detail == plain.detail and calls == [(800,)]
    assert lazy.detail and calls == [(800,)]  # written once
    assert repr(lazy) == repr(plain)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_long_histories_equal_the_reference(seed):
    """Past retention, out of order, same-day repeats and ring turnover, one family at a time."""
    import random

    rng = random.Random(seed)
    new, ref = RegistrantProfile(), RefProfile()
    day = 20000
    for i in range(1500):
        day += rng.choice((0, 0, 1, 1, 2, 3, 7, 30))
        d = day - (rng.randint(1, 20) if rng.random() < 0.05 else 0)  # late orders
        fam = rng.choice(("oxycodone", "alprazolam", "fentanyl"))
        units = rng.choice((100.0, 100.0, 200.0, 60.0, 33.5, 1e-4))
        amount = _Amount(fam, units, units * rng.choice((0.01, 0.0075, 0.0301)), units * 1.7)
        t = d * 86400.0 + rng.randint(0, 86399)
        ours = new.families.get(fam)
        theirs = ref.families.get(fam)
        if ours is not None:
            assert _family_state(ours) == _family_state(theirs)
            widths = (*WINDOWS, 45)
            assert [ours.window(d, w) for w in widths] == [theirs.window(d, w) for w in widths]
            feats = _family_features_now(amount, new, d, t)
            assert feats == _family(amount, theirs, t, d)
        new.apply(f"25X{i:06d}", d, "x" * 16, [(fam, amount.units, amount.grams, amount.mme)], t)
        ref.apply(d, (amount,), t)
        if i % 97 == 0:
            new = RegistrantProfile.from_state(json.loads(new.dumps_state()))
            for h in ref.families.values():
                h.reload()


@dataclass(frozen=True)
class _Amount:
    family: str
    units: float
    grams: float
    mme: float
    strength_mg: float = 1.0


def _family_features_now(a, profile: RegistrantProfile, day: int, t: float) -> FamilyFeatures:
    from models.features import _family as ours

    return ours(a, profile.families.get(a.family), t, day)
