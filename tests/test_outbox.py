"""engine.outbox: a batch's records as record batches, on the real embedded broker."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from connectors.kafka_admin import ensure_topics
from engine.outbox import Outbox, OutputLost


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


class _FakeProducer:
    """Stands in for aiokafka's producer where a broker cannot be made to misbehave:
    a refused record batch, a failing metadata call, a slow partition."""

    def __init__(self, refuse: Exception | None = None, metadata_error: Exception | None = None,
                 slow_topic: str = "") -> None:
        self.refuse, self.metadata_error, self.slow_topic = refuse, metadata_error, slow_topic
        self.sent: list[tuple[str, bytes, bytes]] = []

    async def partitions_for(self, topic: str) -> set[int]:
        if self.metadata_error is not None:
            raise self.metadata_error
        return {0, 1}

    def create_batch(self) -> _Batch:
        return _Batch()

    async def send_batch(self, batch, topic: str, *, partition: int) -> asyncio.Future:
        if topic == self.slow_topic:
            await asyncio.sleep(0.05)  # waiting for the partition's previous batch to drain
        self.sent.extend((topic, key, value) for key, value in batch.rows)
        fut = asyncio.get_running_loop().create_future()
        if self.refuse is not None:
            fut.set_exception(self.refuse)
        else:
            fut.set_result(None)
        return fut


class _Batch:
    def __init__(self) -> None:
        self.rows: list[tuple[bytes, bytes]] = []

    def append(self, *, key: bytes, value: bytes, timestamp) -> object:
        self.rows.append((key, value))
        return object()  # record metadata: never full

    def record_count(self) -> int:
        return len(self.rows)


def test_a_refused_batch_crashes_the_worker_and_blocks_every_later_commit():
    error = RuntimeError("MessageSizeTooLargeError")
    producer = _FakeProducer(refuse=error)
    crashes: list = []
    outbox = Outbox(lambda: producer, crashes.append)

    async def run() -> None:
        outbox.add("decisions", b"BP1234563", b"{}")
        await outbox.send()
        await asyncio.sleep(0)  # the delivery callback runs on the loop
        assert crashes == [error]
        with pytest.raises(OutputLost) as info:  # what the producer's flush runs before a commit
            outbox.check()
        assert info.value.__cause__ is error
        outbox.add("decisions", b"BP1234563", b"{}")
        with pytest.raises(OutputLost):
            await outbox.send()

    asyncio.run(run())
    assert len(producer.sent) == 1 and crashes == [error]


def test_a_send_failing_midway_fails_the_outbox():
    error = ConnectionError("metadata request timed out")
    crashes: list = []
    outbox = Outbox(lambda: _FakeProducer(metadata_error=error), crashes.append)
    outbox.add("decisions", b"BP1234563", b"{}")

    async def run() -> None:
        with pytest.raises(ConnectionError):
            await outbox.send()
        with pytest.raises(OutputLost):
            outbox.check()

    asyncio.run(run())
    assert crashes == [error]


def test_concurrent_sends_keep_the_order_records_were_added_in():
    """Two agents share the outbox: a later changelog value of a key never overtakes an
    earlier one, even when the earlier send waits on another topic's partition."""
    producer = _FakeProducer(slow_topic="decisions")
    outbox = Outbox(lambda: producer, lambda exc: None)

    async def run() -> None:
        outbox.add("decisions", b"BP1234563", b"d1")
        outbox.add("changelog", b"BP1234563", b"state-1")
        first = asyncio.create_task(outbox.send())
        await asyncio.sleep(0.01)  # the first send now waits on the decisions partition
        outbox.add("changelog", b"BP1234563", b"state-2")
        await outbox.send()
        await first
        outbox.check()

    asyncio.run(run())
    changelog = [v for t, _, v in producer.sent if t == "changelog"]
    assert changelog == [b"state-1", b"state-2"]


def test_the_workers_producer_flush_refuses_to_let_a_commit_through_after_a_loss(tmp_path):
    """Faust flushes its producer right before committing offsets: the worker's flush
    raises once the outbox has failed, so that commit does not happen."""
    from config import load_settings
    from engine.stream import create_app
    from tests.support import build_feed

    settings = load_settings(build_feed(tmp_path, weeks=1, bad=False).config)
    app = create_app(settings.with_overrides(web={"port": 0}))

    async def run() -> None:
        await app.producer.flush()  # nothing lost: an ordinary flush
        app.som_outbox.fail(RuntimeError("record batch refused"))
        with pytest.raises(OutputLost):
            await app.producer.flush()

    asyncio.run(run())


def test_settle_waits_for_records_sent_with_send_soon():
    """Faust's own flush before a commit can return with ``send_soon`` records still in its
    buffer: the outbox waits for each tracked send before the commit goes on."""
    outbox = Outbox(lambda: _FakeProducer(), lambda exc: None)

    async def run() -> list[str]:
        loop = asyncio.get_running_loop()
        events: list[str] = []
        sent = loop.create_future()
        outbox.track(sent)
        loop.call_later(0.3, lambda: (events.append("acknowledged"), sent.set_result(None)))
        await outbox.settle(timeout=5)
        events.append("settled")
        return events

    assert asyncio.run(run()) == ["acknowledged", "settled"]


def test_a_failed_or_late_send_soon_record_blocks_the_commit():
    error = RuntimeError("NotLeaderForPartition")
    crashes: list = []
    outbox = Outbox(lambda: _FakeProducer(), crashes.append)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        failed = loop.create_future()
        failed.set_exception(error)
        outbox.track(failed)
        with pytest.raises(OutputLost) as info:
            await outbox.settle(timeout=5)
        assert info.value.__cause__ is error

    asyncio.run(run())
    assert crashes == [error]

    crashes.clear()
    late = Outbox(lambda: _FakeProducer(), crashes.append)

    async def run_late() -> None:
        late.track(asyncio.get_running_loop().create_future())  # never acknowledged
        with pytest.raises(OutputLost):
            await late.settle(timeout=0.2)

    asyncio.run(run_late())
    assert len(crashes) == 1 and "not acknowledged" in str(crashes[0])
