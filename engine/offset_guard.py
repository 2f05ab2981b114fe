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

    def __init__(self, consumer: Callable[[], object]) -> None:
        self._consumer = consumer
        self._next: dict = {}
        self._withdraw: dict = {}  # tp -> offsets acknowledged by Faust but not processed
        self.holes: dict = {}  # tp -> (offset, monotonic time of the last seek to it)

    def reset(self) -> None:
        self._next.clear()
        self.holes.clear()

    async def admit(self, events: Iterable) -> list:
        consumer = self._consumer()
        self._withdraw_acks(consumer)
        keep: list = []
        holes: dict = {}
        for event in events:
            msg = event.message
            tp, offset = msg.tp, msg.offset
            expected = self._next.get(tp)
            if expected is None:
                expected = self._next[tp] = await self._start(consumer, tp, offset)
            if tp in holes or offset > expected:
                holes.setdefault(tp, expected)
                self._withdraw.setdefault(tp, set()).add(offset)
                continue
            if offset < expected:
                continue  # processed since the assignment: Faust fetched it twice
            keep.append(event)
            self._next[tp] = offset + 1
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
            withdraw = self._withdraw.setdefault(tp, set())
            withdraw.update(range(at, min(at + _HOLE_MAX, max(withdraw) + 1)))
            await self._seek(consumer, tp, at)
        return keep

    async def retry(self) -> None:
        """Seek again to each hole still open after ``RETRY_S`` (run on a timer)."""
        if not self.holes:
            return
        consumer = self._consumer()
        now = time.monotonic()
        for tp, (at, since) in list(self.holes.items()):
            if now - since >= RETRY_S:
                await self._seek(consumer, tp, at)

    async def _seek(self, consumer, tp, at: int) -> None:
        self.holes[tp] = (at, time.monotonic())
        await consumer.seek_wait({tp: at})  # in the consumer's thread, unlike ``seek``

    async def _start(self, consumer, tp, first_offset: int) -> int:
        """Where the partition's reading starts: the committed offset, else the earliest."""
        committed = consumer._committed_offset.get(tp)
        if committed is not None:
            return committed
        earliest = (await consumer.earliest_offsets(tp)).get(tp)
        return first_offset if earliest is None else earliest

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
