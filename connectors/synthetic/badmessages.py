"""Deliberately defective messages, each labelled with the rejection it must cause.

A feed that only holds good orders never exercises the reject path, and a verifier
that silently drops input is worse than one that crashes. Each kind targets one
reason code of ``engine.records.RejectReason``. Bad orders get order numbers whose
first purchaser-chosen character is ``Z``, a range the per-purchaser counters of good
orders never reach, so a bad message never collides with a good one.

>>> tamper(b'{"lines":[{"packages":12}]}')
b'{"lines":[{"packages":17}]}'
>>> break_check_digit("BP1234563")
'BP1234564'
>>> elsewhere("12 Oak St, Marrowby, OH 00042")
'13 Oak St, Marrowby, OH 00042'
"""

from __future__ import annotations

import base64
import re

import numpy as np

from connectors.synthetic.assemble import base36
from connectors.synthetic.traffic import SimOrder
from engine.records import RejectReason

__all__ = [
    "BAD_KINDS", "BadMessage", "plan_bad_messages", "tamper", "break_check_digit", "elsewhere",
]

BAD_KINDS = {
    "garbage": RejectReason.MALFORMED,
    "tampered": RejectReason.BAD_SIGNATURE,
    "unknown_ndc": RejectReason.UNKNOWN_NDC,
    "bad_dea_check_digit": RejectReason.BAD_DEA_CHECK_DIGIT,
    "ship_to_elsewhere": RejectReason.SHIP_TO_MISMATCH,
}
UNKNOWN_NDC = "99901-9999-01"  # fictional labeler, product not in the catalog
_PACKAGES = re.compile(rb'"packages":([0-9]+)')


class BadMessage:
    """One defective message to insert before good order number ``position``."""

    def __init__(self, kind: str, position: int, order: SimOrder | None, noise: bytes) -> None:
        self.kind, self.position, self.order, self.noise = kind, position, order, noise

    @property
    def reason(self) -> str:
        return str(BAD_KINDS[self.kind])


def tamper(payload: bytes) -> bytes:
    """Change one digit of the last ``packages`` value, keeping the length (and DER) intact."""
    m = list(_PACKAGES.finditer(payload))[-1]
    i = m.end(1) - 1
    digit = b"8" if payload[i : i + 1] == b"7" else b"7"
    return payload[:i] + digit + payload[i + 1 :]


def tamper_message(message: bytes | dict, original: bytes) -> bytes | dict:
    """Swap the signed payload for a tampered copy inside a CMS or JSON envelope."""
    changed = tamper(original)
    if isinstance(message, dict):
        return {**message, "payload": base64.b64encode(changed).decode("ascii")}
    assert message.count(original) == 1, "CMS content must appear once"
    return message.replace(original, changed)


def break_check_digit(dea: str) -> str:
    return dea[:-1] + str((int(dea[-1]) + 1) % 10)


def elsewhere(address: str) -> str:
    """The next house number on the same street: not the certificate's registered location."""
    number, _, rest = address.partition(" ")
    return f"{int(number) + 1} {rest}" if number.isdigit() else f"1 {address}"


def plan_bad_messages(
    orders: list[SimOrder], n: int, rng: np.random.Generator
) -> list[BadMessage]:
    """``n`` bad messages cycling through the kinds, at random places in the feed."""
    if n <= 0 or not orders:
        return []
    kinds = list(BAD_KINDS)
    plan = []
    for i, position in enumerate(sorted(rng.integers(0, len(orders), size=n).tolist())):
        kind = kinds[i % len(kinds)]
        near = orders[position]
        noise = rng.bytes(int(rng.integers(64, 400)))
        if noise[:1] == b"{":
            noise = b"\x00" + noise[1:]
        bad = None
        if kind != "garbage":
            lines = [list(x) for x in near.lines]
            if kind == "unknown_ndc":
                lines[-1][0] = UNKNOWN_NDC
            bad = SimOrder(near.registrant, near.t, lines)
            bad.number = f"{near.number[:3]}Z{base36(int(rng.integers(36**5)), 5)}"
        plan.append(BadMessage(kind, position, bad, noise))
    return plan
