"""Parse the order JSON of DESIGN.md 3.1 into typed, immutable objects.

A defective order is never corrected (1305.22): every defect raises
``Rejected`` with the reason code and the field at fault.

>>> o = parse_order(b'{"order_number":"25X00A123","form":"csos",'
...   b'"signed_at":"2025-03-04T14:22:05Z",'
...   b'"purchaser":{"dea_number":"BP1234563","name":"A","address":"1 Main St"},'
...   b'"supplier":{"dea_number":"RS7654329","name":"B","address":"9 Depot Rd"},'
...   b'"lines":[{"line":1,"ndc":"0406-0552-01","product":"X",'
...   b'"package_quantity":100,"packages":2}]}')
>>> o.lines[0].ndc, o.lines[0].dosage_units, o.signed_at.year
('00406-0552-01', 200, 2025)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from connectors.identifiers import dea_number_valid, normalize_ndc, order_number_valid
from engine.records import Rejected, RejectReason

__all__ = ["Party", "OrderLine", "Order", "parse_order", "parse_timestamp"]

_KNOWN = {"order_number", "form", "form_number", "signed_at", "purchaser", "supplier", "lines"}


@dataclass(frozen=True, slots=True)
class Party:
    dea_number: str
    name: str
    address: str


@dataclass(frozen=True, slots=True)
class OrderLine:
    line: int
    ndc: str
    product: str
    package_quantity: int
    packages: int

    @property
    def dosage_units(self) -> int:
        return self.package_quantity * self.packages


@dataclass(frozen=True, slots=True)
class Order:
    order_number: str
    form: str
    signed_at: datetime
    purchaser: Party
    supplier: Party
    lines: tuple[OrderLine, ...]
    form_number: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


def parse_timestamp(value: Any, where: str = "signed_at") -> datetime:
    """ISO-8601 timestamp with an explicit offset, returned in UTC."""
    if not isinstance(value, str):
        raise Rejected(RejectReason.MISSING_FIELD, f"{where} must be an ISO-8601 string")
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Rejected(RejectReason.MALFORMED, f"{where} {value!r} is not ISO-8601") from None
    if ts.tzinfo is None:
        raise Rejected(RejectReason.MALFORMED, f"{where} {value!r} has no UTC offset")
    return ts.astimezone(UTC)


def _text(obj: dict, key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value.strip():
        raise Rejected(RejectReason.MISSING_FIELD, f"{where}.{key} is missing or empty")
    return value.strip()


def _positive_int(obj: dict, key: str, where: str) -> int:
    value = obj.get(key)
    if value is None:
        raise Rejected(RejectReason.MISSING_FIELD, f"{where}.{key} is missing")
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise Rejected(RejectReason.MALFORMED, f"{where}.{key} must be a positive integer")
    return value


def _party(data: dict, key: str) -> Party:
    obj = data.get(key)
    if not isinstance(obj, dict):
        raise Rejected(RejectReason.MISSING_FIELD, f"{key} is missing")
    dea = _text(obj, "dea_number", key).upper()
    if not dea_number_valid(dea):
        raise Rejected(
            RejectReason.BAD_DEA_CHECK_DIGIT, f"{key}.dea_number {dea!r} fails the DEA check"
        )
    name = _text(obj, "name", key)
    address = _text(obj, "address", key) if key == "supplier" else str(obj.get("address") or "")
    return Party(dea, name, address)


def _line(obj: Any, index: int) -> OrderLine:
    where = f"lines[{index}]"
    if not isinstance(obj, dict):
        raise Rejected(RejectReason.MALFORMED, f"{where} is not an object")
    raw_ndc = obj.get("ndc")
    product = obj.get("product")
    if not raw_ndc and not product:
        raise Rejected(RejectReason.MISSING_FIELD, f"{where} has neither ndc nor product")
    if not raw_ndc:
        raise Rejected(
            RejectReason.UNKNOWN_NDC, f"{where} has no NDC; product-name matching is off"
        )
    try:
        ndc = normalize_ndc(raw_ndc)
    except ValueError as exc:
        raise Rejected(RejectReason.MALFORMED, f"{where}.ndc: {exc}") from None
    line_no = obj.get("line", index + 1)
    if not isinstance(line_no, int) or isinstance(line_no, bool):
        raise Rejected(RejectReason.MALFORMED, f"{where}.line must be an integer")
    return OrderLine(
        line=line_no,
        ndc=ndc,
        product=str(product or ""),
        package_quantity=_positive_int(obj, "package_quantity", where),
        packages=_positive_int(obj, "packages", where),
    )


def parse_order(payload: bytes | str | dict) -> Order:
    """Order JSON -> ``Order``; raises ``Rejected`` naming the defective field."""
    if isinstance(payload, dict):
        data = payload
    else:
        try:
            data = json.loads(payload)
        except (ValueError, UnicodeDecodeError) as exc:
            raise Rejected(RejectReason.MALFORMED, f"order is not UTF-8 JSON: {exc}") from None
    if not isinstance(data, dict):
        raise Rejected(RejectReason.MALFORMED, "order JSON is not an object")
    order_number = data.get("order_number")
    purchaser_hint = data.get("purchaser", {})
    hint = purchaser_hint.get("dea_number") if isinstance(purchaser_hint, dict) else None
    try:
        return _parse(data)
    except Rejected as exc:
        exc.order_number = order_number if isinstance(order_number, str) else None
        exc.purchaser_dea = hint if isinstance(hint, str) else None
        raise


def _parse(data: dict) -> Order:
    form = data.get("form", "csos")
    if form not in ("csos", "dea222"):
        raise Rejected(RejectReason.MALFORMED, f"form {form!r} is neither 'csos' nor 'dea222'")
    order_number = _text(data, "order_number", "order")
    form_number = None
    if form == "dea222":
        form_number = _text(data, "form_number", "order")
    elif not order_number_valid(order_number):
        raise Rejected(
            RejectReason.BAD_ORDER_NUMBER,
            f"order_number {order_number!r} is not YY + 'X' + 6 characters",
        )
    signed_at = parse_timestamp(data.get("signed_at"))
    lines_raw = data.get("lines")
    if not isinstance(lines_raw, list) or not lines_raw:
        raise Rejected(RejectReason.MISSING_FIELD, "lines is missing or empty")
    return Order(
        order_number=order_number,
        form=form,
        signed_at=signed_at,
        purchaser=_party(data, "purchaser"),
        supplier=_party(data, "supplier"),
        lines=tuple(_line(obj, i) for i, obj in enumerate(lines_raw)),
        form_number=form_number,
        extra={k: v for k, v in data.items() if k not in _KNOWN},
    )
