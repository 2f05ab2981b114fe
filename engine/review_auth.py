"""Who sent an officer's review: its signature and certificate, when reviews are signed.

A ``cleared`` review ends a held order's case, so its repeats are no longer held
(``engine.review``): whoever can write to the reviews topic can release. Kafka ACLs limit
who writes; a signature proves, to an investigator and from the record alone, that the
case-management system (or the officer) sent it. Reviews are signed like CSOS orders
(DESIGN.md 3.2): the review JSON as CMS SignedData (``openssl cms -sign``; DER or PEM) or
the JSON envelope. The signer's certificate must chain to a CA in ``[reviews] trust_dir``
at the review's ``reviewed_at``, must not be revoked before it when ``[reviews] crl_dir``
holds the CA's CRL, must carry the extended key usage ``signer_eku`` when one is set,
and must be one of ``allowed_signers`` when that list is set; its
subject, serial and issuer go into the review's record. With ``require_signature = true``
an unsigned review is rejected (``bad_signature``).

>>> auth = ReviewAuthenticator(None, require_signature=False)
>>> review, signer = auth.open(b'{"order_number": "25X00A123", "purchaser_dea": '
...     b'"AB1234563", "outcome": "cleared", "reviewed_at": "2025-06-03T14:00:00Z", '
...     b'"reviewer": "officer-17"}')
>>> review.outcome, signer
('cleared', None)
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509

from connectors.certcache import pem_blocks
from connectors.cms import parse_cms
from connectors.crls import CrlStore
from connectors.envelope import open_envelope
from connectors.identifiers import dea_number_valid, order_number_valid
from connectors.trust import TrustError, TrustStore
from engine.records import Rejected, RejectReason
from engine.review import Review, parse_review
from engine.revocation import RevocationCheck

__all__ = ["ReviewAuthenticator", "ReviewSigner", "MAX_SIGNED_REVIEW_BYTES"]

MAX_SIGNED_REVIEW_BYTES = 64 * 1024  # the review (16 KiB at most) plus certificates


@dataclass(frozen=True, slots=True)
class ReviewSigner:
    """The certificate a review was signed with (public PKI data, no key material)."""

    subject: str  # RFC 4514
    serial: str  # hex, unique per issuer
    issuer: str  # RFC 4514

    def to_dict(self) -> dict[str, str]:
        return {"subject": self.subject, "serial": self.serial, "issuer": self.issuer}


class ReviewAuthenticator:
    """Opens a message of the reviews topic: the review, and its signer when signed."""

    def __init__(
        self,
        trust: TrustStore | None,
        require_signature: bool = False,
        crls: CrlStore | None = None,
        allowed_signers: tuple[str, ...] = (),
        signer_eku: str = "",
    ) -> None:
        self.trust = trust
        self.require_signature = require_signature
        self.stats: dict[str, int] = {}
        self.revocation = RevocationCheck(crls, "reject", self.stats) if crls else None
        self.allowed_signers = frozenset(allowed_signers)  # RFC 4514 subjects; empty: any
        # an extended key usage the signer must carry, so that of the certificates under
        # the reviews CA only those issued for signing reviews can ("": none required)
        self.signer_eku = x509.ObjectIdentifier(signer_eku) if signer_eku else None
        # the last message opened (its signature verified): the stream opens a review to
        # route it to its purchaser's partition, then again to apply it
        self._opened: tuple | None = None

    @classmethod
    def from_dirs(
        cls,
        trust_dir: Path | None,
        require_signature: bool,
        crl_dir: Path | None = None,
        allowed_signers: tuple[str, ...] = (),
        signer_eku: str = "",
    ) -> ReviewAuthenticator:
        """``trust_dir`` None: signed reviews cannot be checked (and are rejected)."""
        try:
            trust = TrustStore.from_dirs(trust_dir, None) if trust_dir else None
        except TrustError as exc:
            raise ValueError(f"reviews.trust_dir: {exc}") from None
        try:
            crls = CrlStore(crl_dir) if crl_dir else None
        except ValueError as exc:
            raise ValueError(f"reviews.crl_dir: {exc}") from None
        return cls(trust, require_signature, crls, allowed_signers, signer_eku)

    def open(
        self, raw: bytes, received_at: datetime | None = None
    ) -> tuple[Review, ReviewSigner | None]:
        """The review and who signed it (None: unsigned); ``Rejected`` with the reason.

        The signer's certificate must be valid when the review says it was made and, given
        ``received_at`` (live reviews), when it arrived: a review dated back into an
        expired certificate's life is refused on the stream.
        """
        if not _signed(raw):
            review = parse_review(raw)
            if self.require_signature:
                raise _unsigned(review)
            return review, None
        if len(raw) > MAX_SIGNED_REVIEW_BYTES:
            raise Rejected(RejectReason.TOO_LARGE, f"signed review message of {len(raw)} bytes "
                           f"exceeds {MAX_SIGNED_REVIEW_BYTES}")  # fmt: skip
        opened = self._opened
        if opened is not None and opened[0] is raw:  # the stream routes, then applies
            message, review = opened[1], opened[2]
        else:
            try:
                message = open_envelope(raw, MAX_SIGNED_REVIEW_BYTES)
            except Rejected as exc:  # name the review's order for reconciling, if readable
                raise _with_hints(exc, raw) from None
            review = parse_review(message.payload)
            self._opened = (raw, message, review)
        if message.signer_info is None:  # an envelope without a signature
            if self.require_signature:
                raise _unsigned(review)
            return review, None
        if self.trust is None:
            raise _with(
                review,
                Rejected(
                    RejectReason.UNTRUSTED_CHAIN,
                    "a signed review, but reviews.trust_dir names no CA to check it against",
                ),
            )
        self.trust.maybe_reload()
        try:
            chain = self.trust.chain(message.signer_info, message.chain_info,
                                     datetime.fromtimestamp(review.reviewed_ts, UTC))  # fmt: skip
            if received_at is not None:
                chain.check_time(received_at)
            if self.revocation is not None:
                # revoked before the review arrived (live) or was made (history): a signer
                # picks reviewed_at, so a live review is judged at its receipt
                made = datetime.fromtimestamp(review.reviewed_ts, UTC)
                self.revocation.check(chain, received_at or made, received_at or made)
            subject = chain.certs[0].cert.subject.rfc4514_string()
            if self.allowed_signers and subject not in self.allowed_signers:
                raise Rejected(
                    RejectReason.UNTRUSTED_CHAIN,
                    f"signer {subject} is not in reviews.allowed_signers",
                )
            if self.signer_eku is not None and not _has_eku(chain.certs[0].cert, self.signer_eku):
                raise Rejected(
                    RejectReason.UNTRUSTED_CHAIN,
                    f"signer {subject} lacks extended key usage {self.signer_eku.dotted_string} "
                    "(reviews.signer_eku)",
                )
        except Rejected as exc:
            raise _with(review, exc) from None
        cert = chain.certs[0].cert
        return review, ReviewSigner(
            cert.subject.rfc4514_string(), f"{cert.serial_number:x}", cert.issuer.rfc4514_string()
        )


def _has_eku(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> bool:
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return oid in usages


def _signed(raw: bytes) -> bool:
    """CMS (DER or PEM) or a JSON envelope (payload and signature); plain JSON is an unsigned review
    (and anything else goes to ``parse_review``, which names what is wrong)."""
    if not raw:
        return False
    if raw[0] == 0x30:
        return True
    text = raw.lstrip()
    if text.startswith(b"-----BEGIN"):
        return True
    if text[:1] != b"{":
        return False
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(data, dict) and "payload" in data and "signature" in data


def _unsigned(review: Review) -> Rejected:
    return _with(
        review,
        Rejected(
            RejectReason.BAD_SIGNATURE,
            "unsigned review: reviews.require_signature is on (sign it as CMS or a JSON envelope)",
        ),
    )


def _with(review: Review, exc: Rejected) -> Rejected:
    """The rejection with the review's order and purchaser, for the audit record."""
    exc.order_number = exc.order_number or review.order_number
    exc.purchaser_dea = exc.purchaser_dea or review.purchaser_dea
    return exc


def _with_hints(exc: Rejected, raw: bytes) -> Rejected:
    """A rejected envelope with the order and purchaser its (unverified) review names."""
    try:
        if raw[:1] == b"{":
            payload = base64.b64decode(json.loads(raw)["payload"], validate=True)
        else:
            der = raw if raw[:1] == b"\x30" else pem_blocks(raw)[0][1]
            payload = parse_cms(der).content
        data = json.loads(payload)
    except Exception:
        return exc  # nothing readable: the rejection carries the message's digest only
    number, dea = data.get("order_number"), data.get("purchaser_dea")
    if exc.order_number is None and isinstance(number, str) and order_number_valid(number):
        exc.order_number = number
    if exc.purchaser_dea is None and isinstance(dea, str) and dea_number_valid(dea):
        exc.purchaser_dea = dea
    return exc
