"""The stream driver: the pure core in one Faust agent on ``orders.signed``.

Verify, profile, score and decide run in the agent that reads the input topic,
in batches (``stream.take_events``), because every extra hop through a topic
costs Faust's per-event overhead again (DESIGN.md section 4). Profiles live in
a Faust Table whose changelog is partitioned by the key's murmur2 hash, the
same partitioner Kafka's Java client and aiokafka use for ``orders.signed``.
A verified order whose key is missing, wrong, or whose partition is not the
one its purchaser hashes to, goes once through ``orders.rekeyed`` so that one
worker owns each registrant's profile.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import faust
from aiokafka.partitioner import murmur2
from faust.serializers import codecs
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from config import Settings
from engine.metrics import EngineMetrics
from engine.pipeline import Pipeline, Received, _iso, build_pipeline
from engine.profile import RegistrantProfile
from engine.records import Rejection, dumps

__all__ = ["create_app"]

_RECEIVED_HEADER = "som-received"


class ProfileCodec(codecs.Codec):
    """Table value codec: a profile as compact JSON of its state lists."""

    def _dumps(self, obj: RegistrantProfile) -> bytes:
        return json.dumps(obj.to_state(), separators=(",", ":")).encode()

    def _loads(self, s: bytes) -> RegistrantProfile:
        return RegistrantProfile.from_state(json.loads(s))


codecs.register("som_profile", ProfileCodec())


class _TableProfiles:
    """The Table seen as the ``profiles`` mapping the core expects (str keys)."""

    __slots__ = ("table",)

    def __init__(self, table) -> None:
        self.table = table

    def get(self, dea: str) -> RegistrantProfile | None:
        return self.table.get(dea.encode())

    def __setitem__(self, dea: str, profile: RegistrantProfile) -> None:
        self.table[dea.encode()] = profile


def create_app(
    settings: Settings, pipeline: Pipeline | None = None, metrics: EngineMetrics | None = None
) -> faust.App:
    """A Faust app running the core; ``som worker`` starts it with ``faust.Worker``."""
    k = settings.kafka
    pipeline = pipeline or build_pipeline(settings)
    metrics = metrics or EngineMetrics()
    metrics.model_info.info(
        {"model_version": pipeline.model_version, "config_version": pipeline.config_version}
    )
    app = faust.App(
        k.app_id,
        broker=k.broker,
        store="memory://",
        autodiscover=False,
        datadir=str(Path(tempfile.gettempdir()) / f"som-{k.app_id}-data"),
        topic_partitions=k.partitions,
        topic_replication_factor=k.replication_factor,
        topic_allow_declare=True,
        processing_guarantee="at_least_once",
        broker_rebalance_timeout=k.rebalance_timeout_s,
        broker_session_timeout=k.session_timeout_s,
        broker_heartbeat_interval=k.heartbeat_interval_s,
        consumer_auto_offset_reset="earliest",
        web_enabled=settings.web.port > 0,
        web_port=settings.web.port or 6066,
    )
    signed = app.topic(
        k.input_topic, value_serializer="raw", key_serializer="raw", partitions=k.partitions
    )
    rekeyed = app.topic(
        k.rekey_topic, value_serializer="raw", key_serializer="raw", partitions=k.partitions
    )
    decisions = app.topic(
        k.decisions_topic, value_serializer="raw", key_serializer="raw", partitions=k.partitions
    )
    rejected = app.topic(
        k.rejected_topic, value_serializer="raw", key_serializer="raw", partitions=k.partitions
    )
    table = app.Table(
        "profiles",
        default=None,
        partitions=k.partitions,
        use_partitioner=True,
    )
    # Table() takes no serializer arguments; set them before the changelog topic is made.
    table.key_serializer, table.value_serializer = "raw", "som_profile"
    profiles = _TableProfiles(table)
    partition_of: dict[str, int] = {}

    def home_partition(dea: str) -> int:
        p = partition_of.get(dea)
        if p is None:
            p = partition_of[dea] = (murmur2(dea.encode()) & 0x7FFFFFFF) % k.partitions
            if len(partition_of) > 1_000_000:
                partition_of.clear()
        return p

    def emit(outcome, key: bytes | None, received: Received) -> None:
        if isinstance(outcome, Rejection):
            metrics.record_rejection(str(outcome.reason))
            rejected.send_soon(key=key, value=dumps(outcome))
        else:
            first = outcome.reasons[0].code if outcome.reasons else "none"
            metrics.record_decision(outcome.decision, first, time.time() - received.ts)
            decisions.send_soon(key=outcome.purchaser_dea.encode(), value=dumps(outcome))

    def handle(events, rekey_pass: bool) -> None:
        for event in events:
            msg = event.message
            raw = event.value if isinstance(event.value, bytes) else bytes(event.value or b"")
            received = _received(msg, rekey_pass)
            if not rekey_pass:
                metrics.received.inc()
            t0 = time.perf_counter()
            verified = pipeline.verify(raw, received)
            t1 = time.perf_counter()
            metrics.verify_seconds.observe(t1 - t0)
            if isinstance(verified, Rejection):
                emit(verified, msg.key, received)
                continue
            dea = verified.order.purchaser.dea_number
            if not rekey_pass and (msg.key != dea.encode() or msg.partition != home_partition(dea)):
                rekeyed.send_soon(
                    key=dea.encode(),
                    value=raw,
                    headers={_RECEIVED_HEADER: repr(received.ts).encode()},
                )
                continue
            outcome = pipeline.monitor(verified, profiles, received)
            metrics.score_seconds.observe(time.perf_counter() - t1)
            emit(outcome, msg.key, received)

    @app.agent(signed, name="monitor")
    async def monitor(stream):
        async for events in stream.take_events(k.batch_size, within=k.batch_timeout_s):
            handle(events, rekey_pass=False)

    @app.agent(rekeyed, name="monitor_rekeyed")
    async def monitor_rekeyed(stream):
        async for events in stream.take_events(k.batch_size, within=k.batch_timeout_s):
            handle(events, rekey_pass=True)

    @app.page("/metrics")
    async def metrics_page(web, request):
        metrics.registrants.set(len(table))
        return web.bytes(
            generate_latest(metrics.registry),
            content_type=CONTENT_TYPE_LATEST.split(";")[0],
        )

    app.som_metrics = metrics  # for tests and the demo
    return app


def _received(msg, rekey_pass: bool) -> Received:
    """Receipt time: the input message's broker timestamp (carried along on a rekey)."""
    ts = None
    if rekey_pass and msg.headers:
        headers = dict(msg.headers) if not isinstance(msg.headers, dict) else msg.headers
        raw = headers.get(_RECEIVED_HEADER)
        if raw:
            try:
                ts = float(raw)
            except ValueError:
                ts = None
    if ts is None:
        ts = msg.timestamp if msg.timestamp else time.time()
    return Received(ts, _iso(ts))
