"""Faust's offset commit, patched never to step over an input message not processed.

``Consumer._new_offset`` (faust-streaming 0.15.3) compares the first acknowledged offset
with the committed offset as if the committed offset were the last one read (it is the
next one to read), and skips the check when it is 0: with offset 25 never handed to the
agent and 26 onwards acknowledged, it commits 27 and offset 25 is never decided (found
by the kill-and-recover test, see ``engine.offset_guard``). The patched commit stops at
any hole after the committed offset, as Faust already does for larger holes (offsets
Faust recorded as a gap, such as transaction markers, still count), and never passes
the next offset the agent expects (``OffsetGuard.commit_cap``).
"""

from __future__ import annotations

__all__ = ["guard_commit_holes"]


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
    """Every offset from ``start`` to ``end - 1`` lies in a gap Faust recorded (intervals
    followed end to end: a compacted or transactional range may span any number)."""
    at = start
    while at < end:
        here = gaps.at(at) if gaps else ()
        if not here:
            return False
        at = max(iv.end for iv in here)
    return True
