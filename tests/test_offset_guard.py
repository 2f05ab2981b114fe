"""engine.offset_guard: no commit past a message the agent did not process; holes read again."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from types import SimpleNamespace

from faust.transport.consumer import Consumer as FaustConsumer
from faust.types import TP
from intervaltree import IntervalTree

import engine.offset_guard as og
import engine.stall_check as sc
from engine.commit_guard import guard_commit_holes
from engine.offset_guard import OffsetGuard

A, B = TP("input", 0), TP("input", 1)

# Faust's own (the worker patches the class when it is created)
_FAUST_NEW_OFFSET = getattr(FaustConsumer._new_offset, "som_original", FaustConsumer._new_offset)


class _Consumer:
    """The parts of Faust's consumer the guards read and write."""

    def __init__(self, committed: dict | None = None) -> None:
        self._committed_offset = defaultdict(lambda: None, committed or {})
        self._acked = defaultdict(list)
        self._acked_index = defaultdict(set)
        self._gap = defaultdict(IntervalTree)
        self._read_offset: dict = {}  # last offset Faust read of each partition
        self._unacked_messages: set = set()
        self.assigned = {A, B}
        self.log_start: dict = {}  # each partition's first offset (0 unless set)
        self.group_commits: dict = {}  # what the broker holds for the group (Faust may not)
        self.ends: dict = {}  # each partition's end offset
        self.seeks: list[tuple] = []
        self.app = SimpleNamespace(som_offset_guard=None)

    def assignment(self) -> set:
        return self.assigned

    def ack(self, tp: TP, offset: int) -> None:
        if offset not in self._acked_index[tp]:
            self._acked_index[tp].add(offset)
            self._acked[tp].append(offset)

    def ack_batch(self, events) -> None:
        """What Faust's take_events does after the agent: ack each event not acked yet."""
        for e in events:
            if not e.message.acked:
                e.message.acked = True
                self.ack(e.message.tp, e.message.offset)

    async def seek_wait(self, offsets: dict) -> None:
        self.seeks.extend(offsets.items())

    async def earliest_offsets(self, *tps: TP) -> dict:
        return {tp: self.log_start.get(tp, 0) for tp in tps}

    async def highwaters(self, *tps: TP) -> dict:
        return {tp: self.ends.get(tp, 0) for tp in tps}


class _Patched(_Consumer):
    _new_offset = _FAUST_NEW_OFFSET


guard_commit_holes(_Patched)


class _Msg:
    """A consumer message (hashable by identity, as Faust's are)."""

    def __init__(self, tp: TP, offset: int) -> None:
        self.tp, self.offset, self.acked = tp, offset, False


async def _group_committed(consumer, tp):
    return consumer.group_commits.get(tp)


def _guard(c, on_reread=None) -> OffsetGuard:
    return OffsetGuard(lambda: c, on_reread, _group_committed)


def _events(*pairs):
    return [SimpleNamespace(message=_Msg(tp, o)) for tp, o in pairs]


def _offsets(events):
    return [(e.message.tp.partition, e.message.offset) for e in events]


def test_faust_commits_over_a_hole_just_after_the_committed_offset():
    """Faust's own check: offset 25 not processed, 26-27 acknowledged, 25 committed."""
    c = _Consumer({A: 25})
    for o in (26, 27):
        c.ack(A, o)
    assert _FAUST_NEW_OFFSET(c, A) == 28  # the bug the guard removes


def test_the_guarded_commit_stops_at_any_hole():
    c = _Patched({A: 25, B: 0})
    for o in (26, 27):
        c.ack(A, o)
    c.ack(B, 1)
    assert c._new_offset(A) is None and c._new_offset(B) is None
    c.ack(A, 25)
    assert c._new_offset(A) == 28
    gapped = _Patched({A: 25})
    gapped._gap[A].addi(25, 26)  # an offset Faust saw skipped by the broker (a tx marker)
    gapped.ack(A, 26)
    assert gapped._new_offset(A) == 27
    partly = _Patched({A: 25})
    partly._gap[A].addi(26, 27)  # 25 itself is not covered
    partly.ack(A, 27)
    assert partly._new_offset(A) is None


