"""The replay driver: the core over a feed file, in-process, no broker.

For backtests, the embedded demo without Kafka, and tests. Registrants'
profiles live in a plain dict; everything else is the same core the stream
driver runs, so the same feed gives the same decisions.

Officers' reviews (``engine.review``) can be replayed with the orders: each review
is applied just before the first order signed after its ``reviewed_at``, the order
in which they would have met on the stream. That needs the feed in signing order (as
archived streams and ``som generate`` feeds are): in an unsorted feed a review is applied
before every order listed after it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from engine.batch_gc import MICRO_BATCH, batch_gc
from engine.pipeline import Outcome, Pipeline, Received
from engine.profile import RegistrantProfile
from engine.records import Decision, Rejection, ReviewRecord, dumps

__all__ = ["ReplaySummary", "replay", "BATCH"]

BATCH = MICRO_BATCH  # messages per micro-batch (larger ones keep too much alive for the GC)


@dataclass
class ReplaySummary:
    messages: int = 0
    released: int = 0
    held: int = 0
    rejected: int = 0
    rejections_by_reason: dict[str, int] = field(default_factory=dict)
    holds_by_reason: dict[str, int] = field(default_factory=dict)
    reviews: int = 0  # reviews applied (not counted in ``messages``: those are orders)
    reviews_rejected: int = 0

    def add(self, outcome: Outcome) -> None:
        self.messages += 1
        if isinstance(outcome, Rejection):
            self.rejected += 1
            r = str(outcome.reason)
            self.rejections_by_reason[r] = self.rejections_by_reason.get(r, 0) + 1
        elif outcome.decision == "HOLD":
            self.held += 1
            r = outcome.reasons[0].code if outcome.reasons else "none"
            self.holds_by_reason[r] = self.holds_by_reason.get(r, 0) + 1
        else:
            self.released += 1


def replay(
    pipeline: Pipeline,
    messages: Iterable[bytes],
    decisions_out: IO[bytes] | None = None,
    rejections_out: IO[bytes] | None = None,
    profiles: dict[str, RegistrantProfile] | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
    batch: int = BATCH,
    reviews: Iterable[bytes] | None = None,
    reviews_out: IO[bytes] | None = None,
    jobs: int = 1,
) -> ReplaySummary:
    """Run every message through the core; write each record as one JSON line.

    Messages go through in micro-batches of ``batch`` (the isolation forest scores a
    batch's rows at once); outcomes are the same as one message at a time, in order.
    ``reviews`` (messages of the reviews topic) are applied in time with the orders;
    each gives a ReviewRecord (to ``reviews_out``) or a Rejection (to ``rejections_out``),
    counted in the summary; ``on_outcome`` sees the orders' outcomes only. ``jobs`` > 1
    shares the registrants among that many processes (``engine.replay_parallel``), with
    the same outcomes in the same order.
    """
    summary = ReplaySummary()
    if jobs > 1:
        if pipeline.on_context is not None or pipeline.on_findings is not None:
            raise ValueError("som train and som explain watch every order: jobs = 1")
        from engine.replay_parallel import outcomes_in_parallel

        for is_review, outcome in outcomes_in_parallel(pipeline, messages, jobs, batch,
                                                       profiles, reviews):
            if is_review:
                _emit_review(outcome, summary, reviews_out, rejections_out)
            else:
                _emit((outcome,), summary, decisions_out, rejections_out, on_outcome)
        return summary
    profiles = {} if profiles is None else profiles
    with batch_gc():
        if reviews is not None:
            _replay_with_reviews(pipeline, messages, reviews, profiles, summary, batch,
                                 (decisions_out, rejections_out, reviews_out, on_outcome))
            return summary
        chunk: list[bytes] = []
        for raw in messages:
            chunk.append(raw)
            if len(chunk) >= batch:
                _emit(pipeline.process_batch(chunk, profiles), summary, decisions_out,
                      rejections_out, on_outcome)
                chunk = []
        if chunk:
            _emit(pipeline.process_batch(chunk, profiles), summary, decisions_out,
                  rejections_out, on_outcome)
    return summary


def _replay_with_reviews(pipeline, messages, reviews, profiles, summary, batch, outs):
    """Orders verified one by one so that each review lands between the right orders."""
    decisions_out, rejections_out, reviews_out, on_outcome = outs
    due: list[tuple[float, int, bytes]] = []  # (reviewed_at, file position, raw)
    for i, raw in enumerate(reviews):  # unreadable: -inf, rejected with its reason first
        due.append((pipeline.review_time(raw), i, raw))
    due.sort(reverse=True)  # pop() takes the earliest
    pending: list = []  # verified orders or rejections, in feed order

    def flush() -> None:
        _emit(pipeline.monitor_pending(pending, profiles), summary, decisions_out,
              rejections_out, on_outcome)
        pending.clear()

    def apply_until(ts: float) -> None:
        while due and due[-1][0] < ts:
            if pending:
                flush()
            _emit_review(pipeline.review(due.pop()[2], profiles), summary, reviews_out,
                         rejections_out)

    for raw in messages:
        received = Received.now()
        verified = pipeline.verify(raw, received)
        if isinstance(verified, Rejection):
            pending.append(verified)
        else:
            apply_until(verified.order.signed_at.timestamp())
            pending.append((verified, received, None))
        if len(pending) >= batch:
            flush()
    if pending:
        flush()
    apply_until(float("inf"))
    return summary


def _emit_review(outcome, summary, reviews_out, rejections_out) -> None:
    """A review's record or rejection (``on_outcome`` is for orders' outcomes only)."""
    if isinstance(outcome, ReviewRecord):
        summary.reviews += 1
        out = reviews_out
    else:
        summary.reviews_rejected += 1
        out = rejections_out
    if out is not None:
        out.write(dumps(outcome) + b"\n")


def _emit(outcomes, summary, decisions_out, rejections_out, on_outcome) -> None:
    for outcome in outcomes:
        summary.add(outcome)
        out = decisions_out if isinstance(outcome, Decision) else rejections_out
        if out is not None:
            out.write(dumps(outcome) + b"\n")
        if on_outcome is not None:
            on_outcome(outcome)


def default_rejections_path(decisions_path: str | Path) -> Path:
    """``decisions.jsonl`` -> ``decisions.rejected.jsonl`` beside it."""
    p = Path(decisions_path)
    return p.with_name(p.stem + ".rejected" + (p.suffix or ".jsonl"))


def default_reviews_path(decisions_path: str | Path) -> Path:
    """``decisions.jsonl`` -> ``decisions.reviews.jsonl`` beside it."""
    p = Path(decisions_path)
    return p.with_name(p.stem + ".reviews" + (p.suffix or ".jsonl"))
