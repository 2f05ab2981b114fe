"""Input offsets that hold no record (a transactional producer's markers) do not stall a worker.

A consumer never receives commit markers, so such offsets are gaps in what it reads; the
offset guard must pass over them (after asking the broker) rather than seek back to them
forever, and the group's commit must move past them. The embedded broker has no
transactions, but it stores a record batch whose records skip offset deltas, which gives a
consumer the same gaps.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.protocol.produce import ProduceRequest
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from faust.types import TP

from config import load_settings
from connectors.feed import read_feed
from connectors.kafka_admin import ensure_topics
from connectors.offset_probe import RecordProbe, first_record_offsets
from engine.keys import purchaser_key
from engine.outbox import key_hash
from tests.streamtools import (
    collect,
    isolated_topics,
    metric_value,
    produce,
    scrape,
    start_worker,
    stop_worker,
)
from tests.support import build_feed

pytestmark = pytest.mark.broker


async def produce_with_gaps(bootstrap: str, topic: str, partition: int, records: list) -> None:
    """One record batch holding ``records`` ((key, value) pairs) at every second offset
    (offsets 0, 2, 4, ... of the batch: one offset without a record between two records)."""
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=0,
        is_transactional=0,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=64 * 1024 * 1024,
    )
    for i, (key, value) in enumerate(records):
        builder.append(2 * i, timestamp=None, key=key, value=value, headers=[])
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.client.force_metadata_update()
        node = producer.client.cluster.leader_for_partition(TopicPartition(topic, partition))
        request = ProduceRequest(
            transactional_id=None,
            required_acks=-1,
            timeout=10_000,
            topics=[(topic, [(partition, bytes(builder.build()))])],
        )
        response = await producer.client.send(node, request)
        assert response.topics[0][1][0][1] == 0, response  # error_code
    finally:
        await producer.stop()


async def _offsets(bootstrap: str, topic: str, partition: int) -> list[int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, 0)
        got = await consumer.getmany(tp, timeout_ms=2000)
        return [r.offset for r in got.get(tp, [])]
    finally:
        await consumer.stop()


def test_the_broker_stores_a_batch_with_gaps_and_the_probe_finds_the_next_record(broker):
    topic = f"gaps-{uuid.uuid4().hex[:8]}"
    asyncio.run(ensure_topics(broker.url, [topic], 1))
    records = [(b"k", b"a"), (b"k", b"b"), (b"k", b"c")]
    asyncio.run(produce_with_gaps(broker.bootstrap, topic, 0, records))
    assert asyncio.run(_offsets(broker.bootstrap, topic, 0)) == [0, 2, 4]
    tp = TP(topic, 0)
    found = asyncio.run(first_record_offsets(broker.bootstrap, {tp: 1}))
    assert found == {tp: 2}
    assert asyncio.run(first_record_offsets(broker.bootstrap, {tp: 2})) == {tp: 2}
    assert asyncio.run(first_record_offsets(broker.bootstrap, {tp: 5}, timeout_s=1.0)) == {tp: None}

    async def remembered():
        probe = RecordProbe(broker.bootstrap)
        try:
            first = await probe.first_record_offsets({tp: 1})
            # offset 3 was between two records of that fetch: answered without a fetch
            return first, probe.remembered(tp, 3), probe.remembered(tp, 2)
        finally:
            await probe.close()

    assert asyncio.run(remembered()) == ({tp: 2}, 4, None)


def test_a_worker_decides_every_order_around_offsets_without_records(broker, tmp_path):
    tf = build_feed(tmp_path, weeks=2, bad=False)
    k = load_settings(tf.config).kafka
    app_id = f"som-gaps-{uuid.uuid4().hex[:8]}"
    topics = isolated_topics(tf.config, app_id)
    asyncio.run(ensure_topics(broker.url, topics + [f"{app_id}-profiles-changelog"], k.partitions))
    messages = list(read_feed(tf.feed))
    by_partition: dict[int, list] = {}
    for raw in messages:
        key = purchaser_key(raw)
        by_partition.setdefault(key_hash(key) % k.partitions, []).append((key, raw))
    gapped = max(by_partition, key=lambda p: len(by_partition[p]))
    rows = by_partition[gapped]
    half = len(rows) // 2
    assert half >= 2  # at least one gap
    proc, port = start_worker(tf.config, broker.url, app_id, tmp_path / "worker.log")
    try:
        # first half of the gapped partition with a gap after every record, then the rest
        asyncio.run(produce_with_gaps(broker.bootstrap, topics[0], gapped, rows[:half]))
        rest = [(key, raw, gapped) for key, raw in rows[half:]]
        rest += [(key, raw, p) for p, kv in by_partition.items() if p != gapped for key, raw in kv]
        asyncio.run(produce(broker.bootstrap, topics[0], rest))
        got = asyncio.run(
            collect(
                broker.bootstrap,
                topics[1:3],
                len(messages),
                timeout=120,
                alive=lambda: proc.poll() is None,
            )
        )
        end = 2 * half - 1 + (len(rows) - half)  # the gapped partition's end offset
        committed = asyncio.run(_committed_after(broker.bootstrap, app_id, topics[0], gapped, end))
        passed_over = metric_value(scrape(port), "som_input_offsets_without_record_total")
    finally:
        stop_worker(proc)
    log = (tmp_path / "worker.log").read_text(errors="replace")
    decided = {(d["purchaser_dea"], d["order_number"]) for d in got[topics[1]]}
    assert len(decided) == len(messages) and not got[topics[2]], log[-3000:]
    assert "hold no record" in log
    assert committed == end, log[-3000:]  # the commit moved past every gap
    assert passed_over == half - 1  # one offset without a record between each two


async def _committed_after(
    bootstrap: str, group: str, topic: str, partition: int, end: int, timeout_s: float = 20.0
) -> int | None:
    """The group's committed offset once it reaches ``end`` (or the last one seen)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        committed = None
        deadline = asyncio.get_running_loop().time() + timeout_s
        while asyncio.get_running_loop().time() < deadline:
            committed = await consumer.committed(tp)
            if committed == end:
                break
            await asyncio.sleep(0.5)
        return committed
    finally:
        await consumer.stop()
