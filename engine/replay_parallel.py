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

Officers' reviews go to the process of their purchaser, at the place in the feed where one
process would apply them (worked out here, while verifying: before the first order signed
after the review's ``reviewed_at``), so each profile sees its orders and reviews in the
same order as with one process. A review that cannot be opened touches no profile and is
answered here.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterable

from engine.batch_gc import batch_gc
from engine.pipeline import Outcome, Pipeline, Received
from engine.profile import RegistrantProfile
from engine.records import Rejected, Rejection, ReviewRecord

__all__ = ["outcomes_in_parallel"]

# (pipeline, shards, batch) for the forked processes to read: fork shares it, no pickling
_WORK: tuple | None = None


def outcomes_in_parallel(
    pipeline: Pipeline,
    messages: Iterable[bytes],
    jobs: int,
    batch: int,
    profiles: dict[str, RegistrantProfile] | None = None,
    reviews: Iterable[bytes] | None = None,
) -> list[tuple[bool, Outcome | ReviewRecord]]:
    """(is a review's, outcome) for every message and review, in the order one process
    gives them; ``profiles`` (if given) gets the final profiles."""
    global _WORK
    due = sorted(((pipeline.review_time(raw), i, raw) for i, raw in enumerate(reviews or ())),
                 reverse=True)  # pop() takes the earliest, as engine.replay does
    by_dea: dict[str, list[tuple[int, object]]] = {}
    routed: list[tuple[str, int, bytes]] = []  # (purchaser, place, review)
    out: list[tuple[bool, Outcome | ReviewRecord] | None] = []

    def reviews_until(ts: float) -> None:
        while due and due[-1][0] < ts:
            raw = due.pop()[2]
            try:
                dea = pipeline.review_auth.open(raw)[0].purchaser_dea
            except Rejected:  # unreadable: rejected with no profile read
                out.append((True, pipeline.review(raw, {})))
                continue
            routed.append((dea, len(out), raw))
            out.append(None)

    for raw in messages:
        received = Received.now()
        verified = pipeline.verify(raw, received)
        if isinstance(verified, Rejection):
            out.append((False, verified))
            continue
        if due:
            reviews_until(verified.order.signed_at.timestamp())
        dea = verified.order.purchaser.dea_number
        by_dea.setdefault(dea, []).append((len(out), (verified, received, None)))
        out.append(None)
    reviews_until(float("inf"))
    shards = _shards(by_dea, jobs)
    home = {dea: k for k, shard in enumerate(shards) for dea in _deas(shard)}
    for dea, place, raw in routed:  # a purchaser with no order goes to the first process
        shards[home.get(dea, 0)].append((place, raw))
    for shard in shards:
        shard.sort(key=lambda item: item[0])
    _WORK = (pipeline, shards, batch, profiles is not None)
    try:
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            results = pool.map(_run_shard, range(jobs))
    finally:
        _WORK = None
    for decided, shard_profiles in results:
        for i, is_review, outcome in decided:
            out[i] = (is_review, outcome)
        if profiles is not None:
            profiles.update(shard_profiles)
    return out  # type: ignore[return-value]


def _deas(shard: list[tuple[int, object]]) -> set[str]:
    return {item[0].order.purchaser.dea_number for _, item in shard}


def _shards(by_dea: dict[str, list], jobs: int) -> list[list[tuple[int, object]]]:
    """Registrants to processes, the busiest first to the least loaded (ties: the DEA
    number)."""
    loads = [0] * jobs
    shards: list[list[tuple[int, object]]] = [[] for _ in range(jobs)]
    for dea in sorted(by_dea, key=lambda d: (-len(by_dea[d]), d)):
        k = loads.index(min(loads))
        loads[k] += len(by_dea[dea])
        shards[k].extend(by_dea[dea])
    return shards


def _run_shard(k: int) -> tuple[list[tuple[int, bool, Outcome | ReviewRecord]], dict]:
    """In a forked process: one shard's orders through the core, in micro-batches, and its
    reviews applied in between (the orders before a review decided first)."""
    pipeline, shards, batch, keep_profiles = _WORK  # type: ignore[misc]
    profiles: dict[str, RegistrantProfile] = {}
    out: list[tuple[int, bool, Outcome | ReviewRecord]] = []
    pending: list[tuple[int, object]] = []

    def flush() -> None:
        decided = pipeline.monitor_pending([item for _, item in pending], profiles)
        out.extend((i, False, o) for (i, _), o in zip(pending, decided, strict=True))
        pending.clear()

    with batch_gc():
        for place, item in shards[k]:
            if isinstance(item, bytes):  # a review
                if pending:
                    flush()
                out.append((place, True, pipeline.review(item, profiles)))
                continue
            pending.append((place, item))
            if len(pending) >= batch:
                flush()
        if pending:
            flush()
    return out, (profiles if keep_profiles else {})
