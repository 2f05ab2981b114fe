"""Prometheus metrics of a worker, updated once per batch.

Labels carry reason codes, decisions, topic names and partition numbers only,
never a DEA number, order number, name or address (those identify registrants).
The stream driver counts into a ``Tally`` of plain ints and lists while it
handles a batch and calls ``EngineMetrics.flush`` once at the end, so per order
the cost is a few list appends (see ``benchmarks/metrics_overhead.py``).

>>> m = EngineMetrics()
>>> t = m.tally()
>>> t.received += 2
>>> t.decision("HOLD", "formula_baseline", 0.004)
>>> t.rejection("bad_signature")
>>> m.flush(t)
>>> from prometheus_client import generate_latest
>>> text = generate_latest(m.registry).decode()
>>> 'som_decisions_total{decision="HOLD",reason="formula_baseline"} 1.0' in text
True
>>> 'som_orders_rejected_total{reason="bad_signature"} 1.0' in text
True
"""

from __future__ import annotations

import re

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Info,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)

from engine.histogram import BatchHistogram
from engine.records import RejectReason

__all__ = [
    "EngineMetrics", "Tally", "LATENCY_BUCKETS", "STAGE_BUCKETS", "SHIP_TO_CHECKS", "sample_total",
]

#: Receipt-to-decision latency: 1 ms to 10 s.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
#: Per-stage CPU time: a JSON envelope verifies in ~30 us, a CMS one in ~200 us.
STAGE_BUCKETS = (1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 1e-2, 0.1, 1)
#: ``VerifiedOrder.ship_to`` values (None, a paper order, is counted as ``paper``).
SHIP_TO_CHECKS = (
    "matched", "not_stated", "not_in_certificate", "unreadable", "not_checked", "paper",
)
_CODE = re.compile(r"[a-z][a-z0-9_]{0,47}")


def _code(value: str, known: set[str]) -> str:
    """A label-safe reason code; anything unexpected becomes ``other`` (bounded cardinality)."""
    if value in known:
        return value
    if _CODE.fullmatch(value):
        known.add(value)
        return value
    return "other"


