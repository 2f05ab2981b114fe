"""The officer's queue: held orders that no review has settled yet.

A HOLD stops an order until due diligence dispels the suspicion or the order is reported
(Masters Pharmaceutical v. DEA, 2017), and DEA's proposed rule (85 FR 69282) asks for a
decision within 7 days. So an officer needs the list of holds still waiting, oldest
first, with how long each has waited and which are past due. It comes from two records
the engine already writes: the decisions (every HOLD, its reasons and receipt time) and
the applied reviews (the standing review of each order, by ``engine.profile.review_rank``,
the rule the scoring and ``som sors`` use).

>>> hold = {"order_number": "25X00A123", "purchaser_dea": "BP1234563", "decision": "HOLD",
...         "received_at": "2025-06-01T10:00:00Z", "signed_at": "2025-06-01T09:58:00Z",
...         "reasons": [{"code": "size_own", "detail": "oxycodone: 9x the median"}]}
>>> now = datetime(2025, 6, 9, 10, 0, tzinfo=UTC)
>>> [(h["order_number"], h["waiting_days"], h["overdue"]) for h in open_holds([hold], [], now)]
[('25X00A123', 8.0, True)]
>>> cleared = {"record": "review", "order_number": "25X00A123", "purchaser_dea": "BP1234563",
...            "outcome": "cleared", "reviewed_at": "2025-06-02T08:00:00Z"}
>>> open_holds([hold], [cleared], now)
[]
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from engine.profile import review_rank

__all__ = ["DUE_DAYS", "standing_reviews", "open_holds"]

DUE_DAYS = 7  # 85 FR 69282 (proposed): decide on a held order within 7 days
_REVIEW_KEYS = ("order_number", "purchaser_dea", "outcome", "reviewed_at")


def standing_reviews(reviews: Iterable[dict]) -> dict[tuple[str, str], dict]:
    """The review that stands for each order, keyed by (purchaser DEA, order number).

    Records that are not reviews are skipped; a review without its fields is an error
    (``ValueError`` naming the record), never a silently open hold.
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


def _parse(text: str | None) -> datetime | None:
    try:
        when = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def open_holds(
    decisions: Iterable[dict], reviews: Iterable[dict], now: datetime, due_days: float = DUE_DAYS
) -> list[dict]:
    """One row per held order with no standing review, the longest waiting first.

    A hold waits from its receipt (``received_at``; ``signed_at`` when a record lacks it).
    A redelivered decision (the same identity twice, at-least-once) is one hold.
    """
    settled = standing_reviews(reviews)
    rows: dict[tuple[str, str], dict] = {}
    for d in decisions:
        key = (d.get("purchaser_dea"), d.get("order_number"))
        if d.get("decision") != "HOLD" or key in settled or key in rows:
            continue
        since = _parse(d.get("received_at")) or _parse(d.get("signed_at"))
        if since is None:
            raise ValueError(f"held order {key[1]} of {key[0]} has no received_at or signed_at")
        waited = (now - since).total_seconds() / 86400.0
        reasons = d.get("reasons") or []
        rows[key] = {
            "record": "open_hold",
            "order_number": key[1],
            "purchaser_dea": key[0],
            "signed_at": d.get("signed_at"),
            "held_since": since.isoformat().replace("+00:00", "Z"),
            "waiting_days": round(waited, 2),
            "due_by": (since + timedelta(days=due_days)).isoformat().replace("+00:00", "Z"),
            "overdue": waited > due_days,
            "reasons": [r.get("code") for r in reasons],
            "why": reasons[0].get("detail") if reasons else None,
            "families": d.get("families"),
        }
    return sorted(rows.values(), key=lambda r: (r["held_since"], r["purchaser_dea"]))
