"""Per-order cost of the stream driver's metrics: batched tally vs direct prometheus_client.

Why: the issue allows metrics at most 5% of stream throughput. Faust's own
per-event cost is about 100 us (DESIGN.md section 4), so the metric path must
stay well under 5 us per order. This runs both ways of recording the same
observations in one process and prints the ratio; ``stream_throughput.py``
measures the end-to-end cost with ``[web] metrics`` on and off.

    .venv/bin/python benchmarks/metrics_overhead.py [--events 200000]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prometheus_client import CollectorRegistry, Counter, Histogram  # noqa: E402

from engine.metrics import LATENCY_BUCKETS, STAGE_BUCKETS, EngineMetrics  # noqa: E402

BATCH = 500
#: Faust per-event cost with take() on raw bytes (DESIGN.md section 4: ~9,700/s).
FAUST_EVENT_US = 1e6 / 9700


def batched(n: int) -> float:
    """What ``engine.stream.handle`` does per order, plus one flush per batch."""
    m = EngineMetrics(process=False)
    clock = time.perf_counter
    start = clock()
    for base in range(0, n, BATCH):
        t = m.tally()
        for i in range(base, min(n, base + BATCH)):
            t.received += 1
            t0 = clock()
            t1 = clock()
            t.verify.append(t1 - t0)
            t.score.append(clock() - t1)
            if i % 50:
                t.decision("RELEASE", "none", 0.012)
            else:
                t.decision("HOLD", "formula_baseline", 0.012)
        m.flush(t)
    return (clock() - start) / n * 1e6


def direct(n: int) -> float:
    """The naive way: a labelled counter and three histogram observations per order."""
    r = CollectorRegistry()
    received = Counter("x_received", "x", registry=r)
    decisions = Counter("x_decisions", "x", ["decision", "reason"], registry=r)
    latency = Histogram("x_latency", "x", buckets=LATENCY_BUCKETS, registry=r)
    verify = Histogram("x_verify", "x", buckets=STAGE_BUCKETS, registry=r)
    score = Histogram("x_score", "x", buckets=STAGE_BUCKETS, registry=r)
    clock = time.perf_counter
    start = clock()
    for i in range(n):
        received.inc()
        t0 = clock()
        t1 = clock()
        verify.observe(t1 - t0)
        score.observe(clock() - t1)
        if i % 50:
            decisions.labels(decision="RELEASE", reason="none").inc()
        else:
            decisions.labels(decision="HOLD", reason="formula_baseline").inc()
        latency.observe(0.012)
    return (clock() - start) / n * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    b = min(batched(args.events) for _ in range(args.runs))
    d = min(direct(args.events) for _ in range(args.runs))
    print(f"batched tally  {b:6.2f} us/order  ({b / FAUST_EVENT_US:.2%} of a Faust event)")
    print(f"direct client  {d:6.2f} us/order  ({d / FAUST_EVENT_US:.2%} of a Faust event)")
    result = {
        "batched_us_per_order": round(b, 3),
        "direct_us_per_order": round(d, 3),
        "ratio_batched_to_direct": round(b / d, 3),
        "batched_share_of_faust_event": round(b / FAUST_EVENT_US, 4),
    }
    print("RESULT " + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