def test_the_guarded_commit_never_passes_the_next_offset_the_agent_expects():
    """A seek back makes Faust record the offsets up to an already-fetched message as a
    gap, which it counts as acknowledged."""
    c = _Patched({A: 10})
    guard = _guard(c)
    c.app.som_offset_guard = guard
    asyncio.run(guard.admit(_events((A, 10), (A, 11))))  # next expected: 12
    for o in (10, 11):
        c.ack(A, o)
    c._gap[A].addi(12, 40)  # Faust's gap after a seek to 12 and a stale message at 39
    c.ack(A, 40)
    assert c._new_offset(A) == 12


def test_admit_passes_contiguous_batches_and_starts_at_the_committed_offset():
    c = _Consumer({A: 10})
    guard = _guard(c)
    got = asyncio.run(guard.admit(_events((A, 10), (B, 0), (A, 11), (B, 1))))
    assert _offsets(got) == [(0, 10), (1, 0), (0, 11), (1, 1)]
    assert c.seeks == []


def test_a_hole_skips_the_partition_seeks_back_and_leaves_the_skipped_unacknowledged():
    c = _Consumer({A: 25})
    rereads: list = []
    guard = _guard(c, lambda: rereads.append(1))

    async def run():
        batch = _events((A, 25), (A, 26), (A, 28), (B, 0), (A, 29))
        first = await guard.admit(batch)
        c.ack_batch(batch)
        again = await guard.admit(_events((A, 30), (A, 27), (A, 28), (A, 29), (A, 26)))
        return first, again

    first, again = asyncio.run(run())
    assert _offsets(first) == [(0, 25), (0, 26), (1, 0)]  # 27 missing: 28 and 29 wait
    assert c.seeks == [(A, 27), (A, 30)] and len(rereads) == 2  # 30 skipped: read again
    assert c._acked[A] == [25, 26]  # 28 and 29 are not counted as processed
    # a stale 30 first, then 27 read again: 27 onwards go through in order, 26 is passed over
    assert _offsets(again) == [(0, 27), (0, 28), (0, 29)]
    assert list(guard.holes) == [A]


def test_reset_starts_again_from_the_committed_or_first_offset():
    c = _Consumer({})
    c.log_start[A] = 6
    guard = _guard(c)
    assert _offsets(asyncio.run(guard.admit(_events((A, 6), (A, 7))))) == [(0, 6), (0, 7)]
    guard.reset()
    c._committed_offset[A] = 5
    c.log_start[A] = 0
    assert _offsets(asyncio.run(guard.admit(_events((A, 6))))) == []
    assert c.seeks == [(A, 5)]


def test_without_any_commit_a_missing_first_message_is_read_again():
    """Nothing committed by the group: the partition's first offset is expected, not the
    first one Faust happens to hand over."""
    c = _Consumer({})
    guard = _guard(c)
    assert _offsets(asyncio.run(guard.admit(_events((A, 1), (A, 2), (B, 0))))) == [(1, 0)]
    assert c.seeks == [(A, 0)] and list(guard.holes) == [A]


def test_a_commit_faust_does_not_know_yet_is_asked_of_the_broker():
    """After a takeover, events can reach the agent before Faust has read the committed
    offsets (and Faust reads a committed 0 as none): the broker's answer is used, so
    committed orders are not read again and a hole after the commit is still caught."""
    c = _Consumer({})
    c.group_commits.update({A: 250, B: 0})
    guard = _guard(c)
    got = asyncio.run(guard.admit(_events((A, 250), (A, 251), (B, 1))))
    assert _offsets(got) == [(0, 250), (0, 251)]
    assert c.seeks == [(B, 0)]  # B's offset 0 never came


def test_offsets_deleted_by_retention_do_not_stall_the_partition():
    """A committed offset below the partition's first offset: the consumer resets to the
    first offset, and the guard expects that one (seeking back to deleted offsets would
    loop forever)."""
    c = _Consumer({A: 5})
    c.log_start[A] = 20
    guard = _guard(c)
    assert _offsets(asyncio.run(guard.admit(_events((A, 20), (A, 21))))) == [(0, 20), (0, 21)]
    assert c.seeks == []


