"""Wire the core from the settings: catalog, verifier, scorers, trained models, policy.

The one place that names every scorer and passes it its ``[scoring]`` parameters, so
the decision's model version (a hash of those parameters) covers all of them.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from config import Settings
from connectors.catalog import Catalog
from engine.decide import Policy
from engine.pipeline import Pipeline
from engine.review_auth import ReviewAuthenticator
from engine.verify import Verifier
from models.formula import FormulaBaseline
from models.frequency import FrequencyScorer
from models.pattern import PatternScorer
from models.size import SizeScorer

__all__ = ["build_pipeline", "build_scorers"]


def build_scorers(settings: Settings, models=None) -> list:
    """The scorers named by ``[scoring]``, with trained artifacts when given."""
    sc = settings.scoring
    size = SizeScorer(
        sc.size_min_ratio,
        sc.size_max_ratio,
        3,
        sc.peer_z_threshold,
        sc.cold_z_threshold,
        sc.repeat_hold_days,
        sc.repeat_hold_ratio,
    )
    if models is not None:
        size.fit(models.peers)
    scorers = [
        size,
        FrequencyScorer(
            sc.frequency_min_excess, sc.frequency_min_count, 6, sc.split_min_excess, sc.split_ratio
        ),
        PatternScorer(
            strength_ratio=sc.strength_ratio,
            ramp_ratio=sc.ramp_ratio,
            ramp_single_ratio=sc.ramp_single_ratio,
            volume_ratio=sc.volume_ratio,
            volume_single_ratio=sc.volume_single_ratio,
            strength_grams_ratio=sc.strength_grams_ratio,
            strength_mix_ratio=sc.strength_mix_ratio,
            mix_threshold=sc.mix_threshold,
        ),
    ]
    if models is not None:
        scorers.append(models.iforest)
    scorers.append(
        FormulaBaseline(
            sc.formula_multiplier_schedule_2,
            sc.formula_multiplier_schedule_3_5,
            sc.formula_window_days,
            sc.formula_min_history_days,
            sc.hold_on_formula,
        )
    )
    return scorers


def build_pipeline(settings: Settings, judge_at: datetime | None = None) -> Pipeline:
    """Load the catalog and trust material named in ``settings`` and wire the core."""
    catalog = Catalog.load(settings.resolve(settings.catalog.path))
    base = Path(settings.source).parent if not settings.source.startswith("<") else None
    verifier = Verifier(settings.verification, catalog, base)
    models = None
    if settings.scoring.models_dir:
        from models.artifacts import load_models

        models = load_models(settings.resolve(settings.scoring.models_dir))
    sc = settings.scoring
    policy = Policy(sc.limits, [o.model_dump() for o in sc.overrides])
    rv = settings.reviews
    review_auth = ReviewAuthenticator.from_dirs(
        settings.resolve(rv.trust_dir) if rv.trust_dir else None,
        rv.require_signature,
        settings.resolve(rv.crl_dir) if rv.crl_dir else None,
        tuple(rv.allowed_signers),
        rv.signer_eku,
    )
    return Pipeline(
        settings,
        catalog,
        verifier,
        build_scorers(settings, models),
        judge_at,
        peers=models.peers if models else None,
        policy=policy,
        artifacts_version=models.version if models else "",
        review_auth=review_auth,
    )
