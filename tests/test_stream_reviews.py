"""Officers' reviews on the real broker: a cleared hold, applied by ``som worker``, stops
holding its repeat; a duplicate gives the same record, a misplaced review is re-sent and
applied, a CMS-signed review is applied with its signer, junk is rejected, and each review
ends as exactly one record."""

import asyncio
import json
import time
import uuid
from datetime import timedelta

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.partitioner import murmur2
from prometheus_client.parser import text_string_to_metric_families

from config import load_settings
from connectors.demo_pki import DemoPKI
from connectors.feed import read_feed
from connectors.kafka_admin import ensure_topics
from connectors.signing import sign_cms
from engine.keys import purchaser_key
from engine.pipeline import _iso
from tests.streamtools import collect, isolated_topics, produce, scrape, start_worker, stop_worker
from tests.support import PURCHASERS, START, build_feed, order, payload

pytestmark = pytest.mark.broker

WEEKS = 20
SPIKE_DAY = START + timedelta(days=7 * (WEEKS - 1))
DEA = PURCHASERS[0]


def review(number: str, note: str) -> bytes:
    return json.dumps(
        {
            "order_number": number,
            "purchaser_dea": DEA,
            "outcome": "cleared",
            "reviewed_at": (SPIKE_DAY + timedelta(days=1)).isoformat().replace("+00:00", "Z"),
            "reviewer": "officer-17",
            "note": note,
        }
    ).encode()


async def produce_at(bootstrap: str, topic: str, messages: list[tuple]) -> None:
    """Publish (key, value, partition, timestamp_ms) in order, waiting for each."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for key, value, partition, ts in messages:
            await producer.send_and_wait(
                topic, value, key=key, partition=partition, timestamp_ms=ts
            )
    finally:
        await producer.stop()


async def read_raw(bootstrap: str, topic: str, want: int, timeout: float = 10) -> list:
    """The records of ``topic`` from the start (aiokafka ConsumerRecords), at least ``want``."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    out: list = []
    try:
        deadline = time.monotonic() + timeout
        while len(out) < want and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                out.extend(records)
    finally:
        await consumer.stop()
    return out


