"""Officers' reviews: a cleared hold stops holding its repeats, a reported one does not."""

import json
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.signing import sign_cms
from engine.build import build_pipeline
from engine.pipeline import Received
from engine.profile import RegistrantProfile
from engine.records import Decision, Rejection, RejectReason, ReviewRecord
from engine.replay import replay
from engine.review import parse_review
from tests.review_support import SPIKE_DAY, review
from tests.support import PURCHASERS, START, order, payload


def _run(held, reviews_between=(), repeat_days=3):
    tf, settings, messages, _ = held
    repeat = _repeat(tf, repeat_days)
    pipeline = build_pipeline(settings)
    profiles: dict = {}
    outcomes = [pipeline.process(raw, profiles) for raw in messages]
    spike = next(o for o in outcomes if o.purchaser_dea == PURCHASERS[0]
                 and o.signed_at.startswith(SPIKE_DAY.date().isoformat()))
    assert spike.decision == "HOLD" and spike.reasons[0].code == "size_own"
    # receipt time as the stream gives it (the message's broker timestamp): fixed
    received = Received(SPIKE_DAY.timestamp() + 86400 * 2, "2025-05-20T15:00:00.000Z")
    records = [pipeline.review(r(spike.order_number), profiles, received)
               for r in reviews_between]
    return spike, records, pipeline.process(repeat, profiles), profiles, pipeline


def _repeat(tf, days: int) -> bytes:
    again = order(PURCHASERS[0], "25X900009", SPIKE_DAY + timedelta(days=days),
                  [("99901-0102-01", 100, 40), ("99901-1101-01", 100, 1)])
    return sign_cms(payload(again), tf.identities[PURCHASERS[0]])


def test_a_cleared_hold_no_longer_holds_its_repeat(held):
    spike, records, repeat, profiles, _ = _run(held, [
        lambda n: review(n, "cleared", SPIKE_DAY + timedelta(days=1))])
    (record,) = records
    assert isinstance(record, ReviewRecord), record
    assert record.outcome == "cleared" and record.order_number == spike.order_number
    assert record.cases and {c["code"] for c in record.cases} == {"size_own"}
    assert all(c["outcome"] == "cleared" and c["holds_repeats_through"] is None
               for c in record.cases)
    assert isinstance(repeat, Decision)
    assert "size_repeat_held" not in [r.code for r in repeat.reasons]
    assert repeat.decision == "RELEASE", repeat.to_dict()  # the cleared spike is its normal


def test_a_reported_hold_keeps_holding_its_repeat_for_60_days(held):
    for days in (3, 10):  # 10: past the 7 days an unreviewed case holds
        spike, (record,), repeat, _, _ = _run(held, [
            lambda n: review(n, "reported", SPIKE_DAY + timedelta(days=1))], repeat_days=days)
        assert isinstance(record, ReviewRecord)
        last = (SPIKE_DAY + timedelta(days=59)).date().isoformat()
        assert all(c["holds_repeats_through"] == last for c in record.cases), record.cases
        assert repeat.decision == "HOLD" and repeat.reasons[0].code == "size_repeat_held"
        assert "reported on review" in repeat.reasons[0].detail


def test_without_a_review_the_repeat_is_held_for_7_days(held):
    _, _, repeat, _, _ = _run(held)
    assert repeat.decision == "HOLD" and repeat.reasons[0].code == "size_repeat_held"
    assert "not reviewed" in repeat.reasons[0].detail
    _, _, later, _, _ = _run(held, repeat_days=10)
    assert "size_repeat_held" not in [r.code for r in later.reasons]


def test_the_newest_review_stands_and_a_redelivery_changes_nothing(held):
    at = SPIKE_DAY + timedelta(days=1)
    later = at + timedelta(hours=2)
    spike, (first, again, reported, late), repeat, profiles, pipeline = _run(held, [
        lambda n: review(n, "cleared", at), lambda n: review(n, "cleared", at),
        lambda n: review(n, "reported", later),
        lambda n: review(n, "cleared", at)])  # older than the standing one, arrives last
    assert first.to_dict() == again.to_dict()  # same message and receipt, same record
    assert all(c["outcome"] == "reported" for c in reported.cases)
    assert late.outcome == "cleared" and late.cases == reported.cases  # changed nothing
    assert repeat.decision == "HOLD" and repeat.reasons[0].code == "size_repeat_held"
    state = json.dumps(profiles[PURCHASERS[0]].to_state())
    received = Received(later.timestamp(), "2025-05-20T17:00:00.000Z")
    one = pipeline.review(review(spike.order_number, "reported", later), profiles, received)
    two = pipeline.review(review(spike.order_number, "reported", later), profiles, received)
    assert one.to_dict() == two.to_dict() and one.cases == reported.cases
    assert json.dumps(profiles[PURCHASERS[0]].to_state()) == state