def test_the_committed_offset_is_used_when_the_first_offset_is_unknown():
    class _NoAnswer(_Consumer):
        async def earliest_offsets(self, *tps):
            raise ConnectionError("broker away")

    c = _NoAnswer({A: 5})
    guard = _guard(c)
    assert _offsets(asyncio.run(guard.admit(_events((A, 5), (B, 3))))) == [(0, 5), (1, 3)]
    assert c.seeks == []


def test_retry_seeks_again_while_the_hole_stays_open(monkeypatch):
    """Messages fetched past the hole before the seek can move Faust's read position past
    it again: the timer seeks again until the missing offset arrives."""
    monkeypatch.setattr(og, "RETRY_S", 0.0)
    c = _Consumer({A: 3})
    guard = _guard(c)

    async def run():
        await guard.admit(_events((A, 3), (A, 5)))
        await guard.retry()
        await guard.retry()
        seeks_open = list(c.seeks)
        await guard.admit(_events((A, 4), (A, 5)))
        await guard.retry()
        return seeks_open

    assert asyncio.run(run()) == [(A, 4)] * 3
    assert c.seeks == [(A, 4)] * 3 and guard.holes == {}


def test_no_seek_on_a_partition_no_longer_assigned(monkeypatch):
    monkeypatch.setattr(og, "RETRY_S", 0.0)
    c = _Consumer({A: 3})
    guard = _guard(c)

    async def run():
        await guard.admit(_events((A, 3), (A, 5)))
        c.assigned = {B}
        await guard.retry()

    asyncio.run(run())
    assert c.seeks == [(A, 4)] and guard.holes == {}


def test_a_partition_read_past_the_expected_offset_with_nothing_handed_over_is_read_again(
    monkeypatch,
):
    """Faust can drop every message after a hole: no later message shows the hole, but
    records wait past the expected offset and nothing reaches the agent."""
    c = _Consumer({A: 3, B: 0})
    c.ends.update({A: 9, B: 1})  # A: offsets 4-8 wait; B: nothing past what was handed over
    guard = _guard(c)
    guard.assigned([A, B])

    async def run():
        await guard.admit(_events((A, 3), (B, 0)))
        await guard.retry()
        assert c.seeks == []  # not stalled long enough yet
        monkeypatch.setattr(sc, "STALL_S", 0.0)
        await guard.retry()  # the first check notes where Faust's reading stands
        assert c.seeks == []
        await guard.retry()  # it stood still since: read again

    asyncio.run(run())
    assert c.seeks == [(A, 4)]


def test_stale_batches_do_not_seek_again_before_the_retry_interval():
    """Messages fetched before a seek keep coming for a while: one seek per RETRY_S."""
    c = _Consumer({A: 3})
    guard = _guard(c)

    async def run():
        for stale in range(5, 15, 2):
            await guard.admit(_events((A, stale), (A, stale + 1)))

    asyncio.run(run())
    assert c.seeks == [(A, 3)] and guard.holes[A][2] == 1


def _probe_answering(answers: dict, asked: list | None = None):
    """A probe fake: ``answers[tp][start]`` is the first record's offset at or after start."""

    async def probe(starts: dict) -> dict:
        if asked is not None:
            asked.append(dict(starts))
        return {tp: answers.get(tp, {}).get(at, at) for tp, at in starts.items()}

    return probe


def test_offsets_without_a_record_are_passed_over_at_once_and_committed():
    """A transactional producer's marker at offset 2: no seek, the message after it is
    processed, and the commit moves past the marker."""
    c = _Patched({A: 1})
    asked: list = []
    guard = OffsetGuard(lambda: c, None, _group_committed, _probe_answering({A: {2: 3}}, asked))
    c.app.som_offset_guard = guard
    batch = _events((A, 1), (A, 3), (A, 4))
    got = asyncio.run(guard.admit(batch))
    c.ack_batch(batch)
    assert _offsets(got) == [(0, 1), (0, 3), (0, 4)]
    assert asked == [{A: 2}] and c.seeks == [] and guard.holes == {}
    assert c._new_offset(A) == 5  # 1, the marker's 2, 3, 4


