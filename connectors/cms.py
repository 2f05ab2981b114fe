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

    Hot path (every CMS order). A signer's software lays out every order the
    same way, so two shortcuts skip the walk when a known layout recurs (see
    ``_head`` and ``_Tail``); each returns exactly what the walk would.
    """
    try:
        n = len(b)
        for h in _HEAD_LENS:  # _head, inlined: this runs for every order
            head = _HEADS.get(b[:h])
            if head is not None and head[5] == n:
                break
        else:
            head = _head(b, n)
        ct, cs, ce, pos, end, _ = head
        content = b[cs:ce]
        group = _TAILS.get((end - pos, b[pos : pos + _KEY]))
        if group is not None:
            t = group.by_sid.get(b[pos + group.sid[0] : pos + group.sid[1]])
            if t is not None:
                for off, chunk in t.chunks:
                    if not b.startswith(chunk, pos + off):
                        break
                else:
                    return _build(b, pos, ct, content, t)
        return _build(b, pos, ct, content, _learn(b, pos, end))
    except IndexError:
        raise DerError("truncated element") from None


# Head = ContentInfo .. eContent header: a pure function of its bytes (and the
# total length the outer SEQUENCE must equal), so its walk is memoised by them.
_HEADS: dict[bytes, tuple[str, int, int, int, int, int]] = {}
_HEAD_LENS: list[int] = []  # head lengths seen lately (content-length fields vary)
_MAX_HEADS = 4096
_MAX_HEAD_BYTES = 256  # a real head is about 70 bytes


def _head(b: bytes, n: int) -> tuple[str, int, int, int, int, int]:
    """(content type, content start, content end, tail start, SignedData end, n)."""
    for h in _HEAD_LENS:
        hit = _HEADS.get(b[:h])
        if hit is not None and hit[5] == n:
            return hit
    found = (*_walk_head(b, n), n)
    cs = found[1]
    if cs > _MAX_HEAD_BYTES:  # e.g. a padded digestAlgorithms: walk it, do not keep it
        return found
    if len(_HEADS) >= _MAX_HEADS:
        _HEADS.clear()
    _HEADS[b[:cs]] = found
    if cs not in _HEAD_LENS:
        _HEAD_LENS.insert(0, cs)
        del _HEAD_LENS[4:]
    return found


def _walk_head(b: bytes, n: int) -> tuple[str, int, int, int, int]:
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
    ct, cs, ce = _encap(b, es, pos)
    return ct, cs, ce, pos, end


def _encap(b: bytes, s: int, e: int) -> tuple[str, int, int]:
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
    return oid_str(b[os_:oe]), cs, ce


@dataclass(slots=True)
class _Tail:
    """Layout of certificates + SignerInfo, offsets relative to the tail start.

    Only the messageDigest, signingTime and signature values vary between one
    signer's orders; the walk never interprets those bytes, so a tail whose
    every other byte (``chunks``) equals a learnt one parses to the same result.
    """

    length: int
    chunks: tuple[tuple[int, bytes], ...]
    cert_set: bytes
    issuer: bytes | None
    serial: int | None
    ski: bytes | None
    digest_alg: str
    signature_alg: str
    sid: tuple[int, int]  # the signer identifier's content
    attrs: tuple[int, int] | None  # the [0] element: (header offset, end)
    md: tuple[int, int] | None
    act: str | None
    when_tag: int
    when: tuple[int, int] | None
    sig: tuple[int, int]


@dataclass(slots=True)
class _Group:
    """Layouts that share a tail length and first bytes, told apart by signer id bytes."""

    sid: tuple[int, int]
    by_sid: dict[bytes, _Tail]


_KEY = 64  # tail bytes that, with its length, pick the group (certificate sets often
# start with the same CA certificate, so the signer id picks within it)
_TAILS: dict[tuple[int, bytes], _Group] = {}
# Memory bounds: messages are untrusted, so what is kept is counted in bytes (a
# typical tail, mostly the certificate set, is 2-4 KB) as well as in layouts.
_MAX_TAILS = 65536  # as many as the path cache (connectors/trust.py)
_MAX_TAIL_BYTES = 64 * 1024  # a larger tail is walked every time
_TAIL_BUDGET = 64 * 1024 * 1024
_learnt = 0
_learnt_bytes = 0


def _build(b: bytes, pos: int, ct: str, content: bytes, t: _Tail) -> CmsParts:
    attrs = md = when = None
    if t.attrs is not None:
        a0, a1 = t.attrs
        attrs = b"\x31" + b[pos + a0 + 1 : pos + a1]
        if (r := t.md) is not None:
            md = b[pos + r[0] : pos + r[1]]
        if (r := t.when) is not None:
            when = (t.when_tag, b[pos + r[0] : pos + r[1]])
    g0, g1 = t.sig
    return CmsParts(  # positional: a third of the cost of 13 keywords, on every order
        ct,  # content_type
        content,
        t.cert_set,
        t.digest_alg,
        t.signature_alg,
        b[pos + g0 : pos + g1],  # signature
        attrs,  # signed_attrs
        t.issuer,
        t.serial,
        t.ski,
        md,  # message_digest
        t.act,  # attr_content_type
        when,  # signing_time_der
    )


def _learn(b: bytes, pos: int, end: int) -> _Tail:
    """Walk the tail and remember its layout for the next order from this signer."""
    global _learnt, _learnt_bytes
    t = _walk_tail(b, pos, end)
    if t.length > _MAX_TAIL_BYTES:
        return t
    if _learnt >= _MAX_TAILS or _learnt_bytes + t.length > _TAIL_BUDGET:
        _TAILS.clear()
        _learnt = _learnt_bytes = 0
    key = (end - pos, b[pos : pos + _KEY])
    group = _TAILS.get(key)
    if group is None or group.sid != t.sid:  # a new layout in this group replaces the old
        group = _TAILS[key] = _Group(t.sid, {})
    group.by_sid[b[pos + t.sid[0] : pos + t.sid[1]]] = t
    _learnt += 1
    _learnt_bytes += t.length
    return t


def _walk_tail(b: bytes, pos: int, end: int) -> _Tail:
    base = pos
    certs = b""
    cert_range = None
    tag, s, e = tlv(b, pos, end)
    if tag == 0xA0:
        certs = b[s:e]  # walked only when the signer is not yet cached (envelope.py)
        cert_range = (s, e)
        tag, s, e = tlv(b, e, end)
    if tag == 0xA1:
        tag, s, e = tlv(b, e, end)
    if tag != 0x31 or e != end:
        raise DerError("signerInfos missing or not last")
    tag, s, end = tlv(b, s, e)
    if tag != 0x30 or end != e:
        raise DerError("expected exactly one SignerInfo")
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
    when_tag = 0
    tag, as_, ae = tlv(b, pos, end)
    if tag == 0xA0:
        attrs = (pos - base, ae - base)
        md, act, when_tag, when = _attributes(b, as_, ae)
        pos = ae
    signature_alg, pos = _alg(b, pos, end)
    tag, gs, ge = tlv(b, pos, end)
    if tag != 0x04:
        raise DerError("signature is not an OCTET STRING")
    if ge != end:
        tag, _, ue = tlv(b, ge, end)
        if tag != 0xA1 or ue != end:
            raise DerError("unexpected element after the signature")
    return _Tail(
        length=end - base,
        chunks=_fixed_chunks(b, base, end, certs, cert_range, (md, when, (gs, ge))),
        cert_set=certs,
        issuer=issuer,
        serial=serial,
        ski=ski,
        digest_alg=digest_alg,
        signature_alg=signature_alg,
        attrs=attrs,
        md=_rel(md, base),
        act=act,
        when_tag=when_tag,
        when=_rel(when, base),
        sig=(gs - base, ge - base),
        sid=(ss - base, se - base),
    )


def _fixed_chunks(
    b: bytes,
    base: int,
    end: int,
    certs: bytes,
    cert_range: tuple[int, int] | None,
    varying: tuple[tuple[int, int] | None, ...],
) -> tuple[tuple[int, bytes], ...]:
    """Every tail byte outside the ``varying`` ranges, as (relative offset, bytes).

    The certificate set is its own chunk and the very ``certs`` object, so a
    learnt layout holds no second copy of it.
    """
    cuts = sorted(r for r in varying if r is not None)
    if cert_range is not None:
        cuts = sorted([*cuts, cert_range])
    chunks, at = [], base
    for s, e in cuts:
        if s > at:
            chunks.append((at - base, b[at:s]))
        if (s, e) == cert_range:
            chunks.append((s - base, certs))
        at = max(at, e)
    if end > at:
        chunks.append((at - base, b[at:end]))
    return tuple(chunks)


def _rel(r: tuple[int, int] | None, base: int) -> tuple[int, int] | None:
    return None if r is None else (r[0] - base, r[1] - base)


def _alg(b: bytes, pos: int, end: int) -> tuple[str, int]:
    tag, s, e = tlv(b, pos, end)
    if tag != 0x30:
        raise DerError("AlgorithmIdentifier is not a SEQUENCE")
    tag, os_, oe = tlv(b, s, e)
    if tag != 0x06:
        raise DerError("AlgorithmIdentifier has no OID")
    return oid_str(b[os_:oe]), e


def _attributes(
    b: bytes, s: int, e: int
) -> tuple[tuple[int, int] | None, str | None, int, tuple[int, int] | None]:
    """messageDigest range, contentType, signingTime tag and range from the signed attributes.

    Attributes are short, so the common case (every length < 128) is read
    inline without ``tlv`` calls; anything longer takes the general path.
    """
    md = act = when = None
    when_tag = 0
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
            md = (v0, v1)
        elif which == "ct":
            act = oid_str(b[v0:v1]) if t0 == 0x06 else ""
        else:
            if t0 not in (0x17, 0x18):
                raise DerError("signingTime is not a time")
            when_tag, when = t0, (v0, v1)
    return md, act, when_tag, when


def parse_cms_asn1crypto(der: bytes) -> CmsParts:
    """The asn1crypto reference parser (see ``connectors.cms_reference``)."""
    from connectors.cms_reference import parse_with_asn1crypto

    return parse_with_asn1crypto(der)
