"""Input offsets reach the core once each, in order; a message Faust drops is fetched again.

Found by the kill-and-recover test (about one run in ten): right after a worker takes
over partitions, Faust can fail to hand one input message to the agent (seen: the first
message after the first full batch of a newly assigned partition), and its commit then
steps over that one-offset hole, because ``Consumer._new_offset`` compares the first
acknowledged offset with the committed offset as if the committed offset were the last
one read (it is the next one to read), and skips the check when it is 0. The message
was then never decided, and the registrant's later orders were decided without it.

Two guards, neither depending on why the message went missing:

- ``engine.commit_guard.guard_commit_holes`` makes Faust's commit stop at any hole after
  the committed offset and never pass the next offset the agent expects;
- ``OffsetGuard.admit``, run by each agent on its batch, knows the next offset it
  expects of every assigned partition (from the committed offset when the partition is
  assigned: ``engine.group_position.start_offset``). A message
  past a hole is not processed and not acknowledged: the partition is sought back to the
  hole and read again, in order. Messages below the expected offset
  were already processed since the assignment (Faust fetched them twice) and are passed
  over. Messages Faust had already fetched past the hole can still arrive after the seek
  and move Faust's read position past the hole again, so ``retry`` (on a timer) seeks
  again, at most once a ``RETRY_S``, while a hole stays open. An offset that holds no
  record (a transactional producer's commit or abort marker, a record compacted away)
  would stay a hole: when a hole first shows (and again after ``PROBE_AFTER`` seeks) the
  broker is asked, by a fetch of its own (``connectors.offset_probe``), where the
  partition's next record is; if it is further on, the offsets before it are passed over
  and recorded as a gap, as Faust records gaps it sees, so the commit moves past them.
- ``retry`` also reads again an assigned partition that handed nothing over for
  ``STALL_S`` while records wait in it and Faust's reading of it stood still.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable

from engine.group_position import (
    group_committed,
    leave_unacknowledged,
    seek_to,
    start_offset,
)
from engine.record_gaps import OffsetsWithoutRecord
from engine.stall_check import STALL_S, StalledPartitions

__all__ = ["OffsetGuard", "RETRY_S", "STALL_S"]

log = logging.getLogger(__name__)

RETRY_S = 1.0  # seek again when a hole stays open this long
PROBE_AFTER = 3  # seeks to one hole before the broker is asked whether it holds a record
PROBE_S = 5.0  # at most one such question per hole this often


class OffsetGuard(OffsetsWithoutRecord, StalledPartitions):
    """Next expected offset per partition; ``admit`` returns the events to process.

    ``consumer`` returns Faust's consumer (``app.consumer``). ``reset`` and ``assigned``
    are called on every assignment (expectations start again from the committed offsets),
    ``revoked`` when a rebalance starts.
    ``commit_cap`` is what ``guard_commit_holes`` asks before a commit: no commit goes past
    the next offset the agent expects, whatever Faust counted as acknowledged (a seek back
    makes Faust record the offsets between it and the next already-fetched message as a
    gap, which it treats as acknowledged).
    """

    def __init__(
        self,
        consumer: Callable[[], object],
        on_reread: Callable[[], None] | None = None,
        committed_of: Callable[[object, object], Awaitable[int | None]] | None = None,
        probe: Callable[[dict], Awaitable[dict]] | None = None,
        on_pass_over: Callable[[int], None] | None = None,
    ) -> None:
        self._consumer = consumer
        self._on_reread = on_reread
        self._group_committed = committed_of or group_committed  # (consumer, tp) -> offset
        # {tp: offset} -> {tp: offset of the first record at or after it, or None}
        # (connectors.offset_probe.first_record_offsets); None: holes are never passed over
        self._probe = probe
        self._on_pass_over = on_pass_over  # called with the number of offsets passed over
        self._probed: dict = {}  # tp -> monotonic time the broker was last asked
        self._passed: set = set()  # partitions with offsets passed over (logged once a warning)
        self._watched: dict = {}  # assigned partitions -> when last checked (or assigned)
        self._uncommitted: set = set()  # partitions the broker knows no commit of (this assignment)
        self._read_seen: dict = {}  # tp -> Faust's read offset at its last stall check
        self._generation = 0  # counts resets: answers that straddle one are dropped
        self._next: dict = {}
        self.holes: dict = {}  # tp -> [offset, monotonic time of the last seek, seeks]
        self._progress: dict = {}  # tp -> monotonic time an event of it was last admitted

    def reset(self) -> None:
        self._generation += 1
        self._next.clear()
        self._uncommitted.clear()
        self._read_seen.clear()
        self.holes.clear()
        self._progress.clear()

    def assigned(self, tps: Iterable) -> None:
        """Partitions just assigned (after ``reset``): each must move on within ``STALL_S``
        whenever records wait in it (see ``retry``)."""
        now = time.monotonic()
        self._watched = dict.fromkeys(tps, now)  # tp -> when last checked or assigned

    def revoked(self) -> None:
        """A rebalance starts: no seeks and no stall checks until the next assignment
        (the commit cap stays)."""
        self.holes.clear()
        self._watched.clear()

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
                expected = self._next[tp] = await start_offset(
                    consumer, tp, offset, self._group_committed
                )
                self._progress[tp] = now
            if offset < expected:
                continue  # processed since the assignment: Faust fetched it twice
            if offset > expected and tp not in holes and tp not in self.holes:
                # a hole seen first: does the broker hold a record there at all?
                found = await self._record_after(tp, expected)
                if found is not None and expected < found <= offset:
                    self._pass_over(consumer, tp, expected, found)
                    expected = found
            if offset > expected:
                holes.setdefault(tp, expected)
                skipped[tp] = max(offset, skipped.get(tp, offset))
                leave_unacknowledged(consumer, msg)
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
        """Run on a timer: seek again to each hole still open after ``RETRY_S``, and read
        again an assigned partition that handed nothing over for ``STALL_S`` while records
        wait in it (the messages after a hole may all be gone too, so no later message
        would show it)."""
        consumer = self._consumer()
        now = time.monotonic()
        for tp in list(self.holes):
            hole = self.holes.get(tp)  # read afresh: admit may close holes during awaits
            if hole is None:
                continue
            at, _, seeks = hole
            if (
                seeks >= PROBE_AFTER
                and self._probe is not None
                and now - self._probed.get(tp, -PROBE_S) >= PROBE_S
            ):
                self._probed[tp] = now
                if await self._pass_over_if_empty(consumer, tp, at):
                    continue
                hole = self.holes.get(tp)
                if hole is None or hole[0] != at:
                    continue  # closed while the broker was asked
            if time.monotonic() - hole[1] >= RETRY_S:
                await self._seek(consumer, tp, at)
        await self._check_stalled(consumer, now)

    def _count_reread(self) -> None:
        if self._on_reread is not None:
            self._on_reread()

    async def _seek(self, consumer, tp, at: int) -> None:
        expected = self._next.get(tp)
        if expected is not None and at < expected:
            if self.holes.get(tp, (expected,))[0] < expected:
                del self.holes[tp]  # a hole closed meanwhile: processed since
            return
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
                    "input %s[%d]: offset %d still not read after %d reads",
                    tp.topic,
                    tp.partition,
                    at,
                    hole[2],
                )
            seeks = hole[2] + 1
        else:
            seeks = 1
        self.holes[tp] = [at, now, seeks]
        await seek_to(consumer, tp, at)
