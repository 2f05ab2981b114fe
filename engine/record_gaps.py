"""Offsets that hold no record: passed over, and recorded as a gap so the commit moves on.

A transactional producer's commit and abort markers, and records compacted away or
deleted by retention, are offsets a consumer never receives; ``engine.offset_guard``
would see each as a hole and seek back to it forever. The broker is asked, by a fetch
of the worker's own (``connectors.offset_probe``), where the partition's next record
is; offsets before it are passed over.
"""

from __future__ import annotations

import logging
import time

from engine.group_position import seek_to

__all__ = ["OffsetsWithoutRecord"]

log = logging.getLogger("engine.offset_guard")  # the guard's log: one place to read


class OffsetsWithoutRecord:
    """Passing over offsets without a record, for ``engine.offset_guard.OffsetGuard`` (a
    mixin: it reads and sets the guard's ``_next``, ``_progress``, ``holes``,
    ``_passed``, ``_probe`` and ``_on_pass_over``)."""

    async def _pass_over_if_empty(self, consumer, tp, at: int) -> bool:
        """The retry's fallback for a hole still open after ``PROBE_AFTER`` seeks (the
        first question failed or came too early): pass over offsets without a record."""
        found = await self._record_after(tp, at)
        hole = self.holes.get(tp)
        if found is None or found <= at or hole is None or hole[0] != at:
            return False  # a record is there (or the hole closed meanwhile): read again
        self._pass_over(consumer, tp, at, found)
        del self.holes[tp]
        await seek_to(consumer, tp, found)
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
            "markers, compacted away, or deleted by retention); passing over them",
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
        if self._on_pass_over is not None:
            self._on_pass_over(found - at)
