"""``som train`` then ``som replay --models`` on a small signed feed, and a refused artifact."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support import build_feed


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True,
                          text=True, timeout=120)


def test_train_then_replay_with_models_and_refuse_corrupt(tmp_path):
    tf = build_feed(tmp_path, weeks=12, bad=False)
    models = tmp_path / "models"
    proc = run("train", "--orders", str(tf.feed), "--out", str(models),
               "--config", str(tf.config))
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((models / "manifest.json").read_text())
    assert manifest["training_window"]["orders"] == len(tf.messages)
    assert manifest["features"] and manifest["peer_groups"]
    out = tmp_path / "decisions.jsonl"
    proc = run("replay", str(tf.feed), "--config", str(tf.config), "--models", str(models),
               "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    decisions = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(decisions) == len(tf.messages)
    assert all(d["model_version"].endswith(manifest["version"]) for d in decisions)
    assert all(d["config_version"].startswith("cfg-") for d in decisions)
    assert any(d["cold_start"] for d in decisions) and not decisions[-1]["cold_start"]
    (models / "peers.json").write_text("{}")
    proc = run("replay", str(tf.feed), "--config", str(tf.config), "--models", str(models))
    assert proc.returncode != 0
    assert "peers.json" in proc.stderr
