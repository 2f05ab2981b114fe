"""The reference CMS parser: asn1crypto, which also reads BER.

Two jobs: the fallback when the lean DER slicer (``connectors.cms``) meets
input it does not handle, such as the indefinite lengths of streaming signers
(``openssl cms -sign -stream``), and the oracle the lean slicer is checked
against by property tests. It yields the same ``CmsParts``.
"""

from __future__ import annotations

from asn1crypto import cms

from connectors.cms import (
    CONTENT_TYPE_ATTR,
    MESSAGE_DIGEST_ATTR,
    SIGNED_DATA,
    SIGNING_TIME_ATTR,
    CmsError,
    CmsParts,
)

__all__ = ["parse_with_asn1crypto"]


def parse_with_asn1crypto(der: bytes) -> CmsParts:
    """The reference parser (handles BER); same result as the lean path on DER."""
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
    certs = b"".join(c.chosen.dump() for c in (sd["certificates"] or []) if c.name == "certificate")
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
            if name in (MESSAGE_DIGEST_ATTR, CONTENT_TYPE_ATTR, SIGNING_TIME_ATTR):
                if len(values) != 1:
                    raise CmsError(f"attribute {name} must have exactly one value")
            if name == MESSAGE_DIGEST_ATTR:
                md = values[0].native
            elif name == CONTENT_TYPE_ATTR:
                act = values[0].dotted
            elif name == SIGNING_TIME_ATTR:
                when = (values[0].chosen.tag, values[0].chosen.contents)
    return CmsParts(
        content_type=encap["content_type"].dotted,
        content=content,
        cert_set=certs,
        digest_algorithm=si["digest_algorithm"]["algorithm"].dotted,
        signature_algorithm=si["signature_algorithm"]["algorithm"].dotted,
        signature=si["signature"].native,
        signed_attrs=attrs,
        issuer=issuer,
        serial=serial,
        ski=ski,
        message_digest=md,
        attr_content_type=act,
        signing_time_der=when,
    )
