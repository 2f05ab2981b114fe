"""Scorer behaviour on hand-built histories, the forest walk, artifacts and policy."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest

from engine.decide import Policy, decide
from engine.profile import RegistrantProfile
from models.artifacts import ModelArtifactError, Models, load_models, save_models
from models.forest import ExportedForest, ForestBank
from models.frequency import FrequencyScorer
from models.iforest import IsolationForestScorer
from models.pattern import PatternScorer
from models.size import SizeScorer
from tests.test_scorer_conformance import (
    ALP_MG,
    DAY,
    amount,
    context,
    peers,
    weekly_profile,
)

LAST = 20000 + 7 * 29


def codes(findings, at_least=1.0):
    return {f.code for f in findings if f.score >= at_least}


def test_forest_walk_equals_sklearn_score_samples():
    rng = np.random.default_rng(3)
    X = np.vstack([rng.normal(size=(400, 6)), rng.normal(4, 1, size=(10, 6))])
    model = IsolationForest(n_estimators=50, max_samples=128, random_state=7).fit(X)
    forest = ExportedForest.from_sklearn(model)
    probe = np.vstack([X, rng.normal(size=(200, 6)) * 3])
    assert np.array_equal(forest.score_samples(probe), model.score_samples(probe))
    one_by_one = np.concatenate([forest.score_samples(row) for row in probe[:200]])
    assert np.array_equal(one_by_one, model.score_samples(probe[:200]))  # the online path


def test_size_spike_holds_and_normal_order_does_not():
    p = weekly_profile()
    size = SizeScorer()
    spike = size.assess(context(p, LAST + 7, (amount("oxycodone", 2400),)))
    normal = size.assess(context(p, LAST + 7, (amount("oxycodone", 200),)))
    assert codes(spike) == {"size_own"} and "median order" in spike[0].detail
    assert not codes(normal)


def test_a_held_size_holds_its_repeat_while_the_case_is_open():
    """Once held, a spike is in the history; its repeat must not look normal because of it."""
    p = weekly_profile()
    size = SizeScorer()
    day = LAST + 7
    first = size.assess(context(p, day, (amount("oxycodone", 2400),)))
    assert codes(first) == {"size_own"}
    p.apply("25H000001", day, "h", [("oxycodone", 2400.0, 21.6, 32400.0)], day * DAY)
    p.note_hold("oxycodone", day, 2400.0, 21.6, "25H000001", "size_own")
    again = size.assess(context(p, day + 3, (amount("oxycodone", 2400),)))
    assert "size_own" not in codes(again)  # the held spike is now its largest order ...
    assert codes(again) == {"size_repeat_held"}  # ... so the open case holds the repeat
    assert "25H000001" in next(f for f in again if f.code == "size_repeat_held").detail
    usual = size.assess(context(p, day + 3, (amount("oxycodone", 100),)))
    later = size.assess(context(p, day + 7, (amount("oxycodone", 2400),)))  # 7 days: closed
    off = SizeScorer(repeat_days=0).assess(context(p, day + 3, (amount("oxycodone", 2400),)))
    assert not codes(usual) and not codes(later) and not codes(off)
    assert RegistrantProfile.from_state(json.loads(json.dumps(p.to_state()))).held == p.held


def test_a_strength_hold_does_not_hold_the_usual_tablets_after_it():
    p = weekly_profile()
    size, day = SizeScorer(), LAST + 7
    p.note_hold("oxycodone", day, 300.0, 300 * 26.9 / 1000, "25H000002", "pattern_strength")
    usual = size.assess(context(p, day + 2, (amount("oxycodone", 300),)))  # usual strength
    strong = size.assess(context(p, day + 2, (amount("oxycodone", 300, 26.9),)))
    assert "size_repeat_held" not in codes(usual)
    assert "size_repeat_held" in codes(strong)


def test_split_orders_hold_while_each_order_is_small():
    p = weekly_profile()
    t0 = (LAST + 7) * DAY + 36000
    for i in range(3):
        p.apply(f"26X{i:06d}", LAST + 7, f"s{i}", [("oxycodone", 250.0, 2.2, 3300.0)],
                t0 + i * 3 * 3600)
    ctx = context(p, LAST + 7, (amount("oxycodone", 250),), t0 + 10 * 3600)
    assert "split_orders" in codes(FrequencyScorer().assess(ctx))
    assert "size_own" not in codes(SizeScorer().assess(ctx))


def test_burst_of_orders_holds_on_count():
    p = weekly_profile()
    t0 = (LAST + 7) * DAY
    for i in range(5):
        p.apply(f"27X{i:06d}", LAST + 7, f"b{i}", [("alprazolam", 500.0, 0.5, 0.0)],
                t0 + i * 7200)
    ctx = context(p, LAST + 7, (amount("alprazolam", 500, ALP_MG, "4"),), t0 + 12 * 3600)
    assert "frequency_count" in codes(FrequencyScorer().assess(ctx))


def test_new_family_and_stronger_strength_hold():
    p = weekly_profile()
    new = PatternScorer().assess(context(p, LAST + 7, (amount("morphine", 300, 22.58),)))
    strong = PatternScorer().assess(context(p, LAST + 7, (amount("oxycodone", 300, 26.9),)))
    swap = PatternScorer().assess(context(p, LAST + 7, (amount("oxycodone", 100, 26.9),)))
    usual = PatternScorer().assess(context(p, LAST + 7, (amount("oxycodone", 100),)))
    assert "pattern_new_family" in codes(new)
    assert "pattern_strength" in codes(strong)
    assert not codes(swap)  # a stronger tablet in the usual grams is not held by itself
    assert not codes(usual)


def _strength_history(shifted_mg: dict[str, float]) -> RegistrantProfile:
    """30 weeks of 5 mg tablets (oxycodone 30 mg once), then 4 weeks of ``shifted_mg``."""
    p = RegistrantProfile()
    for w in range(33):
        day = 20000 + 7 * w
        lines = []
        for family, mg in shifted_mg.items():
            usual = 30.0 if (w == 3 and family == "oxycodone") else 5.0
            mg = mg if w >= 29 else usual
            lines.append((family, 100.0, 100 * mg / 1000, 0.0))
        p.apply(f"25X{w:06d}", day, "x", lines, day * DAY)
    return p


def test_a_move_to_the_stronger_products_of_a_family_holds():
    """5 mg tablets for months (30 mg once), then 30s in the usual counts: a strength-mix
    shift that neither the strongest-ever test nor the size tests see."""
    p = _strength_history({"oxycodone": 30.0})
    day = 20000 + 7 * 33
    ctx = context(p, day, (amount("oxycodone", 100, 30.0),))
    found = {f.code: f for f in PatternScorer().assess(ctx)}
    assert codes(found.values()) == {"pattern_strength_mix"}
    shift = found["pattern_strength_mix"]
    assert shift.family == "oxycodone" and shift.value == pytest.approx(30 / 5.862, abs=0.01)
    assert shift.score == pytest.approx(shift.value / 4.0, abs=1e-3)
    assert "30.0 mg base per unit" in shift.detail and "5.9 mg average" in shift.detail
    # the usual 5 mg right after: the 30 days still average 25 mg (4.3x), the order does not
    back = context(p, day, (amount("oxycodone", 100, 5.0),))
    assert back.features.families[0].strength_recent / back.features.families[
        0].strength_before > 4.0
    assert "pattern_strength_mix" not in codes(PatternScorer().assess(back))
    usual = context(weekly_profile(), LAST + 7, (amount("oxycodone", 200),))
    steady = {f.code: f for f in PatternScorer().assess(usual)}["pattern_strength_mix"]
    assert steady.value == pytest.approx(1.0, abs=0.01)  # reported for every order it can be


def test_strength_mix_reports_the_family_nearest_to_holding():
    """Oxycodone's 30 days moved most (40 mg), but this order's oxycodone is the usual
    5 mg; its hydrocodone (22.5 mg, 4.5x on both counts) is what holds the order."""
    p = _strength_history({"oxycodone": 40.0, "hydrocodone": 22.5})
    ctx = context(p, 20000 + 7 * 33, (amount("oxycodone", 100, 5.0),
                                      amount("hydrocodone", 100, 22.5)))
    fams = {f.amount.family: f for f in ctx.features.families}
    oxy, hyd = fams["oxycodone"], fams["hydrocodone"]
    assert (oxy.strength_recent / oxy.strength_before
            > hyd.strength_recent / hyd.strength_before)
    found = {f.code: f for f in PatternScorer().assess(ctx)}["pattern_strength_mix"]
    assert found.family == "hydrocodone" and found.score >= 1.0


def test_steady_ramp_holds():
    p = RegistrantProfile()
    for w in range(40):
        f = 1.0 if w < 30 else 1.0 + 0.25 * (w - 29)
        day = 20000 + 7 * w
        p.apply(f"25X{w:06d}", day, "x", [("alprazolam", 500 * f, 0.5 * f, 0.0),
                                          ("oxycodone", 100 * f, 0.9 * f, 1350 * f)],
                day * DAY)
    day = 20000 + 7 * 40
    ctx = context(p, day, (amount("alprazolam", 1800, ALP_MG, "4"), amount("oxycodone", 360)))
    assert "pattern_ramp" in codes(PatternScorer().assess(ctx))


def test_one_spike_or_a_burst_is_not_a_ramp_but_volume_is_reported():
    """A step (one big order, or many usual ones) moves no median order: no ramp."""
    p = RegistrantProfile()
    for w in range(30):
        day = 20000 + 7 * w
        p.apply(f"25X{w:06d}", day, "x", [("alprazolam", 500, 0.5, 0.0),
                                          ("oxycodone", 100, 0.9, 1350)], day * DAY)
    day = 20000 + 7 * 30
    p.apply("25Y000001", day, "x", [("alprazolam", 4000, 4.0, 0.0),
                                    ("oxycodone", 800, 7.2, 10800)], day * DAY)  # a spike
    for i in range(12):  # then a burst of usual orders
        p.apply(f"25Z{i:06d}", day + 1, "x", [("alprazolam", 500, 0.5, 0.0),
                                              ("oxycodone", 100, 0.9, 1350)],
                (day + 1) * DAY + 600 * i)
    ctx = context(p, day + 3, (amount("alprazolam", 500, ALP_MG, "4"), amount("oxycodone", 100)))
    found = {f.code: f for f in PatternScorer().assess(ctx)}
    assert found["pattern_ramp"].score < 1.0  # the median order is still the usual one
    assert found["pattern_volume"].score >= 1.0  # but 30 days at many times the usual rate
    assert "daily rate of the year before" in found["pattern_volume"].detail


def test_one_spike_in_a_sparse_history_is_not_a_ramp():
    """Every 21 days: one 3.3x order among the last 30 days' two is not their median."""
    p = RegistrantProfile()
    for w in range(12):
        day = 20000 + 21 * w
        big = 3.3 if w == 11 else 1.0
        p.apply(f"25X{w:06d}", day, "x", [("alprazolam", 500 * big, 0.5 * big, 0.0),
                                          ("oxycodone", 100 * big, 0.9 * big, 1350 * big)],
                day * DAY)
    ctx = context(p, 20000 + 21 * 11 + 20,
                  (amount("alprazolam", 500, ALP_MG, "4"), amount("oxycodone", 100)))
    assert "pattern_ramp" not in codes(PatternScorer().assess(ctx))