def sample(text: str, name: str, **labels) -> float:
    return sum(
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def test_worker_applies_reviews_and_a_cleared_hold_releases_its_repeat(broker, tmp_path):
    tf = build_feed(tmp_path, weeks=WEEKS, bad=False)
    case_ca = DemoPKI.create(START - timedelta(days=30), START + timedelta(days=700), seed=41)
    case_ca.write(tmp_path / "case-ca")  # the case system's CA: it signs one of the reviews
    case_system = case_ca.issue_registrant("AB1234563", "Case System [TEST]", ["2"],
                                           START, START + timedelta(days=700))
    tf.config.write_text(tf.config.read_text()
                         + f'\n[reviews]\ntrust_dir = "{tmp_path / "case-ca" / "trust"}"\n')
    app_id = f"som-rv-{uuid.uuid4().hex[:8]}"
    signed, decided, rejected, rekeyed, reviews_topic, applied_topic = isolated_topics(
        tf.config, app_id
    )
    k = load_settings(tf.config).kafka
    assert k.partitions == 2
    asyncio.run(
        ensure_topics(
            broker.url,
            k.topics(),
            k.partitions,
        )
    )
    messages = list(read_feed(tf.feed))
    log = tmp_path / "worker.log"
    proc, port = start_worker(tf.config, broker.url, app_id, log)
    alive = lambda: proc.poll() is None  # noqa: E731
    try:
        asyncio.run(produce(broker.bootstrap, signed, [(purchaser_key(m), m) for m in messages]))
        got = asyncio.run(
            collect(
                broker.bootstrap,
                [decided, rejected],
                len(messages),
                timeout=60,
                settle=0.5,
                alive=alive,
            )
        )
        assert len(got[decided]) == len(messages) and not got[rejected], log.read_text()[-3000:]
        (spike,) = [
            d
            for d in got[decided]
            if d["purchaser_dea"] == DEA and d["signed_at"].startswith(SPIKE_DAY.date().isoformat())
        ]
        assert spike["decision"] == "HOLD" and spike["reasons"][0]["code"] == "size_own", spike

        number = spike["order_number"]
        home = (murmur2(DEA.encode()) & 0x7FFFFFFF) % k.partitions
        t0 = int(time.time() * 1000) - 60_000  # distinct receipt times, all in the past
        keyed = review(number, "keyed")
        sent = [
            (DEA.encode(), keyed, None, t0),
            (DEA.encode(), keyed, None, t0),  # the same message delivered twice
            (None, review(number, "unkeyed"), None, t0 + 1000),
            (DEA.encode(), review(number, "wrong partition"), 1 - home, t0 + 2000),
            (None, b"junk", None, t0 + 3000),
            (None, sign_cms(review(number, "signed"), case_system), None, t0 + 4000),
        ]
        asyncio.run(produce_at(broker.bootstrap, reviews_topic, sent))
        out = asyncio.run(
            collect(
                broker.bootstrap,
                [applied_topic, rejected],
                len(sent),
                timeout=30,
                settle=1.0,
                alive=alive,
            )
        )
        applied = out[applied_topic]
        assert len(applied) == 5 and len(out[rejected]) == 1, (out, log.read_text()[-3000:])
        (junk,) = out[rejected]
        assert junk["reason"] == "malformed", junk
        by_note: dict[str, list[dict]] = {}
        for record in applied:
            by_note.setdefault(record["note"], []).append(record)
        assert sorted(by_note) == ["keyed", "signed", "unkeyed", "wrong partition"]
        (signed_record,) = by_note["signed"]  # CMS, unkeyed: re-sent to its home, then applied
        assert "Case System [TEST]" in signed_record["signer"]["subject"]
        assert all(r["signer"] is None for n, rs in by_note.items() if n != "signed" for r in rs)
        first, again = by_note["keyed"]
        assert first == again  # a redelivery gives the identical record
        for note, ts in (("keyed", t0), ("unkeyed", t0 + 1000), ("wrong partition", t0 + 2000),
                         ("signed", t0 + 4000)):
            (record, *_) = by_note[note]
            assert record["record"] == "review" and record["purchaser_dea"] == DEA
            assert record["order_number"] == number and record["outcome"] == "cleared"
            assert record["received_at"] == _iso(ts / 1000)  # the re-sent copy keeps it
            assert {c["code"] for c in record["cases"]} == {"size_own"}, record
            assert all(c["outcome"] == "cleared" and c["holds_repeats_through"] is None
                       for c in record["cases"])

        # the unkeyed and the misplaced review went round once more, keyed, to the home
        # partition, marked as re-sent; nothing else was re-sent
        copies = [
            r
            for r in asyncio.run(read_raw(broker.bootstrap, reviews_topic, 9))
            if "som-received" in dict(r.headers)
        ]
        cms = [r for r in copies if r.value[:1] == b"\x30"]  # the signed review, unchanged
        assert len(copies) == 3 and len(cms) == 1
        assert sorted(json.loads(r.value)["note"] for r in copies if r not in cms) == [
            "unkeyed", "wrong partition"]
        assert all(r.key == DEA.encode() and r.partition == home for r in copies)

        repeat = order(
            DEA,
            "25X900009",
            SPIKE_DAY + timedelta(days=3),
            [("99901-0102-01", 100, 40), ("99901-1101-01", 100, 1)],
        )
        asyncio.run(
            produce(
                broker.bootstrap,
                signed,
                [(DEA.encode(), sign_cms(payload(repeat), tf.identities[DEA]))],
            )
        )
        got = asyncio.run(
            collect(
                broker.bootstrap, [decided], len(messages) + 1, timeout=30, settle=0.5, alive=alive
            )
        )
        (decision,) = [d for d in got[decided] if d["order_number"] == "25X900009"]
        codes = [r["code"] for r in decision["reasons"]]
        # without the cleared review: HOLD, size_repeat_held (tests/test_review.py)
        assert decision["decision"] == "RELEASE" and "size_repeat_held" not in codes, decision

        text = scrape(port)
    finally:
        stop_worker(proc)
    assert sample(text, "som_reviews_total", outcome="cleared") == 5
    assert sample(text, "som_reviews_total", outcome="reported") == 0
    assert sample(text, "som_reviews_total", outcome="rejected") == 1
    assert sample(text, "som_reviews_unsigned_total") == 4  # all but the CMS-signed one
    # som_orders_rejected_total counts orders: received = decisions + rejections holds
    assert sample(text, "som_orders_rejected_total") == 0
    assert sample(text, "som_orders_received_total") == len(messages) + 1


def test_som_review_publishes_a_review_keyed_by_the_purchaser(broker, tmp_path):
    import subprocess
    import sys

    tf = build_feed(tmp_path, weeks=3, bad=False)
    app_id = f"som-rc-{uuid.uuid4().hex[:8]}"
    topics = isolated_topics(tf.config, app_id)
    cmd = [sys.executable, "-m", "engine.cli", "review", "--order", "25X00A123", "--dea", DEA,
           "--outcome", "reported", "--reviewer", "officer-17", "--note", "called the DEA",
           "--broker", broker.url, "--config", str(tf.config)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    printed = json.loads(proc.stdout)
    assert printed["topic"] == topics[4]
    (record,) = asyncio.run(read_raw(broker.bootstrap, topics[4], 1))
    assert record.key == DEA.encode() and record.partition == printed["partition"]
    sent = json.loads(record.value)
    assert sent["outcome"] == "reported" and sent["note"] == "called the DEA"
    assert sent == printed["review"]
