"""Parsed certificates cached by their DER bytes, and signature checks by OID.

The same few hundred thousand purchasers sign every order, so a certificate
is parsed once and then found by its bytes: the per-order cost of a repeat
signer is one signature check. All cryptography is ``cryptography``'s.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import warnings
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from connectors.der import elements, expect

__all__ = [
    "CertInfo", "cert_info", "cert_from_pem", "pem_blocks", "verify_signature", "DIGESTS",
    "listing",
]

DIGESTS: dict[str, type[hashes.HashAlgorithm]] = {
    "2.16.840.1.101.3.4.2.1": hashes.SHA256,
    "2.16.840.1.101.3.4.2.2": hashes.SHA384,
    "2.16.840.1.101.3.4.2.3": hashes.SHA512,
}
_RSA = {
    "1.2.840.113549.1.1.1",
    "1.2.840.113549.1.1.11",
    "1.2.840.113549.1.1.12",
    "1.2.840.113549.1.1.13",
}
_ECDSA = {"1.2.840.10045.2.1", "1.2.840.10045.4.3.2", "1.2.840.10045.4.3.3", "1.2.840.10045.4.3.4"}
_PEM_RE = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.S)


@dataclass(frozen=True, slots=True, eq=False)
class CertInfo:
    """A certificate and what matching and verifying need, computed once."""

    cert: x509.Certificate
    der: bytes
    issuer_der: bytes
    serial: int
    ski: bytes | None
    public_key: object
    fingerprint: str  # SHA-256 hex of the DER
    key_type: str  # "rsa" | "ec" | "other": decided once, not by isinstance per order
    not_before: datetime
    not_after: datetime

    @property
    def subject_serial(self) -> str:
        """The subject's serialNumber attribute (2.5.4.5), '' when absent."""
        attrs = self.cert.subject.get_attributes_for_oid(x509.NameOID.SERIAL_NUMBER)
        return str(attrs[0].value) if attrs else ""


@lru_cache(maxsize=16384)
def cert_info(der: bytes) -> CertInfo:
    """Parse once per distinct DER; raises ValueError on a bad certificate."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. a negative serial: refuse rather than warn
        cert = x509.load_der_x509_certificate(der)
        serial = cert.serial_number
    s, e = expect(der, 0, 0x30)
    ts, te = expect(der, s, 0x30, e)
    fields = [(t, p, fe) for t, p, _, fe in elements(der, ts, te)]
    if fields and fields[0][0] == 0xA0:
        fields = fields[1:]
    issuer_der = der[fields[2][1] : fields[2][2]]
    key = cert.public_key()
    try:
        ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        ski = None
    return CertInfo(
        cert=cert,
        der=der,
        issuer_der=issuer_der,
        serial=serial,
        ski=ski,
        public_key=key,
        fingerprint=hashlib.sha256(der).hexdigest(),
        key_type=_key_type(key),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
    )


def _key_type(key: object) -> str:
    if isinstance(key, rsa.RSAPublicKey):
        return "rsa"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "ec"
    return "other"


def pem_blocks(text: bytes, label: bytes | None = None) -> list[tuple[bytes, bytes]]:
    """(label, DER) for each PEM block in ``text``, optionally only one label."""
    out = []
    for m in _PEM_RE.finditer(text):
        if label is None or m.group(1) == label:
            out.append((m.group(1), base64.b64decode(b"".join(m.group(2).split()), validate=True)))
    return out


@lru_cache(maxsize=16384)
def cert_from_pem(text: str) -> CertInfo:
    """One PEM certificate (as carried in JSON envelopes), cached by its text."""
    blocks = pem_blocks(text.encode("ascii"), b"CERTIFICATE")
    if len(blocks) != 1:
        raise ValueError("expected exactly one PEM CERTIFICATE block")
    return cert_info(blocks[0][1])


def verify_signature(
    signer: CertInfo, signature: bytes, data: bytes, digest_oid: str, sig_oid: str
) -> None:
    """Raise InvalidSignature, or ValueError for an algorithm we do not accept.

    Accepts RSA PKCS#1 v1.5 and ECDSA with SHA-256/384/512 (SHA-1 is refused:
    CSOS moved to SHA-256 in 2014).
    """
    prehashed = _PREHASHED.get(digest_oid)
    if prehashed is None:
        raise ValueError(f"digest algorithm {digest_oid} is not accepted")
    if signer.key_type == "rsa" and sig_oid in _RSA:
        digest = _HASHLIB[digest_oid](data).digest()
        signer.public_key.verify(signature, digest, _PKCS1, prehashed)
    elif signer.key_type == "ec" and sig_oid in _ECDSA:
        digest = _HASHLIB[digest_oid](data).digest()
        signer.public_key.verify(signature, digest, ec.ECDSA(prehashed))
    else:
        raise ValueError(f"signature algorithm {sig_oid} does not fit the signer's key")


_PKCS1 = padding.PKCS1v15()
# hashlib's digest handed over as Prehashed: measured 0.3 us per RSA-2048 check
# cheaper than letting cryptography set up its own hash context for ~100 bytes.
_PREHASHED = {oid: utils.Prehashed(cls()) for oid, cls in DIGESTS.items()}
_HASHLIB = {oid: getattr(hashlib, cls.name) for oid, cls in DIGESTS.items()}


def listing(directory: str | os.PathLike) -> tuple:
    """(name, mtime, size) of the files of a PKI directory (dot files left out): what the
    CRL and trust stores compare to see a change without reading the files."""
    with os.scandir(directory) as it:
        return tuple(sorted(
            (e.name, e.stat().st_mtime_ns, e.stat().st_size)
            for e in it if e.is_file() and not e.name.startswith(".")
        ))  # fmt: skip
