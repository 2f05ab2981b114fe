"""The verify stage: raw message bytes -> ``VerifiedOrder`` or ``Rejected``.

Implements the supplier's checks of 21 CFR 1305.22 and 1311.50 that do not need
purchaser history: signature, chain, revocation, DEA extensions, supplier,
catalog and time rules. (Duplicate orders need history and live in the
profile stage.) Per-order work is one signature check plus dictionary
lookups: certificates, chains and CRLs are cached, and no file is read per
order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from config.settings import VerificationSettings
from connectors.catalog import Catalog
from connectors.envelope import SignedMessage, open_envelope
from connectors.orders import Order, parse_order
from engine.records import Rejected, RejectReason, raw_sha256

__all__ = ["VerifiedOrder", "Verifier"]


@dataclass(frozen=True, slots=True)
class VerifiedOrder:
    """An order whose every pre-fill check passed."""

    order: Order
    kind: str  # cms | json | paper
    raw_sha256: str
    signer_serial: str | None
    cert_not_after: datetime | None


class Verifier:
    """Holds the trust material and settings; ``verify`` is the per-order call."""

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

    def resolve(self, relative: str) -> Path:
        """A configured path, relative to ``base_dir`` when one was given."""
        p = Path(relative).expanduser()
        if p.is_absolute() or self.base_dir is None:
            return p
        return self.base_dir / p

    def verify(self, raw: bytes, now: datetime | None = None) -> VerifiedOrder:
        """Every check, in the order a reviewer would expect; raises ``Rejected``.

        ``now=None`` judges time rules as of the order's signing time (replay of
        history); otherwise they are judged at ``now``.
        """
        try:
            result = self._verify(raw, now)
        except Rejected:
            self.stats["rejected"] += 1
            raise
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
            self._check(message, order, now)
        except Rejected as exc:
            exc.order_number = exc.order_number or order.order_number
            exc.purchaser_dea = exc.purchaser_dea or order.purchaser.dea_number
            raise
        signer = message.signer
        return VerifiedOrder(
            order=order,
            kind=message.kind,
            raw_sha256=raw_sha256(raw),
            signer_serial=f"{signer.serial_number:x}" if signer is not None else None,
            cert_not_after=signer.not_valid_after_utc if signer is not None else None,
        )

    def _check(self, message: SignedMessage, order: Order, now: datetime | None) -> None:
        s = self.settings
        if message.kind == "paper":
            if order.form != "dea222":
                raise Rejected(RejectReason.BAD_SIGNATURE, "unsigned CSOS order")
            if not s.allow_paper:
                raise Rejected(RejectReason.PAPER_NOT_ALLOWED, "paper DEA Form 222 orders are off")
        if s.supplier_dea and order.supplier.dea_number != s.supplier_dea.upper():
            raise Rejected(
                RejectReason.WRONG_SUPPLIER,
                f"order is addressed to supplier {order.supplier.dea_number}, we are "
                f"{s.supplier_dea.upper()}",
            )
        for line in order.lines:
            if self.catalog.get(line.ndc) is None:
                raise Rejected(
                    RejectReason.UNKNOWN_NDC,
                    f"line {line.line}: NDC {line.ndc} is not in the catalog",
                )
        if now is not None:
            now = now if now.tzinfo else now.replace(tzinfo=UTC)
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
