"""The whole unsigned simulation: population, normal traffic, anomalies, numbering.

Each registrant's traffic draws from its own seeded stream (``[seed, 1, index]``), so
adding anomalies or registrants never changes the normal orders of the others, and the
same seed always gives the same scenario. Signing is left to the caller.

>>> from datetime import datetime, UTC
>>> from connectors.catalog import Catalog
>>> from config.settings import DEFAULT_CONFIG
>>> cat = Catalog.load(DEFAULT_CONFIG.with_name("catalog.csv"))
>>> s = build_scenario(cat, seed=1, registrants=30, days=60, start=datetime(2025, 1, 1, tzinfo=UTC))
>>> sorted({o.anomaly for o in s.orders} - {None}) == sorted(ANOMALY_KINDS)
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from connectors.catalog import Catalog
from connectors.synthetic.anomalies import ANOMALY_KINDS, Injector, inject_anomalies
from connectors.synthetic.assemble import number_orders
from connectors.synthetic.population import (
    Registrant,
    build_population,
    make_registrant,
    products_by_family,
)
from connectors.synthetic.traffic import SimOrder, simulate, sort_key, units_per_package

__all__ = ["Scenario", "build_scenario", "ANOMALY_KINDS"]

_POPULATION, _TRAFFIC, _ANOMALY, _NUMBERS, _NEW = range(5)


@dataclass
class Scenario:
    start: datetime
    days: int
    population: list[Registrant]
    orders: list[SimOrder]
    anomalies: list[dict] = field(default_factory=list)

    def anomaly_counts(self) -> dict[str, int]:
        """Labelled orders per anomaly kind (every kind listed, zero if absent)."""
        counts = dict.fromkeys(ANOMALY_KINDS, 0)
        for order in self.orders:
            if order.anomaly:
                counts[order.anomaly] += 1
        return counts


def build_scenario(
    catalog: Catalog, *, seed: int, registrants: int, days: int, start: datetime,
    anomaly_rate: float = 0.01, anomaly_start: float = 0.6, taken: set[str] | None = None,
) -> Scenario:
    """Simulate ``registrants`` purchasers over ``days`` days from ``start`` (UTC)."""
    if registrants < 1 or days < 7:
        raise ValueError("need at least 1 registrant and 7 days")
    taken = set() if taken is None else taken
    upp = units_per_package(catalog)
    weekday = start.weekday()
    population = build_population(
        np.random.default_rng([seed, _POPULATION]), catalog, registrants, days=days, taken=taken
    )
    traffic = {
        reg.index: simulate(reg, upp, np.random.default_rng([seed, _TRAFFIC, reg.index]),
                            days=days, start_weekday=weekday)
        for reg in population
    }
    new_rng = np.random.default_rng([seed, _NEW])

    def new_registrant(onboard_day: int) -> tuple[Registrant, list[SimOrder]]:
        kind = ("pharmacy", "clinic")[int(new_rng.integers(2))]
        reg = make_registrant(new_rng, catalog, len(population), taken, kind=kind,
                              onboard_day=onboard_day)
        population.append(reg)
        rng = np.random.default_rng([seed, _TRAFFIC, reg.index])
        return reg, simulate(reg, upp, rng, days=days, start_weekday=weekday)

    injector = Injector(
        traffic, upp, products_by_family(catalog), np.random.default_rng([seed, _ANOMALY]),
        days=days, start_frac=anomaly_start, new_registrant=new_registrant,
    )
    records = inject_anomalies(injector, population, anomaly_rate)
    orders = sorted((o for orders in traffic.values() for o in orders), key=sort_key)
    number_orders(orders, start, np.random.default_rng([seed, _NUMBERS]))
    return Scenario(start, days, population, orders, records)
