"""Trust anchors, intermediates, and certificate paths to them (21 CFR 1311.50).

Path validation is ``cryptography``'s RFC 5280 verifier
(``cryptography.x509.verification``) at the order's signing time, with the
webpki CA profile for CAs and any extensions allowed on purchaser
certificates (their DEA extensions are not webpki's business; a KeyUsage, when
present, must allow digitalSignature). A validated path is cached per signer
and carried certificates, so a repeat signer costs only a few datetime
comparisons; each order still checks that every certificate on the cached path
was valid at its own signing time.

Anchors and intermediates are read again when their directories change (looked at
at most once a second, like CRLs): DEA rotating its CSOS intermediate, or an anchor
withdrawn, takes effect without a restart. A change that cannot be loaded (a file half
copied, a directory emptied) keeps the previous set and says why in ``reload_error``.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from connectors.certcache import CertInfo, cert_info, listing, pem_blocks
from engine.records import Rejected, RejectReason

__all__ = ["TrustError", "Chain", "TrustStore", "load_certificates"]

log = logging.getLogger(__name__)


class TrustError(ValueError):
    """Trust material unusable; the message names the file."""


def load_certificates(directory: Path) -> list[CertInfo]:
    """Every certificate in PEM or DER files directly in ``directory``."""
    if not directory.is_dir():
        raise TrustError(f"certificate directory {directory} does not exist")
    out: list[CertInfo] = []
    for path in sorted(p for p in directory.iterdir() if p.is_file()):
        if path.name.startswith("."):
            continue
        data = path.read_bytes()
        try:
            if b"-----BEGIN" in data:
                ders = [der for _, der in pem_blocks(data, b"CERTIFICATE")]
                if not ders or data.count(b"-----BEGIN") != len(ders):
                    # a file half copied, or a key or CRL in the wrong place
                    raise ValueError("a PEM block that is not a complete CERTIFICATE")
            else:
                ders = [data]
            out.extend(cert_info(der) for der in ders)
        except Exception as exc:
            raise TrustError(f"{path}: not a PEM or DER certificate ({exc})") from None
    return out


def _ee_key_usage(policy, cert, ku) -> None:
    if ku is not None and not ku.digital_signature:
        raise ValueError("KeyUsage lacks digitalSignature")


_EE_POLICY = ExtensionPolicy.permit_all().may_be_present(
    x509.KeyUsage, Criticality.AGNOSTIC, _ee_key_usage
)
_CA_POLICY = ExtensionPolicy.webpki_defaults_ca()


@dataclass(frozen=True, slots=True)
class Chain:
    """A validated path: the signer first, the trust anchor last."""

    certs: tuple[CertInfo, ...]
    valid_from: datetime = field(init=False)  # latest notBefore on the path
    valid_to: datetime = field(init=False)  # earliest notAfter on the path

    def __post_init__(self) -> None:
        object.__setattr__(self, "valid_from", max(c.not_before for c in self.certs))
        object.__setattr__(self, "valid_to", min(c.not_after for c in self.certs))

    def check_time(self, at: datetime) -> None:
        """CERT_EXPIRED unless every certificate on the path was valid at ``at``."""
        if self.valid_from <= at <= self.valid_to:
            return
        for i, info in enumerate(self.certs):
            if not info.not_before <= at <= info.not_after:
                who = "signer certificate" if i == 0 else f"CA {info.cert.subject.rfc4514_string()}"
                raise Rejected(
                    RejectReason.CERT_EXPIRED,
                    f"{who} valid {info.not_before.isoformat()} to "
                    f"{info.not_after.isoformat()}, order signed {at.isoformat()}",
                )


class TrustStore:
    """Anchors and intermediates, reloaded when their directories change; validated paths
    cached by signer until then."""

    def __init__(
        self,
        anchors: list[CertInfo],
        intermediates: list[CertInfo],
        cache: int = 65536,
        dirs: tuple[Path | None, Path | None] = (None, None),
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._cache: OrderedDict[tuple, Chain | Rejected] = OrderedDict()
        self._cache_size = cache
        self._use(anchors, intermediates)
        self.hits = 0
        self.misses = 0
        self.dirs = dirs  # (trust_dir, intermediates_dir) read again on change; None: never
        self.interval_s = interval_s
        self.clock = clock
        self.reloads = 0
        self.reload_error: str | None = None  # the last change could not be loaded
        self._next_check = clock() + interval_s
        self._state = self._scan() if any(dirs) else ()
        self._pending = self._state  # the last listing seen

    @classmethod
    def from_dirs(
        cls, trust_dir: Path | None, intermediates_dir: Path | None, **kwargs
    ) -> TrustStore:
        anchors, inter = _load_dirs(trust_dir, intermediates_dir)
        return cls(anchors, inter, dirs=(trust_dir, intermediates_dir), **kwargs)

    def _use(self, anchors: list[CertInfo], intermediates: list[CertInfo]) -> None:
        self.anchors = anchors
        self.intermediates = intermediates
        self._store = Store([a.cert for a in anchors]) if anchors else None
        self._cache.clear()  # paths validated against the old set

    def _scan(self) -> tuple:
        return tuple(listing(d) for d in self.dirs if d is not None)

    def maybe_reload(self) -> bool:
        """Load the directories again once a change has stood still for one interval (a
        copy in progress is not loaded half done); looks at most once per interval, and
        retries a change that did not load. True when a new set is in use."""
        now = self.clock()
        if now < self._next_check or not any(self.dirs):
            return False
        self._next_check = now + self.interval_s
        try:
            state = self._scan()
            if state == self._state and self.reload_error is None:
                return False
            if state != self._pending:
                self._pending = state  # changed since the last look: wait until it settles
                return False
            anchors, inter = _load_dirs(*self.dirs)
        except (OSError, TrustError) as exc:
            if str(exc) != self.reload_error:  # logged once per distinct failure
                log.error(
                    "trust material changed but cannot be loaded (%s); the previous %d "
                    "anchors and %d intermediates stay in use",
                    exc,
                    len(self.anchors),
                    len(self.intermediates),
                )
            self.reload_error = str(exc)
            return False
        self._state = state
        self._use(anchors, inter)
        self.reloads += 1
        self.reload_error = None
        log.warning(
            "trust material reloaded: %d anchors, %d intermediates", len(anchors), len(inter)
        )
        return True

    @property
    def cas(self) -> list[CertInfo]:
        """Every CA certificate known from configuration (CRL issuers are found here)."""
        return self.anchors + self.intermediates

    def chain(self, signer: CertInfo, carried: tuple[CertInfo, ...], at: datetime) -> Chain:
        """The validated path for ``signer`` as of ``at``; raises ``Rejected``."""
        if self._store is None:
            raise Rejected(
                RejectReason.UNTRUSTED_CHAIN, "no trust anchors configured (verification.trust_dir)"
            )
        # CertInfo objects are unique per DER (certcache), so identity is the key:
        # hashing two object ids is cheaper than building a tuple of fingerprints.
        key = (signer, tuple(carried))  # tuple() of a tuple is the same object
        found = self._cache.get(key)
        if found is None:
            self.misses += 1
            found = self._validate(signer, carried, at)
            self._cache[key] = found
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        else:
            self.hits += 1
            self._cache.move_to_end(key)
        if isinstance(found, Rejected):
            raise Rejected(found.reason, found.detail)
        found.check_time(at)
        return found

    def _validate(
        self, signer: CertInfo, carried: tuple[CertInfo, ...], at: datetime
    ) -> Chain | Rejected:
        """A Chain or a cacheable rejection; time failures raise and are not cached."""
        Chain((signer,)).check_time(at)
        verifier = (
            PolicyBuilder()
            .store(self._store)
            .time(at)
            .max_chain_depth(4)
            .extension_policies(ca_policy=_CA_POLICY, ee_policy=_EE_POLICY)
            .build_client_verifier()
        )
        pool = [c.cert for c in carried] + [c.cert for c in self.intermediates]
        try:
            verified = verifier.verify(signer.cert, pool)
        except VerificationError as exc:
            text = str(exc).split(" (encountered", 1)[0]
            if "not valid at validation time" in text:
                raise Rejected(RejectReason.CERT_EXPIRED, f"a CA on the path: {text}") from None
            return Rejected(RejectReason.UNTRUSTED_CHAIN, text)
        except Exception as exc:  # e.g. a certificate the verifier cannot represent
            return Rejected(RejectReason.UNTRUSTED_CHAIN, f"path validation: {exc}")
        by_der = {c.der: c for c in (*carried, *self.intermediates, *self.anchors)}
        der = [c.public_bytes(serialization.Encoding.DER) for c in verified.chain[1:]]
        return Chain((signer, *(by_der.get(d) or cert_info(d) for d in der)))


def _load_dirs(
    trust_dir: Path | None, intermediates_dir: Path | None
) -> tuple[list[CertInfo], list[CertInfo]]:
    anchors = load_certificates(trust_dir) if trust_dir else []
    if trust_dir and not anchors:
        raise TrustError(f"trust directory {trust_dir} holds no certificate")
    inter = load_certificates(intermediates_dir) if intermediates_dir else []
    return anchors, inter
