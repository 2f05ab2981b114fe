"""Assigned partitions that hand nothing over while records wait in them: read again.

Seen in the kill-and-recover test: a taken-over partition of which Faust handed the
agent nothing (or nothing after a stale first message), so no later message showed a
hole to ``engine.offset_guard``. ``OffsetGuard.retry`` runs ``_check_stalled`` on its
timer: a partition with no progress for ``STALL_S``, not in table recovery, whose read
offset in Faust stood still since the previous check, and past whose expected offset
the broker holds a record, is sought back to that offset (once per ``STALL_S``).
"""

from __future__ import annotations

import logging

from engine.group_position import seek_to, waiting

__all__ = ["StalledPartitions", "STALL_S"]

log = logging.getLogger("engine.offset_guard")  # the guard's log: one place to read

STALL_S = 10.0  # nothing handed over this long while records wait: a stalled partition
_UNSEEN = object()  # no stall check yet since the assignment


class StalledPartitions:
    """The stall check of ``engine.offset_guard.OffsetGuard`` (a mixin: it reads the
    guard's expected offsets ``_next``, ``_progress``, ``holes``, ``_generation``,
    ``_watched``, ``_read_seen``, ``_uncommitted``, ``_probe`` and ``_group_committed``)."""

    async def _check_stalled(self, consumer, now: float) -> None:
        recovering = getattr(getattr(consumer, "app", None), "in_recovery", False)
        due: dict = {}  # tp -> the next offset the agent expects (None: nothing handed over)
        read = consumer._read_offset
        for tp, checked in list(self._watched.items()):
            if recovering:
                self._watched[tp] = now  # Faust pauses stream partitions while it recovers
            elif tp not in self.holes and now - max(checked, self._progress.get(tp, 0)) >= STALL_S:
                self._watched[tp] = now  # look again after another STALL_S
                last, self._read_seen[tp] = self._read_seen.get(tp, _UNSEEN), read.get(tp)
                if last == read.get(tp):  # Faust's reading stood still too: not just busy
                    due[tp] = self._next.get(tp)
        if due:
            await self._wake_stalled(consumer, due, now)

    async def _wake_stalled(self, consumer, due: dict, asked_at: float) -> None:
        """Assigned partitions that handed nothing over for ``STALL_S``: where records wait
        past the offset the agent expects (the group's offset before anything was handed
        over), read them again from there. Seen in the kill-and-recover test: a taken-over
        partition of which Faust handed over nothing, or nothing after a stale first
        message; no later message shows that as a hole. The broker is asked once for all
        of them; Faust's view of each is logged to find out why. A partition that moved on,
        or a rebalance, while the broker was asked is left alone."""
        generation = self._generation
        assigned = consumer.assignment()
        for tp in [tp for tp in due if tp not in assigned]:
            del due[tp]
            self._watched.pop(tp, None)
        if not due:
            return
        try:
            spans = await waiting(consumer, due, self._committed_once)
        except Exception as exc:  # the broker did not answer: look again later
            log.warning(
                "input: could not check %d partitions for waiting records: %r", len(due), exc
            )
            return
        if self._probe is not None and spans:
            try:
                found = await self._probe({tp: start for tp, (start, _) in spans.items()})
            except Exception as exc:  # the broker did not answer: look again later
                log.warning("input: could not ask where waiting records are: %r", exc)
                return
            # only offsets without a record wait (a transaction's last marker): nothing to do
            spans = {tp: span for tp, span in spans.items() if (found.get(tp) or span[1]) < span[1]}
        for tp, (start, end) in spans.items():
            if (
                generation != self._generation
                or tp not in consumer.assignment()
                or self._next.get(tp) != due[tp]
                or self._progress.get(tp, 0) > asked_at
            ):
                continue  # moved on, or a rebalance, while the broker was asked
            log.warning(
                "input %s[%d]: nothing handed over in %.0f s though offsets %d-%d wait "
                "(Faust: read offset %s, paused %s); reading again from %d",
                tp.topic,
                tp.partition,
                STALL_S,
                start,
                end - 1,
                consumer._read_offset.get(tp),
                tp in getattr(consumer, "_paused_partitions", ()),
                start,
            )
            self._count_reread()
            await seek_to(consumer, tp, start)  # once per STALL_S, not as a hole

    async def _committed_once(self, consumer, tp) -> int | None:
        """The group's committed offset from the broker, remembered when there is none: only
        this worker commits its partitions, and its commits show in Faust's map."""
        if tp in self._uncommitted:
            return None
        generation = self._generation
        committed = await self._group_committed(consumer, tp)
        if committed is None and generation == self._generation:
            self._uncommitted.add(tp)
        return committed
