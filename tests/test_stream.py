"""The stream driver on the real embedded broker: one record per message, same as replay."""

import asyncio
import uuid

import pytest

from config import load_settings
from connectors.feed import read_feed
from connectors.kafka_admin import ensure_topics
from engine.build import build_pipeline
from engine.keys import purchaser_key
from engine.records import Decision
from engine.replay import replay
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


def _comparable(d: dict) -> tuple:
    return (d["purchaser_dea"], d["order_number"], d["decision"],
            tuple(r["code"] for r in d["reasons"]), tuple(sorted(d["scores"].items())))


def _run(broker, tmp_path, key_for):
    """Publish the test feed with keys from ``key_for``; return decisions, rejections, metrics."""
    tf = build_feed(tmp_path)
    k = load_settings(tf.config).kafka
    app_id = f"som-test-{uuid.uuid4().hex[:8]}"
    topics = isolated_topics(tf.config, app_id)
    asyncio.run(ensure_topics(broker.url, topics + [f"{app_id}-profiles-changelog"],
                              k.partitions))
    messages = list(read_feed(tf.feed))
    keyed = []
    for i, raw in enumerate(messages):
        key = key_for(i, raw)  # a key, or (key, partition)
        keyed.append((key[0], raw, key[1]) if isinstance(key, tuple) else (key, raw))
    proc, port = start_worker(tf.config, broker.url, app_id, tmp_path / "worker.log")
    try:
        asyncio.run(produce(broker.bootstrap, topics[0], keyed))
        got = asyncio.run(collect(broker.bootstrap, topics[1:3], len(messages), timeout=90,
                                  alive=lambda: proc.poll() is None))
        metrics = scrape(port)
    finally:
        stop_worker(proc)
    log = (tmp_path / "worker.log").read_text(errors="replace")
    decisions, rejections = got[topics[1]], got[topics[2]]
    assert len(decisions) + len(rejections) == len(messages), log[-3000:]
    identities = [(d["purchaser_dea"], d["order_number"]) for d in decisions]
    assert len(set(identities)) == len(identities)
    assert sorted(r["reason"] for r in rejections) == sorted(
        ["malformed", "unknown_ndc", "bad_signature", "duplicate_order"])
    return tf, messages, decisions, rejections, metrics


def test_worker_decides_every_order_once_and_matches_replay(broker, tmp_path):
    tf, messages, decisions, rejections, metrics = _run(
        broker, tmp_path, lambda i, raw: purchaser_key(raw))
    expected = []
    replay(build_pipeline(load_settings(tf.config)), messages,
           on_outcome=lambda o: expected.append(o.to_dict()) if isinstance(o, Decision) else None)
    assert sorted(map(_comparable, decisions)) == sorted(map(_comparable, expected))
    assert any(d["decision"] == "HOLD" for d in decisions)
    assert metric_value(metrics, "som_orders_received_total") == len(messages)
    assert metric_value(metrics, "som_orders_rejected_total") == len(rejections)
    assert metric_value(metrics, "som_decisions_total") == len(decisions)


def test_unkeyed_and_miskeyed_messages_are_rekeyed_not_lost(broker, tmp_path):
    """Producers that omit the key, key by something else, or use another partitioner
    (the right key in the wrong partition) still get exactly one record per message."""
    from aiokafka.partitioner import murmur2

    def key_for(i, raw):
        if i % 3 == 0:
            return None
        if i % 3 == 1:
            return f"wrong-{i}".encode()
        key = purchaser_key(raw)
        if key is None:
            return None
        home = (murmur2(key) & 0x7FFFFFFF) % 2
        return (key, 1 - home)  # e.g. librdkafka's CRC32 default put it elsewhere

    tf, messages, decisions, rejections, metrics = _run(broker, tmp_path, key_for)
    # a purchaser's orders reach the rekey topic from several partitions, so their order,
    # and with it a score, may differ from the replay's; every order is decided once
    expected = []
    replay(build_pipeline(load_settings(tf.config)), messages,
           on_outcome=lambda o: expected.append(o.to_dict()) if isinstance(o, Decision) else None)
    assert {(d["purchaser_dea"], d["order_number"]) for d in decisions} == {
        (d["purchaser_dea"], d["order_number"]) for d in expected}
    assert metric_value(metrics, "som_orders_rekeyed_total") >= len(decisions)


def test_a_10_mb_message_is_rejected_and_the_stream_goes_on(broker, tmp_path):
    """The broker delivers it; the worker rejects it as too_large and decides what follows."""
    from aiokafka import AIOKafkaProducer

    from tests.streamtools import isolated_topics

    tf = build_feed(tmp_path, weeks=2, bad=False)
    app_id = f"som-big-{uuid.uuid4().hex[:8]}"
    topics = isolated_topics(tf.config, app_id)
    k = load_settings(tf.config).kafka
    asyncio.run(ensure_topics(broker.url, topics + [f"{app_id}-profiles-changelog"],
                              k.partitions))
    messages = list(read_feed(tf.feed))
    huge = b"{" + b" " * (10 * 1024 * 1024) + b"}"

    async def publish():
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap,
                                    max_request_size=12 * 1024 * 1024)
        await producer.start()
        try:
            await producer.send_and_wait(topics[0], huge, key=b"BP1234563")
            for m in messages:
                await producer.send_and_wait(topics[0], m, key=purchaser_key(m))
        finally:
            await producer.stop()

    proc, _ = start_worker(tf.config, broker.url, app_id, tmp_path / "worker.log")
    try:
        asyncio.run(publish())
        got = asyncio.run(collect(broker.bootstrap, topics[1:3], len(messages) + 1, timeout=90,
                                  alive=lambda: proc.poll() is None))
    finally:
        stop_worker(proc)
    assert [r["reason"] for r in got[topics[2]]] == ["too_large"]
    assert len(got[topics[1]]) == len(messages)
