"""``som explain``: a decision's every finding, held or not, from a replay of the feed."""

import json
import subprocess
import sys

from config import load_settings
from connectors.feed import read_feed
from engine.build import build_pipeline
from engine.explain import explain_order
from engine.records import Decision
from engine.replay import replay
from tests.support import PURCHASERS, build_feed


def _stable(decision) -> dict:
    """A decision without its wall-clock times."""
    volatile = ("decided_at", "latency_ms", "received_at")
    return {k: v for k, v in decision.to_dict().items() if k not in volatile}


def test_explain_gives_the_replayed_decision_with_every_finding(tmp_path):
    tf = build_feed(tmp_path, bad=False)
    settings = load_settings(tf.config)
    decided: list = []
    replay(build_pipeline(settings), read_feed(tf.feed), on_outcome=decided.append)
    held = next(d for d in decided if isinstance(d, Decision) and d.decision == "HOLD"
                and d.purchaser_dea == PURCHASERS[0])
    released = next(d for d in decided if isinstance(d, Decision) and d.decision == "RELEASE"
                    and d.extra["history_days"] > 60)
    for target in (held, released):
        (ex,) = explain_order(build_pipeline(settings), read_feed(tf.feed),
                              target.order_number, target.purchaser_dea)
        assert _stable(ex.outcome) == _stable(target)  # the same decision as the replay
        codes = {r.code for r in ex.findings}
        assert {"size_own", "formula_baseline"} <= codes or {"size_peer"} <= codes, codes
        assert all(r.detail for r in ex.findings)  # every finding has its sentence
        holding = [r.code for r in ex.findings if r.holds]
        assert bool(holding) == (target.decision == "HOLD")
        assert set(holding) <= {r.code for r in target.reasons}
        # every score in the decision is one of the findings (the worst per code)
        for code, score in target.scores.items():
            assert round(max(r.score for r in ex.findings if r.code == code), 4) == score


def test_som_explain_cli_prints_findings_and_names_an_unknown_order(tmp_path):
    tf = build_feed(tmp_path, bad=False)
    decided: list = []
    replay(build_pipeline(load_settings(tf.config)), read_feed(tf.feed),
           on_outcome=decided.append)
    held = next(d for d in decided if d.decision == "HOLD")
    base = [sys.executable, "-m", "engine.cli", "explain", str(tf.feed)]
    cfg = ["--config", str(tf.config)]
    proc = subprocess.run([*base, held.order_number, *cfg, "--json"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.splitlines()
    body = json.loads(line)
    assert body["outcome"]["decision"] == "HOLD"
    assert any(f["holds"] for f in body["findings"])
    text = subprocess.run([*base, held.order_number, *cfg], capture_output=True, text=True,
                          timeout=120)
    assert text.returncode == 0 and text.stdout.startswith("HOLD " + held.order_number)
    assert "YES" in text.stdout and "holds" in text.stdout
    missing = subprocess.run([*base, "25X0ZZZZZ", *cfg], capture_output=True, text=True,
                             timeout=120)
    assert missing.returncode == 2 and "25X0ZZZZZ" in missing.stderr
