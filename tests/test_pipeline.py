"""The core's contract: one record per message, even when a scorer fails."""

import json

from config import load_settings
from connectors.feed import read_feed
from engine.build import build_pipeline
from engine.records import Decision, Rejection, RejectReason
from tests.support import build_feed


class _BrokenScorer:
    name = "broken"

    def fit(self, X=None, y=None):  # noqa: N803
        return self

    def assess(self, ctx):
        raise ZeroDivisionError("a bug")


def test_a_failing_scorer_rejects_one_message_as_internal_error(tmp_path):
    tf = build_feed(tmp_path, weeks=3, bad=False)
    pipeline = build_pipeline(load_settings(tf.config))
    pipeline.scorers.append(_BrokenScorer())
    profiles = {}
    outcomes = [pipeline.process(raw, profiles) for raw in read_feed(tf.feed)]
    assert outcomes and all(isinstance(o, Rejection) for o in outcomes)
    assert {o.reason for o in outcomes} == {RejectReason.INTERNAL_ERROR}
    assert all(o.order_number and o.purchaser_dea for o in outcomes)
    assert "ZeroDivisionError" in outcomes[0].detail and "a bug" not in outcomes[0].detail
    assert profiles == {} or all(p.orders == 0 for p in profiles.values())


def test_redelivered_message_gets_the_same_decision_and_changes_nothing(tmp_path):
    tf = build_feed(tmp_path, weeks=4, bad=False)
    pipeline = build_pipeline(load_settings(tf.config))
    messages = list(read_feed(tf.feed))
    profiles = {}
    first = pipeline.process(messages[0], profiles)
    assert isinstance(first, Decision)
    dea = first.purchaser_dea
    before = json.dumps(profiles[dea].to_state())
    again = pipeline.process(messages[0], profiles)
    assert again.to_dict() == first.to_dict()
    assert json.dumps(profiles[dea].to_state()) == before


def test_the_repeat_of_a_held_spike_is_held_and_says_which_order(tmp_path):
    """The held spike enters the history, yet its repeat three days later is not released."""
    from datetime import timedelta

    from connectors.signing import sign_cms
    from tests.support import PURCHASERS, START, order, payload

    weeks = 20
    tf = build_feed(tmp_path, weeks=weeks, bad=False)
    pipeline = build_pipeline(load_settings(tf.config))
    profiles = {}
    outcomes = [pipeline.process(raw, profiles) for raw in read_feed(tf.feed)]
    spike = next(o for o in outcomes if o.purchaser_dea == PURCHASERS[0]
                 and o.signed_at.startswith((START + timedelta(days=7 * (weeks - 1))).date()
                                            .isoformat()))
    assert spike.decision == "HOLD" and spike.reasons[0].code == "size_own"
    again = order(PURCHASERS[0], "25X900009", START + timedelta(days=7 * (weeks - 1) + 3),
                  [("99901-0102-01", 100, 40), ("99901-1101-01", 100, 1)])
    repeat = pipeline.process(sign_cms(payload(again), tf.identities[PURCHASERS[0]]), profiles)
    assert repeat.decision == "HOLD"
    assert [r.code for r in repeat.reasons][:1] == ["size_repeat_held"]
    assert spike.order_number in repeat.reasons[0].detail
