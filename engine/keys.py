"""Message keys: producers key ``orders.signed`` by purchaser DEA number.

Used by the demo and benchmark producers, which know the purchaser of each
message they publish. Returns None when the message cannot be read, so the
engine (not the producer) rejects it with a reason.
"""

from __future__ import annotations

import json

from connectors.envelope import open_envelope
from engine.records import Rejected

__all__ = ["purchaser_key"]


def purchaser_key(raw: bytes) -> bytes | None:
    """The purchaser DEA number inside a message, as key bytes, or None."""
    try:
        payload = open_envelope(raw).payload
        dea = json.loads(payload)["purchaser"]["dea_number"]
    except (Rejected, ValueError, KeyError, TypeError):
        return None
    return dea.encode() if isinstance(dea, str) else None
