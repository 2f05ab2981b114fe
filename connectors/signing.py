"""Sign order JSON the way purchasers' CSOS software does (DESIGN.md 3.2).

Used by synthetic feeds, demos and tests; production orders arrive signed.
CMS comes from ``cryptography``'s PKCS#7 builder (DER, content attached,
SHA-256, signed attributes contentType, messageDigest and signingTime).
"""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs7

from connectors.demo_pki import Identity

__all__ = ["sign_cms", "sign_json_envelope", "sign_raw", "load_identity"]


def sign_cms(payload: bytes, identity: Identity) -> bytes:
    """DER CMS SignedData over ``payload``; certificates = signer + chain."""
    builder = pkcs7.PKCS7SignatureBuilder().set_data(payload)
    builder = builder.add_signer(identity.cert, identity.key, hashes.SHA256())
    for cert in identity.chain:
        builder = builder.add_certificate(cert)
    return builder.sign(
        serialization.Encoding.DER,
        [pkcs7.PKCS7Options.Binary, pkcs7.PKCS7Options.NoCapabilities],
    )


def sign_raw(payload: bytes, identity: Identity) -> bytes:
    """RSA PKCS#1 v1.5 or ECDSA signature with SHA-256 over the exact bytes."""
    if isinstance(identity.key, ec.EllipticCurvePrivateKey):
        return identity.key.sign(payload, ec.ECDSA(hashes.SHA256()))
    return identity.key.sign(payload, padding.PKCS1v15(), hashes.SHA256())


def sign_json_envelope(payload: bytes, identity: Identity) -> dict:
    """``{"payload", "signature", "certificates"}`` with base64 fields and PEM certificates."""
    pem = serialization.Encoding.PEM
    return {
        "payload": base64.b64encode(payload).decode("ascii"),
        "signature": base64.b64encode(sign_raw(payload, identity)).decode("ascii"),
        "certificates": [
            c.public_bytes(pem).decode("ascii") for c in (identity.cert,) + identity.chain
        ],
    }


def load_identity(cert_pem: bytes, key_pem: bytes) -> Identity:
    """A signer from PEM text: the certificate first, then its chain; an unencrypted key.

    Raises ``ValueError`` saying which of the two is wrong (callers name the file).
    """
    from cryptography import x509

    try:
        certs = x509.load_pem_x509_certificates(cert_pem)
    except ValueError as exc:
        raise ValueError(f"certificate: not PEM certificates ({exc})") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"key: not an unencrypted PEM private key ({exc})") from None
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*spki) != certs[0].public_key().public_bytes(*spki):
        raise ValueError("key: does not belong to the first certificate")
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError("key: only RSA and EC keys sign CSOS messages")
    return Identity(key=key, cert=certs[0], chain=tuple(certs[1:]))
