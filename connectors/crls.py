"""Certificate revocation lists from a directory, checked and reloaded while running.

A CRL is used only if its signature verifies against the issuing CA on the
order's validated certificate path (checked once per CRL and CA, then cached),
so intermediates carried in envelopes work as well as configured ones.
Dropping a new CRL file into ``crl_dir`` takes effect without a restart:
``maybe_reload`` looks at the directory's file names, sizes and mtimes at most
once per ``interval_s`` (one ``scandir``) and reloads everything when they
changed. Per order the cost is a dict lookup.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from cryptography import x509

from connectors.certcache import CertInfo, listing, pem_blocks
from connectors.der import elements, expect

__all__ = ["CrlEntry", "CrlStore", "crl_issuer_der"]


@dataclass(frozen=True, slots=True)
class CrlEntry:
    """One verified CRL, indexed for per-order lookups."""

    issuer: x509.Name
    issuer_label: str
    this_update: datetime
    next_update: datetime | None
    revoked: dict[int, datetime]  # serial -> revocation date
    source: str
    crl: x509.CertificateRevocationList
    checked: dict[str, bool] = field(default_factory=dict)  # CA fingerprint -> signature ok

    def signed_by(self, ca: CertInfo) -> bool:
        """Does ``ca``'s key verify this CRL? (cached per CA)"""
        ok = self.checked.get(ca.fingerprint)
        if ok is None:
            try:
                ok = self.crl.is_signature_valid(ca.public_key)
            except Exception:  # e.g. a key type the CRL's algorithm does not fit
                ok = False
            self.checked[ca.fingerprint] = ok
        return ok

    def stale(self, at: datetime) -> bool:
        """Past nextUpdate (a CRL may be cached until then, 1311.50)."""
        return self.next_update is not None and at > self.next_update


def crl_issuer_der(crl: x509.CertificateRevocationList) -> bytes:
    """Exact DER bytes of the CRL's issuer Name (to match certificates' issuer bytes)."""
    tbs = crl.tbs_certlist_bytes
    s, e = expect(tbs, 0, 0x30)
    fields = [(t, p, fe) for t, p, _, fe in elements(tbs, s, e)]
    if fields and fields[0][0] == 0x02:
        fields = fields[1:]
    return tbs[fields[1][1] : fields[1][2]]


class CrlStore:
    """Verified CRLs by issuer; reloads from ``directory`` when its files change."""

    def __init__(
        self,
        directory: Path,
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise ValueError(f"CRL directory {self.directory} does not exist")
        self.interval_s = interval_s
        self.clock = clock
        self.by_der: dict[bytes, list[CrlEntry]] = {}
        self.by_name: dict[x509.Name, list[CrlEntry]] = {}
        self.errors: list[str] = []
        self.reloads = 0
        self._state: tuple = ()
        self._next_check = 0.0
        self.maybe_reload(force=True)

    def _scan(self) -> tuple:
        return listing(self.directory)

    def maybe_reload(self, force: bool = False) -> bool:
        """Reload if the directory changed; looks at most once per interval. True if reloaded."""
        now = self.clock()
        if not force and now < self._next_check:
            return False
        self._next_check = now + self.interval_s
        try:
            state = self._scan()
        except OSError as exc:
            self.errors = [f"{self.directory}: {exc}"]
            return False
        if state == self._state and not force:
            return False
        self._state = state
        self._load([self.directory / name for name, _, _ in state])
        self.reloads += 1
        return True

    def _load(self, paths: list[Path]) -> None:
        by_der: dict[bytes, list[CrlEntry]] = {}
        by_name: dict[x509.Name, list[CrlEntry]] = {}
        errors: list[str] = []
        for path in paths:
            try:
                data = path.read_bytes()
                pem = b"-----BEGIN" in data
                ders = [d for _, d in pem_blocks(data, b"X509 CRL")] if pem else [data]
                for der in ders:
                    crl = x509.load_der_x509_crl(der)
                    entry = CrlEntry(
                        issuer=crl.issuer,
                        issuer_label=crl.issuer.rfc4514_string(),
                        this_update=crl.last_update_utc,
                        next_update=crl.next_update_utc,
                        revoked={r.serial_number: r.revocation_date_utc for r in crl},
                        source=str(path),
                        crl=crl,
                    )
                    by_der.setdefault(crl_issuer_der(crl), []).append(entry)
                    by_name.setdefault(crl.issuer, []).append(entry)
            except Exception as exc:  # one bad file must not hide the others
                errors.append(f"{path}: {type(exc).__name__}: {exc}")
        for entries in (*by_der.values(), *by_name.values()):
            entries.sort(key=lambda e: e.this_update, reverse=True)
        self.by_der, self.by_name, self.errors = by_der, by_name, errors

    def for_issuer(self, issuer_der: bytes, ca: CertInfo) -> CrlEntry | None:
        """The newest CRL whose issuer field has these bytes (or ``ca``'s name) signed by ``ca``."""
        entries = self.by_der.get(issuer_der)
        if entries is None:
            entries = self.by_name.get(ca.cert.subject, ())
        for entry in entries:
            if entry.signed_by(ca):
                return entry
        return None

    def ages(self, now: datetime) -> dict[str, float]:
        """Seconds since thisUpdate per CRL issuer (for a som_crl_age_seconds gauge)."""
        return {
            entries[0].issuer_label: (now - entries[0].this_update).total_seconds()
            for entries in self.by_der.values()
        }
