"""Slice a CMS SignedData message (RFC 5652) into the parts a verifier needs.

The lean path reads DER byte ranges with ``connectors.der``; BER input (for
example indefinite lengths from streaming signers) falls back to asn1crypto,
which yields the same ``CmsParts``. No cryptography happens here: the caller
checks digests and signatures with ``cryptography``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from connectors.der import DerError, der_time, oid_str, tlv

__all__ = ["CmsParts", "CmsError", "parse_cms", "parse_cms_lean", "parse_cms_asn1crypto"]

SIGNED_DATA = "1.2.840.113549.1.7.2"
CONTENT_TYPE_ATTR = "1.2.840.113549.1.9.3"
MESSAGE_DIGEST_ATTR = "1.2.840.113549.1.9.4"
SIGNING_TIME_ATTR = "1.2.840.113549.1.9.5"
_SIGNED_DATA_DER = bytes.fromhex("2a864886f70d010702")
_ATTRS = {
    bytes.fromhex("2a864886f70d010903"): "ct",
    bytes.fromhex("2a864886f70d010904"): "md",
    bytes.fromhex("2a864886f70d010905"): "time",
}


class CmsError(ValueError):
    """Not a CMS SignedData message this engine can verify."""


@dataclass(slots=True)
class CmsParts:
    """The byte ranges of one single-signer SignedData, as plain values.

    Read-only by convention; not ``frozen`` because a frozen dataclass costs
    about 1 us more to build, on every CMS order.
    """

    content_type: str
    content: bytes
    cert_set: bytes  # the certificates [0] content: each certificate's DER, concatenated
    digest_algorithm: str  # dotted OID
    signature_algorithm: str  # dotted OID
    signature: bytes
    signed_attrs: bytes | None  # DER re-tagged as SET OF (what the signature covers)
    issuer: bytes | None  # DER Name of IssuerAndSerialNumber
    serial: int | None
    ski: bytes | None  # subjectKeyIdentifier form of the signer id
    message_digest: bytes | None
    attr_content_type: str | None
    signing_time_der: tuple[int, bytes] | None  # (tag, content); decoded on demand

    @property
    def certificates(self) -> tuple[bytes, ...]:
        """DER of each certificate in the set (other certificate choices are skipped)."""
        out, pos, end = [], 0, len(self.cert_set)
        while pos < end:
            tag, _, e = tlv(self.cert_set, pos, end)
            if tag == 0x30:
                out.append(self.cert_set[pos:e])
            pos = e
        return tuple(out)

    @property
    def signing_time(self) -> datetime | None:
        """The signingTime attribute; raises DerError if it is not a valid time."""
        return der_time(*self.signing_time_der) if self.signing_time_der else None


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
    """Walk DER offsets only; raises DerError on anything unexpected.

    Hot path (every CMS order): one ``tlv`` call per element visited, elements
    the verifier does not read (digestAlgorithms, certificate bodies, other
    attributes' values) are skipped whole.
    """
    try:
        return _lean(b)
    except IndexError:
        raise DerError("truncated element") from None


def _lean(b: bytes) -> CmsParts:
    n = len(b)
    tag, s, e = tlv(b, 0, n)
    if tag != 0x30 or e != n:
        raise DerError("ContentInfo is not one SEQUENCE")
    tag, os_, pos = tlv(b, s, e)
    if tag != 0x06 or b[os_:pos] != _SIGNED_DATA_DER:
        raise DerError("ContentInfo is not signedData")
    tag, s, e = tlv(b, pos, e)
    if tag != 0xA0:
        raise DerError("SignedData is not [0]")
    tag, s, end = tlv(b, s, e)
    if tag != 0x30:
        raise DerError("SignedData is not a SEQUENCE")
    tag, _, pos = tlv(b, s, end)  # version
    if tag != 0x02:
        raise DerError("SignedData version")
    tag, _, pos = tlv(b, pos, end)  # digestAlgorithms
    if tag != 0x31:
        raise DerError("SignedData digestAlgorithms")
    tag, es, pos = tlv(b, pos, end)
    if tag != 0x30:
        raise DerError("encapContentInfo")
    ct, content = _encap(b, es, pos)
    certs = b""
    tag, s, e = tlv(b, pos, end)
    if tag == 0xA0:
        certs = b[s:e]  # walked only when the signer is not yet cached (envelope.py)
        tag, s, e = tlv(b, e, end)
    if tag == 0xA1:
        tag, s, e = tlv(b, e, end)
    if tag != 0x31 or e != end:
        raise DerError("signerInfos missing or not last")
    tag, ss, se = tlv(b, s, e)
    if tag != 0x30 or se != e:
        raise DerError("expected exactly one SignerInfo")
    return _signer(b, ss, se, ct, content, certs)


def _encap(b: bytes, s: int, e: int) -> tuple[str, bytes]:
    tag, os_, oe = tlv(b, s, e)
    if tag != 0x06:
        raise DerError("eContentType")
    if oe == e:
        raise DerError("detached content is not supported: the order must be attached")
    tag, ws, we = tlv(b, oe, e)
    if tag != 0xA0 or we != e:
        raise DerError("eContent is not [0]")
    tag, cs, ce = tlv(b, ws, we)
    if tag != 0x04 or ce != we:  # a constructed OCTET STRING (0x24) is BER
        raise DerError("eContent is not a primitive OCTET STRING")
    return oid_str(b[os_:oe]), b[cs:ce]


def _alg(b: bytes, pos: int, end: int) -> tuple[str, int]:
    tag, s, e = tlv(b, pos, end)
    if tag != 0x30:
        raise DerError("AlgorithmIdentifier is not a SEQUENCE")
    tag, os_, oe = tlv(b, s, e)
    if tag != 0x06:
        raise DerError("AlgorithmIdentifier has no OID")
    return oid_str(b[os_:oe]), e


def _signer(b: bytes, s: int, end: int, ct: str, content: bytes, certs: bytes) -> CmsParts:
    tag, _, pos = tlv(b, s, end)
    if tag != 0x02:
        raise DerError("SignerInfo version")
    issuer = serial = ski = None
    tag, ss, se = tlv(b, pos, end)
    if tag == 0x30:
        itag, _, ie = tlv(b, ss, se)
        stag, s0, s1 = tlv(b, ie, se)
        if itag != 0x30 or stag != 0x02 or s1 != se:
            raise DerError("IssuerAndSerialNumber layout")
        issuer = b[ss:ie]
        serial = int.from_bytes(b[s0:s1], signed=True)
    elif tag == 0x80:
        ski = b[ss:se]
    else:
        raise DerError("unknown signer identifier")
    digest_alg, pos = _alg(b, se, end)
    attrs = md = act = when = None
    tag, as_, ae = tlv(b, pos, end)
    if tag == 0xA0:
        attrs = b"\x31" + b[pos + 1 : ae]
        md, act, when = _attributes(b, as_, ae)
        pos = ae
    signature_alg, pos = _alg(b, pos, end)
    tag, gs, ge = tlv(b, pos, end)
    if tag != 0x04:
        raise DerError("signature is not an OCTET STRING")
    if ge != end:
        tag, _, ue = tlv(b, ge, end)
        if tag != 0xA1 or ue != end:
            raise DerError("unexpected element after the signature")
    return CmsParts(
        content_type=ct,
        content=content,
        cert_set=certs,
        digest_algorithm=digest_alg,
        signature_algorithm=signature_alg,
        signature=b[gs:ge],
        signed_attrs=attrs,
        issuer=issuer,
        serial=serial,
        ski=ski,
        message_digest=md,
        attr_content_type=act,
        signing_time_der=when,
    )


def _attributes(b: bytes, s: int, e: int) -> tuple[bytes | None, str | None, tuple | None]:
    """messageDigest, contentType and signingTime from the signed attributes.

    Attributes are short, so the common case (every length < 128) is read
    inline without ``tlv`` calls; anything longer takes the general path.
    """
    md = act = when = None
    pos = s
    while pos < e:
        if b[pos] == 0x30 and b[pos + 1] < 0x80 and b[pos + 2] == 0x06 and b[pos + 3] < 0x80:
            a_e = pos + 2 + b[pos + 1]
            os_ = pos + 4
            oe = os_ + b[pos + 3]
            if a_e > e or oe + 2 > a_e or b[oe] != 0x31 or b[oe + 1] >= 0x80:
                raise DerError("Attribute layout")
            vs, ve = oe + 2, oe + 2 + b[oe + 1]
            if ve != a_e:
                raise DerError("Attribute layout")
        else:
            tag, a_s, a_e = tlv(b, pos, e)
            tag2, os_, oe = tlv(b, a_s, a_e)
            vtag, vs, ve = tlv(b, oe, a_e)
            if tag != 0x30 or tag2 != 0x06 or vtag != 0x31 or ve != a_e:
                raise DerError("Attribute layout")
        pos = a_e
        which = _ATTRS.get(b[os_:oe])
        if which is None:
            continue
        t0, v0, v1 = tlv(b, vs, ve)
        if v1 != ve:
            raise DerError(f"attribute {which} must have exactly one value")
        if which == "md":
            if t0 != 0x04:
                raise DerError("messageDigest is not an OCTET STRING")
            md = b[v0:v1]
        elif which == "ct":
            act = oid_str(b[v0:v1]) if t0 == 0x06 else ""
        else:
            if t0 not in (0x17, 0x18):
                raise DerError("signingTime is not a time")
            when = (t0, b[v0:v1])
    return md, act, when


def parse_cms_asn1crypto(der: bytes) -> CmsParts:
    """The asn1crypto reference parser (see ``connectors.cms_reference``)."""
    from connectors.cms_reference import parse_with_asn1crypto

    return parse_with_asn1crypto(der)
