"""Watch purchasers' certificate expiry dates, to warn before orders start failing.

A CSOS certificate expires with the DEA registration, and DEA advises renewing
45 days ahead (DOMAIN.md section 2). From the moment it lapses every order
from that purchaser is rejected ``cert_expired``, so the supplier wants to
know first. The watch keeps the latest ``not_after`` per purchaser, keyed by a
salted hash of the DEA number (a metrics process need not hold identities);
``keep_ids=True`` also keeps the DEA number for a report.

>>> from datetime import UTC, datetime, timedelta
>>> now = datetime(2025, 3, 1, tzinfo=UTC)
>>> w = CertExpiryWatch(keep_ids=True)
>>> w.observe("BP1234563", now + timedelta(days=10), "1a")
>>> w.observe("AB1234563", now + timedelta(days=400), "2b")
>>> w.expiring_count(now, 45), len(w)
(1, 2)
>>> [(e.purchaser_dea, e.days_left) for e in w.expiring(now, 45)]
[('BP1234563', 10.0)]
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

__all__ = ["CertExpiryWatch", "Expiring"]


@dataclass(frozen=True, slots=True)
class Expiring:
    purchaser_dea: str | None
    cert_serial: str | None
    not_after: datetime
    days_left: float

    def to_dict(self) -> dict:
        return {
            "purchaser_dea": self.purchaser_dea,
            "cert_serial": self.cert_serial,
            "not_after": self.not_after.isoformat().replace("+00:00", "Z"),
            "days_left": round(self.days_left, 2),
        }


class CertExpiryWatch:
    """Latest certificate ``not_after`` per purchaser; counts those expiring soon."""

    def __init__(self, keep_ids: bool = False, salt: bytes | None = None) -> None:
        self.keep_ids = keep_ids
        self._salt = os.urandom(16) if salt is None else salt
        self._certs: dict[str, tuple[datetime, str | None, str | None]] = {}

    def __len__(self) -> int:
        return len(self._certs)

    def _key(self, purchaser_dea: str) -> str:
        return hashlib.sha256(self._salt + purchaser_dea.encode()).hexdigest()[:20]

    def observe(self, purchaser_dea: str, not_after: datetime | None, serial: str | None) -> None:
        """Record a verified order's certificate; a later ``not_after`` (a renewal) wins."""
        if not_after is None:  # paper orders carry no certificate
            return
        key = self._key(purchaser_dea)
        known = self._certs.get(key)
        if known is None or not_after > known[0]:
            label = purchaser_dea if self.keep_ids else None
            self._certs[key] = (not_after, serial, label)

    def observe_order(self, verified) -> None:
        """Convenience for ``engine.verify.VerifiedOrder``."""
        dea = verified.order.purchaser.dea_number
        self.observe(dea, verified.cert_not_after, verified.signer_serial)

    def expiring(self, now: datetime, days: float) -> list[Expiring]:
        """Certificates expiring within ``days`` of ``now`` (or already expired), soonest first."""
        out = []
        for not_after, serial, label in self._certs.values():
            left = (not_after - now).total_seconds() / 86400
            if left <= days:
                out.append(Expiring(label, serial, not_after, left))
        return sorted(out, key=lambda e: e.not_after)

    def expiring_count(self, now: datetime, days: float) -> int:
        """How many certificates expire within ``days`` (a gauge for the metrics layer)."""
        return len(self.expiring(now, days))

    def expiring_counts(self, now: datetime, windows: Iterable[float]) -> dict[float, int]:
        """``expiring_count`` per window (the interface ``engine.cert_census`` shares)."""
        return {d: self.expiring_count(now, d) for d in windows}