def test_a_review_of_an_order_without_a_case_is_recorded_and_changes_nothing(held):
    _, _, _, profiles, pipeline = _run(held)
    p = profiles[PURCHASERS[0]]
    released = next(n for n in p.seen if all(c[3] != n for cs in p.held.values() for c in cs))
    before = json.dumps(p.to_state())
    out = pipeline.review(review(released, "cleared", SPIKE_DAY + timedelta(days=1)), profiles)
    assert isinstance(out, ReviewRecord) and out.cases == ()
    assert json.dumps(p.to_state()) == before


def test_review_outcome_survives_the_state_round_trip_and_v3_state_loads(held):
    _, _, _, profiles, _ = _run(held, [
        lambda n: review(n, "cleared", SPIKE_DAY + timedelta(days=1))])
    p = profiles[PURCHASERS[0]]
    back = RegistrantProfile.from_state(json.loads(p.dumps_state()))
    assert back.held == p.held and any(c[5] == "cleared" for cs in back.held.values()
                                        for c in cs)
    v3 = p.to_state()
    v3[0] = 3
    v3[8] = {f: [c[:5] for c in cs] for f, cs in v3[8].items()}
    old = RegistrantProfile.from_state(v3)
    assert all(c[5:] == ["", ""] for cs in old.held.values() for c in cs)  # unreviewed
    v3[0] = 4  # a v4 state with v3 cases is damaged, not silently read
    with pytest.raises(ValueError, match="fields"):
        RegistrantProfile.from_state(v3)
    bad = p.to_state()
    next(iter(bad[8].values()))[0][5] = "shipped"
    with pytest.raises(ValueError, match="outcome"):
        RegistrantProfile.from_state(bad)


@pytest.mark.parametrize(("raw", "reason", "named"), [
    (b"not json", RejectReason.MALFORMED, "JSON object"),
    (b"[1, 2]", RejectReason.MALFORMED, "JSON object"),
    (json.dumps({"order_number": "25X00A123", "purchaser_dea": PURCHASERS[0],
                 "outcome": "cleared", "reviewed_at": "2025-06-03T14:00:00Z"}).encode(),
     RejectReason.MALFORMED, "'reviewer'"),
    (review("25X00A123", "shipped", START), RejectReason.MALFORMED, "'outcome'"),
    (review("12345", "cleared", START), RejectReason.MALFORMED, "'order_number'"),
    (review("25X00A123", "cleared", START, dea="BP1234560"),
     RejectReason.BAD_DEA_CHECK_DIGIT, "'purchaser_dea'"),
    (json.dumps({"order_number": "25X00A123", "purchaser_dea": PURCHASERS[0],
                 "outcome": "cleared", "reviewed_at": "yesterday",
                 "reviewer": "x"}).encode(), RejectReason.MALFORMED, "'reviewed_at'"),
    (review("25X00A123", "cleared", START, note=7), RejectReason.MALFORMED, "'note'"),
    (review("25X00A123", "cleared", START), RejectReason.REVIEW_UNKNOWN_ORDER, "25X00A123"),
    (b"{" + b" " * 20000 + b"}", RejectReason.TOO_LARGE, "bytes"),
])
def test_a_bad_review_is_rejected_with_a_reason_naming_the_field(held, raw, reason, named):
    _, _, _, profiles, pipeline = _run(held)
    before = json.dumps(profiles[PURCHASERS[0]].to_state())
    out = pipeline.review(raw, profiles)
    assert isinstance(out, Rejection), out
    assert out.reason == reason and named in out.detail, out.to_dict()
    assert json.dumps(profiles[PURCHASERS[0]].to_state()) == before


