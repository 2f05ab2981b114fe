"""Ship-to: is the address on the order the certificate's registered location?

A CSOS order may only be filled to the registered location of the certificate that
signed it (DOMAIN.md section 2). The certificate carries that location in its postal
address extension (2.16.840.1.101.3.5.6; the OID comes from public VA VistA code and
its encoding is **unconfirmed**: ``connectors.dea_ext`` reads a DER string or a
SEQUENCE OF strings, one per line). The order states where it ships in
``purchaser.address``.

People and systems type one address many ways ("1 Main Street, Springfield, IL
62701-4410" and "1 MAIN ST. SPRINGFIELD IL 62701"), so the ``normalized`` rule compares
canonical forms: upper case, accents dropped ("PEÑA" is "PENA"), punctuation dropped,
whitespace collapsed, the USPS standard abbreviations of Publication 28 for street
suffixes and unit designators, directions abbreviated unless they name the street
("North St" stays NORTH ST, "North Main St" is N MAIN ST), a ZIP+4 cut to its ZIP code,
and a state written out where the address ends ("Illinois 62701" is "IL 62701").
Anything else still differs: a different suite, a different town, another ZIP code. The
``exact`` rule compares the strings after trimming only.

>>> normalize_address("1 Main Street, Suite 200, Springfield, IL 62701-4410")
'1 MAIN ST STE 200 SPRINGFIELD IL 62701'
>>> same_address("1 Main St., Springfield IL 62701", "1 MAIN STREET, SPRINGFIELD, IL 62701")
True
>>> same_address("1 Main St, Springfield, IL 62701", "1 Main St, Springfield, IL 62702")
False
>>> same_address("100 North St", "100 N St"), same_address("7 North Main St", "7 N Main St")
(False, True)
>>> same_address("1 Main St", "1 MAIN ST", "exact")
False
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["ADDRESS_RULES", "normalize_address", "same_address"]

ADDRESS_RULES = ("normalized", "exact")

# USPS Publication 28: street suffixes (appendix C1) and secondary unit designators (C2),
# the common ones; the tables are easy to extend.
_STREET_SUFFIXES = {
    "ALLEY": "ALY",
    "AVENUE": "AVE",
    "AV": "AVE",
    "BOULEVARD": "BLVD",
    "CIRCLE": "CIR",
    "COURT": "CT",
    "CENTER": "CTR",
    "CENTRE": "CTR",
    "DRIVE": "DR",
    "EXPRESSWAY": "EXPY",
    "FREEWAY": "FWY",
    "HIGHWAY": "HWY",
    "LANE": "LN",
    "PARKWAY": "PKWY",
    "PLACE": "PL",
    "PLAZA": "PLZ",
    "ROAD": "RD",
    "ROUTE": "RTE",
    "SQUARE": "SQ",
    "STREET": "ST",
    "TERRACE": "TER",
    "TRAIL": "TRL",
    "TURNPIKE": "TPKE",
}
_UNITS = {
    "APARTMENT": "APT",
    "BUILDING": "BLDG",
    "DEPARTMENT": "DEPT",
    "FLOOR": "FL",
    "ROOM": "RM",
    "SUITE": "STE",
}
_ABBREVIATIONS = {**_STREET_SUFFIXES, **_UNITS}
# Directionals (section 233): abbreviated unless the next word is a street suffix, where
# the direction is the street's name.
_DIRECTIONS = {
    "NORTH": "N",
    "SOUTH": "S",
    "EAST": "E",
    "WEST": "W",
    "NORTHEAST": "NE",
    "NORTHWEST": "NW",
    "SOUTHEAST": "SE",
    "SOUTHWEST": "SW",
}
_STREET_WORDS = frozenset(_STREET_SUFFIXES.values())
# State and territory names (USPS Publication 28, appendix B), abbreviated where an address
# ends: before its ZIP code, or last.
_STATES = dict(
    pair.rsplit(" ", 1)
    for pair in (
        "ALABAMA AL,ALASKA AK,ARIZONA AZ,ARKANSAS AR,CALIFORNIA CA,COLORADO CO,CONNECTICUT CT,"
        "DELAWARE DE,DISTRICT OF COLUMBIA DC,FLORIDA FL,GEORGIA GA,HAWAII HI,IDAHO ID,"
        "ILLINOIS IL,INDIANA IN,IOWA IA,KANSAS KS,KENTUCKY KY,LOUISIANA LA,MAINE ME,"
        "MARYLAND MD,MASSACHUSETTS MA,MICHIGAN MI,MINNESOTA MN,MISSISSIPPI MS,MISSOURI MO,"
        "MONTANA MT,NEBRASKA NE,NEVADA NV,NEW HAMPSHIRE NH,NEW JERSEY NJ,NEW MEXICO NM,"
        "NEW YORK NY,NORTH CAROLINA NC,NORTH DAKOTA ND,OHIO OH,OKLAHOMA OK,OREGON OR,"
        "PENNSYLVANIA PA,RHODE ISLAND RI,SOUTH CAROLINA SC,SOUTH DAKOTA SD,TENNESSEE TN,"
        "TEXAS TX,UTAH UT,VERMONT VT,VIRGINIA VA,WASHINGTON WA,WEST VIRGINIA WV,WISCONSIN WI,"
        "WYOMING WY,PUERTO RICO PR,GUAM GU,VIRGIN ISLANDS VI,AMERICAN SAMOA AS"
    ).split(",")
)
_ZIP4 = re.compile(r"\b(\d{5})-\d{4}\b")
_NOT_WORD = re.compile(r"[\W_]+")


def _plain(text: str) -> str:
    """Upper case without accents: NFKD, then the combining marks dropped."""
    decomposed = unicodedata.normalize("NFKD", text.upper())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _state_abbreviated(words: list[str]) -> list[str]:
    """The state written out where an address ends (before its ZIP code, or last)."""
    end = len(words) - (1 if words and len(words[-1]) == 5 and words[-1].isdigit() else 0)
    for size in (3, 2, 1):
        if end - size >= 1:  # a street before it: "Washington" alone is no address
            short = _STATES.get(" ".join(words[end - size : end]))
            if short is not None:
                return [*words[: end - size], short, *words[end:]]
    return words


def normalize_address(text: str) -> str:
    """The canonical form the ``normalized`` rule compares (see the module docstring)."""
    words = _NOT_WORD.split(_ZIP4.sub(r"\1", _plain(text)))
    words = [_ABBREVIATIONS.get(w, w) for w in _state_abbreviated([w for w in words if w])]
    out = []
    for i, w in enumerate(words):
        short = _DIRECTIONS.get(w)
        names_street = i + 1 < len(words) and words[i + 1] in _STREET_WORDS
        out.append(w if short is None or names_street else short)
    return " ".join(out)


def same_address(order_address: str, registered: str, rule: str = "normalized") -> bool:
    """Does the order's ship-to name the registered location, under ``rule``?"""
    if rule == "exact":
        return order_address.strip() == registered.strip()
    if rule != "normalized":
        raise ValueError(f"address rule {rule!r} is not one of {ADDRESS_RULES}")
    return normalize_address(order_address) == normalize_address(registered)
