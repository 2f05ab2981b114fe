"""Prometheus metrics. Labels carry reason codes and decisions only, never a DEA
number, order number, name or address (those identify registrants)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

__all__ = ["EngineMetrics"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_STAGE_BUCKETS = (1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 1e-2, 0.1)


class EngineMetrics:
    """One registry per worker; the stream driver updates it, ``/metrics`` serves it."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.received = Counter(
            "som_orders_received", "Messages read from the input topic", registry=r
        )
        self.rejected = Counter(
            "som_orders_rejected", "Messages rejected, by reason code", ["reason"], registry=r
        )
        self.decisions = Counter(
            "som_decisions",
            "Decisions, by decision and first reason code",
            ["decision", "reason"],
            registry=r,
        )
        self.latency = Histogram(
            "som_decision_latency_seconds",
            "From receipt on the input topic to the decision",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.verify_seconds = Histogram(
            "som_verify_seconds",
            "Verification time per message",
            buckets=_STAGE_BUCKETS,
            registry=r,
        )
        self.score_seconds = Histogram(
            "som_score_seconds",
            "Profile, score and decide time per order",
            buckets=_STAGE_BUCKETS,
            registry=r,
        )
        self.registrants = Gauge(
            "som_registrants_tracked", "Registrant profiles held by this worker", registry=r
        )
        self.model_info = Info("som_model", "Model and configuration versions in use", registry=r)

    def record_rejection(self, reason: str) -> None:
        self.rejected.labels(reason=reason).inc()

    def record_decision(self, decision: str, first_reason: str, latency_s: float) -> None:
        self.decisions.labels(decision=decision, reason=first_reason).inc()
        self.latency.observe(max(latency_s, 0.0))
