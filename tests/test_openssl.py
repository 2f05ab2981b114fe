"""Orders signed by the openssl CLI, as third-party CSOS software would sign them."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from cryptography.hazmat.primitives import serialization as ser

from connectors.cms import parse_cms_asn1crypto, parse_cms_lean
from connectors.demo_pki import Identity
from engine.records import Rejected, RejectReason
from engine.verify import Verifier
from tests import csos_support as cs

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
pytestmark = pytest.mark.skipif(not shutil.which(OPENSSL), reason="openssl CLI not installed")


def openssl_sign(tmp_path, payload: bytes, who: Identity, *extra: str, chain: bool = True) -> bytes:
    """``openssl cms -sign -binary -nodetach -md sha256 -outform DER ...`` in ``tmp_path``."""
    pem = ser.Encoding.PEM
    (tmp_path / "cert.pem").write_bytes(who.cert.public_bytes(pem))
    (tmp_path / "chain.pem").write_bytes(b"".join(c.public_bytes(pem) for c in who.chain))
    key = who.key.private_bytes(pem, ser.PrivateFormat.PKCS8, ser.NoEncryption())
    (tmp_path / "key.pem").write_bytes(key)
    (tmp_path / "order.json").write_bytes(payload)
    args = [OPENSSL, "cms", "-sign", "-binary", "-nodetach", "-md", "sha256"]
    args += ["-outform", "DER", "-signer", "cert.pem", "-inkey", "key.pem"]
    args += ["-certfile", "chain.pem"] if chain else []
    args += ["-in", "order.json", "-out", "signed.der", *extra]
    subprocess.run(args, cwd=tmp_path, check=True, capture_output=True, timeout=30)
    return (tmp_path / "signed.der").read_bytes()


def _verify(raw: bytes, **changes):
    return Verifier(cs.settings(**changes), cs.catalog()).verify(raw)


def _reason(raw: bytes, **changes) -> RejectReason:
    with pytest.raises(Rejected) as info:
        _verify(raw, **changes)
    return info.value.reason


def test_openssl_der_verifies_and_lean_matches_asn1crypto(tmp_path):
    raw = openssl_sign(tmp_path, cs.payload(), cs.signer())
    assert parse_cms_lean(raw) == parse_cms_asn1crypto(raw)
    got = _verify(raw, supplier_dea=cs.SUPPLIER)
    assert (got.kind, got.order.order_number) == ("cms", "25X00A123")


def test_openssl_streamed_ber_verifies(tmp_path):
    raw = openssl_sign(tmp_path, cs.payload(), cs.signer(), "-stream")
    assert raw[1] == 0x80  # indefinite length: the asn1crypto fallback path
    assert _verify(raw).kind == "cms"


def test_openssl_ec_signer(tmp_path):
    assert _verify(openssl_sign(tmp_path, cs.payload(), cs.signer(key_type="ec"))).kind == "cms"


def test_openssl_without_signed_attributes(tmp_path):
    raw = openssl_sign(tmp_path, cs.payload(), cs.signer(), "-noattr")
    assert parse_cms_lean(raw).signed_attrs is None
    assert _verify(raw).kind == "cms"


def test_openssl_pem_output(tmp_path):
    der = openssl_sign(tmp_path, cs.payload(), cs.signer())
    pem = subprocess.run(
        [OPENSSL, "cms", "-cmsout", "-inform", "DER", "-outform", "PEM", "-in", "signed.der"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        timeout=30,
    ).stdout
    assert pem.startswith(b"-----BEGIN CMS-----")
    assert _verify(pem).order == _verify(der).order


def test_openssl_sha1_is_refused(tmp_path):
    raw = openssl_sign(tmp_path, cs.payload(), cs.signer(), "-md", "sha1")
    assert _reason(raw) is RejectReason.BAD_SIGNATURE


def test_openssl_content_not_json(tmp_path):
    raw = openssl_sign(tmp_path, b"ISA*00*X12 850 not JSON~", cs.signer())
    assert _reason(raw) is RejectReason.MALFORMED


def test_openssl_without_signer_certificate(tmp_path):
    raw = openssl_sign(tmp_path, cs.payload(), cs.signer(), "-nocerts", chain=False)
    assert _reason(raw) is RejectReason.BAD_SIGNATURE


def test_openssl_other_registrant(tmp_path):
    raw = openssl_sign(tmp_path, cs.payload(), cs.signer(dea="AB1234563"))
    assert _reason(raw) is RejectReason.DEA_MISMATCH


def test_openssl_content_swapped_after_signing(tmp_path):
    raw = openssl_sign(tmp_path, cs.payload(), cs.signer())
    forged = raw.replace(b'"packages": 2', b'"packages": 8')
    assert forged != raw
    assert _reason(forged) is RejectReason.BAD_SIGNATURE


def test_openssl_signer_identified_by_key_id(tmp_path):
    raw = openssl_sign(tmp_path, cs.payload(), cs.signer(), "-keyid")
    parts = parse_cms_lean(raw)
    assert parts.ski is not None and parts.issuer is None
    assert parts == parse_cms_asn1crypto(raw)
    assert _verify(raw).kind == "cms"
