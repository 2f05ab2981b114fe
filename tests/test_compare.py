"""``som compare``: two backtests of one feed, the orders whose decision a change flips."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import pytest

from config.settings import FINDING_CODES
from engine.compare import compare_decisions
from engine.records import BadRecord
from tests.streamtools import configure
from tests.support import build_feed, som


def _d(number: str, verdict: str, *codes: str, dea: str = "BP1234563", config: str = "c1"):
    return {
        "order_number": number,
        "purchaser_dea": dea,
        "decision": verdict,
        "reasons": [{"code": c, "detail": f"{c} detail"} for c in codes],
        "config_version": config,
        "model_version": "m1",
        "signed_at": "2025-06-01T00:00:00Z",
    }


def test_changed_orders_with_the_reasons_on_both_sides():
    before = [
        _d("1", "HOLD", "size_own", "pattern_ramp"),
        _d("2", "RELEASE"),
        _d("3", "HOLD", "split_orders"),
        _d("3", "HOLD", "split_orders"),  # redelivered
        _d("4", "HOLD", "size_own"),
        _d("5", "RELEASE"),
        {"reason": "malformed", "raw_sha256": "00"},
    ]  # a rejection: not a decision
    after = [
        _d("2", "HOLD", "frequency_count", config="c2"),
        _d("1", "RELEASE", config="c2"),
        _d("3", "HOLD", "frequency_count", config="c2"),
        _d("6", "HOLD", config="c2"),
    ]
    summary, changed = compare_decisions(before, after)
    assert [(c["order_number"], c["before"], c["after"]) for c in changed] == [
        ("2", "RELEASE", "HOLD"),
        ("1", "HOLD", "RELEASE"),
    ]
    assert changed[1]["reasons_before"] == ["size_own", "pattern_ramp"]
    assert changed[1]["why"] == "size_own detail" and changed[0]["why"] == "frequency_count detail"
    assert summary["compared"] == 3 and summary["only_before"] == 2 and summary["only_after"] == 1
    assert summary["holds"] == {"before": 2, "after": 2}
    assert summary["released_now"] == {"size_own": 1}
    assert summary["held_now"] == {"frequency_count": 1}
    assert summary["config_version"] == {"before": ["c1"], "after": ["c2"]}


def test_the_same_order_number_of_another_purchaser_is_another_order():
    summary, changed = compare_decisions(
        [_d("1", "HOLD", "size_own")], [_d("1", "RELEASE", dea="AB1234563")]
    )
    assert changed == [] and summary["compared"] == 0


@pytest.mark.parametrize(
    "broken",
    [{"purchaser_dea": None}, {"decision": "MAYBE"}, {"reasons": "size_own"}, {"order_number": ""}],
)
def test_a_record_it_cannot_compare_is_an_error_naming_the_side(broken):
    with pytest.raises(BadRecord, match="decision record 2") as exc:
        compare_decisions([_d("1", "HOLD")], [_d("1", "HOLD"), {**_d("2", "HOLD"), **broken}])
    assert exc.value.source == "after"


def test_one_order_decided_both_ways_in_one_file_or_no_decisions_at_all_is_an_error():
    with pytest.raises(BadRecord, match="two runs in one file") as exc:
        compare_decisions([_d("1", "HOLD", "size_own"), _d("1", "RELEASE")], [_d("1", "HOLD")])
    assert exc.value.source == "before"
    rejections = [{"reason": "malformed", "raw_sha256": "00"}]
    with pytest.raises(BadRecord, match="not a decisions file") as exc:
        compare_decisions([_d("1", "HOLD")], rejections)
    assert exc.value.source == "after"
    summary, _ = compare_decisions([_d("1", "HOLD"), *rejections], [_d("1", "HOLD")])
    assert summary["skipped"] == {"before": 1, "after": 0}


def test_som_compare_on_two_replays_of_a_feed(tmp_path):
    tf = build_feed(tmp_path, bad=False)
    proposed = tf.dir / "proposed.toml"  # beside som.toml: its relative paths still hold
    shutil.copy(tf.config, proposed)
    configure(proposed, scoring={"limits": {code: 1000.0 for code in FINDING_CODES}})
    before, after = tmp_path / "before.jsonl", tmp_path / "after.jsonl"
    for config, out in ((tf.config, before), (proposed, after)):
        proc = som("replay", str(tf.feed), "--config", str(config), "--out", str(out))
        assert proc.returncode == 0, proc.stderr
    held = [json.loads(x) for x in before.read_text().splitlines()]
    held = [d for d in held if d["decision"] == "HOLD"]
    assert held  # the feed's spike, at least
    rows = tmp_path / "changed.jsonl"
    proc = som("compare", str(before), str(after), "--out", str(rows))
    assert proc.returncode == 0, proc.stderr
    changed = [json.loads(x) for x in rows.read_text().splitlines()]
    assert {(c["purchaser_dea"], c["order_number"]) for c in changed} == {
        (d["purchaser_dea"], d["order_number"]) for d in held
    }
    assert all(c["after"] == "RELEASE" for c in changed)
    summary = json.loads(proc.stderr.splitlines()[-1])
    assert summary["holds"]["after"] == 0
    assert summary["released_now"] == dict(Counter(d["reasons"][0]["code"] for d in held))
    assert summary["config_version"]["before"] != summary["config_version"]["after"]


def test_som_compare_names_the_file_of_a_mistake(tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps(_d("1", "HOLD", "size_own")) + "\n")
    proc = som("compare", str(good), str(tmp_path / "nope.jsonl"))
    assert proc.returncode == 2 and "nope.jsonl" in proc.stderr and "AFTER" in proc.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"decision": "HOLD", "order_number": "1"}) + "\n")
    proc = som("compare", str(bad), str(good))
    assert proc.returncode == 2 and "BEFORE" in proc.stderr and "record 1" in proc.stderr
    assert "Traceback" not in proc.stderr
