"""The replay driver over several processes: registrants sharded, decisions in feed order.

A backtest of a year of a large distributor's orders (thresholds tried one after another)
is bound by the core's time per order on one core. Registrants are independent: a profile
belongs to one purchaser DEA number, and the trained models are read-only. So the feed is
verified once here, each purchaser's orders go, in feed order, to one of ``jobs`` forked
processes (the busiest registrants first, each to the least loaded process), each runs
the same core in the same micro-batches, and the outcomes come back merged into feed
order: the same decisions as ``engine.replay.replay`` with one process
(``tests/test_replay.py`` checks it), apart from the wall-clock fields (``decided_at``,
``latency_ms``).

Reviews are not sharded yet (``som replay --jobs`` refuses ``--reviews``).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterable

from engine.batch_gc import batch_gc
from engine.pipeline import Outcome, Pipeline, Received
from engine.profile import RegistrantProfile
from engine.records import Rejection

__all__ = ["outcomes_in_parallel"]

# (pipeline, shards, batch) for the forked processes to read: fork shares it, no pickling
_WORK: tuple | None = None


def outcomes_in_parallel(
    pipeline: Pipeline,
    messages: Iterable[bytes],
    jobs: int,
    batch: int,
    profiles: dict[str, RegistrantProfile] | None = None,
) -> list[Outcome]:
    """Every message's outcome, in feed order; ``profiles`` (if given) gets the final ones."""
    global _WORK
    by_dea: dict[str, list[tuple[int, object]]] = {}
    outcomes: list[Outcome | None] = []
    for i, raw in enumerate(messages):
        received = Received.now()
        verified = pipeline.verify(raw, received)
        if isinstance(verified, Rejection):
            outcomes.append(verified)
            continue
        outcomes.append(None)
        dea = verified.order.purchaser.dea_number
        by_dea.setdefault(dea, []).append((i, (verified, received, None)))
    _WORK = (pipeline, _shards(by_dea, jobs), batch, profiles is not None)
    try:
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            results = pool.map(_run_shard, range(jobs))
    finally:
        _WORK = None
    for decided, shard_profiles in results:
        for i, outcome in decided:
            outcomes[i] = outcome
        if profiles is not None:
            profiles.update(shard_profiles)
    return outcomes  # type: ignore[return-value]


def _shards(by_dea: dict[str, list], jobs: int) -> list[list[tuple[int, object]]]:
    """Registrants to processes, the busiest first to the least loaded (ties: the DEA
    number), each process's orders in feed order."""
    loads = [0] * jobs
    shards: list[list[tuple[int, object]]] = [[] for _ in range(jobs)]
    for dea in sorted(by_dea, key=lambda d: (-len(by_dea[d]), d)):
        k = loads.index(min(loads))
        loads[k] += len(by_dea[dea])
        shards[k].extend(by_dea[dea])
    for shard in shards:
        shard.sort(key=lambda item: item[0])
    return shards


def _run_shard(k: int) -> tuple[list[tuple[int, Outcome]], dict]:
    """In a forked process: one shard's orders through the core, in micro-batches."""
    pipeline, shards, batch, keep_profiles = _WORK  # type: ignore[misc]
    profiles: dict[str, RegistrantProfile] = {}
    out: list[tuple[int, Outcome]] = []
    items = shards[k]
    with batch_gc():
        for at in range(0, len(items), batch):
            part = items[at : at + batch]
            decided = pipeline.monitor_pending([item for _, item in part], profiles)
            out.extend(zip([i for i, _ in part], decided, strict=True))
    return out, (profiles if keep_profiles else {})
