"""The verify stage: raw message bytes -> ``VerifiedOrder`` or ``Rejected``.

Implements the supplier's checks of 21 CFR 1305.22 and 1311.50 that need no
purchaser history, in the order a reviewer reads them: size, envelope and
signature, order fields, paper rules, order age, certificate path at the
signing date, revocation before the signing date, the DEA number, ship-to
address and schedules in the certificate, supplier, catalog. (Duplicate orders need history
and live in the profile stage.) Per order the work is one signature check and
dictionary lookups: certificates, paths, extensions and CRLs are cached, and the
only file-system call is a CRL-directory ``scandir`` at most once a second.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from config.settings import ConfigError, VerificationSettings
from connectors.catalog import Catalog
from connectors.certcache import CertInfo
from connectors.crls import CrlStore
from connectors.dea_ext import DeaExtensions, dea_matches, read_extensions, schedule_authorized
from connectors.envelope import SignedMessage, open_envelope
from connectors.fastinit import builder
from connectors.orders import Order, parse_order
from connectors.postal import same_address
from connectors.trust import Chain, TrustError, TrustStore
from engine.records import Rejected, RejectReason, raw_sha256
from engine.revocation import RevocationCheck

__all__ = ["VerifiedOrder", "Verifier"]


@dataclass(frozen=True, slots=True)
class VerifiedOrder:
    """An order whose every pre-fill check passed."""

    order: Order
    kind: str  # cms | json | paper
    raw_sha256: str
    signer_serial: str | None
    cert_not_after: datetime | None
    # the ship-to check: matched | not_stated (no address on the order, so it ships to the
    # registered one) | not_in_certificate | unreadable (the extension is there, its value
    # is not text) | not_checked (ship_to_match off) | None (a paper order)
    ship_to: str | None = None


_verified = builder(VerifiedOrder)  # every field, in order


class _SerialHex(dict):
    """Signer certificate -> serial number in hex, formatted once per certificate."""

    def __missing__(self, info: CertInfo) -> str:
        if len(self) > 65536:
            self.clear()
        text = self[info] = f"{info.serial:x}"
        return text


class Verifier:
    """Holds trust material and settings; ``verify`` is the per-order call.

    ``stats`` holds counters a metrics layer can export (verified, rejected,
    per-reason ``rejected.<reason>``, chain cache hits/misses, CRL warnings).
    """

    def __init__(
        self,
        settings: VerificationSettings,
        catalog: Catalog,
        base_dir: Path | None = None,
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.base_dir = Path(base_dir) if base_dir is not None else None
        self.stats: dict[str, int] = {"verified": 0, "rejected": 0}
        self._skew = timedelta(seconds=settings.max_future_skew_s)
        self._max_age = timedelta(days=settings.order_max_age_days)
        self._ext: dict[str, DeaExtensions] = {}
        self._ship_to: dict[tuple[str, str], bool] = {}  # (stated, registered) -> same place
        self._serials = _SerialHex()
        try:
            self.trust = TrustStore.from_dirs(
                self.resolve(settings.trust_dir), self.resolve(settings.intermediates_dir)
            )
            crl_dir = self.resolve(settings.crl_dir)
            self.crls = CrlStore(crl_dir) if crl_dir else None
            self.revocation = RevocationCheck(self.crls, settings.stale_crl, self.stats)
        except (TrustError, ValueError) as exc:
            raise ConfigError(f"verification: {exc}") from None

    def resolve(self, relative: str) -> Path | None:
        """A configured path, relative to ``base_dir`` when one was given; None if unset."""
        if not relative:
            return None
        p = Path(relative).expanduser()
        if p.is_absolute() or self.base_dir is None:
            return p
        return self.base_dir / p

    def _count(self, key: str) -> None:
        self.stats[key] = self.stats.get(key, 0) + 1

    def verify(self, raw: bytes, now: datetime | None = None) -> VerifiedOrder:
        """Every check; raises ``Rejected`` with order number and purchaser where known.

        ``now=None`` judges time rules as of the order's signing time (replay of
        history); otherwise order age and CRL freshness are judged at ``now``.
        Certificate validity and revocation are always judged at the signing date.
        """
        try:
            result = self._verify(raw, now)
        except Rejected as exc:
            self.stats["rejected"] += 1
            self._count(f"rejected.{exc.reason}")
            raise
        except Exception as exc:  # a bug must reject one message, not stop the worker
            self.stats["rejected"] += 1
            self._count("internal_errors")
            raise Rejected(
                RejectReason.MALFORMED, f"verification failed unexpectedly: {type(exc).__name__}"
            ) from exc
        self.stats["verified"] += 1
        return result

    def _verify(self, raw: bytes, now: datetime | None) -> VerifiedOrder:
        if len(raw) > self.settings.max_message_bytes:
            raise Rejected(
                RejectReason.TOO_LARGE,
                f"message is {len(raw)} bytes, limit {self.settings.max_message_bytes}",
            )
        message = open_envelope(raw)
        order = parse_order(message.payload)
        try:
            ship_to = self._check(message, order, now)
        except Rejected as exc:
            exc.order_number = exc.order_number or order.order_number
            exc.purchaser_dea = exc.purchaser_dea or order.purchaser.dea_number
            raise
        info = message.signer_info
        if info is None:
            return _verified(order, message.kind, raw_sha256(raw), None, None, None)
        return _verified(
            order, message.kind, raw_sha256(raw), self._serials[info], info.not_after, ship_to
        )

    def _check(self, message: SignedMessage, order: Order, now: datetime | None) -> str | None:
        """Every check; returns the ship-to outcome (None for a paper order)."""
        s = self.settings
        if message.kind == "paper":
            if order.form != "dea222":
                raise Rejected(RejectReason.BAD_SIGNATURE, "unsigned CSOS order")
            if not s.allow_paper:
                raise Rejected(RejectReason.PAPER_NOT_ALLOWED, "paper DEA Form 222 orders are off")
        if now is not None:
            self._check_age(order, now if now.tzinfo else now.replace(tzinfo=UTC))
        ext = ship_to = None
        if message.signer_info is not None:
            self.check_signer(message, order.signed_at, now)
            ext = self._extensions(message)
            self._check_extensions(ext, order)
            ship_to = self._check_ship_to(ext, order)
        if s.supplier_dea and order.supplier.dea_number != s.supplier_dea.upper():
            raise Rejected(
                RejectReason.WRONG_SUPPLIER,
                f"order is addressed to supplier {order.supplier.dea_number}, we are "
                f"{s.supplier_dea.upper()}",
            )
        lookup = self.catalog.get
        found = []
        for line in order.lines:
            product = lookup(line.ndc)
            if product is None:
                raise Rejected(
                    RejectReason.UNKNOWN_NDC,
                    f"line {line.line}: NDC {line.ndc} is not in the catalog",
                )
            found.append(product)
        if ext is not None:
            self._check_schedules(ext, order, found)
        return ship_to

    def check_signer(
        self, message: SignedMessage, signed_at: datetime, now: datetime | None = None
    ) -> Chain | None:
        """Path to a trust anchor valid at ``signed_at``, and no revocation before it.

        Returns the validated path (None when ``require_chain`` is off).
        """
        if not self.settings.require_chain:
            self._count("chain_unchecked")
            return None
        self.trust.maybe_reload()  # a rotated intermediate or a withdrawn anchor, live
        chain = self.trust.chain(message.signer_info, message.chain_info, signed_at)
        if self.crls is None:
            self._count("revocation_unchecked")
        else:
            self.revocation.check(chain, signed_at, now or signed_at)
        return chain

    def _check_age(self, order: Order, now: datetime) -> None:
        s = self.settings
        if order.signed_at > now + self._skew:
            raise Rejected(
                RejectReason.FUTURE_DATED,
                f"signed_at {order.signed_at.isoformat()} is after {now.isoformat()} "
                f"plus {s.max_future_skew_s:g} s clock skew",
            )
        if now - order.signed_at > self._max_age:
            raise Rejected(
                RejectReason.ORDER_EXPIRED,
                f"signed_at {order.signed_at.isoformat()} is more than "
                f"{s.order_max_age_days:g} days before {now.isoformat()}",
            )

    def _extensions(self, message: SignedMessage) -> DeaExtensions:
        info = message.signer_info
        ext = self._ext.get(info.fingerprint)
        if ext is None:
            if len(self._ext) > 65536:
                self._ext.clear()
            ext = self._ext[info.fingerprint] = read_extensions(info.cert)
        return ext

    def _check_extensions(self, ext: DeaExtensions, order: Order) -> None:
        rule = self.settings.dea_match
        if not dea_matches(order.purchaser.dea_number, ext.dea_value, ext.subject_serial, rule):
            shown = "absent or unreadable" if ext.dea_value is None else repr(ext.dea_value)
            raise Rejected(
                RejectReason.DEA_MISMATCH,
                f"certificate DEA extension {shown} does not match purchaser "
                f"{order.purchaser.dea_number} (rule {rule})",
            )

    def _check_ship_to(self, ext: DeaExtensions, order: Order) -> str:
        """The order ships to the certificate's registered location (one per location)."""
        s = self.settings
        if s.ship_to_match == "off":
            return "not_checked"
        if ext.address is None:
            what = "cannot read its" if ext.address_present else "has no"
            if s.ship_to_required:
                raise Rejected(
                    RejectReason.SHIP_TO_MISMATCH,
                    f"the signing certificate {what} postal address extension "
                    "(2.16.840.1.101.3.5.6), so the ship-to cannot be checked "
                    "([verification] ship_to_required = true)",
                )
            return "unreadable" if ext.address_present else "not_in_certificate"
        stated = order.purchaser.address
        if not stated.strip():
            return "not_stated"
        pair = (stated, ext.address)
        same = self._ship_to.get(pair)
        if same is None:  # a registrant writes its address the same way on every order
            if len(self._ship_to) > 65536:
                self._ship_to.clear()
            same = self._ship_to[pair] = same_address(stated, ext.address, s.ship_to_match)
        if not same:
            raise Rejected(
                RejectReason.SHIP_TO_MISMATCH,
                f"purchaser address {stated!r} is not the certificate's registered location "
                f"{ext.address!r} (rule {s.ship_to_match}); an order ships only to the "
                f"location its certificate was issued for",
            )
        return "matched"

    def _check_schedules(self, ext: DeaExtensions, order: Order, products: list) -> None:
        schedules = ext.schedules
        for line, product in zip(order.lines, products, strict=True):
            if schedules is None or not schedule_authorized(product.schedule, schedules):
                held = "none (extension absent)" if schedules is None else sorted(schedules)
                raise Rejected(
                    RejectReason.SCHEDULE_NOT_AUTHORIZED,
                    f"line {line.line}: NDC {line.ndc} is schedule {product.schedule}; "
                    f"certificate authorises {held}",
                )

    def crl_ages(self, now: datetime | None = None) -> dict[str, float]:
        """Seconds since each CRL's thisUpdate, by issuer (empty without crl_dir)."""
        if self.crls is None:
            return {}
        return self.crls.ages(now or datetime.now(UTC))

    @property
    def chain_cache(self) -> dict[str, int]:
        return {"hits": self.trust.hits, "misses": self.trust.misses}