class Tally:
    """One batch's counts and observations, in plain Python objects (no locks, no labels)."""

    __slots__ = (
        "received", "rekeyed", "rejected", "decided", "latency", "verify", "score", "ship_to",
    )

    def __init__(self) -> None:
        self.received = 0
        self.rekeyed = 0
        self.rejected: dict[str, int] = {}
        self.decided: dict[tuple[str, str], int] = {}
        self.latency: list[float] = []
        self.verify: list[float] = []
        self.score: list[float] = []
        self.ship_to: dict[str | None, int] = {}  # VerifiedOrder.ship_to -> orders

    def rejection(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1

    def decision(self, decision: str, first_reason: str, latency_s: float) -> None:
        key = (decision, first_reason)
        self.decided[key] = self.decided.get(key, 0) + 1
        self.latency.append(latency_s if latency_s > 0.0 else 0.0)


class EngineMetrics:
    """One private registry per worker; the stream driver flushes tallies into it."""

    def __init__(self, registry: CollectorRegistry | None = None, process: bool = True) -> None:
        disable_created_metrics()  # no *_created series: they double what Prometheus stores
        r = self.registry = registry or CollectorRegistry()
        if process:  # process_cpu_seconds_total, process_resident_memory_bytes, python_info
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
        self.received = Counter(
            "som_orders_received", "Messages read from the input topic", registry=r
        )
        self.rekeyed = Counter(
            "som_orders_rekeyed",
            "Verified messages sent through the rekey topic (key missing or wrong)",
            registry=r,
        )
        self.rejected = Counter(
            "som_orders_rejected", "Messages rejected, by reason code", ["reason"], registry=r
        )
        self.decisions = Counter(
            "som_decisions",
            "Decisions, by decision and first reason code (none for a release)",
            ["decision", "reason"],
            registry=r,
        )
        self.reviews = Counter(
            "som_reviews",
            "Officers' reviews read from the reviews topic, by outcome (cleared, reported, or "
            "rejected: its record on the rejected topic names the reason)",
            ["outcome"],
            registry=r,
        )
        for outcome in ("cleared", "reported", "rejected"):
            self.reviews.labels(outcome=outcome)
        self.reviews_unsigned = Counter(
            "som_reviews_unsigned",
            "Officers' reviews applied without a signature (0 for a while: [reviews] "
            "require_signature can be switched on)",
            registry=r,
        )
        self.ship_to = Counter(
            "som_orders_ship_to",
            "Verified orders by ship-to check (engine.verify): matched, not_stated (no address "
            "on the order), not_in_certificate and unreadable (0 for a while: [verification] "
            "ship_to_required can be switched on), not_checked (ship_to_match off), paper",
            ["check"],
            registry=r,
        )
        for check in SHIP_TO_CHECKS:
            self.ship_to.labels(check=check)
        for reason in RejectReason:  # every series exists from the start: rate() sees the 1st
            self.rejected.labels(reason=str(reason))
        self.decisions.labels(decision="RELEASE", reason="none")
        self.latency = BatchHistogram(
            "som_decision_latency_seconds",
            "From receipt on the input topic (message timestamp) to the decision",
            LATENCY_BUCKETS,
            registry=r,
        )
        self.verify_seconds = BatchHistogram(
            "som_verify_seconds", "Verification time per message", STAGE_BUCKETS, registry=r
        )
        self.score_seconds = BatchHistogram(
            "som_score_seconds",
            "Profile, score and decide time per verified order",
            STAGE_BUCKETS,
            registry=r,
        )
        self.batches = Counter(
            "som_batches", "Batches taken from the stream by the monitor agents", registry=r
        )
        self.rebalances = Counter(
            "som_rebalances",
            "Partition assignments received (one per consumer-group rebalance)",
            registry=r,
        )
        self.input_rereads = Counter(
            "som_input_rereads",
            "Input partitions read again from a message that never reached the agent "
            "(engine.offset_guard)",
            registry=r,
        )
        self.input_passed_over = Counter(
            "som_input_offsets_without_record",
            "Input offsets passed over because they hold no record: transactional producers' "
            "commit and abort markers, compacted records (engine.offset_guard)",
            registry=r,
        )
        self.partitions = Gauge(
            "som_partitions_assigned",
            "Partitions of the input and rekey topics assigned to this worker",
            registry=r,
        )
        self.ready = Gauge(
            "som_ready", "1 when /readyz reports ready, else 0 (updated on scrape)", registry=r
        )
        self.model_info = Info("som_model", "Model and configuration versions in use", registry=r)
        self._codes: set[str] = {str(r) for r in RejectReason} | {"none"}

    def tally(self) -> Tally:
        return Tally()

    def flush(self, t: Tally) -> None:
        """Add one batch to the exported metrics (a dozen calls, whatever the batch size)."""
        self.batches.inc()
        if t.received:
            self.received.inc(t.received)
        if t.rekeyed:
            self.rekeyed.inc(t.rekeyed)
        for reason, n in t.rejected.items():
            self.rejected.labels(reason=_code(reason, self._codes)).inc(n)
        for (decision, reason), n in t.decided.items():
            self.decisions.labels(decision=decision, reason=_code(reason, self._codes)).inc(n)
        if t.latency:
            self.latency.observe_many(t.latency)
        if t.verify:
            self.verify_seconds.observe_many(t.verify)
        if t.score:
            self.score_seconds.observe_many(t.score)
        for check, n in t.ship_to.items():
            self.ship_to.labels(check="paper" if check is None else check).inc(n)


def sample_total(text: str, name: str) -> float:
    """Sum of every series of sample ``name`` in a /metrics page (tests, benchmarks)."""
    from prometheus_client.parser import text_string_to_metric_families

    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    )
