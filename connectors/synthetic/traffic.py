"""Normal ordering traffic of one registrant, as unsigned simulated orders.

Orders fall on the registrant's habitual weekdays near its habitual hour. Real
buyers are not clockwork, so an order is sometimes skipped or moved a day, and
each line's quantity carries lognormal noise (mean preserved) around the habit.
Times are seconds from the feed start; they become ISO timestamps only at the end.

>>> import numpy as np
>>> from connectors.catalog import Catalog
>>> from config.settings import DEFAULT_CONFIG
>>> from connectors.synthetic.population import make_registrant
>>> cat = Catalog.load(DEFAULT_CONFIG.with_name("catalog.csv"))
>>> reg = make_registrant(np.random.default_rng(5), cat, 0, set())
>>> orders = simulate(reg, units_per_package(cat), np.random.default_rng(6), days=28)
>>> all(o.lines and o.anomaly is None for o in orders), orders == sorted(orders, key=sort_key)
(True, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from connectors.catalog import Catalog
from connectors.synthetic.population import Registrant

__all__ = ["SimOrder", "simulate", "sample_lines", "units_per_package", "sort_key", "DAY"]

DAY = 86_400
QUANTITY_SIGMA = 0.35
SKIP_P = 0.05
SHIFT_P = 0.08


@dataclass(slots=True)
class SimOrder:
    """One order before numbering and signing; ``lines`` are [ndc, packages] pairs."""

    registrant: Registrant
    t: int
    lines: list[list]
    anomaly: str | None = None
    number: str = ""


def sort_key(order: SimOrder) -> tuple[int, str]:
    return (order.t, order.registrant.dea_number)


def units_per_package(catalog: Catalog) -> dict[str, int]:
    return {ndc: p.dosage_units_per_package for ndc, p in catalog.products.items()}


def _packages(units: float, upp: int) -> int:
    return max(1, int(round(units / upp)))


def sample_lines(
    reg: Registrant, upp: dict[str, int], rng: np.random.Generator,
    scale: dict[str, float] | None = None,
) -> list[list]:
    """One order's lines drawn from the habits; ``scale`` multiplies a family's quantity."""
    lines = []
    for habit in reg.habits:
        if rng.random() >= habit.include_p:
            continue
        lines.append(_line(habit, upp, rng, (scale or {}).get(habit.family, 1.0)))
    if not lines and reg.habits:
        habit = max(reg.habits, key=lambda h: h.include_p)
        lines.append(_line(habit, upp, rng, (scale or {}).get(habit.family, 1.0)))
    return lines


def _line(habit, upp: dict[str, int], rng: np.random.Generator, factor: float) -> list:
    if len(habit.ndcs) == 1:
        ndc = habit.ndcs[0]
    else:
        w = np.asarray(habit.weights)
        ndc = habit.ndcs[int(rng.choice(len(w), p=w / w.sum()))]
    noise = rng.lognormal(-QUANTITY_SIGMA**2 / 2, QUANTITY_SIGMA)
    return [ndc, _packages(habit.units_per_order * noise * factor, upp[ndc])]


def order_time(reg: Registrant, day: int, rng: np.random.Generator) -> int:
    """Seconds from the start for an order on ``day``, near the registrant's habitual hour."""
    hour = float(np.clip(reg.hour + rng.normal(0.0, 0.75), 11.0, 23.9))
    return day * DAY + int(hour * 3600)


def simulate(
    reg: Registrant, upp: dict[str, int], rng: np.random.Generator, *, days: int,
    start_weekday: int = 0,
) -> list[SimOrder]:
    """Normal orders of ``reg`` over ``days`` days; ``start_weekday`` 0 = Monday."""
    wanted = set(reg.weekdays)
    order_days = []
    for day in range(reg.onboard_day, days):
        if (start_weekday + day) % 7 not in wanted or rng.random() < SKIP_P:
            continue
        if rng.random() < SHIFT_P:
            day += 1 if rng.random() < 0.5 else -1
        if reg.onboard_day <= day < days:
            order_days.append(day)
    orders = [
        SimOrder(reg, order_time(reg, day, rng), sample_lines(reg, upp, rng))
        for day in order_days
    ]
    orders.sort(key=sort_key)
    return orders
