"""A test PKI shaped like DEA's CSOS hierarchy: root CA, CSOS sub CA, registrants.

Demos, synthetic feeds and tests need certificates that carry the DEA
extensions (DOMAIN.md section 2) without DEA's real CA. Everything here is
named "som TEST" so it can never be mistaken for the production hierarchy.

>>> from datetime import datetime, UTC
>>> t0, t1 = datetime(2025, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)
>>> pki = DemoPKI.create(t0, t1, seed=1)
>>> who = pki.issue_registrant("BP1234563", "Main St Pharmacy", ["2", "3N"], t0, t1,
...                            key_type="ec")
>>> ext = who.cert.extensions.get_extension_for_oid(DEA_NUMBER_OID).value.value
>>> ext, who.chain == (pki.sub_cert,)
(b'\\x13\\tBP1234563', True)
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from connectors.dea_ext import (
    ADDRESS_OID,
    DEA_NUMBER_OID,
    SCHEDULES_OID,
    encode_address,
    encode_dea_number,
    encode_schedules,
)
from connectors.demo_keys import demo_rsa_key, key_pool

__all__ = ["Identity", "DemoPKI", "key_pool", "DEA_NUMBER_OID", "SCHEDULES_OID", "CRL_URL"]

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
CRL_URL = "http://crl.som.invalid/sub-ca.crl"


@dataclass(frozen=True)
class Identity:
    """A signer: private key, certificate, and intermediates (signer's issuer first)."""

    key: PrivateKey
    cert: x509.Certificate
    chain: tuple[x509.Certificate, ...]


def _name(cn: str, serial: str | None = None) -> x509.Name:
    attrs = [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "som TEST"),
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
    ]
    if serial is not None:
        attrs.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, serial))
    return x509.Name(attrs)


def _serial(seed: int, label: str) -> int:
    digest = hashlib.sha256(f"som-demo-serial:{seed}:{label}".encode()).digest()
    return int.from_bytes(digest[:16]) >> 2 | 1


def _ca_usage() -> x509.KeyUsage:
    return x509.KeyUsage(False, False, False, False, False, True, True, False, False)


