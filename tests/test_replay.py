"""The replay driver end to end on a small signed feed."""

import gc
import io
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
    # --jobs: the same records in the same order
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
    # with reviews too: each review's record beside the decisions, as with one process
    held = next(d for d in decisions if d["decision"] == "HOLD")
    (tmp_path / "r.jsonl").write_text(json.dumps({
        "order_number": held["order_number"], "purchaser_dea": held["purchaser_dea"],
        "outcome": "cleared", "reviewer": "officer-17", "reviewed_at": held["signed_at"]}) + "\n")
    records = []
    for jobs in ("1", "2"):
        proc = subprocess.run([*cmd[:-1], jobs, "--reviews", str(tmp_path / "r.jsonl")],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        (record,) = (tmp_path / "two.reviews.jsonl").read_text().splitlines()
        records.append({k: v for k, v in json.loads(record).items() if k != "received_at"})
    assert records[0] == records[1] and records[0]["cases"]


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
    # with officers' reviews: each lands in its purchaser's process at the place one
    # process applies it; the same decisions, review records and rejections, in order
    reviews = _reviews_of(one, messages)

    def run_with_reviews(jobs: int) -> tuple[list, list, dict]:
        outs, profiles = [io.BytesIO(), io.BytesIO(), io.BytesIO()], {}
        summary = replay(build_pipeline(with_models), messages, decisions_out=outs[0],
                         rejections_out=outs[1], reviews_out=outs[2], reviews=reviews,
                         jobs=jobs, batch=64, profiles=profiles)
        rows = [[_stable(json.loads(x)) for x in o.getvalue().splitlines()] for o in outs]
        return rows, [summary.reviews, summary.reviews_rejected], state(profiles)

    alone, shared = run_with_reviews(1), run_with_reviews(3)
    assert shared == alone
    assert alone[1][0] >= 3 and alone[1][1] >= 2  # applied and rejected reviews both
    assert alone[2] != state(serial)  # the reviews changed profiles (closed cases)
    watched = build_pipeline(with_models)
    watched.on_context = print  # callbacks would run in the child processes and be lost
    with pytest.raises(ValueError, match="jobs = 1"):
        replay(watched, messages[:10], jobs=2)
    forest = [d for d in one if "isolation_forest" in d.get("scores", {})]
    assert len(forest) > len(messages) // 2  # the forest scored most orders ...
    assert any(d.get("decision") == "HOLD" for d in one)  # ... and the feed has holds


def _stable(record: dict) -> dict:
    """A record without its wall-clock fields."""
    for key in ("decided_at", "latency_ms", "received_at"):
        record.pop(key, None)
    return record


def _reviews_of(decisions: list[dict], messages: list[bytes]) -> list[bytes]:
    """Reviews for a replay: some holds cleared or reported a day after signing, a review
    of an order nobody placed, one that is not JSON, one with a bad outcome."""
    from datetime import datetime, timedelta

    out = []
    held = [d for d in decisions if d.get("decision") == "HOLD"][:6]
    for n, d in enumerate(held):
        at = datetime.fromisoformat(d["signed_at"].replace("Z", "+00:00")) + timedelta(days=1)
        out.append(json.dumps({
            "order_number": d["order_number"], "purchaser_dea": d["purchaser_dea"],
            "outcome": "reported" if n % 3 == 2 else "cleared", "reviewer": "officer-17",
            "reviewed_at": at.isoformat().replace("+00:00", "Z")}).encode())
    first = held[0]
    out.append(json.dumps({"order_number": "25X0ZZZZZ", "purchaser_dea": first["purchaser_dea"],
                           "outcome": "cleared", "reviewer": "officer-17",
                           "reviewed_at": first["signed_at"]}).encode())
    out.append(b"not a review")
    out.append(json.dumps({"order_number": first["order_number"], "outcome": "shipped"}).encode())
    return out


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
