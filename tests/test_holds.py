"""``som holds``: the held orders no review has settled, oldest first, past due flagged."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from engine.holds import open_holds
from engine.records import BadRecord
from engine.review import standing_reviews
from tests.review_support import SPIKE_DAY, WEEKS, review
from tests.support import PURCHASERS, build_feed, som

NOW = datetime(2025, 6, 20, 12, 0, tzinfo=UTC)


def _decision(
    number: str, verdict: str = "HOLD", days_ago: float = 1.0, dea: str = "BP1234563", **extra
) -> dict:
    at = (NOW - timedelta(days=days_ago)).isoformat().replace("+00:00", "Z")
    return {
        "order_number": number,
        "purchaser_dea": dea,
        "decision": verdict,
        "received_at": at,
        "signed_at": at,
        "reasons": [{"code": "size_own", "detail": "oxycodone: 9x the median"}],
        **extra,
    }


def _review(number: str, outcome: str, at: str, dea: str = "BP1234563") -> dict:
    return {
        "record": "review",
        "order_number": number,
        "purchaser_dea": dea,
        "outcome": outcome,
        "reviewed_at": at,
    }


def test_unreviewed_holds_oldest_first_with_the_past_due_flagged():
    decisions = [
        _decision("25X000001", days_ago=2),
        _decision("25X000002", days_ago=9),
        _decision("25X000003", "RELEASE", days_ago=30),
        _decision("25X000004", days_ago=7.5),
    ]
    rows = open_holds(decisions, [], NOW)
    assert [r["order_number"] for r in rows] == ["25X000002", "25X000004", "25X000001"]
    assert [r["overdue"] for r in rows] == [True, True, False]
    assert rows[0]["waiting_days"] == 9.0 and rows[0]["reasons"] == ["size_own"]
    assert rows[0]["due_by"] == "2025-06-18T12:00:00Z"
    assert [r["overdue"] for r in open_holds(decisions, [], NOW, due_days=8)] == [
        True,
        False,
        False,
    ]


def test_any_standing_review_settles_a_hold_and_redeliveries_count_once():
    decisions = [
        _decision("25X000001"),
        _decision("25X000001"),
        _decision("25X000002"),
        _decision("25X000003"),
        _decision("25X000004", dea="AB1234563"),
    ]
    reviews = [
        _review("25X000001", "cleared", "2025-06-19T10:00:00Z"),
        _review("25X000002", "reported", "2025-06-19T10:00:00Z"),
        {"record": "something else"},
        # the same order number from another purchaser settles nothing here
        _review("25X000003", "cleared", "2025-06-19T10:00:00Z", dea="AB1234563"),
    ]
    assert [
        (r["purchaser_dea"], r["order_number"]) for r in open_holds(decisions, reviews, NOW)
    ] == [("AB1234563", "25X000004"), ("BP1234563", "25X000003")]


def test_the_newest_review_stands():
    reviews = [
        _review("25X000001", "reported", "2025-06-19T10:00:00Z"),
        _review("25X000001", "cleared", "2025-06-18T10:00:00Z"),
    ]
    assert standing_reviews(reviews)[("BP1234563", "25X000001")]["outcome"] == "reported"


def test_holds_are_ordered_by_time_whatever_the_offset_and_shown_in_utc():
    east = _decision("25X000001", received_at="2025-06-19T10:00:00+05:00")  # 05:00 UTC
    west = _decision("25X000002", received_at="2025-06-19T06:00:00Z")
    frac = _decision("25X000003", received_at="2025-06-19T05:00:00.5Z")
    rows = open_holds([west, frac, east], [], NOW)
    assert [r["order_number"] for r in rows] == ["25X000001", "25X000003", "25X000002"]
    assert rows[0]["held_since"] == "2025-06-19T05:00:00Z"


def test_records_it_cannot_read_are_errors_not_open_or_closed_holds():
    with pytest.raises(BadRecord, match="review record 1 has no reviewed_at"):
        open_holds(
            [],
            [{"record": "review", "order_number": "1", "purchaser_dea": "B", "outcome": "cleared"}],
            NOW,
        )
    with pytest.raises(BadRecord, match="held order 25X000001 of BP1234563") as exc:
        open_holds([_decision("25X000001", received_at=None, signed_at="?")], [], NOW)
    assert exc.value.source == "decisions"
    for broken in (
        {"purchaser_dea": None},
        {"order_number": 7},
        {"reasons": "size_own"},
        {"reasons": ["size_own"]},
    ):
        with pytest.raises(BadRecord, match="decision record 2"):
            open_holds([_decision("25X000001"), _decision("25X000002", **broken)], [], NOW)


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    """The small feed replayed: its last-week spike held; then replayed with it cleared."""
    tmp = tmp_path_factory.mktemp("holds")
    tf = build_feed(tmp, weeks=WEEKS, bad=False)
    out = tmp / "decisions.jsonl"
    proc = som("replay", str(tf.feed), "--config", str(tf.config), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    decisions = [json.loads(x) for x in out.read_text().splitlines()]
    held = [d for d in decisions if d["decision"] == "HOLD"]
    assert held
    (tmp / "none.jsonl").write_text("")
    return tf, tmp, out, held


def holds(decisions, reviews, *extra: str):
    return som("holds", "--decisions", str(decisions), "--reviews-applied", str(reviews), *extra)


def test_som_holds_lists_what_a_replay_held(replayed, tmp_path):
    tf, tmp, decisions, held = replayed
    at = (datetime.now(UTC) + timedelta(days=8)).isoformat()
    proc = holds(decisions, tmp / "none.jsonl", "--at", at, "--out", str(tmp_path / "q.jsonl"))
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(x) for x in (tmp_path / "q.jsonl").read_text().splitlines()]
    assert {(r["purchaser_dea"], r["order_number"]) for r in rows} == {
        (d["purchaser_dea"], d["order_number"]) for d in held
    }
    assert all(r["overdue"] for r in rows)
    assert f"{len(rows)} open holds, {len(rows)} past due" in proc.stderr


def test_som_holds_after_the_officer_cleared_the_spike(replayed, tmp_path):
    tf, tmp, decisions, held = replayed
    spike = next(d for d in held if d["purchaser_dea"] == PURCHASERS[0])
    reviews = tmp_path / "reviews.jsonl"
    reviews.write_bytes(
        review(spike["order_number"], "cleared", SPIKE_DAY + timedelta(days=1)) + b"\n"
    )
    out = tmp_path / "decisions.jsonl"
    proc = som(
        "replay",
        str(tf.feed),
        "--config",
        str(tf.config),
        "--out",
        str(out),
        "--reviews",
        str(reviews),
    )
    assert proc.returncode == 0, proc.stderr
    proc = holds(out, tmp_path / "decisions.reviews.jsonl")
    assert proc.returncode == 0, proc.stderr
    listed = {json.loads(x)["order_number"] for x in proc.stdout.splitlines()}
    again = {
        json.loads(x)["order_number"]
        for x in out.read_text().splitlines()
        if json.loads(x)["decision"] == "HOLD"
    }
    assert spike["order_number"] in again  # still a HOLD: the decision is never edited
    assert listed == again - {spike["order_number"]}
    assert f"{len(listed)} open holds" in proc.stderr


def test_som_holds_names_the_flag_of_a_mistake(replayed, tmp_path):
    tf, tmp, decisions, held = replayed
    proc = holds(tmp_path / "nope.jsonl", tmp / "none.jsonl")
    assert proc.returncode == 2 and "--decisions" in proc.stderr and "nope.jsonl" in proc.stderr
    proc = holds(decisions, tmp / "none.jsonl", "--at", "yesterday")
    assert proc.returncode == 2 and "--at" in proc.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"record": "review", "order_number": "25X000001"}\n')
    proc = holds(decisions, bad)
    assert proc.returncode == 2 and "--reviews-applied" in proc.stderr
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps({"decision": "HOLD", "order_number": "25X000001"}) + "\n")
    proc = holds(broken, tmp / "none.jsonl")
    assert proc.returncode == 2 and "--decisions" in proc.stderr and "record 1" in proc.stderr
    assert "Traceback" not in proc.stderr
