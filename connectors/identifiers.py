"""DEA registration numbers, CSOS order numbers and NDCs (DOMAIN.md section 3).

>>> dea_number_valid("BP1234563")
True
>>> dea_number_valid("BP1234564")
False
>>> normalize_ndc("0002-7597-01"), normalize_ndc("50242-040-62"), normalize_ndc("60575-4112-1")
('00002-7597-01', '50242-0040-62', '60575-4112-01')
>>> order_number_valid("25X00A123")
True
"""

from __future__ import annotations

import re

__all__ = [
    "dea_check_digit",
    "dea_number_valid",
    "normalize_ndc",
    "order_number_valid",
    "DEA_NUMBER_RE",
    "ORDER_NUMBER_RE",
]

DEA_NUMBER_RE = re.compile(r"^[A-Z][A-Z9][0-9]{7}$")
# 2-digit year, the letter X, 6 characters chosen by the purchaser (1305.21(b)(1)).
ORDER_NUMBER_RE = re.compile(r"^[0-9]{2}X[0-9A-Z]{6}$")
_NDC_RE = re.compile(r"^([0-9]+)-([0-9]+)-([0-9]+)$")
_NDC_SHAPES = {(4, 4, 2): 0, (5, 3, 2): 1, (5, 4, 1): 2, (5, 4, 2): None}


def dea_check_digit(digits: str) -> int:
    """Check digit of a DEA number from its first six digits.

    >>> dea_check_digit("123456")
    3
    """
    d = [int(c) for c in digits[:6]]
    return (d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10


def dea_number_valid(value: str) -> bool:
    """Two letters, seven digits, and the last digit is the check digit."""
    if not isinstance(value, str) or not DEA_NUMBER_RE.match(value):
        return False
    return dea_check_digit(value[2:8]) == int(value[8])


def order_number_valid(value: str) -> bool:
    """CSOS order number: ``YYX`` and six purchaser-chosen characters."""
    return isinstance(value, str) and bool(ORDER_NUMBER_RE.match(value))


def normalize_ndc(value: str) -> str:
    """Normalise a hyphenated 10- or 11-digit NDC to 11-digit 5-4-2 form.

    Raises ValueError for anything else: an unhyphenated 10-digit NDC is
    ambiguous and cannot be normalised without its labeler configuration.

    >>> normalize_ndc("00406-0552-01")
    '00406-0552-01'
    >>> normalize_ndc("12345678901")
    '12345-6789-01'
    """
    if not isinstance(value, str):
        raise ValueError("NDC must be a string")
    v = value.strip()
    if len(v) == 11 and v.isdigit():
        return f"{v[:5]}-{v[5:9]}-{v[9:]}"
    m = _NDC_RE.match(v)
    if not m:
        raise ValueError(f"NDC {value!r} is not in 4-4-2, 5-3-2, 5-4-1 or 5-4-2 form")
    parts = list(m.groups())
    shape = tuple(len(p) for p in parts)
    if shape not in _NDC_SHAPES:
        raise ValueError(f"NDC {value!r} has segment lengths {shape}, not a known NDC layout")
    pad = _NDC_SHAPES[shape]
    if pad is not None:
        parts[pad] = "0" + parts[pad]
    return "-".join(parts)
