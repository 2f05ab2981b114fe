"""parse_order: the short paths for common shapes give what the general checks give."""

from __future__ import annotations

import copy

import pytest

from connectors.orders import Order, OrderLine, Party, parse_order
from engine.records import Rejected, RejectReason

BASE = {
    "order_number": "25X00A123",
    "form": "csos",
    "signed_at": "2025-03-04T14:22:05Z",
    "purchaser": {"dea_number": "BP1234563", "name": "A", "address": "1 Main St"},
    "supplier": {"dea_number": "RS7654329", "name": "B", "address": "9 Depot Rd"},
    "lines": [{"line": 1, "ndc": "0406-0552-01", "product": "X", "package_quantity": 100,
               "packages": 2}],
}  # fmt: skip


class Text(str):
    pass


class Count(int):
    pass


def _order(path: tuple, value) -> dict:
    data = copy.deepcopy(BASE)
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return data


def _reject(data: dict) -> Rejected:
    with pytest.raises(Rejected) as info:
        parse_order(data)
    return info.value


@pytest.mark.parametrize(
    ("path", "value", "reason", "detail"),
    [
        (("purchaser", "dea_number"), 1234563, "missing_field",
         "purchaser.dea_number is missing or empty"),
        (("purchaser", "dea_number"), "  ", "missing_field",
         "purchaser.dea_number is missing or empty"),
        (("purchaser", "dea_number"), "BP1234564", "bad_dea_check_digit",
         "purchaser.dea_number 'BP1234564' fails the DEA check"),
        (("supplier", "address"), None, "missing_field", "supplier.address is missing or empty"),
        (("order_number",), 25, "missing_field", "order.order_number is missing or empty"),
        (("lines", 0, "line"), True, "malformed", "lines[0].line must be an integer"),
        (("lines", 0, "packages"), True, "malformed",
         "lines[0].packages must be a positive integer"),
        (("lines", 0, "packages"), 0, "malformed",
         "lines[0].packages must be a positive integer"),
        (("lines", 0, "package_quantity"), None, "missing_field",
         "lines[0].package_quantity is missing"),
        (("lines", 0, "ndc"), "", "unknown_ndc",
         "lines[0] has no NDC; product-name matching is off"),
        (("lines", 0), [], "malformed", "lines[0] is not an object"),
    ],
)  # fmt: skip
def test_defects_name_the_field(path, value, reason, detail):
    err = _reject(_order(path, value))
    assert (str(err.reason), err.detail) == (reason, detail)
    assert err.order_number == (BASE["order_number"] if path != ("order_number",) else None)


def test_bad_ndc_is_rejected_every_time_not_remembered_as_good():
    data = _order(("lines", 0, "ndc"), "12-34")
    first, second = _reject(data), _reject(data)
    assert first.reason is second.reason is RejectReason.MALFORMED
    assert first.detail == second.detail and first.detail.startswith("lines[0].ndc: NDC '12-34'")


def test_subclassed_values_parse_like_plain_ones():
    plain = parse_order(copy.deepcopy(BASE))
    odd = _order(("purchaser", "name"), Text(" A "))
    odd["lines"][0]["packages"] = Count(2)
    odd["lines"][0]["ndc"] = Text("0406-0552-01")
    assert parse_order(odd) == plain
    assert isinstance(plain, Order) and isinstance(plain.purchaser, Party)
    assert plain.lines == (OrderLine(1, "00406-0552-01", "X", 100, 2),)


def test_product_is_coerced_to_text_and_a_purchaser_address_must_be_text():
    data = _order(("purchaser", "address"), None)
    data["lines"][0]["product"] = None
    data["note"] = "kept"
    order = parse_order(data)
    assert order.purchaser.address == "" and order.lines[0].product == ""
    assert order.extra == {"note": "kept"}
    with pytest.raises(AttributeError):
        order.form = "dea222"  # still frozen
    # the address is the ship-to, checked against the certificate: never guessed from a list
    for value in (12, ["1 Main St", "Springfield"], {}, [], False):
        with pytest.raises(Rejected) as exc:
            parse_order(_order(("purchaser", "address"), value))
        assert exc.value.reason is RejectReason.MALFORMED
        assert "purchaser.address" in exc.value.detail


def test_long_text_is_checked_but_not_remembered():
    from connectors import orders

    data = _order(("purchaser", "name"), "N" * 5000)
    data["lines"][0]["ndc"] = " " * 600 + "0406-0552-01"
    order = parse_order(data)
    assert order.purchaser.name == "N" * 5000 and order.lines[0].ndc == "00406-0552-01"
    assert all(len(k[2]) < 5000 for k in orders._PARTIES)
    assert all(len(k) < 600 for k in orders._NDC)


def test_a_catalog_row_without_base_amount_is_refused_with_its_file_and_row(tmp_path):
    import pytest

    from config.settings import DEFAULT_CONFIG
    from connectors.catalog import Catalog, CatalogError

    lines = DEFAULT_CONFIG.with_name("catalog.csv").read_text().splitlines()
    head, first = lines[0], lines[1].split(",")
    first[6] = "0"  # base_mg_per_unit
    bad = tmp_path / "catalog.csv"
    bad.write_text("\n".join([head, ",".join(first), *lines[2:]]) + "\n")
    with pytest.raises(CatalogError, match=r"catalog\.csv:2: columns base_mg_per_unit"):
        Catalog.load(bad)
    assert Catalog.load(DEFAULT_CONFIG.with_name("catalog.csv")).products
