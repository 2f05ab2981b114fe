"""Certificate paths: trusted root, CA intermediates, validity at the signing date."""

from __future__ import annotations

from datetime import timedelta

import pytest

from config.settings import ConfigError
from connectors.demo_pki import DemoPKI
from connectors.signing import sign_cms
from engine.records import Rejected, RejectReason
from engine.verify import Verifier
from tests import csos_support as cs


def _verify(raw: bytes, now=None, **changes):
    return Verifier(cs.settings(**changes), cs.catalog()).verify(raw, now)


def _reason(raw: bytes, **changes) -> Rejected:
    with pytest.raises(Rejected) as info:
        _verify(raw, **changes)
    return info.value


def test_chain_from_envelope_without_intermediates_dir():
    raw = sign_cms(cs.payload(), cs.signer())
    assert _verify(raw, intermediates_dir="").kind == "cms"


def test_chain_from_intermediates_dir_when_envelope_lacks_it():
    who = cs.signer()
    bare = type(who)(key=who.key, cert=who.cert, chain=())
    assert _verify(sign_cms(cs.payload(), bare)).kind == "cms"
    err = _reason(sign_cms(cs.payload(), bare), intermediates_dir="")
    assert err.reason is RejectReason.UNTRUSTED_CHAIN


def test_untrusted_root():
    other = DemoPKI.create(cs.T0, cs.T1, seed=99)
    who = other.issue_registrant(cs.PURCHASER, "X", ["2"], cs.T0, cs.T1)
    err = _reason(sign_cms(cs.payload(), who))
    assert err.reason is RejectReason.UNTRUSTED_CHAIN
    assert (err.order_number, err.purchaser_dea) == ("25X00A123", cs.PURCHASER)


def test_intermediate_that_is_not_a_ca():
    rogue = cs.rogue_pki(sub_is_ca=False)
    who = rogue.issue_registrant(cs.PURCHASER, "X", ["2"], cs.T0, cs.T1)
    assert _reason(sign_cms(cs.payload(), who)).reason is RejectReason.UNTRUSTED_CHAIN


def test_intermediate_that_is_a_ca_under_the_root_is_trusted():
    rogue = cs.rogue_pki(sub_is_ca=True)
    who = rogue.issue_registrant(cs.PURCHASER, "X", ["2"], cs.T0, cs.T1)
    with pytest.raises(Rejected) as info:  # trusted path, but its CRL is not configured
        _verify(sign_cms(cs.payload(), who))
    assert info.value.reason is RejectReason.CRL_STALE
    assert _verify(sign_cms(cs.payload(), who), crl_dir="").kind == "cms"


@pytest.mark.parametrize(
    ("start", "end"),
    [(cs.T0, cs.SIGNED - timedelta(days=1)), (cs.SIGNED + timedelta(days=1), cs.T1)],
)
def test_certificate_not_valid_at_signing_date(start, end):
    who = cs.pki().issue_registrant(cs.PURCHASER, "Expired", ["2"], start, end)
    err = _reason(sign_cms(cs.payload(), who))
    assert err.reason is RejectReason.CERT_EXPIRED
    assert "order signed 2025-03-04" in err.detail


def test_expired_now_but_valid_when_signed_is_accepted():
    who = cs.pki().issue_registrant(cs.PURCHASER, "Lapsed", ["2"], cs.T0, cs.SIGNED + timedelta(1))
    raw = sign_cms(cs.payload(), who)
    assert _verify(raw, now=cs.SIGNED + timedelta(days=3)).kind == "cms"


def test_cached_path_still_checks_each_signing_date():
    who = cs.pki().issue_registrant(cs.PURCHASER, "Short", ["2"], cs.T0, cs.SIGNED + timedelta(1))
    v = Verifier(cs.settings(), cs.catalog())
    v.verify(sign_cms(cs.payload(), who))
    later = cs.payload(signed_at="2025-03-20T00:00:00Z")
    with pytest.raises(Rejected) as info:
        v.verify(sign_cms(later, who))
    assert info.value.reason is RejectReason.CERT_EXPIRED
    assert v.chain_cache == {"hits": 1, "misses": 1}


def test_no_trust_anchors_configured_fails_closed():
    raw = sign_cms(cs.payload(), cs.signer())
    err = _reason(raw, trust_dir="", intermediates_dir="", crl_dir="")
    assert err.reason is RejectReason.UNTRUSTED_CHAIN


def test_require_chain_off_still_checks_signature_and_extensions():
    v = Verifier(cs.settings(trust_dir="", require_chain=False), cs.catalog())
    v.verify(sign_cms(cs.payload(), cs.signer()))
    assert v.stats["chain_unchecked"] == 1


def test_bad_trust_configuration_names_the_path(tmp_path):
    (tmp_path / "junk.pem").write_text("not a certificate")
    with pytest.raises(ConfigError, match="junk.pem"):
        Verifier(cs.settings(trust_dir=str(tmp_path)), cs.catalog())
    with pytest.raises(ConfigError, match="does not exist"):
        Verifier(cs.settings(crl_dir=str(tmp_path / "missing")), cs.catalog())


def test_relative_dirs_resolve_against_base_dir():
    root = cs.trust_root()
    v = Verifier(
        cs.settings(trust_dir="trust", intermediates_dir="intermediates", crl_dir="crl"),
        cs.catalog(),
        base_dir=root,
    )
    assert v.verify(sign_cms(cs.payload(), cs.signer())).kind == "cms"


def test_der_trust_anchor(tmp_path):
    from cryptography.hazmat.primitives.serialization import Encoding

    (tmp_path / "root.cer").write_bytes(cs.pki().root_cert.public_bytes(Encoding.DER))
    assert _verify(sign_cms(cs.payload(), cs.signer()), trust_dir=str(tmp_path)).kind == "cms"
