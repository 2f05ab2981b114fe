"""The lean DER reader against asn1crypto, the reference parser (property tests)."""

from __future__ import annotations

from functools import lru_cache

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from connectors.cms import CmsError, parse_cms, parse_cms_asn1crypto, parse_cms_lean
from connectors.der import DerError, der_time, kids, oid_str, tlv
from tests import csos_support as cs

SLOW = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@lru_cache(maxsize=64)
def _signed(payload: bytes, ec: bool, extra: int, attrs: bool) -> bytes:
    who = cs.signer(key_type="ec" if ec else "rsa")
    b = (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(payload)
        .add_signer(who.cert, who.key, hashes.SHA256())
    )
    for cert in (cs.pki().sub_cert, cs.pki().root_cert, cs.signer().cert)[:extra]:
        b = b.add_certificate(cert)
    options = [pkcs7.PKCS7Options.Binary]
    options.append(
        pkcs7.PKCS7Options.NoAttributes if not attrs else pkcs7.PKCS7Options.NoCapabilities
    )
    return b.sign(serialization.Encoding.DER, options)


messages = st.builds(
    _signed,
    st.binary(min_size=1, max_size=300),
    st.booleans(),
    st.integers(0, 3),
    st.booleans(),
)


@SLOW
@given(messages)
def test_lean_equals_asn1crypto_on_valid_cms(der):
    assert parse_cms_lean(der) == parse_cms_asn1crypto(der)


@SLOW
@given(messages, st.data())
def test_lean_agrees_with_asn1crypto_on_mutations(der, data):
    buf = bytearray(der)
    for _ in range(data.draw(st.integers(1, 3))):
        buf[data.draw(st.integers(0, len(buf) - 1))] = data.draw(st.integers(0, 255))
    mutated = bytes(buf)
    try:
        lean = parse_cms_lean(mutated)
    except DerError:
        return
    try:
        reference = parse_cms_asn1crypto(mutated)
    except Exception:
        # asn1crypto is stricter in places the verifier does not read (e.g. the
        # version INTEGER or digestAlgorithms); what the lean path returns is
        # still checked by digest and signature.
        assume(False)
        return
    assert lean == reference


@SLOW
@given(st.binary(max_size=600))
def test_parse_cms_raises_only_cms_error(raw):
    try:
        parse_cms(raw)
    except CmsError:
        pass


@given(st.binary(max_size=64), st.integers(0, 70))
def test_der_reader_raises_only_der_error(raw, pos):
    try:
        tag, s, e = tlv(raw, pos)
        assert pos + 2 <= s <= e <= len(raw)
        kids(raw, s, e)
    except (DerError, IndexError):
        pass  # IndexError only for a start offset beyond the buffer; never from content


@given(st.binary(max_size=20))
def test_oid_and_time_raise_only_der_error(raw):
    for call in (lambda: oid_str(raw), lambda: der_time(0x17, raw), lambda: der_time(0x18, raw)):
        try:
            call()
        except DerError:
            pass


@pytest.mark.parametrize(
    ("hexbytes", "dotted"),
    [
        ("2a864886f70d010702", "1.2.840.113549.1.7.2"),
        ("608648016503040201", "2.16.840.1.101.3.4.2.1"),
    ],
)
def test_oid_str_matches_asn1crypto(hexbytes, dotted):
    from asn1crypto.core import ObjectIdentifier

    content = bytes.fromhex(hexbytes)
    assert (
        oid_str(content)
        == dotted
        == ObjectIdentifier.load(b"\x06" + bytes([len(content)]) + content).dotted
    )


def _walk(der: bytes):
    """The lean reader's full walk, without the layouts it has learnt."""
    from connectors import cms

    try:
        ct, start, stop, pos, end = cms._walk_head(der, len(der))
        return cms._build(der, pos, ct, der[start:stop], cms._walk_tail(der, pos, end))
    except (DerError, IndexError):
        return DerError


@SLOW
@given(messages, st.data())
def test_learnt_layouts_parse_exactly_like_the_walk(der, data):
    parse_cms_lean(der)  # learn this signer's layout, as for a first order
    buf = bytearray(der)
    for _ in range(data.draw(st.integers(1, 3))):
        buf[data.draw(st.integers(0, len(buf) - 1))] = data.draw(st.integers(0, 255))
    mutated = bytes(buf)
    try:
        got = parse_cms_lean(mutated)
    except DerError:
        got = DerError
    assert got == _walk(mutated)


def test_next_order_from_a_signer_takes_the_learnt_layout(monkeypatch):
    from connectors import cms

    first, second = _signed(b'{"n": 1}', False, 2, True), _signed(b'{"n": 22}', False, 2, True)
    parse_cms_lean(first)

    def no_walk(*args):
        raise AssertionError("walked a layout already learnt")

    monkeypatch.setattr(cms, "_walk_tail", no_walk)
    parts = parse_cms_lean(second)
    assert parts == parse_cms_asn1crypto(second)
    assert parts.content == b'{"n": 22}' and parts.signature != parse_cms_lean(first).signature


def test_learnt_layouts_are_bounded_in_bytes(monkeypatch):
    from connectors import cms

    monkeypatch.setattr(cms, "_TAILS", {})
    monkeypatch.setattr(cms, "_learnt", 0)
    monkeypatch.setattr(cms, "_learnt_bytes", 0)
    monkeypatch.setattr(cms, "_TAIL_BUDGET", 6000)
    ders = [_signed(b"{}", ec, extra, True) for ec in (False, True) for extra in range(4)]
    kept = []
    for der in ders:
        assert parse_cms_lean(der) == _walk(der)
        assert 0 < cms._learnt_bytes <= cms._TAIL_BUDGET
        kept.append(cms._learnt)
    assert 1 in kept[1:]  # the budget was reached and the layouts forgotten at least once
    monkeypatch.setattr(cms, "_MAX_TAIL_BYTES", 16)  # too large to keep: walked each time
    monkeypatch.setattr(cms, "_TAILS", {})
    assert parse_cms_lean(ders[0]) == _walk(ders[0]) and cms._TAILS == {}
