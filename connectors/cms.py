"""Slice a CMS SignedData message (RFC 5652) into the parts a verifier needs.

The lean path reads DER byte ranges with ``connectors.der``; BER input (for
example indefinite lengths from streaming signers) falls back to asn1crypto,
which yields the same ``CmsParts``. No cryptography happens here: the caller
checks digests and signatures with ``cryptography``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from connectors.der import DerError, der_time, expect, kids, oid_str

__all__ = ["CmsParts", "CmsError", "parse_cms", "parse_cms_lean", "parse_cms_asn1crypto"]

SIGNED_DATA = "1.2.840.113549.1.7.2"
CONTENT_TYPE_ATTR = "1.2.840.113549.1.9.3"
MESSAGE_DIGEST_ATTR = "1.2.840.113549.1.9.4"
SIGNING_TIME_ATTR = "1.2.840.113549.1.9.5"


class CmsError(ValueError):
    """Not a CMS SignedData message this engine can verify."""


@dataclass(frozen=True, slots=True)
class CmsParts:
    """The byte ranges of one single-signer SignedData, as plain values."""

    content_type: str
    content: bytes
    certificates: tuple[bytes, ...]  # DER of each certificate in the set
    digest_algorithm: str  # dotted OID
    signature_algorithm: str  # dotted OID
    signature: bytes
    signed_attrs: bytes | None  # DER re-tagged as SET OF (what the signature covers)
    issuer: bytes | None  # DER Name of IssuerAndSerialNumber
    serial: int | None
    ski: bytes | None  # subjectKeyIdentifier form of the signer id
    message_digest: bytes | None
    attr_content_type: str | None
    signing_time: datetime | None


def parse_cms(der: bytes) -> CmsParts:
    """Lean DER path first; asn1crypto for BER or anything the lean path refuses."""
    try:
        return parse_cms_lean(der)
    except DerError as lean_error:
        try:
            return parse_cms_asn1crypto(der)
        except CmsError:
            raise
        except Exception as exc:
            raise CmsError(f"not CMS SignedData: {lean_error}; {type(exc).__name__}") from None


def parse_cms_lean(b: bytes) -> CmsParts:
    """Walk DER offsets only; raises DerError on anything unexpected."""
    s, e = expect(b, 0, 0x30)
    if e != len(b):
        raise DerError("trailing bytes after ContentInfo")
    os_, oe = expect(b, s, 0x06, e)
    if oid_str(b[os_:oe]) != SIGNED_DATA:
        raise DerError("ContentInfo is not signedData")
    s0, e0 = expect(b, oe, 0xA0, e)
    sds, sde = expect(b, s0, 0x30, e0)
    items = kids(b, sds, sde)
    if len(items) < 4 or items[0][0] != 0x02 or items[1][0] != 0x31 or items[2][0] != 0x30:
        raise DerError("SignedData layout")
    ct, content = _encap(b, items[2][1], items[2][2])
    certs: list[bytes] = []
    rest = items[3:]
    if rest and rest[0][0] == 0xA0:
        pos = rest[0][1]
        for tag, _, ce in kids(b, rest[0][1], rest[0][2]):
            if tag == 0x30:
                certs.append(b[pos:ce])
            pos = ce
        rest = rest[1:]
    if rest and rest[0][0] == 0xA1:
        rest = rest[1:]
    if len(rest) != 1 or rest[0][0] != 0x31:
        raise DerError("signerInfos missing")
    signers = kids(b, rest[0][1], rest[0][2])
    if len(signers) != 1 or signers[0][0] != 0x30:
        raise DerError(f"expected exactly one SignerInfo, found {len(signers)}")
    return _signer(b, signers[0][1], signers[0][2], ct, content, tuple(certs))


def _encap(b: bytes, s: int, e: int) -> tuple[str, bytes]:
    os_, oe = expect(b, s, 0x06, e)
    if oe == e:
        raise DerError("detached content is not supported: the order must be attached")
    ws, we = expect(b, oe, 0xA0, e)
    cs, ce = expect(b, ws, 0x04, we)  # a constructed OCTET STRING (0x24) is BER
    return oid_str(b[os_:oe]), b[cs:ce]


def _alg(b: bytes, s: int, e: int) -> str:
    os_, oe = expect(b, s, 0x06, e)
    return oid_str(b[os_:oe])


def _signer(
    b: bytes, s: int, e: int, ct: str, content: bytes, certs: tuple[bytes, ...]
) -> CmsParts:
    items = kids(b, s, e)
    if len(items) < 5 or items[0][0] != 0x02:
        raise DerError("SignerInfo layout")
    issuer = serial = ski = None
    tag, ss, se = items[1]
    if tag == 0x30:
        parts = kids(b, ss, se)
        if len(parts) != 2 or parts[0][0] != 0x30 or parts[1][0] != 0x02:
            raise DerError("IssuerAndSerialNumber layout")
        issuer = b[ss : parts[0][2]]
        serial = int.from_bytes(b[parts[1][1] : parts[1][2]], signed=True)
    elif tag == 0x80:
        ski = b[ss:se]
    else:
        raise DerError("unknown signer identifier")
    if items[2][0] != 0x30:
        raise DerError("digestAlgorithm")
    digest_alg = _alg(b, items[2][1], items[2][2])
    rest = items[3:]
    attrs = md = act = when = None
    if rest[0][0] == 0xA0:
        _, as_, ae = rest[0]
        attrs = b"\x31" + b[items[2][2] + 1 : ae]  # from the [0] tag, which follows item 2
        md, act, when = _attributes(b, as_, ae)
        rest = rest[1:]
    if len(rest) < 2 or rest[0][0] != 0x30 or rest[1][0] != 0x04:
        raise DerError("signatureAlgorithm/signature layout")
    return CmsParts(
        content_type=ct,
        content=content,
        certificates=certs,
        digest_algorithm=digest_alg,
        signature_algorithm=_alg(b, rest[0][1], rest[0][2]),
        signature=b[rest[1][1] : rest[1][2]],
        signed_attrs=attrs,
        issuer=issuer,
        serial=serial,
        ski=ski,
        message_digest=md,
        attr_content_type=act,
        signing_time=when,
    )


def _attributes(b: bytes, s: int, e: int) -> tuple[bytes | None, str | None, datetime | None]:
    md = act = when = None
    for tag, a_s, a_e in kids(b, s, e):
        if tag != 0x30:
            raise DerError("Attribute is not a SEQUENCE")
        os_, oe = expect(b, a_s, 0x06, a_e)
        oid = oid_str(b[os_:oe])
        vs, ve = expect(b, oe, 0x31, a_e)
        values = kids(b, vs, ve)
        if oid in (MESSAGE_DIGEST_ATTR, CONTENT_TYPE_ATTR, SIGNING_TIME_ATTR) and len(values) != 1:
            raise DerError(f"attribute {oid} must have exactly one value")
        if not values:
            continue
        vt, v0, v1 = values[0]
        if oid == MESSAGE_DIGEST_ATTR:
            if vt != 0x04:
                raise DerError("messageDigest is not an OCTET STRING")
            md = b[v0:v1]
        elif oid == CONTENT_TYPE_ATTR:
            act = oid_str(b[v0:v1]) if vt == 0x06 else ""
        elif oid == SIGNING_TIME_ATTR:
            when = der_time(vt, b[v0:v1])
    return md, act, when


def parse_cms_asn1crypto(der: bytes) -> CmsParts:
    """The reference parser (handles BER); same result as the lean path on DER."""
    from asn1crypto import cms

    info = cms.ContentInfo.load(der, strict=True)
    if info["content_type"].dotted != SIGNED_DATA:
        raise CmsError("ContentInfo is not signedData")
    sd = info["content"]
    signers = list(sd["signer_infos"])
    if len(signers) != 1:
        raise CmsError(f"expected exactly one SignerInfo, found {len(signers)}")
    encap = sd["encap_content_info"]
    if not encap["content"].native and encap["content"].contents is None:
        raise CmsError("detached content is not supported: the order must be attached")
    content = encap["content"].native
    if not isinstance(content, bytes):
        content = encap["content"].contents
    certs = tuple(c.chosen.dump() for c in (sd["certificates"] or []) if c.name == "certificate")
    si = signers[0]
    sid = si["sid"]
    issuer = serial = ski = None
    if sid.name == "issuer_and_serial_number":
        issuer = sid.chosen["issuer"].dump()
        serial = sid.chosen["serial_number"].native
    else:
        ski = sid.chosen.native
    attrs = md = act = when = None
    if si["signed_attrs"].contents is not None and len(si["signed_attrs"]):
        raw = si["signed_attrs"].dump()
        attrs = b"\x31" + raw[1:]
        for attr in si["signed_attrs"]:
            name, values = attr["type"].dotted, attr["values"]
            if name == MESSAGE_DIGEST_ATTR:
                md = values[0].native
            elif name == CONTENT_TYPE_ATTR:
                act = values[0].dotted
            elif name == SIGNING_TIME_ATTR:
                when = values[0].chosen.native
    return CmsParts(
        content_type=encap["content_type"].dotted,
        content=content,
        certificates=certs,
        digest_algorithm=si["digest_algorithm"]["algorithm"].dotted,
        signature_algorithm=si["signature_algorithm"]["algorithm"].dotted,
        signature=si["signature"].native,
        signed_attrs=attrs,
        issuer=issuer,
        serial=serial,
        ski=ski,
        message_digest=md,
        attr_content_type=act,
        signing_time=when,
    )
