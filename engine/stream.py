"""The stream driver: the pure core in one Faust agent on ``orders.signed``.

Verify, profile, score and decide run in the agent that reads the input topic,
in batches (``stream.take_events``), because every extra hop through a topic
costs Faust's per-event overhead again (DESIGN.md section 4). Profiles live in
a Faust Table whose changelog is partitioned by the key's murmur2 hash, the
same partitioner Kafka's Java client and aiokafka use for ``orders.signed``.
A verified order whose key is missing, wrong, or whose partition is not the
one its purchaser hashes to, goes once through ``orders.rekeyed`` so that one
worker owns each registrant's profile. An order batch's decisions, keyed rejections and
every changelog write leave through ``engine.outbox`` (one record batch per topic
partition), not one ``send_soon`` each; the producer's flush before a commit raises if any
of them was lost (``engine.faust_hooks``). Profiles are read and written through
``engine.table_profiles``.

Officers' reviews (``engine.review``) arrive on ``orders.reviews``, keyed by DEA number
like orders and with as many partitions, so Faust's assignor gives each worker the same
partitions of it as of the input topic and the table (topics of one partition count read
by the same consumers are co-partitioned). A review on its purchaser's home partition is
applied to the same table; one whose key or partition is wrong is re-sent once to
``orders.reviews`` keyed by the DEA number, marked with the ``som-received`` header,
and applied when its copy comes back. Each review ends as one record on
``reviews.applied`` or ``orders.rejected``.

The same app serves ``/metrics`` (``engine.metrics``, ``engine.gauges``,
``engine.lag``; off with ``[web] metrics = false``), ``/healthz`` and ``/readyz``
(``engine.health``) on the web port, and nothing else: Faust's own views would
expose table keys, which are DEA numbers.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import faust
from faust.transport.consumer import Consumer as FaustConsumer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from config import Settings
from connectors.kafka_admin import bootstrap_servers
from connectors.offset_probe import RecordProbe
from engine.batch_gc import MICRO_BATCH
from engine.build import build_pipeline
from engine.cert_census import CertCensus
from engine.changelog_ends import ChangelogTableManager
from engine.commit_guard import guard_commit_holes
from engine.faust_hooks import (
    aiokafka_producer,
    check_outbox_before_commit,
    committed_check,
    crash_app,
)
from engine.gauges import StateGauges
from engine.health import BrokerProbe, Readiness, app_checks, liveness, pipeline_checks
from engine.lag import ConsumerLag
from engine.metrics import EngineMetrics, Tally
from engine.offset_guard import OffsetGuard
from engine.outbox import Outbox, key_hash
from engine.pipeline import Pipeline, Received, _iso
from engine.records import Rejection, RejectReason, ReviewRecord, dumps, raw_sha256
from engine.table_profiles import TableProfiles, profile_sizes

__all__ = ["create_app"]

log = logging.getLogger(__name__)

# Receipt time of a message the driver re-sent (orders.rekeyed, or a review re-sent to
# orders.reviews); on the reviews topic it also marks the copy, which is never re-sent.
_RECEIVED_HEADER = "som-received"
_PROBE_INTERVAL_S = 2.0  # broker probe and consumer-lag refresh


def create_app(
    settings: Settings, pipeline: Pipeline | None = None, metrics: EngineMetrics | None = None
) -> faust.App:
    """A Faust app running the core; ``som worker`` starts it with ``faust.Worker``."""
    k = settings.kafka
    pipeline = pipeline or build_pipeline(settings)
    metrics_on = settings.web.metrics
    metrics = metrics or EngineMetrics()
    metrics.model_info.info(
        {"model_version": pipeline.model_version, "config_version": pipeline.config_version}
    )
    app = faust.App(
        k.app_id,
        broker=k.broker,
        store="memory://",
        # recovery reads each changelog partition to its last record (engine.changelog_ends)
        TableManager=ChangelogTableManager,
        autodiscover=False,
        datadir=str(Path(tempfile.gettempdir()) / f"som-{k.app_id}-data"),
        topic_partitions=k.partitions,
        topic_replication_factor=k.replication_factor,
        topic_allow_declare=True,
        processing_guarantee="at_least_once",
        broker_rebalance_timeout=k.rebalance_timeout_s,
        broker_session_timeout=k.session_timeout_s,
        broker_heartbeat_interval=k.heartbeat_interval_s,
        broker_commit_interval=k.commit_interval_s,
        consumer_auto_offset_reset="earliest",
        web_enabled=settings.web.port > 0,
        web_port=settings.web.port or 6066,
        # Faust's built-in views would serve table keys and values (DEA numbers, profiles)
        # without authentication: only /metrics, /healthz and /readyz are served.
        web_router_enabled=False,
        web_tables_enabled=False,
        web_stats_enabled=False,
        web_graph_enabled=False,
        web_metrics_enabled=False,
    )
    signed = app.topic(
        k.input_topic, value_serializer="raw", key_serializer="raw", partitions=k.partitions
    )
    rekeyed = app.topic(
        k.rekey_topic, value_serializer="raw", key_serializer="raw", partitions=k.partitions
    )
    rejected = app.topic(
        k.rejected_topic, value_serializer="raw", key_serializer="raw", partitions=k.partitions
    )
    # co-partitioned with the input topic and the table: same partition count, same key
    reviews = app.topic(
        k.reviews_topic, value_serializer="raw", key_serializer="raw", partitions=k.partitions
    )
    reviews_applied = app.topic(
        k.reviews_applied_topic,
        value_serializer="raw",
        key_serializer="raw",
        partitions=k.partitions,
    )
    table = app.Table(
        "profiles",
        default=None,
        partitions=k.partitions,
        key_type=bytes,
        value_type=bytes,
        use_partitioner=True,
    )
    crashing: set = set()  # the crash task, referenced until it ends
    outbox = Outbox(lambda: aiokafka_producer(app), lambda exc: crash_app(app, exc, crashing))
    check_outbox_before_commit(app, outbox)
    profiles = TableProfiles(table, outbox)
    census = CertCensus(lambda: table.data, k.partitions)  # som_certificates_expiring

    def send_soon(topic, **record) -> None:
        """Faust's ``send_soon``, awaited by the outbox before the next commit."""
        outbox.track(topic.send_soon(**record))

    pipeline.is_committed = committed_check(app)
    guard_commit_holes(FaustConsumer)
    bootstrap = bootstrap_servers(k.broker)
    record_probe = RecordProbe(bootstrap)  # where an input partition's next record is
    guard = OffsetGuard(
        lambda: app.consumer,
        metrics.input_rereads.inc if metrics_on else None,
        probe=record_probe.first_record_offsets,
        on_pass_over=metrics.input_passed_over.inc if metrics_on else None,
    )
    app.som_offset_guard = guard  # read by the patched commit (guard_commit_holes)
    def home_partition(dea: str) -> int:
        return key_hash(dea.encode()) % k.partitions

    def emit(outcome, key: bytes | None, received: Received, t: Tally | None) -> None:
        if isinstance(outcome, Rejection):
            if t is not None:
                t.rejection(str(outcome.reason))
            if key is None:  # unkeyed input: the producer picks a partition
                send_soon(rejected, key=None, value=dumps(outcome))
            else:
                outbox.add(k.rejected_topic, key, dumps(outcome))
        else:
            if t is not None:
                first = outcome.reasons[0].code if outcome.reasons else "none"
                t.decision(outcome.decision, first, time.time() - received.ts)
            outbox.add(k.decisions_topic, outcome.purchaser_dea.encode(), dumps(outcome))

    def handle(events, rekey_pass: bool) -> None:
        # metrics: plain ints and list appends per event, one flush per batch (engine.metrics)
        t = metrics.tally() if metrics_on else None
        clock = time.perf_counter
        t0 = t1 = 0.0
        batch: list = []  # (verified, received, position) for the core's micro-batch
        keys: list = []
        for event in events:
            msg = event.message
            raw = event.value if isinstance(event.value, bytes) else bytes(event.value or b"")
            received = _received(msg, rekey_pass)
            if t is not None:
                if not rekey_pass:
                    t.received += 1
                t0 = clock()
            verified = pipeline.verify(raw, received)
            if t is not None:
                t1 = clock()
                t.verify.append(t1 - t0)
            if isinstance(verified, Rejection):
                emit(verified, msg.key, received, t)
                continue
            dea = verified.order.purchaser.dea_number
            if not rekey_pass and (msg.key != dea.encode() or msg.partition != home_partition(dea)):
                send_soon(
                    rekeyed,
                    key=dea.encode(),
                    value=raw,
                    headers={_RECEIVED_HEADER: repr(received.ts).encode()},
                )
                if t is not None:
                    t.rekeyed += 1
                continue
            if t is not None:
                ship = t.ship_to
                ship[verified.ship_to] = ship.get(verified.ship_to, 0) + 1
            batch.append((verified, received, (f"{msg.topic}:{msg.partition}", msg.offset)))
            keys.append(msg.key)
        for at in range(0, len(batch), MICRO_BATCH):
            part = batch[at : at + MICRO_BATCH]
            t1 = clock()
            outcomes = pipeline.monitor_batch(part, profiles)
            if t is not None:
                each = (clock() - t1) / len(part)
                t.score.extend([each] * len(part))
            for (_, received, _), key, outcome in zip(
                part, keys[at : at + MICRO_BATCH], outcomes, strict=True
            ):
                emit(outcome, key, received, t)
        profiles.flush()
        if t is not None:
            metrics.flush(t)

    def review_outcome(msg, raw: bytes, received: Received, resent: bool):
        """The review's record, or None when it was re-sent to its home partition."""
        try:
            dea = pipeline.review_auth.open(raw)[0].purchaser_dea  # signed or not
        except Exception:  # unreadable: pipeline.review gives its rejection below
            dea = None
        if dea is not None and (msg.key != dea.encode() or msg.partition != home_partition(dea)):
            if not resent:
                send_soon(
                    reviews,
                    key=dea.encode(),
                    value=raw,
                    headers={_RECEIVED_HEADER: repr(received.ts).encode()},
                )
                return None
            # the re-sent copy is off its home partition too: the reviews topic's partition
            # count differs from [kafka] partitions, and this worker may not own the profile
            return Rejection(
                RejectReason.INTERNAL_ERROR,
                f"review re-sent with its key arrived on partition {msg.partition}, not "
                f"{home_partition(dea)}: topic {k.reviews_topic} must have [kafka] partitions "
                f"= {k.partitions}",
                received.iso,
                raw_sha256(raw),
                purchaser_dea=dea,
            )
        return pipeline.review(raw, profiles, received)

    def handle_reviews(events) -> None:
        for event in events:
            msg = event.message
            raw = event.value if isinstance(event.value, bytes) else bytes(event.value or b"")
            resent = _has_header(msg, _RECEIVED_HEADER)
            received = _received(msg, rekey_pass=resent)
            try:
                outcome = review_outcome(msg, raw, received, resent)
            except Exception as exc:  # a bug must not stop the agent nor drop the message
                log.exception("review at %s:%s not applied", msg.partition, msg.offset)
                outcome = Rejection(
                    RejectReason.INTERNAL_ERROR,
                    f"internal error while applying a review: {type(exc).__name__}",
                    received.iso,
                    raw_sha256(raw),
                )
            if outcome is None:
                continue
            if isinstance(outcome, ReviewRecord):
                send_soon(reviews_applied, key=outcome.purchaser_dea.encode(), value=dumps(outcome))
                label = outcome.outcome
                if metrics_on and outcome.signer is None:
                    metrics.reviews_unsigned.inc()
            else:
                send_soon(rejected, key=msg.key, value=dumps(outcome))
                label = "rejected"  # not in som_orders_rejected_total: that counts orders
            if metrics_on:
                metrics.reviews.labels(outcome=label).inc()
        profiles.flush()  # one changelog write per registrant a review changed

    @app.task
    async def quiet_library_loggers() -> None:
        # Faust's worker leaves the root logger at DEBUG, so aiokafka, faust and mode build
        # a debug record for every message sent (about 2% of the time) only to drop it.
        level = max(logging.getLogger().getEffectiveLevel(), logging.INFO)
        for name in ("aiokafka", "faust", "mode"):
            logging.getLogger(name).setLevel(level)

    async def finish(work, events, *args) -> None:
        """Process a batch (the events ``guard`` admits) and send its outputs, or fail the
        outbox so that nothing more is committed: Faust acknowledges a batch's events even
        when its agent raises."""
        try:
            work(await guard.admit(events), *args)
            await outbox.send()
        except Exception as exc:
            outbox.fail(exc)
            raise

    @app.agent(signed, name="monitor")
    async def monitor(stream):
        async for events in stream.take_events(k.batch_size, within=k.batch_timeout_s):
            await finish(handle, events, False)

    @app.agent(rekeyed, name="monitor_rekeyed")
    async def monitor_rekeyed(stream):
        async for events in stream.take_events(k.batch_size, within=k.batch_timeout_s):
            await finish(handle, events, True)

    @app.agent(reviews, name="apply_reviews")
    async def apply_reviews(stream):
        async for events in stream.take_events(k.batch_size, within=k.batch_timeout_s):
            await finish(handle_reviews, events)

    lag = ConsumerLag(app, [k.input_topic, k.rekey_topic, k.reviews_topic])
    guarded = frozenset((k.input_topic, k.rekey_topic, k.reviews_topic))  # OffsetGuard's
    monitored = frozenset((k.input_topic, k.rekey_topic))  # som_partitions_assigned counts these
    probe = BrokerProbe(bootstrap)
    readiness = Readiness({**app_checks(app), **pipeline_checks(pipeline), "broker": probe.check})
    started = time.monotonic()
    if metrics_on:
        metrics.registry.register(
            StateGauges(
                registrants=lambda: len(table),
                profile_sizes=lambda: profile_sizes(table),
                verifier=pipeline.verifier,
                cert_watch=census,  # certificate expiry from the profiles in the table
                lag=lag,
                review_trust=pipeline.review_auth.trust,
            )
        )

    @app.on_partitions_assigned.connect
    async def on_assigned(sender, assigned, **kwargs) -> None:
        guard.reset()  # expect each partition's committed offset next
        guard.assigned(tp for tp in assigned if tp.topic in guarded)
        census.assigned(tp.partition for tp in assigned if tp.topic == k.input_topic)
        if metrics_on:
            metrics.rebalances.inc()
            metrics.partitions.set(sum(1 for tp in assigned if tp.topic in monitored))

    @app.on_partitions_revoked.connect
    async def on_revoked(sender, revoked, **kwargs) -> None:
        guard.revoked()  # no seeks on partitions that may be gone; the cap stays

    async def observe_outside() -> None:
        """Broker reachability and consumer lag need network calls: off the scrape path."""
        await probe.probe()
        if metrics_on:
            await lag.refresh()

    app.task(observe_outside)  # once at start: /readyz need not wait a whole interval
    app.timer(interval=1.0)(guard.retry)  # seek again to an input hole still open
    app.timer(interval=_PROBE_INTERVAL_S)(observe_outside)

    @app.page("/metrics")
    async def metrics_page(web, request):
        if not metrics_on:
            return web.text("metrics are off ([web] metrics = false)\n", status=404)
        metrics.ready.set(1 if readiness.report()[0] else 0)
        return web.bytes(
            generate_latest(metrics.registry),
            content_type=CONTENT_TYPE_LATEST.split(";")[0],
        )

    @app.page("/healthz")
    async def healthz(web, request):
        alive, body = liveness(app, started)
        return web.json(body, status=200 if alive else 503)

    @app.page("/readyz")
    async def readyz(web, request):
        ready, body = readiness.report()
        return web.json(body, status=200 if ready else 503)

    app.som_metrics = metrics  # for tests and the demo
    @app.on_before_shutdown.connect
    async def close_record_probe(sender, **kwargs) -> None:
        await record_probe.close()

    app.som_outbox = outbox
    app.som_readiness = readiness
    return app


def _has_header(msg, name: str) -> bool:
    headers = msg.headers
    if not headers:
        return False
    if isinstance(headers, dict):
        return name in headers
    return any(key == name for key, _ in headers)


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
