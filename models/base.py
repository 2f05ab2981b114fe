"""What every scorer returns, and the context it scores against."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.enrich import FamilyAmount
from engine.profile import RegistrantProfile

if TYPE_CHECKING:
    from models.features import OrderFeatures

__all__ = ["Finding", "OrderContext", "lazy_finding"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One scorer's verdict on one aspect of an order.

    ``score`` is value / threshold on the scorer's own scale: 1.0 or more means
    over the limit. ``hold`` says whether this finding may be grounds to hold the
    order (informational findings such as a cold start never are); the decide step
    compares ``score`` with the configured factor for this code, schedule, family,
    registrant type and registrant. ``family`` and ``schedule`` are empty for
    findings about the whole order.
    """

    code: str
    score: float
    value: float
    threshold: float
    detail: str
    hold: bool
    family: str = ""
    schedule: str = ""


@dataclass(frozen=True, slots=True)
class OrderContext:
    """An order as scorers see it: its family amounts and the profile *before* it.

    ``t`` is the signing time in epoch seconds (0 means the start of ``day``);
    ``features`` are computed once per order and shared by every scorer.
    """

    purchaser_dea: str
    day: int
    amounts: tuple[FamilyAmount, ...]
    profile: RegistrantProfile
    t: float = 0.0
    features: OrderFeatures | None = field(default=None, compare=False)
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


_new = object.__new__
_FIELDS = ("code", "score", "value", "threshold", "detail", "hold", "family", "schedule")
_SET = tuple(Finding.__dict__[name].__set__ for name in _FIELDS)
_GET_DETAIL = Finding.__dict__["detail"].__get__
_SET_DETAIL = Finding.__dict__["detail"].__set__


class _LazyFinding(Finding):
    """A Finding whose ``detail`` text is written on first read.

    Scorers report a finding for every family of every order, but only those that
    hold or are over their limit reach a decision's reasons; the others' sentences
    are never read. Equal to, and read like, a Finding with the text given.
    """

    __slots__ = ("_explain",)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Finding):
            return _fields(self) == _fields(other)
        return NotImplemented

    __hash__ = Finding.__hash__

    def __repr__(self) -> str:
        return repr(Finding(*_fields(self)))

    def __reduce__(self):  # copies and pickles are plain Findings with the text
        return (Finding, _fields(self))

    @property
    def detail(self) -> str:  # type: ignore[override]
        text = _GET_DETAIL(self)
        if text is None:
            fn, args = _GET_EXPLAIN(self)
            text = fn(*args)
            _SET_DETAIL(self, text)
        return text


def _fields(f: Finding) -> tuple:
    return (f.code, f.score, f.value, f.threshold, f.detail, f.hold, f.family, f.schedule)


_GET_EXPLAIN = _LazyFinding.__dict__["_explain"].__get__
_SET_EXPLAIN = _LazyFinding.__dict__["_explain"].__set__


def lazy_finding(
    code: str, score: float, value: float, threshold: float, explain, args: tuple,
    hold: bool, family: str = "", schedule: str = "",
) -> Finding:
    """``Finding(code, score, value, threshold, explain(*args), hold, family, schedule)``,
    with ``explain(*args)`` called only when ``detail`` is read."""
    o = _new(_LazyFinding)
    s0, s1, s2, s3, s4, s5, s6, s7 = _SET
    s0(o, code)
    s1(o, score)
    s2(o, value)
    s3(o, threshold)
    s4(o, None)
    s5(o, hold)
    s6(o, family)
    s7(o, schedule)
    _SET_EXPLAIN(o, (explain, args))
    return o