def test_a_hole_holding_a_record_is_read_again_not_passed_over():
    c = _Patched({A: 1})
    guard = OffsetGuard(lambda: c, None, _group_committed, _probe_answering({A: {2: 2}}))
    c.app.som_offset_guard = guard
    batch = _events((A, 1), (A, 3))
    got = asyncio.run(guard.admit(batch))
    c.ack_batch(batch)
    assert _offsets(got) == [(0, 1)] and c.seeks == [(A, 2)]
    assert c._new_offset(A) == 2  # nothing past the missing record


def test_a_probe_that_fails_falls_back_to_reading_again_and_the_retry_asks_again(monkeypatch):
    monkeypatch.setattr(og, "RETRY_S", 0.0)
    monkeypatch.setattr(og, "PROBE_AFTER", 2)
    c = _Consumer({A: 1})
    calls: list = []

    async def flaky(starts):
        calls.append(dict(starts))
        if len(calls) == 1:
            raise ConnectionError("broker away")
        return {A: 3}

    guard = OffsetGuard(lambda: c, None, _group_committed, flaky)

    async def run():
        first = await guard.admit(_events((A, 1), (A, 3)))
        await guard.retry()  # second seek to the hole
        await guard.retry()  # two seeks: the broker is asked again, and answers
        again = await guard.admit(_events((A, 3), (A, 4)))
        return first, again

    first, again = asyncio.run(run())
    assert _offsets(first) == [(0, 1)] and _offsets(again) == [(0, 3), (0, 4)]
    assert len(calls) == 2 and c.seeks == [(A, 2), (A, 2), (A, 3)] and guard.holes == {}
    assert c._gap[A].overlaps_point(2)


def test_an_assigned_partition_that_hands_nothing_over_while_messages_wait_is_read_again(
    monkeypatch,
):
    """Seen once after a takeover: a partition handed over nothing at all, so no later
    message could show a hole; after STALL_S the broker says messages wait: read again."""
    c = _Consumer({A: 25})
    c.ends.update({A: 640, B: 7})
    c.group_commits[B] = 7  # B: nothing waits
    rereads: list = []
    guard = _guard(c, lambda: rereads.append(1))
    guard.assigned([A, B])

    async def run():
        await guard.retry()
        assert c.seeks == []  # not silent long enough yet
        monkeypatch.setattr(sc, "STALL_S", 0.0)
        await guard.retry()
        await guard.retry()

    asyncio.run(run())
    assert c.seeks == [(A, 25)] and len(rereads) == 1 and guard.holes == {}
    got = asyncio.run(guard.admit(_events((A, 25), (A, 26))))  # the re-read arrives
    assert _offsets(got) == [(0, 25), (0, 26)]
    monkeypatch.setattr(sc, "STALL_S", 10.0)
    guard._watched[A] -= 20.0  # last checked long ago: only the progress keeps it quiet
    asyncio.run(guard.retry())
    assert c.seeks == [(A, 25)]  # it moves on: not read again


def test_a_partition_that_moves_on_is_not_read_again():
    c = _Consumer({A: 25})
    c.ends[A] = 640  # a backlog
    guard = _guard(c)
    guard.assigned([A])
    guard._watched[A] -= 2 * sc.STALL_S  # assigned long ago
    asyncio.run(guard.admit(_events((A, 25))))  # but it handed something over just now
    asyncio.run(guard.retry())
    assert c.seeks == []