@dataclass
class DemoPKI:
    """Root "som TEST E-Commerce Root CA" and "som TEST CSOS Sub CA" with their keys."""

    root_cert: x509.Certificate
    root_key: PrivateKey
    sub_cert: x509.Certificate
    sub_key: PrivateKey
    seed: int = 0
    revoked: dict[int, datetime] = field(default_factory=dict)

    @classmethod
    def create(cls, not_before: datetime, not_after: datetime, seed: int = 0) -> DemoPKI:
        """Both CAs, valid over [not_before, not_after]; keys derive from ``seed``."""
        root_key = demo_rsa_key(seed, 2048, "root-ca")
        sub_key = demo_rsa_key(seed, 2048, "sub-ca")
        root_name = _name("som TEST E-Commerce Root CA")
        root = (
            x509.CertificateBuilder()
            .subject_name(root_name)
            .issuer_name(root_name)
            .public_key(root_key.public_key())
            .serial_number(_serial(seed, "root"))
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(_ca_usage(), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), False)
            .sign(root_key, hashes.SHA256())
        )
        sub = (
            _issued(root, root_key, sub_key.public_key())
            .subject_name(_name("som TEST CSOS Sub CA"))
            .serial_number(_serial(seed, "sub"))
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_ca_usage(), critical=True)
            .sign(root_key, hashes.SHA256())
        )
        return cls(root, root_key, sub, sub_key, seed)

    def issue_registrant(
        self,
        dea_number: str,
        name: str,
        schedules: Iterable[str],
        not_before: datetime,
        not_after: datetime,
        key: PrivateKey | None = None,
        key_type: str = "rsa",
        dea_encoding: str = "plain",
        subject_serial: str | None = None,
        address: str | None = None,
        extra: tuple[x509.ExtensionType, ...] = (),
    ) -> Identity:
        """A purchaser certificate with the DEA number and schedule extensions.

        ``key=None`` makes a fresh key (``key_type`` "rsa" or "ec").
        ``dea_encoding`` "plain" writes the DEA number as a PrintableString;
        "sha1-serial"/"sha256-serial" write the hex digest of the DEA number
        followed by the subject serialNumber (see ``connectors.dea_ext``).
        ``address`` adds the registered postal address extension (the ship-to); ``extra``
        adds non-critical extensions as they are (tests: odd encodings, key usages).
        """
        if key is None:
            key = (
                ec.generate_private_key(ec.SECP256R1())
                if key_type == "ec"
                else rsa.generate_private_key(65537, 2048)
            )
        serial = _serial(self.seed, f"ee:{dea_number}:{name}:{not_before.isoformat()}")
        subject_serial = subject_serial or f"{serial:x}"[:16].upper()
        cert = (
            _issued(self.sub_cert, self.sub_key, key.public_key())
            .subject_name(_name(name, subject_serial))
            .serial_number(serial)
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, True, False, False, False, False, False, False, False),
                critical=True,
            )
            .add_extension(_crl_dp(), critical=False)
            .add_extension(
                x509.UnrecognizedExtension(
                    DEA_NUMBER_OID, encode_dea_number(dea_number, subject_serial, dea_encoding)
                ),
                critical=False,
            )
            .add_extension(
                x509.UnrecognizedExtension(SCHEDULES_OID, encode_schedules(schedules)),
                critical=False,
            )
        )
        if address is not None:
            cert = cert.add_extension(
                x509.UnrecognizedExtension(ADDRESS_OID, encode_address(address)), critical=False
            )
        for extension in extra:
            cert = cert.add_extension(extension, critical=False)
        cert = cert.sign(self.sub_key, hashes.SHA256())
        return Identity(key=key, cert=cert, chain=(self.sub_cert,))

    def revoke(self, cert: x509.Certificate, when: datetime) -> None:
        """Mark ``cert`` revoked as of ``when``; the next ``crl()`` lists it."""
        self.revoked[cert.serial_number] = when

    def crl(self, this_update: datetime, next_update: datetime) -> x509.CertificateRevocationList:
        """A CRL from the sub CA listing every revoked certificate."""
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.sub_cert.subject)
            .last_update(this_update)
            .next_update(next_update)
            .add_extension(x509.CRLNumber(int(this_update.timestamp())), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.sub_key.public_key()),
                critical=False,
            )
        )
        for serial, when in sorted(self.revoked.items()):
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build()
            )
        return builder.sign(self.sub_key, hashes.SHA256())

    def write(self, out_dir: Path, crl: x509.CertificateRevocationList | None = None) -> None:
        """trust/root.pem, intermediates/sub-ca.pem, crl/sub-ca.crl (PEM) under ``out_dir``.

        Without ``crl`` the CRL covers the whole life of the CAs, so a demo feed
        never meets a stale CRL.
        """
        out_dir = Path(out_dir)
        if crl is None:
            crl = self.crl(self.sub_cert.not_valid_before_utc, self.sub_cert.not_valid_after_utc)
        pem = serialization.Encoding.PEM
        for sub, name, data in (
            ("trust", "root.pem", self.root_cert.public_bytes(pem)),
            ("intermediates", "sub-ca.pem", self.sub_cert.public_bytes(pem)),
            ("crl", "sub-ca.crl", crl.public_bytes(pem)),
        ):
            (out_dir / sub).mkdir(parents=True, exist_ok=True)
            (out_dir / sub / name).write_bytes(data)


def _issued(
    issuer: x509.Certificate, issuer_key: PrivateKey, public_key
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .issuer_name(issuer.subject)
        .public_key(public_key)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )


def _crl_dp() -> x509.CRLDistributionPoints:
    return x509.CRLDistributionPoints(
        [x509.DistributionPoint([x509.UniformResourceIdentifier(CRL_URL)], None, None, None)]
    )
