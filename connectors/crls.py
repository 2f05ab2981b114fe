"""Certificate revocation lists from a directory, checked and reloaded while running.

A CRL is used only if its signature verifies against a configured CA whose
subject is the CRL's issuer. Dropping a new CRL file into ``crl_dir`` takes
effect without a restart: ``maybe_reload`` looks at the directory's file
names, sizes and mtimes at most once per ``interval_s`` (one ``scandir``) and
reloads everything when they changed. Per order the cost is a dict lookup.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509

from connectors.certcache import CertInfo, pem_blocks
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
        cas: list[CertInfo],
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise ValueError(f"CRL directory {self.directory} does not exist")
        self.cas = cas
        self.interval_s = interval_s
        self.clock = clock
        self.by_der: dict[bytes, CrlEntry] = {}
        self.by_name: dict[x509.Name, CrlEntry] = {}
        self.errors: list[str] = []
        self.reloads = 0
        self._state: tuple = ()
        self._next_check = 0.0
        self.maybe_reload(force=True)

    def _scan(self) -> tuple:
        with os.scandir(self.directory) as it:
            return tuple(
                sorted(
                    (e.name, e.stat().st_mtime_ns, e.stat().st_size)
                    for e in it
                    if e.is_file() and not e.name.startswith(".")
                )
            )

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
        by_der: dict[bytes, CrlEntry] = {}
        by_name: dict[x509.Name, CrlEntry] = {}
        errors: list[str] = []
        for path in paths:
            try:
                data = path.read_bytes()
                ders = (
                    [d for _, d in pem_blocks(data, b"X509 CRL")]
                    if b"-----BEGIN" in data
                    else [data]
                )
                for der in ders:
                    crl = x509.load_der_x509_crl(der)
                    entry = self._entry(crl, str(path))
                    key = crl_issuer_der(crl)
                    old = by_der.get(key)
                    if old is None or entry.this_update > old.this_update:
                        by_der[key] = by_name[entry.issuer] = entry
            except Exception as exc:  # one bad file must not hide the others
                errors.append(f"{path}: {type(exc).__name__}: {exc}")
        self.by_der, self.by_name, self.errors = by_der, by_name, errors

    def _entry(self, crl: x509.CertificateRevocationList, source: str) -> CrlEntry:
        issuers = [ca for ca in self.cas if ca.cert.subject == crl.issuer]
        if not any(crl.is_signature_valid(ca.public_key) for ca in issuers):
            raise ValueError(f"no configured CA named {crl.issuer.rfc4514_string()} signed it")
        return CrlEntry(
            issuer=crl.issuer,
            issuer_label=crl.issuer.rfc4514_string(),
            this_update=crl.last_update_utc,
            next_update=crl.next_update_utc,
            revoked={r.serial_number: r.revocation_date_utc for r in crl},
            source=source,
        )

    def for_issuer(
        self, issuer_der: bytes, issuer: x509.Certificate | None = None
    ) -> CrlEntry | None:
        """The CRL for certificates whose issuer field has these bytes (or that CA's name)."""
        entry = self.by_der.get(issuer_der)
        if entry is None and issuer is not None:
            entry = self.by_name.get(issuer.subject)
        return entry

    def ages(self, now: datetime) -> dict[str, float]:
        """Seconds since thisUpdate per CRL issuer (for a som_crl_age_seconds gauge)."""
        return {e.issuer_label: (now - e.this_update).total_seconds() for e in self.by_der.values()}