def test_a_hole_closed_while_the_broker_is_asked_is_not_sought_again(monkeypatch):
    """The retry asks about A's hole; meanwhile an agent reads B's missing offset: B's
    hole, closed, must not be re-created from the retry's earlier view of the holes."""
    monkeypatch.setattr(og, "RETRY_S", 0.0)
    monkeypatch.setattr(og, "PROBE_AFTER", 1)
    c = _Consumer({A: 1, B: 1})
    guard = None

    async def probe(starts):
        if A in starts and B in guard.holes:
            await guard.admit(_events((B, 2), (B, 3)))  # another agent, during the await
        return {tp: at for tp, at in starts.items()}  # a record is there: no pass-over

    guard = OffsetGuard(lambda: c, None, _group_committed, probe)

    async def run():
        await guard.admit(_events((A, 1), (A, 3), (B, 1), (B, 3)))  # holes at A 2, B 2
        c.seeks.clear()
        await guard.retry()

    asyncio.run(run())
    assert list(guard.holes) == [A] and (B, 2) not in c.seeks


def test_the_commit_moves_past_a_gap_of_any_length():
    c = _Patched({A: 2})
    c._gap[A].addi(2, 200_002)  # a compacted or transactional range of 200,000 offsets
    c.ack(A, 200_002)
    assert c._new_offset(A) == 200_003


def test_a_silent_partition_where_only_offsets_without_a_record_wait_is_left_alone(
    monkeypatch,
):
    """The commit sits on a transaction's last marker: the end offset is one past it, but
    no record waits; the partition must not be read again every STALL_S."""
    monkeypatch.setattr(sc, "STALL_S", 0.0)
    c = _Consumer({A: 40})
    c.ends[A] = 41
    guard = OffsetGuard(lambda: c, None, _group_committed, _probe_answering({A: {40: 41}}))
    guard.assigned([A])
    asyncio.run(guard.retry())
    assert c.seeks == []


def test_stalled_partitions_are_checked_in_one_request_and_a_missing_commit_asked_once(
    monkeypatch,
):
    """Idle partitions (reviews, rekey) are looked at every STALL_S: one request for all of
    them, and the broker is asked once per assignment for a commit it does not have."""
    monkeypatch.setattr(sc, "STALL_S", 0.0)
    c = _Consumer({})
    c.ends.update({A: 5, B: 0})  # A: offsets 0-4 wait and nothing was handed over
    asked: list = []
    requests: list = []

    async def committed(consumer, tp):
        asked.append(tp)
        return None

    async def highwaters(*tps):
        requests.append(tps)
        return {tp: c.ends.get(tp, 0) for tp in tps}

    c.highwaters = highwaters
    guard = OffsetGuard(lambda: c, None, committed)
    guard.assigned([A, B])
    for _ in range(3):  # the first check notes where Faust's reading stands
        asyncio.run(guard.retry())
    assert c.seeks == [(A, 0), (A, 0)]
    assert sorted(asked, key=lambda tp: tp.partition) == [A, B]
    assert [len(r) for r in requests] == [2, 2]


def test_a_partition_faust_keeps_reading_is_busy_not_stalled(monkeypatch):
    """A large backlog: nothing of A was admitted for STALL_S, but Faust's read offset
    moves: the worker is late with it, and a seek would only throw away what was read."""
    monkeypatch.setattr(sc, "STALL_S", 0.0)
    c = _Consumer({A: 0})
    c.ends[A] = 10_000
    guard = _guard(c)
    guard.assigned([A])
    for read in (100, 600, 1100):
        c._read_offset[A] = read
        asyncio.run(guard.retry())
    assert c.seeks == []


def test_a_partition_that_moves_on_while_the_broker_is_asked_is_not_sought(monkeypatch):
    """Progress during the broker's answer: the check's start is stale, a seek would go
    back over processed offsets."""
    monkeypatch.setattr(sc, "STALL_S", 0.0)
    c = _Consumer({A: 25})
    c.ends[A] = 640
    guard = _guard(c)

    async def highwaters(*tps):
        await guard.admit(_events((A, 25), (A, 26), (A, 27)))  # the agent, meanwhile
        return {tp: c.ends.get(tp, 0) for tp in tps}

    c.highwaters = highwaters
    guard.assigned([A])
    asyncio.run(guard.retry())
    asyncio.run(guard.retry())
    assert c.seeks == []
