"""A Prometheus histogram fed a batch of observations at a time.

``prometheus_client.Histogram.observe`` takes a lock and costs about 0.65 us per
call; the stream driver makes three observations per order, so it appends plain
floats during a batch and hands the list over once (about 0.15 us per value).
The exposition is a standard histogram (``_bucket{le}``, ``_sum``, ``_count``),
so PromQL's ``histogram_quantile`` works on it unchanged.

>>> from prometheus_client import CollectorRegistry, generate_latest
>>> r = CollectorRegistry()
>>> h = BatchHistogram("demo_seconds", "Demo.", (0.01, 0.1), registry=r)
>>> h.observe_many([0.005, 0.05, 0.01, 3.0])
>>> h.count, round(h.sum, 3)
(4, 3.065)
>>> [l for l in generate_latest(r).decode().splitlines() if "_bucket" in l]
['demo_seconds_bucket{le="0.01"} 2.0', 'demo_seconds_bucket{le="0.1"} 3.0', \
'demo_seconds_bucket{le="+Inf"} 4.0']
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.utils import floatToGoString

__all__ = ["BatchHistogram"]


class BatchHistogram:
    """Bucket counts in a plain list; a registry collector yielding one histogram family.

    Not locked: the stream driver and the ``/metrics`` view share one event loop.
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        buckets: Sequence[float],
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.bounds = [float(b) for b in sorted(buckets)]
        self.counts = [0] * (len(self.bounds) + 1)  # last slot: above the top bucket
        self.sum = 0.0
        if registry is not None:
            registry.register(self)

    @property
    def count(self) -> int:
        return sum(self.counts)

    def observe_many(self, values: Iterable[float]) -> None:
        """Add each value to the first bucket whose upper bound is >= it (Prometheus ``le``)."""
        bounds, counts = self.bounds, self.counts
        total = 0.0
        for v in values:
            counts[bisect_left(bounds, v)] += 1
            total += v
        self.sum += total

    def observe(self, value: float) -> None:
        self.observe_many((value,))

    def describe(self) -> list[HistogramMetricFamily]:
        return [HistogramMetricFamily(self.name, self.documentation)]

    def collect(self) -> Iterator[HistogramMetricFamily]:
        running, cumulative = 0, []
        for bound, n in zip(self.bounds, self.counts, strict=False):
            running += n
            cumulative.append((floatToGoString(bound), running))
        running += self.counts[-1]
        cumulative.append(("+Inf", running))
        family = HistogramMetricFamily(self.name, self.documentation)
        family.add_metric([], cumulative, self.sum)
        yield family
