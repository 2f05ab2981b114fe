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
  offset, as it already does for larger holes (offset gaps Faust itself recorded, such
  as transaction markers, still count as acknowledged);
- ``OffsetGuard.admit``, run by each agent on its batch, knows the next offset it
  expects of every assigned partition (from the committed offset when the partition is
  assigned). A message past a hole is not processed: the partition is sought back to
  the hole and read again, in order. Messages below the expected offset were already
  processed since the assignment (Faust fetched them twice) and are passed over.
  Faust acknowledges every message of a batch, the skipped ones too; those
  acknowledgements are withdrawn before the next batch, so no commit passes a message
  that was skipped and not yet processed. Messages Faust had already fetched past the
  hole can still arrive after the seek and move Faust's read position past the hole
  again, so ``retry`` (on a timer) seeks again while a hole stays open.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

__all__ = ["OffsetGuard", "guard_commit_holes"]

log = logging.getLogger(__name__)

_HOLE_MAX = 100_000  # acknowledgements to withdraw for one hole, at most
RETRY_S = 1.0  # seek again when a hole stays open this long
STALL_S = 3.0  # a partition read past the expected offset, nothing handed over this long


def guard_commit_holes(consumer_cls) -> None:
    """Patch ``consumer_cls._new_offset`` (Faust's commit offset) to stop at any hole
    between the committed offset and the first acknowledged one. Idempotent."""
    original = consumer_cls._new_offset
    if getattr(original, "som_guarded", False):
        return

    def _new_offset(self, tp):
        acked = self._acked[tp]
        committed = self._committed_offset[tp]
        if acked and committed is not None:
            first = min(acked)
            if first > committed and not self._gap[tp].overlaps(committed, first):
                return None  # offsets committed .. first-1 are not processed yet
        return original(self, tp)

    _new_offset.som_guarded = True
    _new_offset.som_original = original
    consumer_cls._new_offset = _new_offset


class OffsetGuard:
    """Next expected offset per partition; ``admit`` returns the events to process.

    ``consumer`` returns Faust's consumer (``app.consumer``). ``reset`` is called on
    every assignment: expectations start again from the committed offsets.
    """

    def __init__(
        self, consumer: Callable[[], object], on_reread: Callable[[], None] | None = None
    ) -> None:
        self._consumer = consumer
        self._on_reread = on_reread
        self._next: dict = {}
        self._withdraw: dict = {}  # tp -> offsets acknowledged by Faust but not processed
        self.holes: dict = {}  # tp -> (offset, monotonic time of the last seek to it)
        self._progress: dict = {}  # tp -> monotonic time an event of it was last admitted

    def reset(self) -> None:
        self._next.clear()
        self.holes.clear()
        self._progress.clear()

    async def admit(self, events: Iterable) -> list:
        consumer = self._consumer()
        self._withdraw_acks(consumer)
        now = time.monotonic()
        keep: list = []
        holes: dict = {}
        for event in events:
            msg = event.message
            tp, offset = msg.tp, msg.offset
            expected = self._next.get(tp)
            if expected is None:
                expected = self._next[tp] = self._start(consumer, tp, offset)
                self._progress[tp] = now
            if (
                offset > expected
                and tp not in holes
                and _skipped_by_broker(consumer, tp, expected, offset)
            ):
                expected = offset  # offsets without a record (transaction markers)
            if tp in holes or offset > expected:
                holes.setdefault(tp, expected)
                self._withdraw.setdefault(tp, set()).add(offset)
                continue
            if offset < expected:
                continue  # processed since the assignment: Faust fetched it twice
            keep.append(event)
            self._next[tp] = offset + 1
            self._progress[tp] = now
            if self.holes.pop(tp, None) is not None:
                log.info("input %s[%d]: offset %d read again", tp.topic, tp.partition, offset)
        for tp, at in holes.items():
            if tp not in self.holes:
                log.warning(
                    "input %s[%d]: offset %d never reached the agent; reading again from it",
                    tp.topic,
                    tp.partition,
                    at,
                )
                self._count_reread()
            withdraw = self._withdraw.setdefault(tp, set())
            withdraw.update(range(at, min(at + _HOLE_MAX, max(withdraw) + 1)))
            await self._seek(consumer, tp, at)
        return keep

    async def retry(self) -> None:
        """Run on a timer: seek again to each hole still open after ``RETRY_S``, and treat
        as a hole a partition Faust has read past the expected offset while nothing of it
        reached the agent for ``STALL_S`` (the messages after a hole may all be gone too,
        so no later message would show it)."""
        consumer = self._consumer()
        now = time.monotonic()
        for tp, (at, since) in list(self.holes.items()):
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
        self.holes[tp] = (at, time.monotonic())
        await consumer.seek_wait({tp: at})  # in the consumer's thread, unlike ``seek``

    def _start(self, consumer, tp, first_offset: int) -> int:
        """Where the partition's reading starts: the committed offset if Faust knows it,
        else the first offset handed over (a partition without any commit whose very
        first message goes missing is not caught)."""
        committed = consumer._committed_offset.get(tp)
        return first_offset if committed is None else committed

    def _withdraw_acks(self, consumer) -> None:
        """Forget Faust's acknowledgements of messages skipped in earlier batches."""
        if not self._withdraw:
            return
        for tp, offsets in self._withdraw.items():
            index, acked = consumer._acked_index[tp], consumer._acked[tp]
            gone = offsets & index
            if gone:
                index.difference_update(gone)
                acked[:] = [o for o in acked if o not in gone]
        self._withdraw.clear()


def _skipped_by_broker(consumer, tp, start: int, end: int) -> bool:
    """Offsets ``start`` to ``end - 1`` hold no record: Faust saw the fetch jump over them
    (transaction markers, compaction) and recorded them as a gap."""
    gaps = consumer._gap.get(tp)
    if not gaps or end - start > _HOLE_MAX:
        return False
    return all(gaps.overlaps_point(o) for o in range(start, end))