def test_cold_start_is_judged_by_peers():
    size = SizeScorer().fit(peers())
    big = size.assess(context(RegistrantProfile(), 20000, (amount("oxycodone", 5000),),
                              group="B:new"))
    usual = size.assess(context(RegistrantProfile(), 20000, (amount("oxycodone", 200),),
                                group="B:new"))
    assert codes(big) == {"size_peer"} and "little history" in big[0].detail
    assert not codes(usual)


def test_policy_overrides_by_schedule_family_type_and_registrant():
    f = amount("oxycodone", 1)
    finding = __import__("models.base", fromlist=["Finding"]).Finding(
        "size_own", 0.9, 2.7, 3.0, "x", hold=True, family=f.family, schedule="2")
    assert decide([finding])[0] == "RELEASE"
    strict = Policy({}, [{"schedule": ["2"], "factor": 0.8}])
    assert decide([finding], strict, "BP1234563")[0] == "HOLD"
    other = Policy({}, [{"registrant_type": "A", "factor": 0.8}])
    assert decide([finding], other, "BP1234563")[0] == "RELEASE"
    one = Policy({"size_own": 0.5}, [{"dea_number": "BP1234563", "factor": 3.0}])
    assert decide([finding], one, "BP1234563")[0] == "RELEASE"
    assert decide([finding], one, "BP7654321")[0] == "HOLD"


