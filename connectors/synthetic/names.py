"""Clearly fictional names, addresses and DEA numbers for synthetic registrants.

Towns are invented and ZIP codes start with ``000`` (never assigned by USPS), so no
synthetic record can be mistaken for a real registrant. A DEA number's first letter
follows the registrant type and its second letter is the name's initial (DOMAIN.md 3).

>>> import numpy as np
>>> dea = make_dea_number(np.random.default_rng(1), "B", "Bluefern Pharmacy", set())
>>> dea[:2], len(dea)
('BB', 9)
>>> from connectors.identifiers import dea_number_valid
>>> dea_number_valid(dea)
True
"""

from __future__ import annotations

import numpy as np

from connectors.identifiers import dea_check_digit

__all__ = ["make_dea_number", "fictional_name", "fictional_address", "name_initial"]

_WORDS = (
    "Amberlark", "Bluefern", "Cobblewick", "Dunmoor", "Elderquay", "Foxbriar", "Glimmerdale",
    "Hollowmere", "Ivyrook", "Juniperra", "Kestrelby", "Lanternfield", "Marrowby", "Nettleford",
    "Oakhollow", "Pebbleton", "Quillfield", "Rushwater", "Saffronbank", "Thistlecombe",
    "Umberlee", "Violetmoor", "Willowmarsh", "Yarrowgate", "Zephyrton",
)
_STREETS = ("Lark", "Cedar", "Mill", "Quarry", "Orchard", "Harbor", "Kettle", "Fable", "Tansy")
_STATES = ("OH", "IN", "KY", "PA", "TN", "WV", "MI", "IL", "MO", "GA")
_SUFFIX = {
    "pharmacy": ("Pharmacy", "Drug Store", "Apothecary", "Family Pharmacy"),
    "hospital": ("General Hospital", "Memorial Hospital", "Community Hospital"),
    "clinic": ("Recovery Clinic", "Health Clinic", "Wellness Center", "Care Clinic"),
    "distributor": ("Medical Supply", "Pharma Distribution", "Wholesale Drug Co"),
}


def name_initial(name: str) -> str:
    """The letter a DEA number's second position takes for ``name`` ('9' if none)."""
    for ch in name.upper():
        if "A" <= ch <= "Z":
            return ch
    return "9"


def fictional_name(rng: np.random.Generator, kind: str) -> str:
    """An invented business name for a registrant type, e.g. 'Foxbriar Apothecary'."""
    suffixes = _SUFFIX[kind]
    return f"{_WORDS[rng.integers(len(_WORDS))]} {suffixes[rng.integers(len(suffixes))]}"


def fictional_address(rng: np.random.Generator) -> str:
    """An invented street address in an invented town, with an unassigned ZIP code."""
    number = int(rng.integers(1, 9900))
    street = _STREETS[rng.integers(len(_STREETS))]
    town = _WORDS[rng.integers(len(_WORDS))]
    state = _STATES[rng.integers(len(_STATES))]
    return f"{number} {street} St, {town}, {state} 000{int(rng.integers(100)):02d}"


def make_dea_number(rng: np.random.Generator, first: str, name: str, taken: set[str]) -> str:
    """A DEA number with a valid check digit, unique against ``taken`` (which it updates)."""
    while True:
        digits = "".join(str(d) for d in rng.integers(0, 10, size=6))
        dea = f"{first}{name_initial(name)}{digits}{dea_check_digit(digits)}"
        if dea not in taken:
            taken.add(dea)
            return dea
