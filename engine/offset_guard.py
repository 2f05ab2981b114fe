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
  assigned, asked of the broker when Faust does not know it yet; the partition's first
  offset when nothing is committed or retention deleted the committed one). A message
  past a hole is not processed and not acknowledged: the partition is sought back to the
  hole and read again, in order. Messages below the expected offset
  were already processed since the assignment (Faust fetched them twice) and are passed
  over. Messages Faust had already fetched past the hole can still arrive after the seek
  and move Faust's read position past the hole again, so ``retry`` (on a timer) seeks
  again, at most once a ``RETRY_S``, while a hole stays open. An offset that holds no
  record (a transactional producer's commit or abort marker, a record compacted away)
  would stay a hole: after ``PROBE_AFTER`` seeks the broker is asked, by a fetch of its
  own (``connectors.offset_probe``), where the partition's next record is; if it is
  further on, the offsets before it are passed over and recorded as a gap, as Faust
  records gaps it sees, so the commit moves past them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable

__all__ = ["OffsetGuard", "group_committed", "guard_commit_holes"]

log = logging.getLogger(__name__)

RETRY_S = 1.0  # seek again when a hole stays open this long
STALL_S = 10.0  # a partition read past the expected offset, nothing handed over this long
PROBE_AFTER = 3  # seeks to one hole before the broker is asked whether it holds a record
PROBE_S = 5.0  # at most one such question per hole this often


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
        self,
        consumer: Callable[[], object],
        on_reread: Callable[[], None] | None = None,
        committed_of: Callable[[object, object], Awaitable[int | None]] | None = None,
        probe: Callable[[dict], Awaitable[dict]] | None = None,
    ) -> None:
        self._consumer = consumer
        self._on_reread = on_reread
        self._group_committed = committed_of or group_committed  # (consumer, tp) -> offset
        # {tp: offset} -> {tp: offset of the first record at or after it, or None}
        # (connectors.offset_probe.first_record_offsets); None: holes are never passed over
        self._probe = probe
        self._probed: dict = {}  # tp -> monotonic time the broker was last asked
        self._passed: set = set()  # partitions with offsets passed over (logged once a warning)
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
            if offset > expected and tp not in holes and tp not in self.holes:
                # a hole seen first: does the broker hold a record there at all?
                found = await self._record_after(tp, expected)
                if found is not None and expected < found <= offset:
                    self._pass_over(consumer, tp, expected, found)
                    expected = found
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
        for tp, (at, since, seeks) in list(self.holes.items()):
            if (
                seeks >= PROBE_AFTER
                and self._probe is not None
                and now - self._probed.get(tp, -PROBE_S) >= PROBE_S
            ):
                self._probed[tp] = now
                if await self._pass_over_if_empty(consumer, tp, at):
                    continue
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

    async def _pass_over_if_empty(self, consumer, tp, at: int) -> bool:
        """The retry's fallback for a hole still open after ``PROBE_AFTER`` seeks (the
        first question failed or came too early): pass over offsets without a record."""
        found = await self._record_after(tp, at)
        hole = self.holes.get(tp)
        if found is None or found <= at or hole is None or hole[0] != at:
            return False  # a record is there (or the hole closed meanwhile): read again
        self._pass_over(consumer, tp, at, found)
        del self.holes[tp]
        try:
            await consumer.seek_wait({tp: found})
        except Exception as exc:  # e.g. revoked meanwhile; the stall check seeks again
            log.warning("input %s[%d]: seek to %d failed: %r", tp.topic, tp.partition, found, exc)
        return True

    async def _record_after(self, tp, at: int) -> int | None:
        """The offset of the partition's first record at or after ``at``, asked of the
        broker (None: no probe, no answer, or nothing there yet)."""
        if self._probe is None:
            return None
        try:
            return (await self._probe({tp: at})).get(tp)
        except Exception as exc:  # the broker did not answer: read again instead
            log.warning(
                "input %s[%d]: could not ask where offset %d's record is: %r",
                tp.topic,
                tp.partition,
                at,
                exc,
            )
            return None

    def _pass_over(self, consumer, tp, at: int, found: int) -> None:
        """Offsets ``at`` .. ``found - 1`` hold no record (a transactional producer's
        markers, or records compacted away): expect ``found`` next, and record them as
        a gap, as Faust does for gaps it sees, so its commit counts them."""
        level = logging.INFO if tp in self._passed else logging.WARNING
        self._passed.add(tp)
        log.log(
            level,
            "input %s[%d]: offsets %d-%d hold no record (a transactional producer's "
            "markers, or compacted away); passing over them",
            tp.topic,
            tp.partition,
            at,
            found - 1,
        )
        gaps = consumer._gap[tp]
        gaps.addi(at, found)
        gaps.merge_overlaps()
        self._next[tp] = found
        self._progress[tp] = time.monotonic()

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
        try:
            await consumer.seek_wait({tp: at})  # in the consumer's thread, unlike ``seek``
        except Exception as exc:  # e.g. revoked meanwhile; the timer tries again
            log.warning("input %s[%d]: seek to %d failed: %r", tp.topic, tp.partition, at, exc)

    async def _start(self, consumer, tp, first_offset: int) -> int:
        """Where the partition's reading starts: the group's committed offset, else (the
        engine reads from the earliest offset) the partition's first offset; raised to
        the first offset when retention deleted the committed one's message (the
        consumer resets to the first offset then: expecting the deleted one would seek
        forever).

        Faust's map of committed offsets is read first; when it has none, the broker is
        asked: Faust reads a committed 0 as none, and after a takeover table recovery
        resumes the flow before it seeks to the committed offsets, so events can arrive
        before Faust has filled its map (seen in the kill-and-recover test). Expecting
        the first offset then would read committed orders again. When the broker does
        not answer, the first offset handed over is trusted (a missing first message
        is then not caught; the log says so).
        """
        committed = consumer._committed_offset.get(tp)
        try:
            if committed is None:
                committed = await self._group_committed(consumer, tp)
                if committed:
                    log.info(
                        "input %s[%d]: committed offset %d from the broker (Faust had none yet)",
                        tp.topic,
                        tp.partition,
                        committed,
                    )
            earliest = (await consumer.earliest_offsets(tp)).get(tp)
        except Exception as exc:  # the broker did not answer
            log.warning(
                "input %s[%d]: committed or first offset unknown (%r); expecting %d, the "
                "first offset handed over",
                tp.topic,
                tp.partition,
                exc,
                first_offset if committed is None else committed,
            )
            return first_offset if committed is None else committed
        if committed is None or committed < 0:
            return first_offset if earliest is None else earliest
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


async def group_committed(consumer, tp) -> int | None:
    """The group's committed offset of ``tp``, from the broker (aiokafka's ``committed``,
    run in Faust's consumer thread); None when the group has committed none."""
    from faust.transport.drivers.aiokafka import ensure_aiokafka_TP

    thread = consumer._thread
    client = thread._ensure_consumer()
    return await thread.call_thread(client.committed, ensure_aiokafka_TP(tp))


def _leave_unacknowledged(consumer, msg) -> None:
    """Faust acknowledges every event of a batch after the agent; a skipped message must
    not count as processed: mark it acknowledged already (Faust's ack then does nothing)
    and stop tracking it (or a rebalance would wait for its acknowledgement)."""
    msg.acked = True
    consumer._unacked_messages.discard(msg)
