"""open_envelope: every format in, only SignedMessage or Rejected out."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.envelope import open_envelope
from connectors.signing import sign_cms, sign_json_envelope
from engine.records import Rejected, RejectReason
from tests import csos_support as cs


def _reason(raw: bytes) -> RejectReason:
    with pytest.raises(Rejected) as info:
        open_envelope(raw)
    return info.value.reason


@pytest.fixture(scope="module")
def cms() -> bytes:
    return sign_cms(cs.payload(), cs.signer())


def test_der_cms_opens(cms):
    msg = open_envelope(cms)
    assert msg.kind == "cms"
    assert msg.payload == cs.payload()
    assert msg.signer == cs.signer().cert
    assert msg.certificates == (cs.pki().sub_cert,)
    assert msg.signing_time is not None


def test_base64_and_pem_cms_open(cms):
    b64 = base64.b64encode(cms)
    assert open_envelope(b64).kind == "cms"
    assert open_envelope(b64 + b"\n").payload == cs.payload()
    body = base64.encodebytes(cms)
    for label in (b"CMS", b"PKCS7"):
        pem = b"-----BEGIN " + label + b"-----\n" + body + b"-----END " + label + b"-----\n"
        assert open_envelope(pem).payload == cs.payload()


@pytest.mark.parametrize("key_type", ["rsa", "ec"])
def test_json_envelope_opens(key_type):
    who = cs.signer(key_type=key_type)
    env = json.dumps(sign_json_envelope(cs.payload(), who)).encode()
    msg = open_envelope(env)
    assert (msg.kind, msg.payload, msg.signer) == ("json", cs.payload(), who.cert)


def test_ec_cms_opens():
    who = cs.signer(key_type="ec")
    assert open_envelope(sign_cms(cs.payload(), who)).signer == who.cert


def test_paper_forms():
    bare = cs.payload(form="dea222", form_number="123456789")
    assert open_envelope(bare).kind == "paper"
    unsigned = json.dumps({"payload": base64.b64encode(bare).decode()}).encode()
    msg = open_envelope(unsigned)
    assert (msg.kind, msg.payload, msg.signer) == ("paper", bare, None)


def test_json_envelope_signed_by_other_key():
    env = sign_json_envelope(cs.payload(), cs.signer())
    other = sign_json_envelope(cs.payload(), cs.signer(key_type="ec"))
    env["signature"] = other["signature"]
    with pytest.raises(Rejected) as info:
        open_envelope(json.dumps(env).encode())
    assert info.value.reason is RejectReason.BAD_SIGNATURE
    assert info.value.order_number == "25X00A123"


def test_json_envelope_tampered_payload():
    env = sign_json_envelope(cs.payload(), cs.signer())
    env["payload"] = base64.b64encode(cs.payload(order_number="25X00A999")).decode()
    assert _reason(json.dumps(env).encode()) is RejectReason.BAD_SIGNATURE


def test_cms_tampered_content(cms):
    original = cs.payload()
    forged = cs.payload().replace(b'"packages": 2', b'"packages": 9')
    assert len(forged) == len(original)
    assert _reason(cms.replace(original, forged)) is RejectReason.BAD_SIGNATURE


def test_cms_tampered_signature(cms):
    broken = bytearray(cms)
    broken[-5] ^= 0x01
    assert _reason(bytes(broken)) is RejectReason.BAD_SIGNATURE


def test_cms_without_signer_certificate():
    who = cs.signer()
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.serialization import pkcs7

    der = (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(cs.payload())
        .add_signer(who.cert, who.key, hashes.SHA256())
        .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary, pkcs7.PKCS7Options.NoCerts])
    )
    assert _reason(der) is RejectReason.BAD_SIGNATURE


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\x01garbage",
        b"   ",
        b"[1, 2]",
        b"{not json",
        b'{"payload": "%%%"}',
        b'{"payload": "e30=", "signature": "AAAA", "certificates": ["nope"]}',
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        base64.b64encode(b"hello world, not CMS"),
        base64.b64encode(b"\x30\x03\x02\x01\x01"),
        b"\x30\x82\xff\xff",
    ],
)
def test_garbage_is_malformed(raw):
    assert _reason(raw) is RejectReason.MALFORMED


def test_truncated_der(cms):
    for cut in (1, 2, 10, len(cms) // 2, len(cms) - 1):
        assert _reason(cms[:cut]) in (RejectReason.MALFORMED, RejectReason.BAD_SIGNATURE)


def test_envelope_without_certificates_is_bad_signature():
    env = sign_json_envelope(cs.payload(), cs.signer())
    env["certificates"] = []
    assert _reason(json.dumps(env).encode()) is RejectReason.BAD_SIGNATURE


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_any_bytes_raise_only_rejected(raw):
    try:
        open_envelope(raw)
    except Rejected:
        pass


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_cms_raise_only_rejected(data):
    cms = sign_cms(b'{"x": 1}', cs.signer())
    buf = bytearray(cms)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(buf) - 1))
        buf[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(buf)))
    try:
        open_envelope(bytes(buf[:cut]) if data.draw(st.booleans()) else bytes(buf))
    except Rejected:
        pass


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_fields = st.fixed_dictionaries(
    {},
    optional={
        "payload": st.one_of(
            _json, st.binary(max_size=60).map(lambda b: base64.b64encode(b).decode())
        ),
        "signature": st.one_of(
            _json, st.binary(max_size=80).map(lambda b: base64.b64encode(b).decode())
        ),
        "certificates": st.one_of(_json, st.lists(st.text(max_size=40), max_size=3)),
    },
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(_json, _fields))
def test_any_json_raises_only_rejected(value):
    try:
        open_envelope(json.dumps(value).encode())
    except Rejected:
        pass


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_tampered_json_envelope_raises_only_rejected(data):
    env = sign_json_envelope(cs.payload(), cs.signer())
    key = data.draw(st.sampled_from(sorted(env)))
    env[key] = data.draw(_json)
    try:
        open_envelope(json.dumps(env).encode())
    except Rejected as exc:
        assert exc.reason in (RejectReason.MALFORMED, RejectReason.BAD_SIGNATURE)


def test_open_envelope_size_cap():
    assert (
        _reason(
            b"0" * 2048,
        )
        is RejectReason.MALFORMED
    )
    with pytest.raises(Rejected) as info:
        open_envelope(b"0" * 2048, max_bytes=1024)
    assert info.value.reason is RejectReason.TOO_LARGE
