"""Labelled anomalies injected into normal traffic, one kind per affected registrant.

The kinds follow the three words of 21 CFR 1301.74(b) (size, frequency, pattern) plus
the evasions a per-order threshold misses: splitting a large order, ramping slowly,
and a new customer whose first orders are already large. Every anomaly starts after
``start_frac`` of the span so detectors have history to compare with, and only the
orders that carry the anomaly are labelled. Narcotic shifts respect the registrant's
authorised schedules, so an anomaly is suspicious but never a schedule violation.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from connectors.synthetic.population import FamilyHabit, Registrant
from connectors.synthetic.traffic import DAY, SimOrder, order_time, sample_lines

__all__ = ["ANOMALY_KINDS", "Injector", "inject_anomalies"]

ANOMALY_KINDS = (
    "size_spike",
    "frequency_burst",
    "pattern_shift",
    "split_orders",
    "slow_ramp",
    "new_customer_large_first",
)
MIN_HISTORY_ORDERS = 4
MIN_PACKAGES = 3  # whole packages hide a ramp or a split of 1-package lines


def _scaled(lines: list[list], factor: float) -> list[list]:
    return [[ndc, max(1, int(round(packages * factor)))] for ndc, packages in lines]


class Injector:
    """Holds what every kind needs: traffic, catalog facts, the RNG and the time window."""

    def __init__(
        self, traffic: dict[int, list[SimOrder]], upp: dict[str, int], by_family: dict,
        rng: np.random.Generator, *, days: int, start_frac: float,
        new_registrant: Callable[[int], tuple[Registrant, list[SimOrder]]],
    ) -> None:
        self.traffic, self.upp, self.by_family, self.rng = traffic, upp, by_family, rng
        self.days = days
        self.first_day = min(max(1, int(days * start_frac)), max(1, days - 3))
        self.new_registrant = new_registrant

    def _day(self, tail: int = 0) -> int:
        """A day inside the anomaly window leaving ``tail`` days after it when possible."""
        last = max(self.first_day + 1, self.days - tail)
        return int(self.rng.integers(self.first_day, last))

    def _late(self, orders: list[SimOrder], t0: int) -> list[SimOrder]:
        return [o for o in orders if o.t >= t0]

    def main_habit(self, reg: Registrant) -> FamilyHabit:
        """The habit a diverter would push: Schedule II first, then most packages per order."""

        def weight(h: FamilyHabit) -> tuple[bool, float]:
            return (self.by_family[h.family][0].schedule == "2",
                    h.units_per_order / self.upp[h.ndcs[0]])
        return max(reg.habits, key=weight)

    def eligible(self, reg: Registrant, kind: str) -> bool:
        """Enough history before the window; ramps and splits need quantities to scale."""
        first_t = self.first_day * DAY
        history = sum(1 for o in self.traffic[reg.index] if o.t < first_t)
        if reg.onboard_day > 0 or history < MIN_HISTORY_ORDERS or not reg.habits:
            return False
        if kind in ("slow_ramp", "split_orders"):
            habit = self.main_habit(reg)
            if habit.units_per_order / self.upp[habit.ndcs[0]] < MIN_PACKAGES:
                return False
        return kind != "slow_ramp" or reg.cadence != "daily"

    def size_spike(self, reg: Registrant) -> list[SimOrder]:
        """One late order with one line 4-10 times its usual packages."""
        late = self._late(self.traffic[reg.index], self.first_day * DAY)
        if not late:
            return []
        order = late[int(self.rng.integers(len(late)))]
        order.lines = [list(x) for x in order.lines]
        main = order.lines[int(self.rng.integers(len(order.lines)))]
        main[1] = int(np.ceil(main[1] * self.rng.uniform(4.0, 10.0)))
        return [order]

    def frequency_burst(self, reg: Registrant) -> list[SimOrder]:
        """5-10 extra normal-sized orders within 2-4 days (the extras are labelled)."""
        day, span = self._day(tail=4), int(self.rng.integers(2, 5))
        extra = []
        for _ in range(int(self.rng.integers(5, 11))):
            d = min(self.days - 1, day + int(self.rng.integers(span)))
            extra.append(SimOrder(reg, order_time(reg, d, self.rng),
                                  sample_lines(reg, self.upp, self.rng)))
        self.traffic[reg.index].extend(extra)
        return extra

    def pattern_shift(self, reg: Registrant) -> list[SimOrder]:
        """A jump to the family's top strength, or a family the registrant never bought."""
        stronger = [h for h in reg.habits
                    if self.by_family[h.family][-1].ndc not in h.ndcs]
        if stronger:
            habit = max(stronger, key=lambda h: h.family == "oxycodone")
            family, units = habit.family, habit.units_per_order * self.rng.uniform(2.0, 4.0)
        else:
            mine = {h.family for h in reg.habits}
            new = [f for f, ps in self.by_family.items() if f not in mine
                   and all(p.schedule in reg.schedules for p in ps)]
            if not new or not reg.habits:
                return []
            family = new[int(self.rng.integers(len(new)))]
            units = float(np.median([h.units_per_order for h in reg.habits]))
            units *= self.rng.uniform(2.0, 4.0)
        ndc = self.by_family[family][-1].ndc
        gone = {p.ndc for p in self.by_family[family]}
        t0 = self._day(tail=21) * DAY
        window = [o for o in self._late(self.traffic[reg.index], t0)
                  if o.t < t0 + int(self.rng.integers(21, 36)) * DAY]
        for order in window:
            noise = self.rng.lognormal(0.0, 0.2)
            packages = max(1, int(round(units * noise / self.upp[ndc])))
            order.lines = [x for x in order.lines if x[0] not in gone] + [[ndc, packages]]
        return window

    def split_orders(self, reg: Registrant) -> list[SimOrder]:
        """3-5 orders within 36 h, each 1-1.6x a normal order of the main family."""
        habit = self.main_habit(reg)
        ndc = habit.ndcs[0]
        t0 = order_time(reg, self._day(tail=2), self.rng)
        times = sorted(int(x) for x in self.rng.uniform(0, 36 * 3600, int(self.rng.integers(3, 6))))
        extra = []
        for dt in times:
            units = habit.units_per_order * self.rng.uniform(1.0, 1.6)
            lines = [[ndc, max(1, int(round(units / self.upp[ndc])))]]
            if self.rng.random() < 0.5:
                lines += [x for x in sample_lines(reg, self.upp, self.rng) if x[0] != ndc][:1]
            extra.append(SimOrder(reg, min(t0 + dt, self.days * DAY - 1), lines))
        self.traffic[reg.index].extend(extra)
        return extra

    def slow_ramp(self, reg: Registrant) -> list[SimOrder]:
        """Every order from t0 scaled by a factor rising linearly to 2.5-3.5 at the end."""
        t0 = self._day(tail=(self.days - self.first_day) * 2 // 3) * DAY
        late = self._late(self.traffic[reg.index], t0)
        if len(late) < 3:
            return []
        end, top = late[-1].t + 1, self.rng.uniform(2.5, 3.5)
        for order in late:
            order.lines = _scaled(order.lines, 1.0 + (top - 1.0) * (order.t - t0) / (end - t0))
        return late

    def new_customer_large_first(self, _reg: Registrant | None) -> list[SimOrder]:
        """A registrant onboarded in the window whose first 2-3 orders are 4-8x normal."""
        reg, orders = self.new_registrant(self._day(tail=14))
        self.traffic[reg.index] = orders
        first = orders[: int(self.rng.integers(2, 4))]
        for order in first:
            order.lines = _scaled(order.lines, self.rng.uniform(4.0, 8.0))
        return first




def inject_anomalies(injector: Injector, population: list[Registrant], rate: float) -> list[dict]:
    """Inject until about ``rate`` of all orders are anomalous; every kind at least once.

    Returns one record per injected anomaly (kind, registrant, labelled order count).
    """
    if rate <= 0:
        return []
    rng = injector.rng
    total = sum(len(v) for v in injector.traffic.values())
    free = [population[i] for i in rng.permutation(len(population))]
    kinds, pending = list(ANOMALY_KINDS), list(ANOMALY_KINDS)
    records, labelled, turn = [], 0, 0
    while kinds and (pending or labelled < rate * total) and turn < 10 * len(population) + 100:
        kind = pending[0] if pending else kinds[turn % len(kinds)]
        turn += 1
        reg = None
        if kind != "new_customer_large_first":
            reg = next((r for r in free if injector.eligible(r, kind)), None)
            if reg is None:
                kinds.remove(kind)
                pending = [k for k in pending if k != kind]
                continue
            free.remove(reg)
        before = sum(len(v) for v in injector.traffic.values())
        hit = getattr(injector, kind)(reg)
        total += sum(len(v) for v in injector.traffic.values()) - before
        if not hit:
            continue
        for o in hit:
            o.anomaly = kind
        labelled += len(hit)
        pending = [k for k in pending if k != kind]
        records.append({"kind": kind, "dea_number": hit[0].registrant.dea_number,
                        "orders": len(hit), "first_t": min(o.t for o in hit)})
    return records
