"""Open a message from ``orders.signed`` and check its signature (DESIGN.md 3.2).

Accepts DER CMS, base64 or PEM of it, the JSON envelope, and unsigned paper
orders. Whatever the input bytes, the only exception that leaves
``open_envelope`` is ``Rejected``: a poisoned message must become a rejection
record, never a crashed worker. Chain, revocation and DEA extensions are
judged later by ``engine.verify``; this module answers "were these exact
bytes signed by the key in this certificate?".
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from connectors.certcache import (
    DIGESTS,
    CertInfo,
    cert_from_pem,
    cert_info,
    pem_blocks,
    verify_signature,
)
from connectors.cms import CmsError, CmsParts, parse_cms
from connectors.fastinit import builder
from engine.records import Rejected, RejectReason

__all__ = ["SignedMessage", "open_envelope"]

_DATA = "1.2.840.113549.1.7.1"
_HASHLIB = {oid: getattr(hashlib, cls.name) for oid, cls in DIGESTS.items()}
_B64_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\r\n \t")


@dataclass(frozen=True, slots=True)
class SignedMessage:
    """An opened envelope whose signature (if any) verified over ``payload``."""

    kind: str  # "cms" | "json" | "paper"
    payload: bytes  # the order JSON bytes
    signer: x509.Certificate | None
    certificates: tuple[x509.Certificate, ...]  # everything else carried in the envelope
    signer_info: CertInfo | None = None
    chain_info: tuple[CertInfo, ...] = ()
    cms: CmsParts | None = None  # the parsed CMS, for its signingTime and algorithms

    @property
    def signing_time(self) -> datetime | None:
        """The CMS signingTime attribute, when present and readable."""
        try:
            return self.cms.signing_time if self.cms is not None else None
        except ValueError:
            return None


_message = builder(SignedMessage)  # (kind, payload, signer, certificates, signer_info, ...)


def open_envelope(raw: bytes, max_bytes: int = 16 * 1024 * 1024) -> SignedMessage:
    """Detect the format, verify the signature, return the payload; else ``Rejected``.

    ``max_bytes`` bounds the work any one message can cause (the verify stage
    applies the configured, smaller ``max_message_bytes`` first).
    """
    try:
        if len(raw) > max_bytes:
            raise Rejected(
                RejectReason.TOO_LARGE, f"message is {len(raw)} bytes, limit {max_bytes}"
            )
        if type(raw) is bytes and raw and raw[0] == 0x30:  # DER CMS, the usual case
            return _open_cms(raw)
        return _open(raw)
    except Rejected:
        raise
    except Exception as exc:  # the boundary: no other exception may escape
        raise Rejected(
            RejectReason.MALFORMED, f"unreadable message: {type(exc).__name__}"
        ) from None


def _open(raw: bytes) -> SignedMessage:
    if type(raw) is not bytes:
        if not isinstance(raw, bytes | bytearray | memoryview):
            raise Rejected(RejectReason.MALFORMED, "message is not bytes")
        raw = bytes(raw)
    if not raw:
        raise Rejected(RejectReason.MALFORMED, "empty message")
    if raw[0] == 0x30:
        return _open_cms(raw)
    text = raw.strip()
    if text[:1] == b"{":
        return _open_json(text)
    if text.startswith(b"-----BEGIN"):
        blocks = pem_blocks(text)
        if len(blocks) != 1 or blocks[0][0] not in (b"CMS", b"PKCS7"):
            raise Rejected(RejectReason.MALFORMED, "PEM text is not one CMS or PKCS7 block")
        return _open_cms(blocks[0][1])
    if text and set(text) <= _B64_CHARS:
        try:
            der = base64.b64decode(b"".join(text.split()), validate=True)
        except (binascii.Error, ValueError):
            raise Rejected(RejectReason.MALFORMED, "text is not base64") from None
        if der[:1] == b"\x30":
            return _open_cms(der)
        raise Rejected(RejectReason.MALFORMED, "base64 text does not hold a CMS message")
    raise Rejected(RejectReason.MALFORMED, "neither CMS, base64, PEM nor a JSON object")


def _hints(payload: bytes) -> tuple[str | None, str | None]:
    """Order number and purchaser DEA from an unverified payload, for the audit record."""
    try:
        data = json.loads(payload)
        order = data.get("order_number")
        dea = data.get("purchaser", {}).get("dea_number")
        return (order if isinstance(order, str) else None, dea if isinstance(dea, str) else None)
    except Exception:
        return None, None


def _bad_signature(detail: str, payload: bytes) -> Rejected:
    order, dea = _hints(payload)
    return Rejected(RejectReason.BAD_SIGNATURE, detail, order_number=order, purchaser_dea=dea)


def _open_cms(der: bytes) -> SignedMessage:
    try:
        parts = parse_cms(der)
    except CmsError as exc:
        raise Rejected(RejectReason.MALFORMED, f"CMS: {exc}") from None
    if parts.content_type != _DATA:
        raise Rejected(RejectReason.MALFORMED, f"CMS content type {parts.content_type} is not data")
    signer, others, certs = _signer_of(parts)
    _check_cms_signature(parts, signer)
    return _message("cms", parts.content, signer.cert, certs, signer, others, parts)


# (issuer, serial, ski) -> (certificate set bytes, signer, other CertInfos, their certificates)
_SIGNERS: dict[tuple, tuple] = {}


def _signer_of(parts: CmsParts) -> tuple[CertInfo, tuple[CertInfo, ...], tuple]:
    """The signer's certificate and the rest of the set, cached by signer id and set bytes."""
    key = (parts.issuer, parts.serial, parts.ski)
    hit = _SIGNERS.get(key)
    if hit is not None and hit[0] == parts.cert_set:
        return hit[1:]
    try:
        infos = [cert_info(der) for der in parts.certificates]
    except Exception:
        raise Rejected(RejectReason.MALFORMED, "CMS carries an unparseable certificate") from None
    signer = _find_signer(parts, infos)
    if signer is None:
        raise _bad_signature("signer certificate is not in the CMS certificates", parts.content)
    others = tuple(i for i in infos if i is not signer)
    if len(_SIGNERS) >= 65536:
        _SIGNERS.clear()
    certs = tuple(i.cert for i in others)
    _SIGNERS[key] = (parts.cert_set, signer, others, certs)
    return signer, others, certs