def test_profile_state_round_trips_through_json():
    p = weekly_profile(10)
    state = json.loads(json.dumps(p.to_state()))
    q = RegistrantProfile.from_state(state)
    assert q.to_state() == p.to_state()
    assert q.times == p.times and q.families["oxycodone"].ring == p.families["oxycodone"].ring
    v1 = [1, *state[1:7]]
    for fam in v1[4].values():
        del fam[3:]
    assert RegistrantProfile.from_state(v1).families["oxycodone"].ring == []


def _models() -> Models:
    X = np.random.default_rng(0).normal(size=(300, 11))
    forest = IsolationForestScorer(n_estimators=10, min_group_orders=100).fit(
        X, groups=["B:small"] * 150 + ["B:large"] * 150)
    return Models(peers(), forest, {})


def test_artifacts_round_trip_and_refuse_corruption(tmp_path):
    manifest = save_models(tmp_path, _models(), {"orders": 300})
    loaded = load_models(tmp_path)
    assert loaded.version == manifest["version"]
    assert set(loaded.iforest.forests_) == {"all", "B:small", "B:large"}
    x = np.zeros(11)
    assert np.array_equal(loaded.iforest.forests_["all"].score_samples(x),
                          _models().iforest.forests_["all"].score_samples(x))
    raw = bytearray((tmp_path / "forests.npz").read_bytes())
    raw[100] ^= 0xFF
    (tmp_path / "forests.npz").write_bytes(bytes(raw))
    with pytest.raises(ModelArtifactError, match="forests.npz"):
        load_models(tmp_path)


