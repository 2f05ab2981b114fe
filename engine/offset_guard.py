"""Input offsets reach the core once each, in order; a message Faust drops is fetched again.

Found by the kill-and-recover test (about one run in ten): right after a worker takes
over partitions, Faust can fail to hand one input message to the agent (seen: the first
message after the first full batch of a newly assigned partition), and its commit then
steps over that one-offset hole, because ``Consumer._new_offset`` compares the first
acknowledged offset with the committed offset as if the committed offset were the last
one read (it is the next one to read), and skips the check when it is 0. The message
was then never decided, and the registrant's later orders were decided without it.

Two guards, neither depending on why the message went missing:

- ``guard_commit_holes`` makes Faust's commit stop at a hole just after the committed
  offset, as it already does for larger holes (offsets Faust recorded as a gap, such as
  transaction markers, still count), and never pass the next offset the agent expects;
- ``OffsetGuard.admit``, run by each agent on its batch, knows the next offset it
  expects of every assigned partition (from the committed offset when the partition is
  assigned; the partition's first offset if retention deleted the committed one). A
  message past a hole is not processed and not acknowledged: the partition is sought back to the
  hole and read again, in order. Messages below the expected offset
  were already processed since the assignment (Faust fetched them twice) and are passed
  over. Messages Faust had already fetched past the hole can still arrive after the seek
  and move Faust's read position past the hole again, so ``retry`` (on a timer) seeks
  again, at most once a ``RETRY_S``, while a hole stays open. An offset that holds no
  record (a transactional producer's commit marker) would stay a hole: such input topics
  are not supported yet, and the guard says so in the log rather than skip the offset.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

__all__ = ["OffsetGuard", "guard_commit_holes"]

log = logging.getLogger(__name__)

RETRY_S = 1.0  # seek again when a hole stays open this long
STALL_S = 10.0  # a partition read past the expected offset, nothing handed over this long


def guard_commit_holes(consumer_cls) -> None:
    """Patch ``consumer_cls._new_offset`` (Faust's commit offset): stop at any hole between
    the committed offset and the first acknowledged one not covered by gaps Faust recorded,
    and never go past ``app.som_offset_guard.commit_cap(tp)``. Idempotent."""
    original = consumer_cls._new_offset
    if getattr(original, "som_guarded", False):
        return

    def _new_offset(self, tp):
        acked = self._acked[tp]
        committed = self._committed_offset[tp]
        if acked and committed is not None:
            first = min(acked)
            if first > committed and not _covered(self._gap[tp], committed, first):
                return None  # offsets committed .. first-1 are not processed yet
        offset = original(self, tp)
        guard = getattr(self.app, "som_offset_guard", None)
        cap = guard.commit_cap(tp) if guard is not None else None
        if offset is not None and cap is not None and offset > cap:
            # acknowledged past what the agent was handed: seek-made gaps, stale acks;
            # those offsets are acknowledged again when they are processed
            offset = cap if committed is None or cap > committed else None
        return offset

    _new_offset.som_guarded = True
    _new_offset.som_original = original
    consumer_cls._new_offset = _new_offset


def _covered(gaps, start: int, end: int) -> bool:
    """Every offset from ``start`` to ``end - 1`` lies in a gap Faust recorded."""
    if not gaps or end - start > 100_000:
        return False
    return all(gaps.overlaps_point(o) for o in range(start, end))


class OffsetGuard:
    """Next expected offset per partition; ``admit`` returns the events to process.

    ``consumer`` returns Faust's consumer (``app.consumer``). ``reset`` is called on every
    assignment and revocation: expectations start again from the committed offsets.
    ``commit_cap`` is what ``guard_commit_holes`` asks before a commit: no commit goes past
    the next offset the agent expects, whatever Faust counted as acknowledged (a seek back
    makes Faust record the offsets between it and the next already-fetched message as a
    gap, which it treats as acknowledged).
    """

    def __init__(
        self, consumer: Callable[[], object], on_reread: Callable[[], None] | None = None
    ) -> None:
        self._consumer = consumer
        self._on_reread = on_reread
        self._next: dict = {}
        self.holes: dict = {}  # tp -> [offset, monotonic time of the last seek, seeks]
        self._progress: dict = {}  # tp -> monotonic time an event of it was last admitted

    def reset(self) -> None:
        self._next.clear()
        self.holes.clear()
        self._progress.clear()

    def commit_cap(self, tp) -> int | None:
        return self._next.get(tp)

    async def admit(self, events: Iterable) -> list:
        consumer = self._consumer()
        now = time.monotonic()
        keep: list = []
        holes: dict = {}
        skipped: dict = {}  # tp -> highest offset skipped in this batch
        for event in events:
            msg = event.message
            tp, offset = msg.tp, msg.offset
            expected = self._next.get(tp)
            if expected is None:
                expected = self._next[tp] = await self._start(consumer, tp, offset)
                self._progress[tp] = now
            if offset < expected:
                continue  # processed since the assignment: Faust fetched it twice
            if offset > expected:
                holes.setdefault(tp, expected)
                skipped[tp] = max(offset, skipped.get(tp, offset))
                _leave_unacknowledged(consumer, msg)
                continue
            holes.pop(tp, None)
            keep.append(event)
            self._next[tp] = offset + 1
            self._progress[tp] = now
            if self.holes.pop(tp, None) is not None:
                log.info("input %s[%d]: offset %d read again", tp.topic, tp.partition, offset)
        for tp, top in skipped.items():
            if tp not in holes and top >= self._next[tp]:
                holes[tp] = self._next[tp]  # skipped before the hole closed: read them again
        for tp, at in holes.items():
            if tp not in self.holes:
                log.warning(
                    "input %s[%d]: offset %d never reached the agent; reading again from it",
                    tp.topic,
                    tp.partition,
                    at,
                )
                self._count_reread()
            await self._seek(consumer, tp, at)
        return keep

    async def retry(self) -> None:
        """Run on a timer: seek again to each hole still open after ``RETRY_S``, and treat
        as a hole a partition Faust has read past the expected offset while nothing of it
        reached the agent for ``STALL_S`` (the messages after a hole may all be gone too,
        so no later message would show it)."""
        consumer = self._consumer()
        now = time.monotonic()
        for tp, (at, since, _) in list(self.holes.items()):
            if now - since >= RETRY_S:
                await self._seek(consumer, tp, at)
        read = consumer._read_offset
        for tp, expected in list(self._next.items()):
            if tp in self.holes or now - self._progress.get(tp, now) < STALL_S:
                continue
            last_read = read.get(tp)
            if last_read is not None and last_read >= expected:
                log.warning(
                    "input %s[%d]: offset %d read by the consumer but not handed over in "
                    "%.0f s; reading again from it",
                    tp.topic,
                    tp.partition,
                    expected,
                    STALL_S,
                )
                self._count_reread()
                await self._seek(consumer, tp, expected)

    def _count_reread(self) -> None:
        if self._on_reread is not None:
            self._on_reread()

    async def _seek(self, consumer, tp, at: int) -> None:
        if tp not in consumer.assignment():
            self.holes.pop(tp, None)
            self._next.pop(tp, None)
            return  # revoked: its new owner reads it from the committed offset
        hole = self.holes.get(tp)
        now = time.monotonic()
        if hole is not None and hole[0] == at:
            if now - hole[1] < RETRY_S:
                return  # sought already: messages fetched before that seek are still coming
            if hole[2] % 30 == 0:
                log.warning(
                    "input %s[%d]: offset %d still not read after %d reads (a transactional "
                    "producer's commit marker there is not supported)",
                    tp.topic,
                    tp.partition,
                    at,
                    hole[2],
                )
            seeks = hole[2] + 1
        else:
            seeks = 1
        self.holes[tp] = [at, now, seeks]
        try:
            await consumer.seek_wait({tp: at})  # in the consumer's thread, unlike ``seek``
        except Exception as exc:  # e.g. revoked meanwhile; the timer tries again
            log.warning("input %s[%d]: seek to %d failed: %r", tp.topic, tp.partition, at, exc)

    async def _start(self, consumer, tp, first_offset: int) -> int:
        """Where the partition's reading starts: the committed offset if Faust knows it,
        raised to the partition's first offset when retention deleted the committed
        offset's message (the consumer resets to the first offset then; expecting the
        deleted one would seek forever). Without a known commit, the first offset handed
        over: after a takeover, table recovery resumes the flow before it seeks to the
        committed offsets, and events handed over in between find no commit in Faust's
        map although the group has one (seen in the kill-and-recover test): expecting
        the partition's first offset would read committed orders again. A partition
        without any commit whose very first message goes missing is not caught."""
        committed = consumer._committed_offset.get(tp)  # Faust reads a committed 0 as None
        if committed is None:
            return first_offset
        try:
            earliest = (await consumer.earliest_offsets(tp)).get(tp)
        except Exception as exc:  # the broker did not answer: trust the commit
            log.warning("input %s[%d]: first offset unknown (%r)", tp.topic, tp.partition, exc)
            return committed
        if earliest is not None and committed < earliest:
            log.error(
                "input %s[%d]: offsets %d-%d were deleted by the topic's retention before "
                "this group read them; reading from %d",
                tp.topic,
                tp.partition,
                committed,
                earliest - 1,
                earliest,
            )
            return earliest
        return committed


def _leave_unacknowledged(consumer, msg) -> None:
    """Faust acknowledges every event of a batch after the agent; a skipped message must
    not count as processed: mark it acknowledged already (Faust's ack then does nothing)
    and stop tracking it (or a rebalance would wait for its acknowledgement)."""
    msg.acked = True
    consumer._unacked_messages.discard(msg)
