"""Decide: combine scorers' findings into RELEASE or HOLD with reasons.

A finding holds the order when the scorer marks it as grounds to hold and its
score reaches the configured factor for its code (``[scoring.limits]``), after
every matching ``[[scoring.overrides]]`` entry (by schedule, family, registrant
type = the DEA number's first letter, or one DEA number) multiplied it in. A HOLD
lists the holding findings worst first, so a compliance officer reads the
strongest evidence first; findings over their own limit that may not hold alone
(the DEA formula when ``hold_on_formula`` is off) follow as context. Scores are
reported for every order, held or released, so a release is as defensible as a
hold.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from engine.records import Reason
from models.base import Finding

__all__ = ["decide", "Policy", "HOLD", "RELEASE", "DEFAULT_LIMITS"]

HOLD = "HOLD"
RELEASE = "RELEASE"
# Tuned on the tuning feed (seed 11): the family-mix divergence of normal orders
# overlapped that of pattern shifts (reported, holds only if configured), and the
# forest at its 99.9% quantile held normal orders that no other score found odd.
DEFAULT_LIMITS = {"pattern_mix": 2.0, "isolation_forest": 1.1}


class Policy:
    """Hold factors per finding code, with overrides.

    >>> p = Policy({"size_own": 1.0}, [{"family": "fentanyl", "factor": 0.5}])
    >>> f = Finding("size_own", 0.6, 2.4, 4.0, "x", hold=True, family="fentanyl", schedule="2")
    >>> p.factor(f, "BP1234563"), p.factor(Finding("size_own", 0.6, 0, 4, "", True), "B")
    (0.5, 1.0)
    """

    def __init__(self, limits: Mapping[str, float] | None = None,
                 overrides: Iterable[Mapping] = ()) -> None:
        self.limits = {**DEFAULT_LIMITS, **(limits or {})}
        self.overrides = [dict(o) for o in overrides]

    def factor(self, f: Finding, dea: str) -> float:
        base = self.limits.get(f.code, 1.0)
        if not self.overrides:
            return base
        for o in self.overrides:
            if _matches(o, f, dea):
                base *= o.get("factor", 1.0)
        return base


def _matches(o: Mapping, f: Finding, dea: str) -> bool:
    if o.get("codes") and f.code not in o["codes"]:
        return False
    if o.get("dea_number") and o["dea_number"] != dea:
        return False
    if o.get("registrant_type") and not dea.startswith(o["registrant_type"]):
        return False
    if o.get("family") and o["family"] != f.family:
        return False
    return not (o.get("schedule") and f.schedule not in o["schedule"])


_DEFAULT = Policy()
_NEG_INF = float("-inf")
_memo4: dict[float, float] = {}


def _round4(x: float) -> float:
    """``round(x, 4)``, remembered: most scores come back rounded already, again and again."""
    if x.__class__ is not float:  # an int rounds to an int
        return round(x, 4)
    r = _memo4.get(x)
    if r is None:
        r = round(x, 4)
        if x > 0.0:  # 0.0 == -0.0 as keys: zeros (and NaN) are left to round()
            if len(_memo4) >= 1 << 16:
                _memo4.clear()
            _memo4[x] = r
    return r


def decide(
    findings: list[Finding], policy: Policy | None = None, dea: str = ""
) -> tuple[str, tuple[Reason, ...], dict[str, float]]:
    """(decision, reasons, scores) from all findings of all scorers.

    >>> f = Finding("formula_baseline", 2.5, 10.0, 4.0, "over", hold=True)
    >>> decide([f])[0], decide([])[0]
    ('HOLD', 'RELEASE')
    """
    policy = policy or _DEFAULT
    scores: dict[str, float] = {}
    holding, context = [], []
    for f in findings:
        if f.score > scores.get(f.code, _NEG_INF):
            scores[f.code] = _round4(f.score)
        if f.score >= 1.0 or f.hold:
            factor = policy.factor(f, dea) if f.hold else float("inf")
            if f.score >= factor:
                holding.append(f)
            elif f.score >= 1.0:
                context.append(f)
    holding.sort(key=lambda f: -f.score)
    context.sort(key=lambda f: -f.score)
    reasons = tuple(Reason(f.code, f.detail, f.value, f.threshold) for f in holding + context)
    return (HOLD if holding else RELEASE), reasons, scores
