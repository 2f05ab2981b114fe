"""Scorers: each reads one order against the registrant's profile and returns Findings.

Every scorer follows scikit-learn's estimator contract (``__init__`` only stores
parameters, ``fit`` returns self, learned attributes end in ``_``) and has an
``assess(ctx) -> list[Finding]`` method; ``engine.decide`` turns findings into a
decision. Reason codes: ``size_own``, ``size_peer``, ``size_repeat_held`` (SizeScorer);
``frequency_count``, ``split_orders`` (FrequencyScorer); ``pattern_new_family``,
``pattern_strength``, ``pattern_strength_mix``, ``pattern_ramp``, ``pattern_volume``,
``pattern_mix`` (PatternScorer); ``isolation_forest``
(IsolationForestScorer); ``formula_baseline``, ``formula_cold_start`` (FormulaBaseline).
"""

from models.base import Finding, OrderContext
from models.formula import FormulaBaseline
from models.frequency import FrequencyScorer
from models.iforest import IsolationForestScorer
from models.pattern import PatternScorer
from models.size import SizeScorer

__all__ = [
    "Finding",
    "OrderContext",
    "FormulaBaseline",
    "FrequencyScorer",
    "IsolationForestScorer",
    "PatternScorer",
    "SizeScorer",
]