def _find_signer(parts: CmsParts, infos: list[CertInfo]) -> CertInfo | None:
    for info in infos:
        if parts.ski is not None:
            if info.ski == parts.ski:
                return info
        elif info.serial == parts.serial and info.issuer_der == parts.issuer:
            return info
    return None


def _check_cms_signature(parts: CmsParts, signer: CertInfo) -> None:
    try:
        if parts.signed_attrs is None:
            signed = parts.content
        else:
            if parts.digest_algorithm not in DIGESTS:
                raise ValueError(f"digest algorithm {parts.digest_algorithm} is not accepted")
            if parts.message_digest is None:
                raise _bad_signature("signed attributes lack messageDigest", parts.content)
            digest = _HASHLIB[parts.digest_algorithm](parts.content).digest()
            if not hmac.compare_digest(digest, parts.message_digest):
                raise _bad_signature("messageDigest does not match the content", parts.content)
            if parts.attr_content_type not in (None, parts.content_type):
                raise _bad_signature("contentType attribute differs from content", parts.content)
            signed = parts.signed_attrs
        verify_signature(
            signer,
            parts.signature,
            signed,
            parts.digest_algorithm,
            parts.signature_algorithm,
        )
    except InvalidSignature:
        raise _bad_signature("CMS signature does not verify", parts.content) from None
    except ValueError as exc:
        raise _bad_signature(f"CMS signature: {exc}", parts.content) from None


def _open_json(text: bytes) -> SignedMessage:
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        raise Rejected(RejectReason.MALFORMED, "message is not JSON") from None
    if not isinstance(data, dict):
        raise Rejected(RejectReason.MALFORMED, "JSON message is not an object")
    if "payload" not in data:  # a bare order: paper unless the verifier says otherwise
        return SignedMessage(kind="paper", payload=text, signer=None, certificates=())
    try:
        payload = base64.b64decode(data["payload"], validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise Rejected(RejectReason.MALFORMED, "envelope payload is not base64") from None
    if data.get("signature") is None:
        return SignedMessage(kind="paper", payload=payload, signer=None, certificates=())
    try:
        signature = base64.b64decode(data["signature"], validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise _bad_signature("envelope signature is not base64", payload) from None
    pems = data.get("certificates")
    if not isinstance(pems, list) or not pems or not all(isinstance(p, str) for p in pems):
        raise _bad_signature("envelope has no signer certificate", payload)
    try:
        infos = [cert_from_pem(p) for p in pems]
    except Exception:
        raise Rejected(
            RejectReason.MALFORMED, "envelope certificate is not a PEM certificate"
        ) from None
    signer = infos[0]
    sig_oid = "1.2.840.113549.1.1.11" if signer.key_type == "rsa" else "1.2.840.10045.4.3.2"
    try:
        verify_signature(signer, signature, payload, "2.16.840.1.101.3.4.2.1", sig_oid)
    except (InvalidSignature, ValueError):
        raise _bad_signature("envelope signature does not verify", payload) from None
    return SignedMessage(
        kind="json",
        payload=payload,
        signer=signer.cert,
        certificates=tuple(i.cert for i in infos[1:]),
        signer_info=signer,
        chain_info=tuple(infos[1:]),
    )
