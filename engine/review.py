"""An officer's review of a held order: parse it, apply it to the purchaser's profile.

A HOLD starts due diligence; the compliance officer ends it by clearing the order
(suspicion dispelled, it may ship) or reporting it to DEA (21 CFR 1301.74(b)). The
case-management system sends that outcome on the reviews topic (``[kafka]
reviews_topic``) as one JSON object, keyed by the purchaser's DEA number like orders::

    {"order_number": "25X00A123", "purchaser_dea": "AB1234563", "outcome": "cleared",
     "reviewed_at": "2025-06-03T14:00:00Z", "reviewer": "officer-17", "note": "..."}

Why the engine needs it: a hold for size opens a case (``SizeScorer``'s
``size_repeat_held``) so a repeat of the held order is held with it. Once the officer
has cleared the order, its repeat is judged like any order again (the cleared order is
in the history as the registrant's largest recent one). A reported order's case holds
its repeats for 60 days (``engine.profile.holds_until``). The newest review of an order
stands, by ``reviewed_at``, whatever order reviews arrive in. The held decision is never
changed: the review gets its own record (``engine.records.ReviewRecord``). ``reviewer``
is the case system's opaque id for the officer, not a name; ``note`` is optional free
text for the audit trail. A review may be signed like an order (``engine.review_auth``);
``reviews.applied`` is there to reconcile against the case system.

>>> r = parse_review(b'{"order_number": "25X00A123", "purchaser_dea": "AB1234563", '
...                  b'"outcome": "cleared", "reviewed_at": "2025-06-03T14:00:00Z", '
...                  b'"reviewer": "officer-17"}')
>>> r.outcome, r.reviewed_at
('cleared', '2025-06-03T14:00:00Z')
>>> parse_review(b'{"outcome": "shipped"}')
Traceback (most recent call last):
...
engine.records.Rejected: malformed: review field 'order_number' is missing or not a non-empty string
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from connectors.identifiers import dea_number_valid, order_number_valid
from connectors.orders import parse_timestamp
from engine.profile import OUTCOMES, SEEN_DAYS, RegistrantProfile, holds_until, review_rank
from engine.records import Rejected, RejectReason

__all__ = [
    "Review", "OUTCOMES", "parse_review", "apply_review", "standing_reviews", "MAX_REVIEW_BYTES",
]

MAX_REVIEW_BYTES = 16 * 1024
MAX_REVIEWER = 64
MAX_NOTE = 2000
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


@dataclass(frozen=True, slots=True)
class Review:
    """One officer's review of one held order."""

    order_number: str
    purchaser_dea: str
    outcome: str
    reviewed_at: str  # ISO-8601 UTC to the second, "Z" (compares as text)
    reviewer: str
    note: str = ""

    @property
    def reviewed_ts(self) -> float:
        return parse_timestamp(self.reviewed_at, "reviewed_at").timestamp()


def _bad(detail: str, data: dict | None = None) -> Rejected:
    data = data or {}
    number, dea = data.get("order_number"), data.get("purchaser_dea")
    return Rejected(
        RejectReason.MALFORMED,
        detail,
        order_number=number if isinstance(number, str) and order_number_valid(number) else None,
        purchaser_dea=dea if isinstance(dea, str) and dea_number_valid(dea) else None,
    )


