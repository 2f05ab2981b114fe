"""DEA extensions: the DEA number rule and the authorised schedules."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from hypothesis import given
from hypothesis import strategies as st

from connectors.dea_ext import (
    SCHEDULE_BITS,
    decode_dea_number,
    decode_schedules,
    encode_schedules,
    read_extensions,
)
from connectors.signing import sign_cms
from engine.records import Rejected, RejectReason
from engine.verify import Verifier
from tests import csos_support as cs

OTHER_DEA = "AB1234563"  # valid check digit, another registrant


def _run(raw: bytes, **changes):
    return Verifier(cs.settings(**changes), cs.catalog()).verify(raw)


def _reject(raw: bytes, **changes) -> Rejected:
    with pytest.raises(Rejected) as info:
        _run(raw, **changes)
    return info.value


def _lines(*ndcs: str) -> list[dict]:
    return [
        {"line": i + 1, "ndc": n, "product": "x", "package_quantity": 100, "packages": 1}
        for i, n in enumerate(ndcs)
    ]


def test_dea_mismatch():
    who = cs.signer(dea=OTHER_DEA)
    err = _reject(sign_cms(cs.payload(), who))
    assert err.reason is RejectReason.DEA_MISMATCH
    assert OTHER_DEA in err.detail and cs.PURCHASER in err.detail


@pytest.mark.parametrize("rule", ["sha1-serial", "sha256-serial"])
def test_hashed_dea_number_rules(rule):
    who = cs.pki().issue_registrant(
        cs.PURCHASER, "Hashed", ["2"], cs.T0, cs.T1, dea_encoding=rule, subject_serial="SN42"
    )
    raw = sign_cms(cs.payload(), who)
    assert _run(raw, dea_match=rule).kind == "cms"
    assert _reject(raw, dea_match="plain").reason is RejectReason.DEA_MISMATCH
    wrong = "sha256-serial" if rule == "sha1-serial" else "sha1-serial"
    assert _reject(raw, dea_match=wrong).reason is RejectReason.DEA_MISMATCH


def test_plain_certificate_under_hash_rule_is_mismatch():
    raw = sign_cms(cs.payload(), cs.signer())
    assert _reject(raw, dea_match="sha1-serial").reason is RejectReason.DEA_MISMATCH


def _bare_registrant(with_dea: bool, with_schedules: bool):
    from connectors.dea_ext import DEA_NUMBER_OID, SCHEDULES_OID, encode_dea_number
    from connectors.demo_pki import Identity

    pki, key = cs.pki(), cs.signer().key
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "bare")]))
        .issuer_name(pki.sub_cert.subject)
        .public_key(key.public_key())
        .serial_number(777 + with_dea * 2 + with_schedules)
        .not_valid_before(cs.T0)
        .not_valid_after(cs.T1)
    )
    if with_dea:
        ext = x509.UnrecognizedExtension(DEA_NUMBER_OID, encode_dea_number(cs.PURCHASER))
        builder = builder.add_extension(ext, False)
    if with_schedules:
        ext = x509.UnrecognizedExtension(SCHEDULES_OID, encode_schedules(["2"]))
        builder = builder.add_extension(ext, False)
    cert = builder.sign(pki.sub_key, hashes.SHA256())
    return Identity(key=key, cert=cert, chain=(pki.sub_cert,))


def test_missing_dea_extension():
    err = _reject(sign_cms(cs.payload(), _bare_registrant(False, True)))
    assert err.reason is RejectReason.DEA_MISMATCH
    assert "absent" in err.detail


def test_missing_schedule_extension():
    err = _reject(sign_cms(cs.payload(), _bare_registrant(True, False)))
    assert err.reason is RejectReason.SCHEDULE_NOT_AUTHORIZED


def test_non_narcotic_schedule_does_not_cover_narcotic():
    who = cs.signer(schedules=("2N", "4"))
    assert _run(sign_cms(cs.payload(lines=_lines(cs.AMPH, cs.ALPRAZ)), who)).kind == "cms"
    err = _reject(sign_cms(cs.payload(lines=_lines(cs.ALPRAZ, cs.OXY)), who))
    assert err.reason is RejectReason.SCHEDULE_NOT_AUTHORIZED
    assert cs.OXY in err.detail and "schedule 2" in err.detail and "line 2" in err.detail


def test_narcotic_schedule_does_not_cover_non_narcotic():
    who = cs.signer(schedules=("2",))
    err = _reject(sign_cms(cs.payload(lines=_lines(cs.AMPH)), who))
    assert err.reason is RejectReason.SCHEDULE_NOT_AUTHORIZED


def test_read_extensions_of_demo_certificate():
    ext = read_extensions(cs.signer().cert)
    assert (ext.dea_value, ext.schedules) == (cs.PURCHASER, frozenset({"2", "2N", "4"}))
    assert ext.subject_serial


@given(st.sets(st.sampled_from(sorted(SCHEDULE_BITS))))
def test_schedule_bits_round_trip_and_match_asn1crypto(schedules):
    from asn1crypto.core import BitString

    der = encode_schedules(schedules)
    assert decode_schedules(der) == frozenset(schedules)
    bits = BitString.load(der, strict=True).native  # tuple of bits, most significant first
    index = {s: 8 - bit.bit_length() for s, bit in SCHEDULE_BITS.items()}
    named = {s for s, i in index.items() if i < len(bits) and bits[i]}
    assert named == set(schedules)


@given(st.binary(max_size=40))
def test_extension_decoders_never_raise(raw):
    decode_dea_number(raw)
    decode_schedules(raw)
