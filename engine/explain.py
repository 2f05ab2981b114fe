"""``som explain``: every finding behind one decision, the released ones included.

A decision record lists the findings that hold or are over their limit; an
investigator asking why an order was *released* wants the others too: each score
with its value, limit and sentence. This replays the feed (and reviews) through the
same core up to the order, as the worker saw it, and reports the decision with
every finding, the hold factor each was compared with, and whether it held.

>>> rows = [FindingRow("size_own", "oxycodone", 2.1, 4.0, 0.525, 1.0, False,
...                    "oxycodone: 2.1x the median")]
>>> print(format_rows(rows))
code               family         value   limit   score  factor  holds
size_own           oxycodone       2.10    4.00   0.525    1.00  no
    oxycodone: 2.1x the median
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

from engine.pipeline import Pipeline
from engine.records import Decision, Rejection
from engine.replay import replay

__all__ = ["FindingRow", "Explanation", "explain_order", "format_rows"]


@dataclass(frozen=True, slots=True)
class FindingRow:
    """One finding as the decide step saw it."""

    code: str
    family: str
    value: float
    threshold: float
    score: float
    factor: float  # the hold factor for this code, family and registrant (overrides applied)
    holds: bool  # grounds to hold and score >= factor
    detail: str


@dataclass(frozen=True, slots=True)
class Explanation:
    outcome: Decision | Rejection
    findings: tuple[FindingRow, ...]  # empty for a rejection

    def to_dict(self) -> dict:
        return {"outcome": self.outcome.to_dict(), "findings": [asdict(r) for r in self.findings]}


def explain_order(
    pipeline: Pipeline,
    messages: Iterable[bytes],
    order_number: str,
    purchaser_dea: str | None = None,
    reviews: Iterable[bytes] | None = None,
) -> list[Explanation]:
    """Every message of the feed for ``order_number`` (of ``purchaser_dea`` if given),
    explained; usually one (more when a number was reused or redelivered)."""
    found: dict[str, tuple[FindingRow, ...]] = {}  # purchaser -> the findings just decided
    out: list[Explanation] = []

    def wanted(number: str | None, dea: str | None) -> bool:
        return number == order_number and (purchaser_dea is None or dea == purchaser_dea)

    def on_findings(number: str, ctx, findings) -> None:
        if wanted(number, ctx.purchaser_dea):  # details read now: cases may change later
            found[ctx.purchaser_dea] = tuple(_row(f, pipeline, ctx.purchaser_dea)
                                             for f in findings)

    def on_outcome(outcome) -> None:
        dea = getattr(outcome, "purchaser_dea", None)
        if isinstance(outcome, Decision | Rejection) and wanted(
            getattr(outcome, "order_number", None), dea
        ):  # a redelivery or a rejection has no findings of its own
            rows = found.pop(dea, ()) if isinstance(outcome, Decision) else ()
            out.append(Explanation(outcome, rows))

    previous = pipeline.on_findings
    pipeline.on_findings = on_findings
    try:
        replay(pipeline, messages, on_outcome=on_outcome, reviews=reviews)
    finally:
        pipeline.on_findings = previous
    return out


def _row(f, pipeline: Pipeline, dea: str) -> FindingRow:
    factor = pipeline.policy.factor(f, dea)
    return FindingRow(f.code, f.family, f.value, f.threshold, f.score, factor,
                      bool(f.hold and f.score >= factor), f.detail)


def format_rows(rows: Iterable[FindingRow]) -> str:
    """A table of findings, each followed by its sentence."""
    lines = [f"{'code':18} {'family':12} {'value':>7} {'limit':>7} {'score':>7} {'factor':>7}"
             "  holds"]
    for r in rows:
        lines.append(f"{r.code:18} {r.family or '-':12} {r.value:7.2f} {r.threshold:7.2f} "
                     f"{r.score:7.3f} {r.factor:7.2f}  {'YES' if r.holds else 'no'}")
        lines.append(f"    {r.detail}")
    return "\n".join(lines)
