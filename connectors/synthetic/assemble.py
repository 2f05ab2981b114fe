"""Turn simulated orders into DESIGN.md 3.1 order JSON and ground-truth rows.

Order numbers are ``YYX`` plus six base-36 characters from a per-purchaser counter
that starts at a random offset, so they are unique per purchaser (the order's
identity is purchaser DEA number + order number) without looking sequential across
purchasers. Labels live only in truth rows, never in the signed order.

>>> from datetime import datetime, UTC
>>> base36(35), base36(36 ** 2)
('00000Z', '000100')
>>> iso(datetime(2025, 1, 1, tzinfo=UTC), 90061)
'2025-01-02T01:01:01Z'
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import numpy as np

from connectors.catalog import Catalog
from connectors.synthetic.traffic import SimOrder

__all__ = ["SUPPLIER", "base36", "iso", "number_orders", "order_dict", "payload", "truth_row"]

# A fictional distributor; its DEA number passes the check digit (RL1357929).
SUPPLIER = {
    "dea_number": "RL1357929",
    "name": "Larkspur Depot Wholesale [FICTIONAL]",
    "address": "9 Kettle St, Marrowby, OH 00042",
}
_DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def base36(n: int, width: int = 6) -> str:
    out = []
    for _ in range(width):
        n, r = divmod(n, 36)
        out.append(_DIGITS[r])
    return "".join(reversed(out))


def iso(start: datetime, t: int) -> str:
    """ISO-8601 UTC with 'Z' for ``t`` seconds after ``start``."""
    return (start + timedelta(seconds=t)).strftime("%Y-%m-%dT%H:%M:%SZ")


def number_orders(orders: list[SimOrder], start: datetime, rng: np.random.Generator) -> None:
    """Give each order its CSOS order number, in signing order per purchaser."""
    counters: dict[str, int] = {}
    for order in orders:
        dea = order.registrant.dea_number
        if dea not in counters:
            counters[dea] = int(rng.integers(0, 36**6 // 2))
        counters[dea] += 1
        year = (start + timedelta(seconds=order.t)).year % 100
        order.number = f"{year:02d}X{base36(counters[dea])}"


def order_dict(order: SimOrder, start: datetime, catalog: Catalog, supplier: dict) -> dict:
    reg = order.registrant
    lines = []
    for i, (ndc, packages) in enumerate(order.lines, start=1):
        product = catalog.products.get(ndc)
        lines.append({
            "line": i,
            "ndc": ndc,
            "product": product.product if product else "Unlisted product [FICTIONAL]",
            "package_quantity": product.dosage_units_per_package if product else 100,
            "packages": int(packages),
        })
    return {
        "order_number": order.number,
        "form": "csos",
        "signed_at": iso(start, order.t),
        "purchaser": {"dea_number": reg.dea_number, "name": reg.name, "address": reg.address},
        "supplier": dict(supplier),
        "lines": lines,
    }


def payload(order: dict) -> bytes:
    """The exact bytes that get signed: compact UTF-8 JSON."""
    return json.dumps(order, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def truth_row(order: SimOrder, start: datetime, line: int, rejection: str | None = None) -> dict:
    """One truth.jsonl row: ``line`` is the 1-based feed line; ``anomaly`` is a kind or
    None; ``expected_rejection`` is a RejectReason code for a deliberately bad message."""
    return {
        "line": line,
        "order_number": order.number,
        "purchaser_dea": order.registrant.dea_number,
        "signed_at": iso(start, order.t),
        "anomaly": order.anomaly,
        "peer_group": order.registrant.peer_group,
        "expected_rejection": rejection,
    }
