"""A real ``som worker`` on the embedded broker: /metrics, /healthz, /readyz, and no leaks."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from config import load_settings
from connectors.feed import read_feed
from connectors.kafka_admin import ensure_topics
from engine.keys import purchaser_key
from tests import support
from tests.streamtools import (
    collect,
    configure,
    isolated_topics,
    metric_value,
    produce,
    start_worker,
    stop_worker,
)
from tests.support import PURCHASERS, SUPPLIER, build_feed
from tests.test_metrics import REQUIRED, families

pytestmark = pytest.mark.broker


@dataclass
class Running:
    feed: support.TestFeed
    topics: list[str]  # streamtools.TOPIC_KEYS order: signed, decisions, rejected, ...
    port: int
    proc: object
    log: Path
    bootstrap: str
    app_id: str

    @property
    def messages(self) -> list[bytes]:
        return list(read_feed(self.feed.feed))

    def alive(self) -> bool:
        return self.proc.poll() is None


def get(port: int, path: str) -> tuple[int | None, str]:
    """Status and body; a refused connection is (None, reason)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:
        return None, repr(exc)


@contextmanager
def running_worker(broker, tmp_path: Path, metrics: bool = True, ready_timeout: float = 60):
    """A worker on its own topics, with the test feed's trust material, ready to consume."""
    tf = build_feed(tmp_path)
    k = load_settings(tf.config).kafka
    app_id = f"som-mt-{uuid.uuid4().hex[:8]}"
    topics = isolated_topics(tf.config, app_id)
    if not metrics:
        configure(tf.config, web={"metrics": False})
    asyncio.run(ensure_topics(broker.url, topics + [f"{app_id}-profiles-changelog"],
                              k.partitions))
    log = tmp_path / "worker.log"
    proc, port = start_worker(tf.config, broker.url, app_id, log)
    try:
        deadline = time.monotonic() + ready_timeout
        status, body = None, ""
        while time.monotonic() < deadline and proc.poll() is None:
            status, body = get(port, "/readyz")
            if status == 200:
                break
            time.sleep(0.3)
        assert status == 200, f"not ready: {body}\n{log.read_text(errors='replace')[-2000:]}"
        yield Running(tf, topics, port, proc, log, broker.bootstrap, app_id)
    finally:
        stop_worker(proc)


def publish_and_wait(w: Running) -> dict[str, list[dict]]:
    messages = w.messages
    asyncio.run(produce(w.bootstrap, w.topics[0], [(purchaser_key(m), m) for m in messages]))
    got = asyncio.run(collect(w.bootstrap, w.topics[1:3], len(messages), timeout=60,
                              settle=1.0, alive=w.alive))
    assert sum(len(v) for v in got.values()) == len(messages), w.log.read_text()[-3000:]
    return got


def wait_for(predicate, timeout: float = 20.0, every: float = 0.5):
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(every)
        value = predicate()
    return value


def starting(text: str, prefix: str) -> float:
    """Sum of the samples whose line starts with ``prefix`` (a name and some labels)."""
    return sum(float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines() if ln.startswith(prefix))


PERSONAL = [*PURCHASERS, SUPPLIER["dea_number"], "25X", "Pharmacy", "Main St", "Springfield",
            "Example Wholesale", "Depot Rd"]


