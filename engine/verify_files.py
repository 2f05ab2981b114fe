"""What ``som verify`` and ``som certs expiring`` do, kept out of the CLI module.

A message file holds one message exactly as it would sit on ``orders.signed``
(DER or PEM or base64 CMS, or a JSON envelope, or a paper order). A feed holds
one message per line (``connectors.feed``). Each message gives one result row.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path

from connectors.feed import read_feed
from engine.records import Rejected
from engine.verify import VerifiedOrder, Verifier

__all__ = ["Item", "items_from", "verify_items", "result_row"]

Item = tuple[str, bytes, datetime | None]  # (name, message, judge-at time or None)


def items_from(
    files: Iterable[str], feeds: Iterable[str], now: datetime | None, feed_now: datetime | None
) -> Iterator[Item]:
    """Messages from files (judged at ``now``) then feeds (judged at ``feed_now``)."""
    for name in files:
        yield name, Path(name).read_bytes(), now
    for feed in feeds:
        for i, raw in enumerate(read_feed(feed), start=1):
            yield f"{feed}:{i}", raw, feed_now


def result_row(name: str, outcome: VerifiedOrder | Rejected) -> dict:
    """One JSON-able row: file, order_number, purchaser_dea, status, reason, detail, and for
    a verified order its ship-to check (``VerifiedOrder.ship_to``)."""
    if isinstance(outcome, Rejected):
        return {
            "file": name,
            "order_number": outcome.order_number,
            "purchaser_dea": outcome.purchaser_dea,
            "status": "rejected",
            "reason": str(outcome.reason),
            "detail": outcome.detail,
        }
    return {
        "file": name,
        "order_number": outcome.order.order_number,
        "purchaser_dea": outcome.order.purchaser.dea_number,
        "status": "verified",
        "reason": None,
        "detail": None,
        "ship_to": outcome.ship_to,
    }


def verify_items(
    verifier: Verifier, items: Iterable[Item]
) -> Iterator[tuple[str, VerifiedOrder | Rejected]]:
    """Verify each message; a rejection is a result, not an error."""
    for name, raw, at in items:
        try:
            yield name, verifier.verify(raw, at)
        except Rejected as exc:
            yield name, exc