def test_artifacts_refuse_other_features_and_missing_manifest(tmp_path):
    save_models(tmp_path, _models(), {"orders": 300})
    m = json.loads((tmp_path / "manifest.json").read_text())
    m["features"] = m["features"][:-1]
    del m["version"]
    digest = hashlib.sha256(json.dumps(m, sort_keys=True).encode()).hexdigest()
    m["version"] = "art-" + digest[:12]  # a consistent manifest of another feature list
    (tmp_path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ModelArtifactError, match="manifest.json.*retrain"):
        load_models(tmp_path)
    with pytest.raises(ModelArtifactError, match="missing"):
        load_models(tmp_path / "nowhere")


def test_forest_bank_scores_each_row_in_its_own_forest_as_sklearn_does():
    """One walk over several peer groups' forests (different tree counts and depths)."""
    rng = np.random.default_rng(11)
    models = [IsolationForest(n_estimators=n, max_samples=m, random_state=n).fit(
        rng.normal(c, 1 + c, size=(500, 4))) for n, m, c in ((30, 64, 0), (50, 256, 3), (7, 16, 1))]
    bank = ForestBank([ExportedForest.from_sklearn(m) for m in models])
    X = rng.normal(1, 3, size=(300, 4))
    which = rng.integers(0, 3, size=300)
    got = bank.score_samples(X, which)
    for k, m in enumerate(models):
        assert np.array_equal(got[which == k], m.score_samples(X[which == k]))


def test_iforest_batch_scores_each_order_in_its_groups_forest_or_the_pooled_one():
    from types import SimpleNamespace

    rng = np.random.default_rng(5)
    X = np.vstack([rng.normal(0, 1, size=(600, 11)), rng.normal(2, 1, size=(600, 11))])
    scorer = IsolationForestScorer(n_estimators=20, min_group_orders=500).fit(
        X, groups=["a"] * 600 + ["b"] * 600)
    assert sorted(scorer.forests_) == ["a", "all", "b"]
    probe = rng.normal(1, 2, size=(6, 11))
    groups = ["a", "b", "zz", "a", "all", ""]  # zz and "" have no forest: the pooled one

    def ctx(row, group):
        return SimpleNamespace(features=SimpleNamespace(vector=lambda: list(row),
                                                        peer_group=group))

    ctxs = [ctx(r, g) for r, g in zip(probe, groups, strict=True)]
    batch = scorer.assess_batch(ctxs)
    for row, group, found in zip(probe, groups, batch, strict=True):
        name = group if group in scorer.forests_ else "all"
        want = -scorer.forests_[name].score_samples(row)[0]
        assert [f.value for f in found] == [round(want, 4)]
        assert scorer.assess(ctx(row, group)) == found  # one order alone: the same
    # a forest replaced in place is walked, not the one cached before
    scorer.forests_["a"] = scorer.forests_["b"]
    again = scorer.assess_batch(ctxs[:1])[0]
    assert again[0].value == round(-scorer.forests_["b"].score_samples(probe[0])[0], 4)
    # without a pooled forest, an order of a group with none gets no finding
    del scorer.forests_["all"]
    assert scorer.assess_batch(ctxs[2:3]) == [[]]
