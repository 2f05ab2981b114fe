"""Size: is this order unusually large for this registrant, or for its peers?

Per family, against the registrant's own last orders of that family: the order
must be at least ``min_ratio`` times the median order in dosage units *and* in
grams of base, and ``max_ratio`` times the largest recent order in one of them. Why
not median + k MAD alone: orders come in whole packages (1, 2 or 3 packs), and
families with two package sizes or strengths are bimodal, so the MAD collapses or
misleads; the robust z is still computed and shown. The "largest recent order"
term means a registrant that has legitimately bought this much before is not
held for doing it again. But a *held* order is not a legitimate purchase yet: an order
at ``repeat_ratio`` of a family's order held in the last ``repeat_days`` days
(``size_repeat_held``) is held with it, until an officer's review clears the held order
(60 days once reported; ``engine.review``). With fewer than ``min_orders`` orders of a family, the
peer group's baseline from ``som train`` judges instead (a cold start when the
registrant itself is new, said so in the finding).
"""

from __future__ import annotations

import math
from datetime import date

from sklearn.base import BaseEstimator

from engine.profile import HELD_KEEP_DAYS
from models.base import Finding, OrderContext, lazy_finding
from models.features import FamilyFeatures
from models.peers import PeerBaselines

__all__ = ["SizeScorer"]

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()  # profile days are days since the epoch


class SizeScorer(BaseEstimator):
    """Order size per family vs own median/MAD, or vs the peer group when history is thin."""

    name = "size"

    def __init__(
        self,
        min_ratio: float = 4.0,
        max_ratio: float = 2.25,
        min_orders: int = 3,
        peer_z_threshold: float = 5.0,
        cold_z_threshold: float = 2.5,
        repeat_days: int = 7,
        repeat_ratio: float = 0.8,
    ) -> None:
        self.min_ratio = min_ratio
        self.max_ratio = max_ratio
        self.min_orders = min_orders
        self.peer_z_threshold = peer_z_threshold
        self.cold_z_threshold = cold_z_threshold
        self.repeat_days = repeat_days
        self.repeat_ratio = repeat_ratio

    def fit(self, X, y=None) -> SizeScorer:  # noqa: N803 - scikit-learn naming
        """Learn peer baselines from (type, cold, volume, family, units, grams) rows."""
        self.peers_ = X if isinstance(X, PeerBaselines) else PeerBaselines.fit(X)
        return self

    def assess(self, ctx: OrderContext) -> list[Finding]:
        feats = ctx.features
        out = []
        held = ctx.profile.held if self.repeat_days > 0 else None
        for f in feats.families:
            if f.n >= self.min_orders:
                out.append(self._own(f))
            else:
                hit = self._peer(f, feats.peer_group, feats.cold)
                if hit is not None:
                    out.append(hit)
            if held and f.amount.family in held:
                cases = ctx.profile.open_cases(f.amount.family, ctx.day, self.repeat_days)
                if cases:
                    out.append(self._repeat(f, cases))
        return out

    def _repeat(self, f: FamilyFeatures, cases: list[list]) -> Finding:
        """As large as an order of this family held in the last ``repeat_days`` days."""
        a = f.amount
        case = max(cases, key=lambda c: _as_large(a, c))
        ratio = _as_large(a, case)
        return lazy_finding("size_repeat_held", round(ratio / self.repeat_ratio, 4),
                            round(ratio, 3), self.repeat_ratio, _repeat_detail,
                            (a, case, ratio, self.repeat_ratio, self.repeat_days), True,
                            a.family, a.schedule)

    def _own(self, f: FamilyFeatures) -> Finding:
        a = f.amount
        ratio = min(f.ratio_units, f.ratio_grams)
        vs_max = max(a.units / f.max_units, a.grams / f.max_grams)
        score = min(ratio / self.min_ratio, vs_max / self.max_ratio)
        return lazy_finding("size_own", round(score, 4), round(ratio, 3), self.min_ratio,
                            _own_detail, (f, vs_max, self.min_ratio, self.max_ratio),
                            True, a.family, a.schedule)

    def _peer(self, f: FamilyFeatures, group: str, cold: bool) -> Finding | None:
        peers = getattr(self, "peers_", None)
        stat = peers.stat(group, f.amount.family) if peers is not None and group else None
        if stat is None:
            return None
        a = f.amount
        zu = (math.log(max(a.units, 1e-9)) - stat[0]) / stat[1]
        zg = (math.log(max(a.grams, 1e-12)) - stat[2]) / stat[3]
        z = max(zu, zg)
        limit = self.cold_z_threshold if cold else self.peer_z_threshold
        return lazy_finding("size_peer", round(z / limit, 4), round(z, 3), limit, _peer_detail,
                            (a, cold, f.n, group, stat, z, limit), True, a.family, a.schedule)


def _own_detail(f: FamilyFeatures, vs_max: float, min_ratio: float, max_ratio: float) -> str:
    a = f.amount
    return (f"{a.family}: {a.units:,.0f} dosage units / {a.grams:.2f} g base is "
            f"{f.ratio_units:.1f}x / {f.ratio_grams:.1f}x this registrant's median order "
            f"({f.median_units:,.0f} units / {f.median_grams:.2f} g) and {vs_max:.1f}x its "
            f"largest of the last {f.n} orders of this family (robust z {f.z_units:.1f}; "
            f"limits {min_ratio:g}x the median and {max_ratio:g}x the largest)")


def _as_large(a, case: list) -> float:
    """How large ``a`` is against a held case, on what the case was held for.

    A strength hold was about grams of base (the usual tablets in the usual count are
    not its repeat); a size hold needs both units and grams, as ``size_own`` does.
    """
    grams = a.grams / case[2]
    return grams if case[4] == "pattern_strength" else min(a.units / case[1], grams)


def _repeat_detail(a, case: list, ratio: float, limit: float, days: int) -> str:
    held_on = date.fromordinal(_EPOCH_ORDINAL + int(case[0])).isoformat()
    status = f"reported on review {case[6][:10]}" if case[5] == "reported" else "not reviewed"
    return (f"{a.family}: {a.units:,.0f} units / {a.grams:.2f} g base is {ratio:.2f}x order "
            f"{case[3]} held on {held_on} ({case[1]:,.0f} units / {case[2]:.2f} g, "
            f"{case[4]}; {status}); until a review clears it, a hold stays open for {days} "
            f"days ({HELD_KEEP_DAYS} once reported) and an order at {limit:g}x its size or "
            f"more joins it, so a held order does not make its repeat look normal")


def _peer_detail(a, cold: bool, n: int, group: str, stat, z: float, limit: float) -> str:
    who = "a registrant with little history" if cold else f"only {n} earlier orders"
    return (f"{a.family}: {who}, so compared with peer group {group} "
            f"({int(stat[4])} peer order lines): {a.units:,.0f} units / {a.grams:.2f} g "
            f"base vs a peer median of {math.exp(stat[0]):,.0f} units / "
            f"{math.exp(stat[2]):.2f} g (robust z {z:.1f}, limit {limit:g})")
