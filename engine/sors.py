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

from connectors.catalog import Catalog
from connectors.envelope import open_envelope
from connectors.orders import Order, parse_order
from engine.records import Rejected, RejectReason, raw_sha256
from engine.review import standing_reviews

__all__ = ["standing_reports", "sors_row", "sors_rows", "ORDER_FORM_SCHEDULES"]

ORDER_FORM_SCHEDULES = ("1", "2")  # lines of these schedules need an order form (222 / CSOS)


def standing_reports(reviews: Iterable[dict]) -> dict[tuple[str, str], dict]:
    """Orders whose standing review is ``reported``, keyed by (purchaser DEA, order number).

    The rule the engine applies to its cases (``engine.profile.review_rank``), so the
    export and the scoring never disagree about an order.
    """
    return {k: r for k, r in standing_reviews(reviews).items() if r["outcome"] == "reported"}


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
    reviews: Iterable[dict], decisions: Iterable[dict], messages: Iterable[bytes], catalog: Catalog
) -> tuple[list[dict], list[str]]:
    """A row for every order whose standing review is ``reported``, in the order they were
    reported, and a sentence for each one that could not be built (nothing is left out
    silently: a report with no order lines is no report).

    An order's message is the one whose digest its decision recorded (the exact bytes
    decided). Only when no message has that digest (an archive that stored other bytes,
    e.g. base64 text) is it found by identity, and then only a message signed at the same
    time by the same certificate serial as the decision says. A message is opened with its
    signature checked but no certificate policy: its digest or its signature and signer
    already tie it to the decision, and a CA withdrawn since must not stop the report.
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
    unreadable: dict[tuple[str, str], str] = {}
    rest: list[bytes] = []
    for raw in messages:
        key = by_digest.get(raw_sha256(raw))
        if key is None:
            rest.append(raw)
            continue
        try:
            orders[key] = _open(raw)[0]
        except Rejected as exc:
            unreadable[key] = str(exc)
    missing = set(decided) - set(orders) - set(unreadable)
    for raw in rest if missing else ():
        try:
            order, serial = _open(raw)
        except Rejected:
            continue
        key = (order.purchaser.dea_number, order.order_number)
        if key in missing and _same_message(decided[key], order, serial):
            orders[key] = order
            missing.discard(key)
    rows, problems = [], []
    for key, review in sorted(wanted.items(), key=lambda kv: (kv[1]["reviewed_at"], kv[0])):
        what = f"order {key[1]} of {key[0]}, reported at {review['reviewed_at']}"
        if key not in decided:
            problems.append(f"{what}: no decision for it in the decisions file")
        elif key in orders:
            rows.append(sors_row(review, decided[key], orders[key], catalog))
        elif key in unreadable:
            problems.append(f"{what}: the decided message cannot be read ({unreadable[key]})")
        else:
            problems.append(f"{what}: its message is not in the feed")
    return rows, problems


def _open(raw: bytes) -> tuple[Order, str | None]:
    """The order in a message and its signer's serial (hex), the signature checked."""
    try:
        message = open_envelope(raw)
        order = parse_order(message.payload)
    except Rejected:
        raise
    except Exception as exc:  # one unreadable message must not stop the report
        raise Rejected(RejectReason.MALFORMED, f"unreadable: {type(exc).__name__}") from None
    info = message.signer_info
    return order, (f"{info.serial:x}" if info is not None else None)


def _same_message(decision: dict, order: Order, serial: str | None) -> bool:
    signed = order.signed_at.isoformat().replace("+00:00", "Z")
    evidence = decision.get("evidence") or {}
    return signed == decision.get("signed_at") and serial == evidence.get("signer_serial")
