"""Every scorer honours the same contract: scikit-learn estimator, sane findings, pure."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
from sklearn.base import clone

from engine.enrich import FamilyAmount
from engine.profile import RegistrantProfile
from models.base import Finding, OrderContext
from models.features import order_features
from models.formula import FormulaBaseline
from models.frequency import FrequencyScorer
from models.iforest import IsolationForestScorer
from models.pattern import PatternScorer
from models.peers import PeerBaselines
from models.size import SizeScorer

DAY = 86400
DEA = "BP1234563"
OXY_MG, ALP_MG = 8.97, 1.0


def amount(family: str, units: float, mg: float = OXY_MG, schedule: str = "2") -> FamilyAmount:
    grams = units * mg / 1000.0
    return FamilyAmount(family, schedule, schedule == "2", units, grams, grams * 1500.0, mg,
                        ("99901-0102-01",))


def weekly_profile(weeks: int = 30, start: int = 20000) -> RegistrantProfile:
    """A pharmacy ordering oxycodone and alprazolam every week, quantities jittered."""
    rng = np.random.default_rng(1)
    p = RegistrantProfile()
    for w in range(weeks):
        day = start + 7 * w
        oxy = 100.0 * (1 + int(rng.integers(0, 2)))
        alp = 500.0
        p.apply(f"25X{w:06d}", day, f"d{w}",
                [("alprazolam", alp, alp * ALP_MG / 1000, 0.0),
                 ("oxycodone", oxy, oxy * OXY_MG / 1000, oxy * OXY_MG * 1.5)],
                day * DAY + 50000)
    return p


def context(profile: RegistrantProfile, day: int, amounts: tuple, t: float | None = None,
            dea: str = DEA, group: str = "") -> OrderContext:
    t = day * DAY + 50000 if t is None else t
    feats = order_features(dea, day, t, amounts, profile)
    feats.peer_group = group
    return OrderContext(dea, day, amounts, profile, t, feats)


def contexts() -> list[OrderContext]:
    p = weekly_profile()
    last = 20000 + 7 * 29
    return [
        context(p, last + 7, (amount("alprazolam", 500, ALP_MG, "4"), amount("oxycodone", 200))),
        context(p, last + 7, (amount("oxycodone", 2400),)),  # size spike
        context(p, last + 7, (amount("morphine", 300, 22.58),)),  # new family
        context(p, last + 1, (amount("oxycodone", 100),)),  # early, small
        context(RegistrantProfile(), 20000, (amount("oxycodone", 5000),), group="B:new"),  # cold
    ]


def peers() -> PeerBaselines:
    rows = [("B", cold, 100.0 + v, "oxycodone", 100.0 * (1 + v % 3), 0.9 * (1 + v % 3))
            for v in range(120) for cold in (False, True)]
    return PeerBaselines.fit(rows)


def fitted_scorers() -> list:
    ctxs = contexts()
    X = np.asarray([c.features.vector() for c in ctxs] * 40) + np.random.default_rng(0).normal(
        0, 0.1, size=(200, len(ctxs[0].features.vector())))
    return [
        SizeScorer().fit(peers()),
        FrequencyScorer().fit(),
        PatternScorer().fit(),
        IsolationForestScorer(n_estimators=10, min_group_orders=10).fit(X),
        FormulaBaseline().fit(),
    ]


SCORERS = [SizeScorer, FrequencyScorer, PatternScorer, IsolationForestScorer, FormulaBaseline]


@pytest.mark.parametrize("cls", SCORERS, ids=lambda c: c.__name__)
def test_init_only_stores_parameters(cls):
    scorer = cls()
    params = scorer.get_params()
    assert set(vars(scorer)) == set(params)
    assert clone(scorer).get_params() == params
    assert isinstance(cls.name, str) and cls.name


@pytest.mark.parametrize("scorer", fitted_scorers(), ids=lambda s: type(s).__name__)
def test_findings_are_sane_deterministic_and_pure(scorer):
    assert not [k for k in vars(scorer) if k.endswith("_") and k[:-1] in scorer.get_params()]
    for ctx in contexts():
        before = json.dumps(ctx.profile.to_state())
        first = scorer.assess(ctx)
        second = scorer.assess(ctx)
        assert first == second
        assert json.dumps(ctx.profile.to_state()) == before  # the profile is not touched
        for f in first:
            assert isinstance(f, Finding)
            assert f.code and f.code == f.code.lower()
            assert math.isfinite(f.score) and f.score >= 0
            assert math.isfinite(f.value) and math.isfinite(f.threshold)
            assert isinstance(f.detail, str) and len(f.detail) > 20
            assert isinstance(f.hold, bool)


def test_fit_returns_self():
    X = np.random.default_rng(0).normal(size=(50, 11))
    for scorer, arg in ((SizeScorer(), peers()), (FrequencyScorer(), None),
                        (PatternScorer(), None), (IsolationForestScorer(n_estimators=5), X),
                        (FormulaBaseline(), None)):
        assert scorer.fit(arg) is scorer


def test_fitted_scorer_deep_copies_equal():
    for scorer in fitted_scorers():
        twin = copy.deepcopy(scorer)
        for ctx in contexts():
            assert twin.assess(ctx) == scorer.assess(ctx)