def test_worker_serves_metrics_health_and_nothing_personal(broker, tmp_path):
    with running_worker(broker, tmp_path) as w:
        status, body = get(w.port, "/healthz")
        assert status == 200 and json.loads(body)["alive"] is True
        got = publish_and_wait(w)
        decisions, rejections = got[w.topics[1]], got[w.topics[2]]

        def settled():
            text = get(w.port, "/metrics")[1]
            lag = [ln for ln in text.splitlines() if ln.startswith("som_consumer_lag{")]
            return text if lag and metric_value(text, "som_consumer_lag") == 0 else None

        text = wait_for(settled, timeout=20)
        assert text, "consumer lag did not drop to 0 after everything was decided"
        assert set(REQUIRED) <= families(text), set(REQUIRED) - families(text)
        n = len(w.messages)
        assert metric_value(text, "som_orders_received_total") == n
        assert metric_value(text, "som_decisions_total") == len(decisions)
        assert metric_value(text, "som_decision_latency_seconds_count") == len(decisions)
        assert metric_value(text, "som_verify_seconds_count") == n
        assert metric_value(text, "som_score_seconds_count") == n - 3  # 3 fail verification
        for r in rejections:
            assert f'som_orders_rejected_total{{reason="{r["reason"]}"}} 1.0' in text
        # ship-to: every verified order once (the duplicate one, of a certificate without an
        # address, is rejected after verification); the decisions' evidence says the same
        checks = [d["evidence"]["ship_to"] for d in decisions]
        assert starting(text, 'som_orders_ship_to_total{check="matched"}') == checks.count(
            "matched") > 0
        assert starting(text, 'som_orders_ship_to_total{check="not_in_certificate"}') == (
            checks.count("not_in_certificate") + 1) > 1
        assert starting(text, "som_orders_ship_to_total{") == n - 3
        holds = sum(d["decision"] == "HOLD" for d in decisions)
        assert starting(text, 'som_decisions_total{decision="HOLD"') == holds >= 1
        assert metric_value(text, "som_registrants_tracked") == len(PURCHASERS)
        assert metric_value(text, "som_profile_state_bytes") > 0
        assert metric_value(text, "som_ready") == 1
        assert metric_value(text, "som_rebalances_total") >= 1
        assert metric_value(text, "som_partitions_assigned") == 4  # 2 partitions x 2 topics
        assert 0 <= metric_value(text, "som_consumer_lag_age_seconds") < 10
        # the test certificates expire on 2026-12-07: within 45 days, or expired, from today on
        assert starting(text, 'som_certificates_expiring{within_days="45"}') == len(PURCHASERS)
        assert 'som_crl_age_seconds{issuer="som TEST CSOS Sub CA"}' in text
        assert 'som_consumer_lag{partition="0",topic="' + w.topics[0] + '"} 0.0' in text

        # no endpoint without authentication shows an identity; Faust's table views are off
        pages = {p: get(w.port, p) for p in ("/metrics", "/healthz", "/readyz", "/")}
        for path in ("/table/profiles/", f"/table/profiles/{PURCHASERS[0]}/", "/router/",
                     f"/router/profiles/{PURCHASERS[0]}/", "/graph/", "/assignment/",
                     "/performance/"):
            status, body = get(w.port, path)
            assert status == 404, (path, status, body[:200])
        for path, (status, body) in pages.items():
            assert status == 200, path
            leaked = [p for p in PERSONAL if p.lower() in body.lower()]
            assert not leaked, (path, leaked)
        ready = json.loads(pages["/readyz"][1])
        assert ready == {"ready": True, "not_ready": [], "checks": {
            "table_recovery": "ok", "models": "ok", "trust_material": "ok", "broker": "ok"}}


def test_certificate_expiry_counts_survive_a_restart(broker, tmp_path):
    """The gauge is read from the profiles, so a restarted worker counts the purchasers it
    recovered from the table's changelog without waiting for their next orders."""
    expiring = 'som_certificates_expiring{within_days="45"}'
    with running_worker(broker, tmp_path) as w:
        publish_and_wait(w)
        assert wait_for(lambda: starting(get(w.port, "/metrics")[1], expiring) == len(PURCHASERS))
    proc, port = start_worker(w.feed.config, broker.url, w.app_id, tmp_path / "again.log")
    try:
        assert wait_for(lambda: get(port, "/readyz")[0] == 200, timeout=60), (
            (tmp_path / "again.log").read_text(errors="replace")[-2000:])
        def recovered() -> str | None:
            text = get(port, "/metrics")[1]
            return text if starting(text, "som_registrants_tracked") == len(PURCHASERS) else None

        text = wait_for(recovered, timeout=30)
        assert text, "the restarted worker did not recover the profiles"
        assert metric_value(text, "som_orders_received_total") == 0  # no order since
        assert starting(text, expiring) == len(PURCHASERS)
    finally:
        stop_worker(proc)


def test_metrics_switch_off_keeps_health(broker, tmp_path):
    with running_worker(broker, tmp_path, metrics=False) as w:
        publish_and_wait(w)
        status, body = get(w.port, "/metrics")
        assert status == 404 and "metrics = false" in body
        assert get(w.port, "/healthz")[0] == 200
        assert get(w.port, "/readyz")[0] == 200


def test_readyz_says_broker_unreachable(broker, tmp_path):
    """A worker whose broker dies reports it on /readyz with 503, and stays alive."""
    from connectors.tansu import EmbeddedBroker

    own = EmbeddedBroker(log_path=tmp_path / "own-broker.log").start()
    try:
        with running_worker(own, tmp_path) as w:
            own.stop()

            def unreachable():
                status, body = get(w.port, "/readyz")
                return (status, json.loads(body)) if status == 503 else None

            got = wait_for(unreachable, timeout=20)
            assert got, get(w.port, "/readyz")
            assert got[1]["checks"]["broker"].startswith("unreachable: 127.0.0.1:")
            assert "broker" in got[1]["not_ready"]
            assert get(w.port, "/healthz")[0] == 200
            w.proc.kill()  # a clean stop would wait for the dead broker's timeouts
            w.proc.wait(10)
    finally:
        own.stop()
