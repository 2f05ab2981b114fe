"""Metrics, gauges and health checks without a broker."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from prometheus_client import generate_latest

from config import load_settings
from engine.build import build_pipeline
from engine.cert_watch import CertExpiryWatch
from engine.gauges import StateGauges, issuer_label
from engine.health import BrokerProbe, Readiness, pipeline_checks
from engine.histogram import BatchHistogram
from engine.metrics import EngineMetrics
from tests.streamtools import metric_value
from tests.support import build_feed

#: Every name issue 5 asks for (histograms and counters by their family name).
REQUIRED = [
    "som_orders_received_total",
    "som_orders_rejected_total",
    "som_decisions_total",
    "som_decision_latency_seconds",
    "som_verify_seconds",
    "som_score_seconds",
    "som_consumer_lag",
    "som_registrants_tracked",
    "som_profile_state_bytes",
    "som_certificates_expiring",
    "som_crl_age_seconds",
    "som_crl_stale",
    "som_model_info",
]


def families(text: str) -> set[str]:
    return {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}


def test_batch_histogram_matches_prometheus_client():
    from prometheus_client import CollectorRegistry, Histogram

    values = [0.0005, 0.001, 0.0011, 0.02, 0.3, 7.0, 12.0, 0.0]
    r1, r2 = CollectorRegistry(), CollectorRegistry()
    ours = BatchHistogram("h_seconds", "h", (0.001, 0.01, 0.1, 1, 10), registry=r1)
    ref = Histogram("h_seconds", "h", buckets=(0.001, 0.01, 0.1, 1, 10), registry=r2)
    ours.observe_many(values[:3])
    ours.observe_many(values[3:])
    for v in values:
        ref.observe(v)

    def samples(r):
        return sorted(
            (s.name, tuple(sorted(s.labels.items())), round(s.value, 9))
            for m in r.collect() for s in m.samples if not s.name.endswith("_created")
        )

    assert samples(r1) == samples(r2)


def test_flush_adds_a_batch_and_bounds_label_values():
    m = EngineMetrics(process=False)
    t = m.tally()
    t.received += 3
    t.rekeyed += 1
    t.decision("RELEASE", "none", 0.01)
    t.decision("HOLD", "size_spike", -1.0)  # clock skew: clamped to 0
    t.decision("HOLD", "BP1234563 is odd", 0.2)  # never a label: not a reason code
    t.rejection("malformed")
    t.verify.extend([1e-4, 2e-4, 3e-4])
    t.score.append(5e-4)
    m.flush(t)
    text = generate_latest(m.registry).decode()
    assert metric_value(text, "som_orders_received_total") == 3
    assert metric_value(text, "som_orders_rekeyed_total") == 1
    assert metric_value(text, "som_decisions_total") == 3
    assert 'som_decisions_total{decision="HOLD",reason="other"} 1.0' in text
    assert "BP1234563" not in text
    assert metric_value(text, "som_decision_latency_seconds_count") == 3
    assert metric_value(text, "som_verify_seconds_count") == 3
    assert metric_value(text, "som_batches_total") == 1
    # every closed-set rejection reason is exported from the start, at 0
    assert 'som_orders_rejected_total{reason="cert_revoked"} 0.0' in text
    assert "_created" not in text


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _gauges(tmp_path, watch=None, clock=None, now=None, lag=None):
    tf = build_feed(tmp_path, weeks=2, bad=False)
    pipeline = build_pipeline(load_settings(tf.config))
    calls = []

    def sizes():
        calls.append(1)
        return 10, [100, 300]

    g = StateGauges(
        registrants=lambda: 10,
        profile_sizes=sizes,
        verifier=pipeline.verifier,
        cert_watch=watch,
        lag=lag or SimpleNamespace(values={("orders.signed", 1): 7}),
        clock=clock or _Clock(),
        now=now or (lambda: datetime.now(UTC)),
    )
    return g, calls, pipeline


def test_state_gauges_read_live_state_and_cache_costly_ones(tmp_path):
    clock = _Clock()
    watch = CertExpiryWatch()
    now = datetime(2025, 6, 1, tzinfo=UTC)
    watch.observe("BP1234563", now + timedelta(days=3), "1")
    watch.observe("AC2345672", now + timedelta(days=30), "2")
    watch.observe("FD3456781", now + timedelta(days=300), "3")
    g, calls, _ = _gauges(tmp_path, watch, clock, lambda: now)
    m = EngineMetrics(process=False)
    m.registry.register(g)
    text = generate_latest(m.registry).decode()
    assert 'som_consumer_lag{partition="1",topic="orders.signed"} 7.0' in text
    assert metric_value(text, "som_registrants_tracked") == 10
    assert metric_value(text, "som_profile_state_bytes") == 2000
    assert 'som_certificates_expiring{within_days="45"} 2.0' in text
    assert 'som_certificates_expiring{within_days="7"} 1.0' in text
    assert 'som_crl_age_seconds{issuer="som TEST CSOS Sub CA"}' in text
    assert metric_value(text, "som_crl_stale") == 0
    generate_latest(m.registry)
    assert len(calls) == 1  # within slow_interval_s: cached
    clock.t += 60
    generate_latest(m.registry)
    assert len(calls) == 2
    assert "BP1234563" not in text and "AC2345672" not in text


def test_stale_crl_is_counted(tmp_path):
    g, _, pipeline = _gauges(tmp_path, now=lambda: datetime(2099, 1, 1, tzinfo=UTC))
    text = "".join(f"{s.name} {s.value}\n" for m in g.collect() for s in m.samples)
    assert metric_value(text, "som_crl_stale") == len(pipeline.verifier.crls.by_der) >= 1


def test_every_required_name_is_exposed(tmp_path):
    g, _, _ = _gauges(tmp_path, watch=CertExpiryWatch())
    m = EngineMetrics()
    m.registry.register(g)
    m.model_info.info({"model_version": "m", "config_version": "c"})
    names = families(generate_latest(m.registry).decode())
    assert set(REQUIRED) <= names, set(REQUIRED) - names


def test_issuer_labels_are_ca_names_or_hashes():
    assert issuer_label("CN=DEA E-Commerce CSOS Sub CA,OU=CSOS,O=DEA,C=US") == (
        "DEA E-Commerce CSOS Sub CA")
    assert issuer_label("CN=Dr Jane Doe BJ1234563,O=x").startswith("sha256:")
    assert issuer_label("not a DN at all ===").startswith("sha256:")
    assert issuer_label("O=Org") != issuer_label("O=Other Org")


def test_pipeline_checks_name_what_is_missing(tmp_path):
    tf = build_feed(tmp_path, weeks=2, bad=False)
    pipeline = build_pipeline(load_settings(tf.config))
    ready, body = Readiness(pipeline_checks(pipeline)).report()
    assert ready, body
    pipeline.verifier.trust.anchors = []
    pipeline.scorers = []
    ready, body = Readiness(pipeline_checks(pipeline)).report()
    assert not ready
    assert body["not_ready"] == ["models", "trust_material"]
    assert "trust_dir" in body["checks"]["trust_material"]


def test_readiness_reports_a_crashing_check():
    def broken():
        raise RuntimeError("boom BP1234563")

    ready, body = Readiness({"x": broken}).report()
    assert not ready and body["checks"]["x"] == "check failed: RuntimeError"


def test_broker_probe_tells_reachable_from_unreachable():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        probe = BrokerProbe(f"127.0.0.1:{port}")
        assert probe.check() == "not probed yet"
        asyncio.run(probe.probe())
        assert probe.check() is None
    asyncio.run(probe.probe())
    assert probe.check().startswith("unreachable: 127.0.0.1:")


def test_trust_gauges_show_the_set_in_use_and_a_change_that_did_not_load(tmp_path):
    g, _, pipeline = _gauges(tmp_path)
    trust = pipeline.verifier.trust
    trust.clock, trust._next_check = _Clock(), 0.0  # the test's clock from now on

    def scrape() -> dict:
        return {(s.name, tuple(s.labels.values())): s.value
                for m in g.collect() for s in m.samples}

    seen = scrape()
    assert seen[("som_trust_certificates", ("anchor",))] == 1
    assert seen[("som_trust_certificates", ("intermediate",))] == 1
    assert ("som_trust_certificates", ("review_anchor",)) not in seen  # reviews unsigned
    assert seen[("som_trust_reload_failed", ())] == 0
    from connectors.trust import TrustStore

    g.review_trust = TrustStore.from_dirs(trust.dirs[0], None)  # [reviews] trust_dir
    assert scrape()[("som_trust_certificates", ("review_anchor",))] == 1
    trust_dir = trust.dirs[0]
    (trust_dir / "new.pem").write_text("-----BEGIN CERTIFICATE-----\nAAAA")
    trust.clock.t += 1.0
    assert scrape()[("som_trust_reload_failed", ())] == 0  # seen, not settled yet
    trust.clock.t += 1.0
    seen = scrape()  # the scrape looks at the directories too (no orders need to flow)
    assert seen[("som_trust_reload_failed", ())] == 1
    assert seen[("som_trust_certificates", ("anchor",))] == 1
    (trust_dir / "new.pem").unlink()
    trust.clock.t += 1.0
    scrape()
    trust.clock.t += 1.0
    assert scrape()[("som_trust_reload_failed", ())] == 0