def test_replay_applies_each_review_between_the_orders_of_its_time(held, tmp_path):
    tf, settings, messages, repeat = held
    first = build_pipeline(settings)
    probe: list = []
    replay(first, messages, on_outcome=probe.append)
    spike = next(o for o in probe if isinstance(o, Decision) and o.decision == "HOLD"
                 and o.purchaser_dea == PURCHASERS[0]
                 and o.signed_at.startswith(SPIKE_DAY.date().isoformat()))
    for at, expect in ((SPIKE_DAY + timedelta(days=1), "RELEASE"),
                       (SPIKE_DAY + timedelta(days=4), "HOLD")):  # after the repeat
        out: list = []
        reviews_out = (tmp_path / f"reviews-{expect}.jsonl").open("wb")
        summary = replay(build_pipeline(settings), [*messages, repeat], on_outcome=out.append,
                         reviews=[review(spike.order_number, "cleared", at), b"junk"],
                         reviews_out=reviews_out)
        reviews_out.close()
        assert summary.reviews == 1 and summary.reviews_rejected == 1
        assert summary.rejected == 0 and summary.messages == len(messages) + 1
        last = [o for o in out if isinstance(o, Decision)][-1]
        assert last.order_number == "25X900009" and last.decision == expect
        (line,) = (tmp_path / f"reviews-{expect}.jsonl").read_text().splitlines()
        assert json.loads(line)["record"] == "review"


def test_som_replay_cli_applies_a_reviews_file(held, tmp_path):
    import subprocess
    import sys

    tf, settings, messages, repeat = held
    probe: list = []
    replay(build_pipeline(settings), messages, on_outcome=probe.append)
    spike = next(o for o in probe if isinstance(o, Decision) and o.decision == "HOLD"
                 and o.purchaser_dea == PURCHASERS[0])
    reviews = tmp_path / "reviews.jsonl"
    reviews.write_bytes(review(spike.order_number, "reported", SPIKE_DAY + timedelta(days=1))
                        + b"\n\n")
    out = tmp_path / "decisions.jsonl"
    cmd = [sys.executable, "-m", "engine.cli", "replay", str(tf.feed), "--config",
           str(tf.config), "--out", str(out), "--reviews", str(reviews)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    (line,) = (tmp_path / "decisions.reviews.jsonl").read_text().splitlines()
    record = json.loads(line)
    assert record["outcome"] == "reported" and record["order_number"] == spike.order_number
    assert json.loads(proc.stderr.strip().splitlines()[-1])["reviews"] == 1
    cmd[cmd.index(str(reviews))] = str(tmp_path / "missing.jsonl")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--reviews" in proc.stderr and "missing.jsonl" in proc.stderr


def test_a_review_dated_before_its_order_was_signed_is_rejected(held):
    spike, _, _, profiles, pipeline = _run(held)
    out = pipeline.review(review(spike.order_number, "cleared", START), profiles)
    assert isinstance(out, Rejection) and out.reason == RejectReason.MALFORMED
    assert "'reviewed_at'" in out.detail and "before order" in out.detail


def test_som_review_print_writes_a_replayable_line_and_names_a_bad_flag():
    import subprocess
    import sys

    base = [sys.executable, "-m", "engine.cli", "review", "--order", "25X00A123", "--outcome",
            "cleared", "--reviewer", "officer-17", "--print"]
    ok = subprocess.run([*base, "--dea", PURCHASERS[0], "--at", "2025-06-03T14:00:00Z"],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    parsed = parse_review(ok.stdout.strip().encode())
    assert (parsed.purchaser_dea, parsed.reviewed_at) == (PURCHASERS[0], "2025-06-03T14:00:00Z")
    bad = subprocess.run([*base, "--dea", "BP1234560"], capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode == 2 and "--dea" in bad.stderr and "DEA number" in bad.stderr


_REVIEWS = st.lists(st.tuples(st.sampled_from(["cleared", "reported"]),
                              st.integers(0, 5)), min_size=1, max_size=6)


@settings(max_examples=200, deadline=None)
@given(reviews=_REVIEWS, order=st.randoms(use_true_random=False))
def test_the_standing_review_does_not_depend_on_arrival_order(reviews, order):
    """Whatever order reviews arrive in, the newest (reported on a tie) stands."""
    def standing(sequence):
        p = RegistrantProfile()
        p.apply("25X000001", 20000, "aa", [("oxycodone", 100.0, 0.9, 1350.0)])
        p.note_hold("oxycodone", 20000, 100.0, 0.9, "25X000001", "size_own")
        for outcome, hour in sequence:
            p.review_cases("25X000001", outcome, f"2024-10-02T{hour:02d}:00:00Z")
        return p.held["oxycodone"][0][5:], p.open_cases("oxycodone", 20003, 7)

    shuffled = list(reviews)
    order.shuffle(shuffled)
    (outcome, at), still_open = standing(shuffled)
    best = max(reviews, key=lambda r: (r[1], r[0] == "reported"))
    assert (outcome, at) == (best[0], f"2024-10-02T{best[1]:02d}:00:00Z")
    assert bool(still_open) == (best[0] == "reported")
    assert standing(reviews) == standing(shuffled)
