"""Where a partition's next record is, asked of the broker by a consumer of its own.

A consumer never receives a transactional producer's commit and abort markers
(control records), nor records compaction removed: their offsets are gaps in what it
reads. ``engine.offset_guard`` expects every offset in turn; when one is skipped it
asks here whether that offset holds a record at all, and passes over it when it does
not. The answer comes from a fetch of its own (no consumer group, the same isolation
level as the worker's consumer), so messages the worker fetched before a seek cannot
be mistaken for the broker's answer. One consumer serves every question (a topic
written by transactions has a marker after every transaction): ``RecordProbe``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.types import TP

__all__ = ["RecordProbe", "first_record_offsets"]


class RecordProbe:
    """A started-on-demand consumer answering ``first_record_offsets``; ``close`` stops it.

    Every offset without a record between two records of a fetch is remembered (up to
    ``MEMORY`` ranges per partition), so a topic with a marker after every small
    transaction costs one fetch per fetched batch, not one per marker. Offsets without
    a record stay so (markers are permanent; compaction only removes records).
    """

    MEMORY = 1024

    def __init__(
        self,
        bootstrap: str,
        timeout_s: float = 5.0,
        isolation_level: str = "read_uncommitted",
    ) -> None:
        self.bootstrap = bootstrap
        self.timeout_s = timeout_s
        self.isolation_level = isolation_level
        self._consumer: AIOKafkaConsumer | None = None
        self._lock: asyncio.Lock | None = None  # made in the caller's loop
        self._closed = False
        self._absent: dict[TP, list[tuple[int, int]]] = {}  # [a, b): no record; b: one

    def remembered(self, tp: TP, start: int) -> int | None:
        """The next record's offset when ``start`` is a remembered offset without one."""
        for a, b in reversed(self._absent.get(tp, ())):
            if a <= start < b:
                return b
        return None

    async def first_record_offsets(self, starts: Mapping[TP, int]) -> dict[TP, int | None]:
        """For each partition, the offset of its first record at or after ``starts[tp]``.

        When no record arrives within the timeout the answer is the consumer's position
        if it moved past the start (offsets before it hold no record), else None
        (nothing written there yet, or the broker did not answer in time). An offset
        below the partition's first one reads from the first one (those offsets were
        deleted by retention).
        """
        found: dict[TP, int | None] = {tp: self.remembered(tp, at) for tp, at in starts.items()}
        ask = {tp: at for tp, at in starts.items() if found[tp] is None}
        if not ask or self._closed:
            return found
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # one question at a time: each reassigns the consumer
            found.update(await asyncio.wait_for(self._fetch(ask), self.timeout_s + 5.0))
        return found

    async def _fetch(self, starts: Mapping[TP, int]) -> dict[TP, int | None]:
        found: dict[TP, int | None] = dict.fromkeys(starts)
        consumer = await self._started()
        parts = {tp: TopicPartition(tp.topic, tp.partition) for tp in starts}
        consumer.assign(list(parts.values()))
        try:
            for tp, start in starts.items():
                consumer.seek(parts[tp], start)
            waiting = set(starts)
            deadline = time.monotonic() + self.timeout_s
            while waiting and time.monotonic() < deadline:
                got = await consumer.getmany(*(parts[tp] for tp in waiting), timeout_ms=200)
                for tp in list(waiting):
                    records = got.get(parts[tp])
                    if records:
                        found[tp] = records[0].offset
                        self._remember(tp, starts[tp], records)
                        waiting.discard(tp)
            for tp in waiting:
                position = await consumer.position(parts[tp])
                if position > starts[tp]:
                    found[tp] = position
        finally:
            consumer.assign([])  # stop fetching until the next question
        return found

    def _remember(self, tp: TP, start: int, records: list) -> None:
        ranges = self._absent.setdefault(tp, [])
        prev = start
        for record in records:
            if record.offset > prev:
                ranges.append((prev, record.offset))
            prev = record.offset + 1
        if len(ranges) > self.MEMORY:
            del ranges[: len(ranges) - self.MEMORY]

    async def _started(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap,
                group_id=None,
                enable_auto_commit=False,
                isolation_level=self.isolation_level,
                auto_offset_reset="earliest",  # below the first offset: read from it
                max_partition_fetch_bytes=64 * 1024,  # a batch or so is enough
            )
            try:
                await consumer.start()
            except BaseException:
                await consumer.stop()
                raise
            self._consumer = consumer
        return self._consumer

    async def close(self) -> None:
        self._closed = True
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await consumer.stop()


async def first_record_offsets(
    bootstrap: str, starts: Mapping[TP, int], timeout_s: float = 5.0
) -> dict[TP, int | None]:
    """``RecordProbe.first_record_offsets`` with a consumer of its own, stopped after."""
    probe = RecordProbe(bootstrap, timeout_s)
    try:
        return await probe.first_record_offsets(starts)
    finally:
        await probe.close()
