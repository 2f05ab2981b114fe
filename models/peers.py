"""Peer groups and their order-size baselines, learned by ``som train``.

A peer group is the registrant type (the DEA number's first letter, DOMAIN.md
section 3) times a size class. The size class comes from the registrant's own
volume (dosage units per week over 90 days) against cut points learned per type
from the training history, so the same registrant lands in the same group in the
stream and the replay driver. A registrant without enough own history is in the
type's ``new`` group, whose baseline pools every size of that type.

>>> pb = PeerBaselines.fit([("B", False, v, "oxycodone", 100.0 * v, 1.0) for v in range(1, 91)])
>>> pb.group("BP1234563", 1.0, False), pb.group("BP1234563", 89.0, False)
('B:small', 'B:large')
>>> pb.group("BP1234563", 29.0, True)
'B:new'
>>> round(pb.stat("B:new", "oxycodone")[0], 1) > 0
True
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable

import numpy as np

__all__ = ["PeerBaselines", "SIZES"]

SIZES = ("small", "medium", "large")
MIN_PEER_ORDERS = 30  # fewer orders than this: fall back to the type-wide baseline
# Floor of a peer baseline's robust sigma (log scale). Peers mostly buy whole packages
# (one bottle of 100), so their MAD collapses and a new pharmacy's two bottles would
# look like z = 2.8; 0.4 is about the spread of one registrant's own orders.
PEER_SIGMA_FLOOR = 0.4


class PeerBaselines:
    """Size-class cut points per type, and per (group, family) log-size median and sigma."""

    def __init__(self, cuts: dict[str, list[float]], stats: dict[str, dict[str, list[float]]]):
        self.cuts = cuts
        self.stats = stats

    def group(self, dea: str, volume_week: float, cold: bool) -> str:
        letter = dea[:1].upper()
        if cold:
            return f"{letter}:new"
        cuts = self.cuts.get(letter)
        if not cuts:
            return f"{letter}:all"
        size = SIZES[sum(1 for c in cuts if volume_week >= c)]
        return f"{letter}:{size}"

    def stat(self, group: str, family: str) -> list[float] | None:
        """[median log units, sigma, median log grams, sigma, orders] or None."""
        hit = self.stats.get(group, {}).get(family)
        if hit is None:
            hit = self.stats.get(group.split(":")[0] + ":all", {}).get(family)
        return hit

    @property
    def groups(self) -> list[str]:
        return sorted(self.stats)

    def to_dict(self) -> dict:
        return {"cuts": self.cuts, "stats": self.stats}

    @classmethod
    def from_dict(cls, data: dict) -> PeerBaselines:
        return cls({k: [float(x) for x in v] for k, v in data["cuts"].items()},
                   {g: {f: [float(x) for x in s] for f, s in fam.items()}
                    for g, fam in data["stats"].items()})

    @classmethod
    def fit(cls, rows: Iterable[tuple[str, bool, float, str, float, float]]) -> PeerBaselines:
        """Learn from (type letter, cold, volume per week, family, units, grams) per order line.

        Cut points are the terciles of the warm registrants' volumes per type.
        """
        rows = list(rows)
        volumes: dict[str, list[float]] = defaultdict(list)
        for letter, cold, volume, *_ in rows:
            if not cold:
                volumes[letter].append(volume)
        cuts = {k: [float(np.quantile(v, 1 / 3)), float(np.quantile(v, 2 / 3))]
                for k, v in volumes.items() if len(v) >= 3 * MIN_PEER_ORDERS}
        pb = cls(cuts, {})
        sizes: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
        for letter, cold, volume, family, units, grams in rows:
            if units <= 0 or grams <= 0:
                continue
            point = (math.log(units), math.log(grams))
            sizes[(f"{letter}:all", family)].append(point)
            if not cold:
                sizes[(pb.group(letter, volume, False), family)].append(point)
        for (group, family), pts in sizes.items():
            if len(pts) < MIN_PEER_ORDERS:
                continue
            arr = np.asarray(pts)
            med = np.median(arr, axis=0)
            mad = np.median(np.abs(arr - med), axis=0) * 1.4826
            pb.stats.setdefault(group, {})[family] = [
                float(med[0]),
                float(max(mad[0], PEER_SIGMA_FLOOR)),
                float(med[1]),
                float(max(mad[1], PEER_SIGMA_FLOOR)),
                float(len(pts)),
            ]
        for letter in {g.split(":")[0] for g in pb.stats}:  # new registrants: every size
            if f"{letter}:all" in pb.stats:
                pb.stats[f"{letter}:new"] = pb.stats[f"{letter}:all"]
        return pb
