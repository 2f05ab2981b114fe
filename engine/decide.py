"""Decide: combine scorers' findings into RELEASE or HOLD with reasons.

A HOLD lists every finding that is grounds to hold, worst first, so a
compliance officer reads the strongest evidence first. Scores are reported for
every order, held or released, so a release is as defensible as a hold.
"""

from __future__ import annotations

from engine.records import Reason
from models.base import Finding

__all__ = ["decide", "HOLD", "RELEASE"]

HOLD = "HOLD"
RELEASE = "RELEASE"


def decide(findings: list[Finding]) -> tuple[str, tuple[Reason, ...], dict[str, float]]:
    """(decision, reasons, scores) from all findings of all scorers.

    >>> f = Finding("formula_baseline", 2.5, 10.0, 4.0, "over", hold=True)
    >>> decide([f])[0], decide([])[0]
    ('HOLD', 'RELEASE')
    """
    scores: dict[str, float] = {}
    for f in findings:
        if f.score > scores.get(f.code, float("-inf")):
            scores[f.code] = round(f.score, 4)
    holding = sorted((f for f in findings if f.hold), key=lambda f: -f.score)
    reasons = tuple(Reason(f.code, f.detail, f.value, f.threshold) for f in holding)
    return (HOLD if holding else RELEASE), reasons, scores
