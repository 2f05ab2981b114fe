"""Table recovery reads each changelog partition to its last record (engine.changelog_ends).

The embedded broker answers ListOffsets with the offset after the first record of
the last record batch; Faust stops recovery there. These tests write changelogs
whose last record batch holds several records.
"""

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from faust.types import TP

from config import load_settings
from connectors.feed import read_feed
from connectors.kafka_admin import ensure_topics
from engine.build import build_pipeline
from engine.changelog_ends import read_end_offsets
from engine.keys import purchaser_key
from engine.records import Decision
from engine.replay import replay
from tests.streamtools import collect, isolated_topics, produce, start_worker, stop_worker
from tests.support import build_feed

pytestmark = pytest.mark.broker


async def _write_batches(bootstrap: str, topic: str, batches: list[list[tuple]]) -> None:
    """Each inner list is one record batch of (key, value) on partition 0."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for records in batches:
            batch = producer.create_batch()
            for key, value in records:
                assert batch.append(key=key, value=value, timestamp=None) is not None
            await (await producer.send_batch(batch, topic, partition=0))
    finally:
        await producer.stop()


async def _listed_end(bootstrap: str, tp: TP) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        return (await consumer.end_offsets([tp]))[tp]
    finally:
        await consumer.stop()


def test_read_end_offsets_finds_the_record_after_the_listed_end(broker):
    topic = f"ends-{uuid.uuid4().hex[:8]}"
    asyncio.run(ensure_topics(broker.url, [topic], 3))
    sizes = [5, 1, 1, 1, 4]  # 12 records, the last batch holds 4
    asyncio.run(
        _write_batches(
            broker.bootstrap, topic, [[(b"k%d" % i, b"v") for i in range(n)] for n in sizes]
        )
    )
    full, empty = TP(topic, 0), TP(topic, 1)
    listed = asyncio.run(_listed_end(broker.bootstrap, full))
    ends = asyncio.run(read_end_offsets(broker.bootstrap, {full: listed, empty: 0}))
    assert ends == {full: 12, empty: 0}
    # a listed end that is already right stays (one record per batch)
    single = TP(topic, 2)
    asyncio.run(produce(broker.bootstrap, topic, [(b"a", b"1", 2), (b"b", b"2", 2)]))
    assert asyncio.run(read_end_offsets(broker.bootstrap, {single: 2})) == {single: 2}


def _decision_of(pipeline, messages: list[bytes], profiles=None) -> tuple:
    """The last message's decision after replaying ``messages`` in order."""
    out = []
    replay(
        pipeline,
        messages,
        profiles=profiles,
        on_outcome=lambda o: out.append(o) if isinstance(o, Decision) else None,
    )
    d = out[-1].to_dict()
    return (
        d["decision"],
        tuple(r["code"] for r in d["reasons"]),
        tuple(sorted(d["scores"].items())),
    )


def test_worker_recovers_a_profile_written_last_in_a_multi_record_batch(broker, tmp_path):
    """The changelog's last batch holds [another profile, X's newest profile]: a worker
    that stopped recovery at the batch's first record would decide X's next order
    against X's older profile (which lacks one order)."""
    tf = build_feed(tmp_path, bad=False)
    settings = load_settings(tf.config)
    messages = list(read_feed(tf.feed))
    x = purchaser_key(messages[-1])
    x_msgs = [m for m in messages if purchaser_key(m) == x]
    y_msgs = [m for m in messages if purchaser_key(m) not in (x, None)]
    *history, last = x_msgs
    older, newer, other = {}, {}, {}
    replay(build_pipeline(settings), history[:-1], profiles=older)
    replay(build_pipeline(settings), history, profiles=newer)
    replay(build_pipeline(settings), y_msgs, profiles=other)
    expected = _decision_of(build_pipeline(settings), x_msgs)
    stale = _decision_of(build_pipeline(settings), history[:-1] + [last])
    assert expected != stale  # the test tells the two profiles apart
    y, y_profile = next(iter(other.items()))

    app_id = f"som-ends-{uuid.uuid4().hex[:8]}"
    topics = isolated_topics(tf.config, app_id, partitions=1)
    changelog = f"{app_id}-profiles-changelog"
    asyncio.run(ensure_topics(broker.url, topics + [changelog], 1))
    asyncio.run(
        _write_batches(
            broker.bootstrap,
            changelog,
            [
                [(x, older[x.decode()].dumps_state())],
                [(y.encode(), y_profile.dumps_state()), (x, newer[x.decode()].dumps_state())],
            ],
        )
    )
    proc, _ = start_worker(tf.config, broker.url, app_id, tmp_path / "worker.log")
    try:
        asyncio.run(produce(broker.bootstrap, topics[0], [(x, last)]))
        got = asyncio.run(
            collect(
                broker.bootstrap,
                topics[1:3],
                1,
                timeout=60,
                settle=1.0,
                alive=lambda: proc.poll() is None,
            )
        )
    finally:
        stop_worker(proc)
    log = (tmp_path / "worker.log").read_text(errors="replace")
    assert len(got[topics[1]]) == 1, log[-3000:]
    d = got[topics[1]][0]
    assert (
        d["decision"],
        tuple(r["code"] for r in d["reasons"]),
        tuple(sorted(d["scores"].items())),
    ) == expected
