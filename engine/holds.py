"""The officer's queue: held orders that no review has settled yet.

A HOLD stops an order until due diligence dispels the suspicion or the order is reported
(Masters Pharmaceutical v. DEA, 2017), and DEA's proposed rule (85 FR 69282) asks for a
decision within 7 days. So an officer needs the list of holds still waiting, oldest
first, with how long each has waited and which are past due. It comes from two records
the engine already writes: the decisions (every HOLD, its reasons and receipt time) and
the applied reviews (the standing review of each order, ``engine.review.standing_reviews``,
the rule the scoring and ``som sors`` use).

>>> hold = {"order_number": "25X00A123", "purchaser_dea": "BP1234563", "decision": "HOLD",
...         "received_at": "2025-06-01T10:00:00Z", "signed_at": "2025-06-01T09:58:00Z",
...         "reasons": [{"code": "size_own", "detail": "oxycodone: 9x the median"}]}
>>> from datetime import UTC
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
from datetime import datetime, timedelta

from connectors.orders import parse_timestamp
from engine.records import BadRecord, Rejected, checked_decision
from engine.review import standing_reviews

__all__ = ["DUE_DAYS", "open_holds"]

DUE_DAYS = 7  # 85 FR 69282 (proposed): decide on a held order within 7 days


def _utc(text: object) -> datetime | None:
    try:
        return parse_timestamp(text, "received_at")
    except Rejected:
        return None


def _hold(n: int, d: dict) -> tuple[tuple[str, str], datetime, list[dict]]:
    """A HOLD record's identity, the time it waits from, and its reasons, or ``BadRecord``."""
    key, reasons = checked_decision(n, d, "decisions")
    since = _utc(d.get("received_at")) or _utc(d.get("signed_at"))
    if since is None:
        raise BadRecord(
            "decisions",
            f"held order {key[1]} of {key[0]} (decision record {n}) "
            "has no received_at or signed_at with a UTC offset",
        )
    return key, since, reasons


def open_holds(
    decisions: Iterable[dict], reviews: Iterable[dict], now: datetime, due_days: float = DUE_DAYS
) -> list[dict]:
    """One row per held order with no standing review, the longest waiting first.

    A hold waits from its receipt (``received_at``; ``signed_at`` when a record lacks it).
    A redelivered decision (the same identity twice, at-least-once) is one hold.
    """
    try:
        settled = standing_reviews(reviews)
    except ValueError as exc:
        raise BadRecord("reviews", str(exc)) from None
    found: dict[tuple[str, str], tuple[datetime, dict, list[dict]]] = {}
    for n, d in enumerate(decisions, 1):
        if d.get("decision") != "HOLD":
            continue
        key, since, reasons = _hold(n, d)
        if key not in settled and key not in found:
            found[key] = (since, d, reasons)
    rows = []
    for key, (since, d, reasons) in sorted(found.items(), key=lambda kv: (kv[1][0], kv[0])):
        waited = (now - since).total_seconds() / 86400.0
        rows.append(
            {
                "record": "open_hold",
                "order_number": key[1],
                "purchaser_dea": key[0],
                "signed_at": d.get("signed_at"),
                "held_since": _iso(since),
                "waiting_days": round(waited, 2),
                "due_by": _iso(since + timedelta(days=due_days)),
                "overdue": waited > due_days,
                "reasons": [r.get("code") for r in reasons],
                "why": reasons[0].get("detail") if reasons else None,
                "families": d.get("families"),
            }
        )
    return rows


def _iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")
