"""Certificate paths: trusted root, CA intermediates, validity at the signing date."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

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
    (tmp_path / "root.cer").write_bytes(cs.pki().root_cert.public_bytes(Encoding.DER))
    assert _verify(sign_cms(cs.payload(), cs.signer()), trust_dir=str(tmp_path)).kind == "cms"


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_trust_directories_are_read_again_when_they_change(tmp_path):
    """A new CA pair dropped in is trusted without a restart; a withdrawn anchor is not;
    a change that cannot be loaded keeps the previous set and says why."""
    from connectors.certcache import cert_info
    from connectors.trust import TrustStore

    old, new = cs.pki(), DemoPKI.create(cs.T0, cs.T1, seed=99)
    old.write(tmp_path / "old")
    trust, inter = tmp_path / "trust", tmp_path / "intermediates"
    trust.mkdir()
    inter.mkdir()
    (trust / "old-root.pem").write_bytes((tmp_path / "old/trust/root.pem").read_bytes())
    (inter / "old-sub.pem").write_bytes((tmp_path / "old/intermediates/sub-ca.pem").read_bytes())
    clock = _Clock()
    store = TrustStore.from_dirs(trust, inter, clock=clock)
    signer_old = cert_info(cs.signer().cert.public_bytes(Encoding.DER))
    who = new.issue_registrant(cs.PURCHASER, "X", ["2"], cs.T0, cs.T1)
    signer_new = cert_info(who.cert.public_bytes(Encoding.DER))
    assert store.chain(signer_old, (), cs.SIGNED)
    with pytest.raises(Rejected):
        store.chain(signer_new, (), cs.SIGNED)

    new.write(tmp_path / "new")
    (trust / "new-root.pem").write_bytes((tmp_path / "new/trust/root.pem").read_bytes())
    sub = (tmp_path / "new/intermediates/sub-ca.pem").read_bytes()
    (inter / "new-sub.pem").write_bytes(sub[: len(sub) // 2])  # a copy in progress
    assert not store.maybe_reload()  # looked at most once per interval
    clock.t += 1.0
    assert not store.maybe_reload()  # changed since the last look: wait until it settles
    (inter / "new-sub.pem").write_bytes(sub)  # the copy completes
    clock.t += 1.0
    assert not store.maybe_reload() and store.reloads == 0  # changed again: wait
    clock.t += 1.0
    assert store.maybe_reload() and store.reloads == 1  # settled for one interval: loaded
    assert len(store.anchors) == 2 and store.chain(signer_new, (), cs.SIGNED)

    def settle() -> bool:
        clock.t += 1.0
        first = store.maybe_reload()
        clock.t += 1.0
        return first or store.maybe_reload()

    (trust / "old-root.pem").unlink()  # the old anchor withdrawn: its cached path goes too
    assert settle()
    with pytest.raises(Rejected) as info:
        store.chain(signer_old, (), cs.SIGNED)
    assert info.value.reason is RejectReason.UNTRUSTED_CHAIN

    # a bundle whose second certificate is cut short: an error, not one certificate
    root_pem = (tmp_path / "new/trust/root.pem").read_bytes()
    (trust / "bundle.pem").write_bytes(root_pem + b"-----BEGIN CERTIFICATE-----\nAAAA")
    assert not settle()
    assert "bundle.pem" in store.reload_error
    assert store.chain(signer_new, (), cs.SIGNED)  # the previous set stays in use
    (trust / "bundle.pem").unlink()
    assert settle() and store.reload_error is None and store.reloads == 3


def test_verifier_trusts_a_new_intermediate_without_a_restart(tmp_path):
    root = cs.pki()
    root.write(tmp_path)
    v = Verifier(cs.settings(trust_dir=str(tmp_path / "trust"),
                             intermediates_dir=str(tmp_path / "intermediates"), crl_dir=""),
                 cs.catalog())
    v.trust.clock = clock = _Clock()
    v.trust._next_check = 0.0  # the test's clock from now on
    rotated = cs.rogue_pki(sub_is_ca=True, root=root, seed=31)  # DEA's next sub CA
    who = rotated.issue_registrant(cs.PURCHASER, "X", ["2"], cs.T0, cs.T1)
    bare = type(who)(key=who.key, cert=who.cert, chain=())  # its software sends no chain
    raw = sign_cms(cs.payload(), bare)
    with pytest.raises(Rejected) as info:
        v.verify(raw)
    assert info.value.reason is RejectReason.UNTRUSTED_CHAIN
    (tmp_path / "intermediates" / "next-sub.pem").write_bytes(
        rotated.sub_cert.public_bytes(Encoding.PEM))
    clock.t += 1.0  # seen; loaded once it has stood still for another second
    assert _reason_of(v, raw) is RejectReason.UNTRUSTED_CHAIN
    clock.t += 1.0
    assert v.verify(raw).kind == "cms"


def _reason_of(v: Verifier, raw: bytes) -> RejectReason:
    with pytest.raises(Rejected) as info:
        v.verify(raw)
    return info.value.reason
