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

from connectors.fastinit import builder
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


# Hot-path helpers. Each order repeats a few known values (its parties, catalog
# NDCs), so their checks are remembered; the common shapes (str, int) take
# a short path and anything else the general code above, with its exact messages.
_NDC: dict[str, str] = {}
_MEMO_MAX = 1 << 16  # entries per memo (a party about 300 bytes); cleared when full
_MEMO_TEXT = 512  # longer (untrusted) text is checked every time, never kept


def _ndc(raw: str) -> str:
    """``normalize_ndc`` remembered by its input (raises ValueError like it)."""
    ndc = _NDC.get(raw)
    if ndc is None:
        ndc = normalize_ndc(raw)
        if len(raw) <= _MEMO_TEXT:
            if len(_NDC) >= _MEMO_MAX:
                _NDC.clear()
            _NDC[raw] = ndc
    return ndc


_PARTIES: dict[tuple[str, str, str, str], Party] = {}


def _party(data: dict, key: str) -> Party:
    """The checked Party; a registrant's repeat (all plain strings) is found by its values."""
    obj = data.get(key)
    if type(obj) is dict:
        dea, name, address = obj.get("dea_number"), obj.get("name"), obj.get("address")
        if type(dea) is str and type(name) is str and type(address) is str:
            memo = (key, dea, name, address)
            party = _PARTIES.get(memo)
            if party is None:
                party = _check_party(obj, key)
                if len(dea) + len(name) + len(address) <= _MEMO_TEXT:
                    if len(_PARTIES) >= _MEMO_MAX:
                        _PARTIES.clear()
                    _PARTIES[memo] = party
            return party
    return _check_party(obj, key)


def _check_party(obj: Any, key: str) -> Party:
    if not isinstance(obj, dict):
        raise Rejected(RejectReason.MISSING_FIELD, f"{key} is missing")
    dea = _text(obj, "dea_number", key).upper()
    if not dea_number_valid(dea):
        raise Rejected(
            RejectReason.BAD_DEA_CHECK_DIGIT, f"{key}.dea_number {dea!r} fails the DEA check"
        )
    name = _text(obj, "name", key)
    if key == "supplier":
        address = _text(obj, "address", key)
    else:  # optional: without it the order ships to the certificate's registered location
        address = obj.get("address")
        if address is None:
            address = ""
        elif not isinstance(address, str):
            raise Rejected(RejectReason.MALFORMED, f"{key}.address must be text")
    return _make_party(dea, name, address)


def _line(obj: Any, index: int) -> OrderLine:
    if type(obj) is not dict:
        return _line_general(obj, index)
    raw_ndc = obj.get("ndc")
    product = obj.get("product")
    line_no = obj.get("line", index + 1)
    quantity = obj.get("package_quantity")
    packages = obj.get("packages")
    if (
        type(raw_ndc) is not str
        or not raw_ndc
        or type(line_no) is not int
        or type(quantity) is not int
        or quantity <= 0
        or type(packages) is not int
        or packages <= 0
    ):
        return _line_general(obj, index)
    try:
        ndc = _ndc(raw_ndc)
    except ValueError as exc:
        raise Rejected(RejectReason.MALFORMED, f"lines[{index}].ndc: {exc}") from None
    product = product if type(product) is str else str(product or "")
    return _make_line(line_no, ndc, product, quantity, packages)


def _line_general(obj: Any, index: int) -> OrderLine:
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


_scan = json.JSONDecoder().scan_once  # the decoder json.loads uses without arguments


def _loads(payload: bytes | str) -> Any:
    """``json.loads`` without its wrapper work for the usual shape: an object, no padding.

    ``json.loads`` detects the encoding, decodes, and runs two whitespace regexes
    around the scanner, about 1.5 us of a 3-line order's 4 to 9. Text starting
    with ``{`` is UTF-8 by ``json.detect_encoding``'s rules, so it is decoded as
    ``json.loads`` would and handed to the same scanner; anything else, or any
    failure, goes through ``json.loads`` itself for its exact result or error.
    """
    try:
        text = None
        if type(payload) is bytes:
            if payload[:1] == b"{" and payload[1:2] != b"\x00":
                text = payload.decode("utf-8", "surrogatepass")
        elif type(payload) is str and payload[:1] == "{":
            text = payload
        if text is not None:
            obj, end = _scan(text, 0)
            if end == len(text):
                return obj
    except Exception:  # noqa: S110 - json.loads below raises the canonical error
        pass
    return json.loads(payload)


def parse_order(payload: bytes | str | dict) -> Order:
    """Order JSON -> ``Order``; raises ``Rejected`` naming the defective field."""
    if isinstance(payload, dict):
        data = payload
    else:
        try:
            data = _loads(payload)
        except (ValueError, UnicodeDecodeError) as exc:
            raise Rejected(RejectReason.MALFORMED, f"order is not UTF-8 JSON: {exc}") from None
    if not isinstance(data, dict):
        raise Rejected(RejectReason.MALFORMED, "order JSON is not an object")
    try:
        return _parse(data)
    except Rejected as exc:
        order_number = data.get("order_number")
        purchaser_hint = data.get("purchaser", {})
        hint = purchaser_hint.get("dea_number") if isinstance(purchaser_hint, dict) else None
        exc.order_number = order_number if isinstance(order_number, str) else None
        exc.purchaser_dea = hint if isinstance(hint, str) else None
        raise


def _parse(data: dict) -> Order:
    form = data.get("form", "csos")
    if form not in ("csos", "dea222"):
        raise Rejected(RejectReason.MALFORMED, f"form {form!r} is neither 'csos' nor 'dea222'")
    order_number = data.get("order_number")
    order_number = order_number.strip() if type(order_number) is str else ""
    if not order_number:
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
    purchaser = _party(data, "purchaser")
    supplier = _party(data, "supplier")
    lines = tuple([_line(obj, i) for i, obj in enumerate(lines_raw)])
    extra = {} if data.keys() <= _KNOWN else {k: v for k, v in data.items() if k not in _KNOWN}
    return _make_order(
        order_number, form, signed_at, purchaser, supplier, lines, form_number, extra
    )


_make_party = builder(Party)  # the frozen dataclasses, built without __init__'s overhead
_make_line = builder(OrderLine)
_make_order = builder(Order)
