"""engine.outbox: a batch's records as record batches, on the real embedded broker."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder

from connectors.kafka_admin import ensure_topics
from engine.outbox import Outbox


async def _read_all(bootstrap: str, topic: str, want: int, timeout: float = 30.0) -> list:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    got: list = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(got) < want and asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                got.extend(records)
    finally:
        await consumer.stop()
    return got


def test_every_record_lands_on_the_partition_aiokafka_would_pick(broker):
    """Nothing lost, none doubled, keyed like producer.send, across full record batches."""
    topic, other = f"outbox-{uuid.uuid4().hex[:8]}", f"outbox-b-{uuid.uuid4().hex[:8]}"
    # values of 5 kB: a 16 kB record batch holds three, so most partitions need several
    rows = [(f"BP{i % 37:07d}".encode(), f"{i:06d}".encode() + b"x" * 5000) for i in range(400)]

    async def run() -> tuple[list, list, list[int]]:
        await ensure_topics(broker.url, [topic, other], partitions=5)
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        await producer.start()
        crashes: list = []
        try:
            outbox = Outbox(lambda: producer, crashes.append)
            for key, value in rows:
                outbox.add(topic, key, value)
            outbox.add(other, b"BP0000001", b"one")
            assert len(outbox) == 401
            sent = await outbox.send()
            assert len(outbox) == 0 and await outbox.send() == 0
            await producer.flush()  # what Faust does before it commits offsets
            partitions = sorted(await producer.partitions_for(topic))
        finally:
            await producer.stop()
        assert sent == 401 and not crashes
        got = await _read_all(broker.bootstrap, topic, len(rows))
        got_other = await _read_all(broker.bootstrap, other, 1)
        return got, got_other, partitions

    got, got_other, partitions = asyncio.run(run())
    assert sorted((r.key, r.value) for r in got) == sorted(rows)
    pick = DefaultPartitioner()
    for r in got:
        assert r.partition == pick(r.key, partitions, partitions)
    assert len({r.partition for r in got}) == 5
    # within a partition, the order records were added in is kept
    for p in partitions:
        mine = [r.value for r in got if r.partition == p]
        assert mine == [v for k, v in rows if pick(k, partitions, partitions) == p]
    assert [(r.key, r.value) for r in got_other] == [(b"BP0000001", b"one")]


class _RefusingProducer:
    """Stands in for the broker's refusal of a record batch (a Kafka error on delivery)."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.batches = 0

    async def partitions_for(self, topic: str) -> set[int]:
        return {0, 1}

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(16384, 0)

    async def send_batch(self, batch, topic: str, *, partition: int) -> asyncio.Future:
        self.batches += 1
        fut = asyncio.get_running_loop().create_future()
        fut.set_exception(self.error)
        return fut


def test_a_refused_batch_crashes_the_worker_and_nothing_is_sent_after_it():
    error = RuntimeError("MessageSizeTooLargeError")
    producer = _RefusingProducer(error)
    crashes: list = []
    outbox = Outbox(lambda: producer, crashes.append)

    async def run() -> None:
        outbox.add("decisions", b"BP1234563", b"{}")
        await outbox.send()
        await asyncio.sleep(0)  # the delivery callback runs on the loop
        assert crashes == [error]
        outbox.add("decisions", b"BP1234563", b"{}")
        with pytest.raises(RuntimeError, match="refused") as info:
            await outbox.send()
        assert info.value.__cause__ is error

    asyncio.run(run())
    assert producer.batches == 1
