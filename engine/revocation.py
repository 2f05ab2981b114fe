"""Revocation of a validated certificate path, as of the order's signing date.

21 CFR 1311.50: the certificate must not have been revoked before the order
was signed, judged from a CRL that may be cached until its nextUpdate. The
signer's CRL is required (missing or stale: ``crl_stale``, or a counted
warning when ``stale_crl = "warn"``); a CA's own CRL is checked when present.
The CRL for each certificate of a path is looked up once per path and CRL
reload; a path none of whose certificates is listed then costs one comparison
per order until the earliest nextUpdate (see ``_plan``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from connectors.crls import CrlStore
from connectors.trust import Chain
from engine.records import Rejected, RejectReason

__all__ = ["RevocationCheck"]

_FOREVER = datetime.max.replace(tzinfo=UTC)  # a CRL without nextUpdate


class RevocationCheck:
    """Checks paths against a ``CrlStore``; counts warnings into a shared stats dict."""

    def __init__(self, crls: CrlStore | None, stale_policy: str, stats: dict[str, int]) -> None:
        self.crls = crls
        self.stale_policy = stale_policy
        self.stats = stats
        self._by_path: dict[int, tuple] = {}

    def _count(self, key: str) -> None:
        self.stats[key] = self.stats.get(key, 0) + 1

    def _plan(self, chain: Chain) -> tuple:
        """(path, reload count, CRL per certificate, clean-until) cached per path and reload.

        ``clean_until`` is set when every check would pass silently: the signer's
        CRL is present and no certificate on the path is on its CRL. Until the
        earliest nextUpdate of those CRLs an order's check is then one comparison;
        a reload (new CRL files) changes the reload count and so rebuilds the plan.
        """
        crls = self.crls
        cached = self._by_path.get(id(chain))
        if cached is None or cached[0] is not chain or cached[1] != crls.reloads:
            entries = tuple(
                crls.for_issuer(info.issuer_der, chain.certs[i + 1])
                for i, info in enumerate(chain.certs[:-1])
            )
            clean_until = None
            listed = any(
                e is not None and chain.certs[i].serial in e.revoked for i, e in enumerate(entries)
            )
            if entries and entries[0] is not None and not listed:
                nexts = [e.next_update for e in entries if e is not None]
                clean_until = min((n for n in nexts if n is not None), default=_FOREVER)
            if len(self._by_path) > 65536:
                self._by_path.clear()
            cached = self._by_path[id(chain)] = (chain, crls.reloads, entries, clean_until)
        return cached

    def check(self, chain: Chain, signed_at: datetime, ref: datetime) -> None:
        """Raise CERT_REVOKED or CRL_STALE; ``ref`` is the time CRL freshness is judged at."""
        self.crls.maybe_reload()
        plan = self._plan(chain)
        if plan[3] is not None and ref <= plan[3]:
            return
        for i, entry in enumerate(plan[2]):
            if entry is None or entry.stale(ref):
                if i > 0:  # a CA's own CRL is checked when present, not required
                    continue
                what = "no CRL" if entry is None else f"CRL past nextUpdate {entry.next_update}"
                detail = f"{what} for issuer {chain.certs[1].cert.subject.rfc4514_string()}"
                if self.stale_policy == "reject":
                    raise Rejected(RejectReason.CRL_STALE, detail)
                self._count("crl_stale_warnings")
                if entry is None:
                    continue
            info = chain.certs[i]
            when = entry.revoked.get(info.serial)
            if when is None:
                continue
            if when <= signed_at:
                who = "signer certificate" if i == 0 else "CA certificate"
                raise Rejected(
                    RejectReason.CERT_REVOKED,
                    f"{who} serial {info.serial:x} revoked {when.isoformat()}, "
                    f"before the message was signed {signed_at.isoformat()}",
                )
            self._count("revoked_after_signing")
