"""SORS report rows for the orders a compliance officer reported to DEA.

A HOLD starts due diligence; when it does not dispel the suspicion the officer reports the
order to DEA's Suspicious Orders Report System (21 CFR 1301.74(b), 21 U.S.C. 832) and
says so on the reviews topic (outcome ``reported``). A report names (OMB ICR 1117-0056,
DOMAIN.md section 4) the ordering registrant's DEA number, the date the order was
received, the reporting registrant's DEA number, each line's NDC, unit, dosage strength
and quantity, the order form number for Schedules I-II, a unique transaction id, and the
circumstances that made the order suspicious. All of it is in three records the engine
already keeps: the order as signed (the feed), its HOLD decision (reasons, receipt time,
the message's digest) and the officer's review (``reviews.applied``). ``som sors`` joins
them; the rows are what an officer types into SORS Online or a bulk upload is built from
(the upload format itself could not be checked here).

>>> reviews = [
...     {"record": "review", "order_number": "25X00A123", "purchaser_dea": "BP1234563",
...      "outcome": "reported", "reviewed_at": "2025-06-03T14:00:00Z"},
...     {"record": "review", "order_number": "25X00A124", "purchaser_dea": "BP1234563",
...      "outcome": "reported", "reviewed_at": "2025-06-03T14:00:00Z"},
...     {"record": "review", "order_number": "25X00A124", "purchaser_dea": "BP1234563",
...      "outcome": "cleared", "reviewed_at": "2025-06-04T09:00:00Z"}]
>>> sorted(standing_reports(reviews))
[('BP1234563', '25X00A123')]
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from connectors.catalog import Catalog
from connectors.orders import Order
from engine.records import Rejected, raw_sha256

__all__ = ["standing_reports", "sors_row", "sors_rows", "ORDER_FORM_SCHEDULES"]

ORDER_FORM_SCHEDULES = ("1", "2")  # lines of these schedules need an order form (222 / CSOS)


def standing_reports(reviews: Iterable[dict]) -> dict[tuple[str, str], dict]:
    """Orders whose standing review is ``reported``, keyed by (purchaser DEA, order number).

    The newest review of an order stands, by ``reviewed_at`` to the second, and at the
    same second ``reported`` wins: the rule the engine applies to its cases
    (``engine.profile``), so the export and the scoring never disagree about an order.
    """
    standing: dict[tuple[str, str], dict] = {}
    for r in reviews:
        if r.get("record") != "review":
            continue
        key = (r["purchaser_dea"], r["order_number"])
        rank = (r["reviewed_at"], r["outcome"] == "reported")
        old = standing.get(key)
        if old is None or rank > (old["reviewed_at"], old["outcome"] == "reported"):
            standing[key] = r
    return {k: r for k, r in standing.items() if r["outcome"] == "reported"}


def sors_row(review: dict, decision: dict, order: Order, catalog: Catalog) -> dict:
    """One report: the order's lines, why it was held, and who reported it when.

    ``order_form_number`` is the paper form's number (DEA-222) or, for a CSOS order, its
    order number (the electronic order's unique number), when a line is of Schedule I or
    II; None otherwise. ``transaction_id`` is the order's identity in this engine
    (purchaser DEA number and order number), unique per reporting registrant.
    ``order_received_date`` is the UTC date of the decision's ``received_at``: the input
    message's timestamp on the stream (in a replay, the replay's own time, so reports
    are built from the stream's decisions, not from a backtest's).
    """
    lines = []
    needs_form = False
    for line in order.lines:
        product = catalog.products.get(line.ndc)
        schedule = product.schedule if product else None
        needs_form = needs_form or (schedule or "").rstrip("N") in ORDER_FORM_SCHEDULES
        lines.append(
            {
                "line": line.line,
                "ndc": line.ndc,
                "product": line.product,
                "schedule": schedule,
                "unit": f"package of {line.package_quantity}",
                "dosage_strength_mg_base": product.base_mg_per_unit if product else None,
                "quantity": line.packages,
                "dosage_units": line.dosage_units,
            }
        )
    reasons = [r for r in decision.get("reasons", ())]
    circumstances = "; ".join(r["detail"] for r in reasons)
    if decision.get("decision") != "HOLD":
        circumstances = f"released by the engine, reported by the officer; {circumstances}"
    if review.get("note"):
        circumstances += f"; officer's note: {review['note']}"
    form_number = order.form_number if order.form == "dea222" else order.order_number
    evidence = decision.get("evidence", {})
    return {
        "record": "sors_report",
        "transaction_id": f"{order.purchaser.dea_number}:{order.order_number}",
        "reporting_registrant_dea": order.supplier.dea_number,
        "ordering_registrant_dea": order.purchaser.dea_number,
        "ordering_registrant_name": order.purchaser.name,
        "ordering_registrant_address": order.purchaser.address,
        "order_number": order.order_number,
        "order_form_number": form_number if needs_form else None,
        "order_signed_at": decision.get("signed_at"),
        "order_received_date": (decision.get("received_at") or "")[:10] or None,
        "lines": lines,
        "circumstances": circumstances.strip("; "),
        "hold_reasons": [r["code"] for r in reasons],
        "decision": decision.get("decision"),
        "decided_at": decision.get("decided_at"),
        "reported_at": review["reviewed_at"],
        "reviewer": review.get("reviewer"),
        "evidence": {
            "raw_sha256": evidence.get("raw_sha256"),
            "signer_serial": evidence.get("signer_serial"),
            "model_version": decision.get("model_version"),
            "config_version": decision.get("config_version"),
        },
    }


def sors_rows(
    reviews: Iterable[dict],
    decisions: Iterable[dict],
    messages: Iterable[bytes],
    verifier,
    now: datetime | None = None,
) -> tuple[list[dict], list[str]]:
    """A row for every order whose standing review is ``reported``, in the order they were
    reported, and a sentence for each one that could not be built (nothing is left out
    silently: a report with no order lines is no report).

    An order's message is found by the digest its decision recorded (the exact bytes
    decided), else by its identity among the messages that verify (``verifier`` judges
    them as history, as ``som replay`` does).
    """
    wanted = standing_reports(reviews)
    if not wanted:
        return [], []
    decided: dict[tuple[str, str], dict] = {}
    for d in decisions:
        key = (d.get("purchaser_dea"), d.get("order_number"))
        if key in wanted and d.get("decision") in ("HOLD", "RELEASE"):
            decided[key] = d
    by_digest = {(d.get("evidence") or {}).get("raw_sha256"): k for k, d in decided.items()}
    orders: dict[tuple[str, str], Order] = {}
    unverified: dict[tuple[str, str], str] = {}
    rest: list[bytes] = []
    for raw in messages:
        key = by_digest.get(raw_sha256(raw))
        if key is None:
            rest.append(raw)
            continue
        try:
            orders[key] = verifier.verify(raw, now).order
        except Rejected as exc:
            unverified[key] = str(exc)
    if len(orders) < len(decided):  # archived with other bytes (e.g. base64 text): by identity
        for raw in rest:
            try:
                order = verifier.verify(raw, now).order
            except Rejected:
                continue
            key = (order.purchaser.dea_number, order.order_number)
            if key in decided and key not in orders:
                orders[key] = order
    rows, problems = [], []
    for key, review in sorted(wanted.items(), key=lambda kv: (kv[1]["reviewed_at"], kv[0])):
        what = f"order {key[1]} of {key[0]}, reported at {review['reviewed_at']}"
        if key not in decided:
            problems.append(f"{what}: no decision for it in the decisions file")
        elif key in orders:
            rows.append(sors_row(review, decided[key], orders[key], verifier.catalog))
        elif key in unverified:
            problems.append(f"{what}: its message does not verify ({unverified[key]})")
        else:
            problems.append(f"{what}: its message is not in the feed")
    return rows, problems
