"""The replay driver end to end on a small signed feed."""

import gc
import json
import subprocess
import sys

import pytest

from config import load_settings
from connectors.feed import read_feed
from engine.batch_gc import batch_gc
from engine.build import build_pipeline
from engine.replay import replay
from tests.support import build_feed


def test_every_message_ends_as_one_record(tmp_path):
    tf = build_feed(tmp_path)
    pipeline = build_pipeline(load_settings(tf.config))
    summary = replay(pipeline, read_feed(tf.feed))
    assert summary.messages == len(tf.messages)
    assert summary.rejected == tf.expected_rejections
    assert summary.released + summary.held + summary.rejected == summary.messages
    assert set(summary.rejections_by_reason) == {
        "malformed", "unknown_ndc", "bad_signature", "duplicate_order"
    }


def test_a_feed_line_that_is_not_utf8_is_rejected_not_a_crash(tmp_path):
    """A line of a feed file that is not UTF-8 reaches the verify stage as the bytes it was
    (as on Kafka) and is rejected with a reason; the lines after it are still decided."""
    tf = build_feed(tmp_path, weeks=2, bad=False)
    good = tf.feed.read_bytes()
    tf.feed.write_bytes(b"\xff\xfe not an order\n" + good)
    messages = list(read_feed(tf.feed))
    assert messages[0] == b"\xff\xfe not an order" and len(messages) == len(tf.messages) + 1
    summary = replay(build_pipeline(load_settings(tf.config)), messages)
    assert summary.rejections_by_reason == {"malformed": 1}
    assert summary.released + summary.held == len(tf.messages)


def test_size_spike_is_held_and_formula_reported(tmp_path):
    tf = build_feed(tmp_path, bad=False)
    pipeline = build_pipeline(load_settings(tf.config))
    held = []
    replay(pipeline, read_feed(tf.feed), on_outcome=lambda o: held.append(o)
           if getattr(o, "decision", None) == "HOLD" else None)
    spike = [d for d in held if d.purchaser_dea == "BP1234563"]
    assert spike, [d.to_dict() for d in held]
    codes = [r.code for r in spike[-1].reasons]
    assert codes[0] == "size_own", codes
    formula = [r for r in spike[-1].reasons if r.code == "formula_baseline"]
    assert formula and formula[0].value > formula[0].threshold  # reported, not the holder


def test_som_replay_cli_writes_decisions_and_rejections(tmp_path):
    tf = build_feed(tmp_path)
    out = tmp_path / "decisions.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "engine.cli", "replay", str(tf.feed), "--config", str(tf.config),
         "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    decisions = [json.loads(x) for x in out.read_text().splitlines()]
    rejections = (tmp_path / "decisions.rejected.jsonl").read_text().splitlines()
    assert len(decisions) + len(rejections) == len(tf.messages)
    assert all(d["decision"] in ("RELEASE", "HOLD") for d in decisions)
    assert all(d["config_version"].startswith("cfg-") for d in decisions)
    # --jobs: the same records in the same order; not with --reviews
    two = tmp_path / "two.jsonl"
    cmd = [sys.executable, "-m", "engine.cli", "replay", str(tf.feed), "--config",
           str(tf.config), "--out", str(two), "--jobs", "2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr

    def same(d: dict) -> tuple:
        return d["order_number"], d["decision"], d["scores"], d["reasons"]

    assert [same(json.loads(x)) for x in two.read_text().splitlines()] == [
        same(d) for d in decisions]
    assert (tmp_path / "two.rejected.jsonl").read_text().count("\n") == len(rejections)
    (tmp_path / "r.jsonl").write_text("")
    proc = subprocess.run([*cmd, "--reviews", str(tmp_path / "r.jsonl")], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and "--jobs" in proc.stderr and "--reviews" in proc.stderr


def test_missing_feed_file_names_it(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "engine.cli", "replay", str(tmp_path / "nope.jsonl")],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    assert "nope.jsonl" in proc.stderr


def test_micro_batches_give_the_decisions_of_one_order_at_a_time(tmp_path):
    """The forest scores a batch's rows in one walk; nothing else may change."""
    from datetime import date

    from connectors.synthetic import generate
    from models.artifacts import save_models
    from models.train import collect, fit_models

    generate(tmp_path / "feed", seed=23, registrants=80, days=90, start=date(2025, 1, 6),
             anomaly_rate=0.05, processes=1)
    settings = load_settings(tmp_path / "feed" / "som.toml").with_overrides(
        verification={"time_rules_at": "signed"})
    messages = list(read_feed(tmp_path / "feed" / "feed.jsonl"))
    # redeliveries: 131-140 repeat 100-109 inside the same batch of 97 (97-193); the tail
    # repeats them again from later batches
    messages = messages[:131] + messages[100:110] + messages[131:] + messages[100:110]
    data = collect(build_pipeline(settings), messages[:1500])
    save_models(tmp_path / "models", fit_models(data, 0.99), data.window())
    with_models = settings.with_overrides(scoring={"models_dir": str(tmp_path / "models")})

    def run(batch: int, jobs: int = 1, profiles: dict | None = None) -> list[dict]:
        outcomes = []
        replay(build_pipeline(with_models), messages, on_outcome=outcomes.append, batch=batch,
               jobs=jobs, profiles=profiles)
        rows = []
        for o in outcomes:
            d = o.to_dict()
            for key in ("decided_at", "latency_ms", "received_at"):
                d.pop(key, None)
            d.get("extra", {}).pop("received_at", None)
            rows.append(d)
        return rows

    one, batched = run(1), run(97)
    assert len(one) == len(messages)
    assert batched == one
    # registrants shared among processes (som replay --jobs): the same outcomes, in order,
    # and the same final profiles
    serial, parallel = {}, {}
    run(64, profiles=serial)
    assert run(64, jobs=3, profiles=parallel) == one
    def state(profiles: dict) -> dict:  # minus the decisions kept for redelivery (wall clock)
        return {k: (lambda st: st[:6] + st[7:])(json.loads(p.dumps_state()))
                for k, p in profiles.items()}

    assert len(parallel) == len(serial) > 50 and state(parallel) == state(serial)
    watched = build_pipeline(with_models)
    watched.on_context = print  # callbacks would run in the child processes and be lost
    with pytest.raises(ValueError, match="jobs = 1"):
        replay(watched, messages[:10], jobs=2)
    forest = [d for d in one if "isolation_forest" in d.get("scores", {})]
    assert len(forest) > len(messages) // 2  # the forest scored most orders ...
    assert any(d.get("decision") == "HOLD" for d in one)  # ... and the feed has holds


def test_batch_gc_relaxes_the_collector_and_restores_it():
    before = gc.get_threshold()
    assert gc.get_freeze_count() == 0
    with pytest.raises(RuntimeError), batch_gc(5000):
        assert gc.get_threshold()[0] == max(before[0], 5000)
        frozen = gc.get_freeze_count()
        assert frozen > 0  # start-up objects out of the full collections
        with batch_gc():  # nested (or inside a caller's freeze): the freeze stays
            assert gc.get_freeze_count() >= frozen
        assert gc.get_freeze_count() >= frozen
        raise RuntimeError("a driver failing inside still restores the collector")
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