def parse_review(raw: bytes) -> Review:
    """The review in ``raw``, or ``Rejected`` naming the field that is wrong."""
    if len(raw) > MAX_REVIEW_BYTES:
        raise Rejected(RejectReason.TOO_LARGE,
                       f"review message of {len(raw)} bytes exceeds {MAX_REVIEW_BYTES}")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise _bad("review is not a JSON object") from None
    if not isinstance(data, dict):
        raise _bad("review is not a JSON object")
    for key in ("order_number", "purchaser_dea", "outcome", "reviewed_at", "reviewer"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise _bad(f"review field {key!r} is missing or not a non-empty string", data)
    if data["outcome"] not in OUTCOMES:
        raise _bad(f"review field 'outcome' must be one of {', '.join(OUTCOMES)} "
                   f"(got {data['outcome'][:20]!r})", data)
    if not order_number_valid(data["order_number"]):
        raise _bad("review field 'order_number' is not a CSOS order number "
                   "(2-digit year, X, 6 characters)", data)
    if not dea_number_valid(data["purchaser_dea"]):
        raise Rejected(RejectReason.BAD_DEA_CHECK_DIGIT,
                       "review field 'purchaser_dea' is not a valid DEA number",
                       order_number=data["order_number"])
    try:
        at = parse_timestamp(data["reviewed_at"], "reviewed_at")
    except Rejected as exc:
        raise _bad(f"review field 'reviewed_at': {exc.detail}", data) from None
    reviewer = data["reviewer"]
    note = data.get("note", "")
    if len(reviewer) > MAX_REVIEWER:
        raise _bad(f"review field 'reviewer' is longer than {MAX_REVIEWER} characters", data)
    if not isinstance(note, str) or len(note) > MAX_NOTE:
        raise _bad(f"review field 'note' must be text of at most {MAX_NOTE} characters", data)
    return Review(
        data["order_number"], data["purchaser_dea"], data["outcome"],
        at.isoformat(timespec="seconds").replace("+00:00", "Z"), reviewer, note,
    )


def apply_review(
    profile: RegistrantProfile | None, review: Review, repeat_days: int
) -> list[dict]:
    """Apply ``review`` to the purchaser's profile; every case of the order, as it stands.

    Empty when the order opened no case (it was released, or held for a reason other
    than its size, or its case is older than the profile keeps): the review is recorded
    and changes nothing in scoring. ``repeat_days`` is ``[scoring] repeat_hold_days``.

    ``Rejected`` (``review_unknown_order``) when the engine never monitored the order
    for this purchaser (or forgot it: order identities are kept ``SEEN_DAYS``).
    """
    number = review.order_number
    if profile is None or profile.seen_as(number) is None:
        raise _refused(review, RejectReason.REVIEW_UNKNOWN_ORDER, f"no order {number} from "
                       f"this purchaser was monitored in the last {SEEN_DAYS} days")
    signed_on = _iso_day(profile.seen[number][0])
    if review.reviewed_at[:10] < signed_on:
        raise _refused(review, RejectReason.MALFORMED, f"review field 'reviewed_at' "
                       f"({review.reviewed_at}) is before order {number} was signed "
                       f"({signed_on})")
    out = []
    for family, case in profile.review_cases(
        review.order_number, review.outcome, review.reviewed_at
    ):
        until = holds_until(case, repeat_days) if repeat_days > 0 else case[0]
        out.append({
            "family": family,
            "held_on": _iso_day(case[0]),
            "code": case[4],
            "outcome": case[5],  # the standing review: this one, unless a newer one came first
            "reviewed_at": case[6],
            # the last day the case holds the family's repeats (None: it holds none now)
            "holds_repeats_through": _iso_day(until - 1) if until > case[0] else None,
        })
    return out


def _refused(review: Review, reason: RejectReason, detail: str) -> Rejected:
    return Rejected(reason, detail, order_number=review.order_number,
                    purchaser_dea=review.purchaser_dea)


def _iso_day(day: int) -> str:
    return date.fromordinal(_EPOCH_ORDINAL + day).isoformat()


_REVIEW_KEYS = ("order_number", "purchaser_dea", "outcome", "reviewed_at")


def standing_reviews(reviews: Iterable[dict]) -> dict[tuple[str, str], dict]:
    """The review that stands for each order, keyed by (purchaser DEA, order number).

    Read from ``reviews.applied`` records by ``som holds`` and ``som sors``, with the rule
    the engine applies to its cases (``engine.profile.review_rank``). Records that are not
    reviews are skipped; a review without its fields is an error (``ValueError`` naming
    the record), never a silently open hold or a missing report.
    """
    standing: dict[tuple[str, str], dict] = {}
    for n, r in enumerate(reviews, 1):
        if r.get("record") != "review":
            continue
        lacking = [k for k in _REVIEW_KEYS if not isinstance(r.get(k), str)]
        if lacking:
            raise ValueError(f"review record {n} has no {', '.join(lacking)}")
        key = (r["purchaser_dea"], r["order_number"])
        old = standing.get(key)
        rank = review_rank(r["reviewed_at"], r["outcome"])
        if old is None or rank > review_rank(old["reviewed_at"], old["outcome"]):
            standing[key] = r
    return standing
