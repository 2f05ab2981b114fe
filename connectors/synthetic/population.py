"""The synthetic purchaser population: who orders what, how much, and how often.

Each registrant has a type (pharmacy, hospital, clinic, distributor) and a size class;
the pair is its peer group, which is what peer-comparison detectors group on. Its
habits (families, preferred products, quantities, weekdays, hour) are drawn once
so its normal traffic is stable enough for a baseline to learn. Registrants not
authorised for narcotic schedules never get a narcotic family, so normal traffic
never trips the schedule check.

>>> import numpy as np
>>> from connectors.catalog import Catalog
>>> from config.settings import DEFAULT_CONFIG
>>> cat = Catalog.load(DEFAULT_CONFIG.with_name("catalog.csv"))
>>> regs = build_population(np.random.default_rng(3), cat, 20, days=60)
>>> len(regs), len({r.dea_number for r in regs}), regs[0].peer_group.count(":")
(20, 20, 1)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from connectors.catalog import Catalog
from connectors.synthetic.names import fictional_address, fictional_name, make_dea_number

__all__ = [
    "FamilyHabit",
    "Registrant",
    "build_population",
    "make_registrant",
    "ALL_SCHEDULES",
    "NON_NARCOTIC_SCHEDULES",
    "KINDS",
    "products_by_family",
]

ALL_SCHEDULES = ("2", "2N", "3", "3N", "4", "5")
NON_NARCOTIC_SCHEDULES = ("2N", "3N", "4", "5")
KINDS = ("pharmacy", "hospital", "clinic", "distributor")
SIZES = ("small", "medium", "large")
_SIZE_SCALE = {"small": 0.4, "medium": 1.0, "large": 2.5}
_ORDERS_PER_WEEK = {"weekly": 1, "twice_weekly": 2, "daily": 5}

# kind -> (share of population, DEA first letters and weights, size probabilities,
#          share authorised only for non-narcotic schedules)
_KIND = {
    "pharmacy": (0.62, ("A", "B", "F"), (0.2, 0.5, 0.3), (0.45, 0.40, 0.15), 0.03),
    "hospital": (0.14, ("A", "B", "F"), (0.3, 0.4, 0.3), (0.30, 0.40, 0.30), 0.0),
    "clinic": (0.17, ("M",), (1.0,), (0.60, 0.30, 0.10), 0.35),
    "distributor": (0.07, ("R", "P"), (0.7, 0.3), (0.30, 0.40, 0.30), 0.0),
}
# kind -> family -> (dosage units per week for a medium registrant, share of registrants
#                    buying the family, probability the family is on a given order)
_FAMILIES = {
    "pharmacy": {
        "oxycodone": (900, 0.95, 0.9), "hydrocodone": (1200, 0.95, 0.9),
        "morphine": (200, 0.5, 0.5), "hydromorphone": (150, 0.45, 0.5),
        "fentanyl": (15, 0.35, 0.4), "methadone": (150, 0.25, 0.4),
        "amphetamine": (600, 0.85, 0.8), "methylphenidate": (400, 0.7, 0.7),
        "codeine": (300, 0.5, 0.5), "buprenorphine": (300, 0.55, 0.6),
        "alprazolam": (1500, 0.95, 0.9), "tramadol": (900, 0.85, 0.8),
        "pregabalin": (450, 0.6, 0.6),
    },
    "hospital": {
        "morphine": (700, 0.95, 0.9), "hydromorphone": (600, 0.95, 0.9),
        "fentanyl": (60, 0.9, 0.8), "oxycodone": (800, 0.9, 0.8),
        "hydrocodone": (500, 0.7, 0.7), "methadone": (100, 0.4, 0.4),
        "alprazolam": (300, 0.6, 0.5), "tramadol": (300, 0.5, 0.5), "codeine": (100, 0.3, 0.3),
    },
    "clinic": {
        "buprenorphine": (700, 0.95, 0.95), "amphetamine": (300, 0.3, 0.7),
        "methylphenidate": (250, 0.3, 0.7), "alprazolam": (150, 0.3, 0.6),
        "pregabalin": (150, 0.25, 0.5),
    },
}
_FAMILIES["distributor"] = {f: (u * 8, 0.9, 0.9) for f, (u, _, _) in _FAMILIES["pharmacy"].items()}
_CADENCE = {  # size -> probabilities of weekly, twice_weekly, daily
    "small": (0.75, 0.25, 0.0), "medium": (0.3, 0.5, 0.2), "large": (0.05, 0.35, 0.6),
}
_TWICE = ((0, 3), (1, 4), (0, 2), (2, 4), (1, 3))


@dataclass(frozen=True, slots=True)
class FamilyHabit:
    """How a registrant buys one drug family: which products, how many units per order."""

    family: str
    ndcs: tuple[str, ...]
    weights: tuple[float, ...]
    units_per_order: float
    include_p: float


@dataclass(frozen=True, slots=True)
class Registrant:
    index: int
    dea_number: str
    name: str
    address: str
    kind: str
    size: str
    schedules: tuple[str, ...]
    cadence: str
    weekdays: tuple[int, ...]
    hour: float
    habits: tuple[FamilyHabit, ...]
    onboard_day: int = 0

    @property
    def peer_group(self) -> str:
        return f"{self.kind}:{self.size}"

    def to_dict(self) -> dict:
        """What registrants.jsonl records: identity and profile, never key material."""
        return {
            "dea_number": self.dea_number, "name": self.name, "address": self.address,
            "type": self.kind, "size_class": self.size, "peer_group": self.peer_group,
            "schedules": list(self.schedules), "cadence": self.cadence,
            "weekdays": list(self.weekdays), "families": [h.family for h in self.habits],
            "onboard_day": self.onboard_day,
        }


def _pick(rng: np.random.Generator, options: tuple, weights: tuple) -> str:
    p = np.asarray(weights, dtype=float)
    return options[int(rng.choice(len(options), p=p / p.sum()))]


def products_by_family(catalog: Catalog) -> dict[str, list]:
    """Catalog products grouped by family, weakest strength first."""
    by_family: dict[str, list] = {}
    for product in catalog.products.values():
        by_family.setdefault(product.family, []).append(product)
    for products in by_family.values():
        products.sort(key=lambda p: (p.base_mg_per_unit, p.ndc))
    return by_family


def _habit(rng, products: list, weekly: float, include_p: float, per_week: int) -> FamilyHabit:
    """Prefer lower strengths: the rank-r strength is half as likely as rank r-1."""
    ranks = np.array([0.5**i for i in range(len(products))])
    primary = int(rng.choice(len(products), p=ranks / ranks.sum()))
    ndcs, weights = [products[primary].ndc], [1.0]
    if len(products) > 1 and rng.random() < 0.4:
        other = [i for i in range(len(products)) if i != primary]
        ndcs.append(products[int(rng.choice(other))].ndc)
        weights.append(0.3)
    units = weekly / per_week / include_p
    return FamilyHabit(products[primary].family, tuple(ndcs), tuple(weights), units, include_p)


def make_registrant(
    rng: np.random.Generator, catalog: Catalog, index: int, taken: set[str], *,
    kind: str | None = None, onboard_day: int = 0,
) -> Registrant:
    """Draw one registrant; ``taken`` holds DEA numbers already used (updated)."""
    kind = kind or _pick(rng, KINDS, tuple(v[0] for v in _KIND.values()))
    _, letters, letter_p, size_p, restricted_p = _KIND[kind]
    size = _pick(rng, SIZES, size_p)
    cadence_p = _CADENCE[size] if kind != "distributor" else (0.0, 0.3, 0.7)
    cadence = _pick(rng, tuple(_ORDERS_PER_WEEK), cadence_p)
    weekdays = {
        "weekly": lambda: (int(rng.integers(5)),),
        "twice_weekly": lambda: _TWICE[int(rng.integers(len(_TWICE)))],
        "daily": lambda: (0, 1, 2, 3, 4, 5) if rng.random() < 0.3 else (0, 1, 2, 3, 4),
    }[cadence]()
    schedules = NON_NARCOTIC_SCHEDULES if rng.random() < restricted_p else ALL_SCHEDULES
    products = products_by_family(catalog)
    scale = _SIZE_SCALE[size] * float(rng.lognormal(0.0, 0.3))
    habits = []
    table = _FAMILIES[kind]
    allowed = [f for f in table if f in products
               and all(p.schedule in schedules for p in products[f])]
    for family in allowed:
        weekly, share, include_p = table[family]
        if rng.random() < share:
            habits.append(_habit(rng, products[family], weekly * scale, include_p, len(weekdays)))
    if not habits and allowed:  # everyone buys something
        family = max(allowed, key=lambda f: table[f][1])
        weekly, _, include_p = table[family]
        habits.append(_habit(rng, products[family], weekly * scale, include_p, len(weekdays)))
    name = fictional_name(rng, kind)
    return Registrant(
        index=index,
        dea_number=make_dea_number(rng, _pick(rng, letters, letter_p), name, taken),
        name=name,
        address=fictional_address(rng),
        kind=kind,
        size=size,
        schedules=schedules,
        cadence=cadence,
        weekdays=tuple(weekdays),
        hour=float(rng.uniform(13.0, 20.0)),  # 8-15 h US Eastern, in UTC
        habits=tuple(habits),
        onboard_day=onboard_day,
    )


def build_population(
    rng: np.random.Generator, catalog: Catalog, n: int, *, days: int,
    taken: set[str] | None = None, late_share: float = 0.03,
) -> list[Registrant]:
    """``n`` registrants; about ``late_share`` of them start ordering partway through."""
    taken = set() if taken is None else taken
    out = []
    for i in range(n):
        late = days > 10 and rng.random() < late_share
        onboard = int(rng.integers(days // 10, days - days // 10)) if late else 0
        out.append(make_registrant(rng, catalog, i, taken, onboard_day=onboard))
    return out
