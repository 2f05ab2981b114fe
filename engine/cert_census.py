"""Certificate expiry of the registrants a worker serves, read from the profiles table.

DEA advises renewing a CSOS certificate 45 days ahead; once it lapses every order of
that purchaser is rejected ``cert_expired``. Each profile keeps the not-after date of its
registrant's latest certificate (``RegistrantProfile.cert``, state version 5), so the
``som_certificates_expiring`` gauge is counted from the table: right again as soon as a
restarted worker has recovered it, without waiting for each purchaser's next order.

Only keys of the worker's *active* partitions count (a standby replica's keys are another
worker's registrants). A scrape runs on the worker's event loop, so a key is read from its
state bytes (the certificate is the state's last element: a look at its tail, no full
parse) at most once per value, and new reads stop after ``budget_s`` seconds; the rest
are read on the next scrapes.

>>> from engine.profile import RegistrantProfile
>>> p = RegistrantProfile()
>>> p.note_certificate(1_800_000_000.0, "1a")
>>> cert_not_after(p.dumps_state()), cert_not_after(b"[4,null]"), cert_not_after(b"junk")
(1800000000, None, None)
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable
from datetime import datetime

from engine.outbox import key_hash
from engine.profile import STATE_VERSION

__all__ = ["CertCensus", "cert_not_after"]

_TAIL = re.compile(rb',(?:null|\[(-?\d+),(?:"[0-9A-Za-z]*"|null)\])\]\s*$')


def cert_not_after(raw: bytes) -> int | None:
    """The certificate not-after (epoch seconds) in a profile's state bytes; None when the
    state has none (older versions, a paper-only purchaser) or cannot be read."""
    if not raw.startswith(b"[%d," % STATE_VERSION):
        return None
    hit = _TAIL.search(raw, max(0, len(raw) - 64))
    if hit is not None:
        return int(hit.group(1)) if hit.group(1) is not None else None
    try:  # an unusual serial: the slow way
        cert = json.loads(raw)[9]
        return int(cert[0]) if isinstance(cert, list) and cert else None
    except (ValueError, TypeError, IndexError, KeyError):
        return None


class CertCensus:
    """``expiring_counts(now, windows)`` over the table's keys of the active partitions."""

    def __init__(self, store: Callable[[], dict], partitions: int) -> None:
        self.store = store  # the table's key -> state bytes (Faust's memory store)
        self.partitions = partitions
        self.active: frozenset[int] | None = None  # None until the first assignment: all
        self._read: dict[bytes, tuple[bytes, int | None, int]] = {}  # raw, not_after, partition

    def assigned(self, partitions: Iterable[int]) -> None:
        """The input partitions this worker consumes now (a rebalance's full assignment)."""
        self.active = frozenset(partitions)

    def expiring_counts(
        self, now: datetime, windows: Iterable[float], budget_s: float = 0.05
    ) -> dict[float, int]:
        """Registrants whose certificate expires within each window of days (or expired)."""
        limits = {d: now.timestamp() + d * 86400.0 for d in windows}
        counts = dict.fromkeys(limits, 0)
        store, read, active = self.store(), self._read, self.active
        deadline = time.perf_counter() + budget_s
        for key, raw in list(store.items()):
            hit = read.get(key)
            if hit is None or hit[0] is not raw:
                if time.perf_counter() > deadline:
                    continue
                hit = read[key] = (raw, cert_not_after(raw), key_hash(key) % self.partitions)
            if hit[1] is None or (active is not None and hit[2] not in active):
                continue
            for d, limit in limits.items():
                counts[d] += hit[1] <= limit
        if len(read) > 2 * len(store) + 1024:  # keys gone from the store since
            self._read = {k: v for k, v in read.items() if k in store}
        return counts
