"""Revocation: CRLs checked against their CA, staleness policy, reload while running."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from connectors.demo_pki import DemoPKI
from connectors.signing import sign_cms
from engine.records import Rejected, RejectReason
from engine.verify import Verifier
from tests import csos_support as cs

DAY = timedelta(days=1)


def _fresh_pki() -> DemoPKI:
    p = cs.pki()
    return DemoPKI(p.root_cert, p.root_key, p.sub_cert, p.sub_key, p.seed)


def _write_crl(tmp_path, pki: DemoPKI, this_update=cs.T0, next_update=cs.T1, name="sub-ca.crl"):
    crl_dir = tmp_path / "crl"
    crl_dir.mkdir(exist_ok=True)
    path = crl_dir / name
    path.write_bytes(pki.crl(this_update, next_update).public_bytes(Encoding.PEM))
    return crl_dir


def _verifier(crl_dir, **changes) -> Verifier:
    return Verifier(cs.settings(crl_dir=str(crl_dir), **changes), cs.catalog())


def _reject(v: Verifier, raw: bytes, now=None) -> Rejected:
    with pytest.raises(Rejected) as info:
        v.verify(raw, now)
    return info.value


def test_revoked_before_signing_is_rejected(tmp_path):
    pki = _fresh_pki()
    who = pki.issue_registrant(cs.PURCHASER, "Revoked", ["2"], cs.T0, cs.T1)
    pki.revoke(who.cert, cs.SIGNED - DAY)
    err = _reject(_verifier(_write_crl(tmp_path, pki)), sign_cms(cs.payload(), who))
    assert err.reason is RejectReason.CERT_REVOKED
    assert err.purchaser_dea == cs.PURCHASER


def test_revoked_after_signing_is_accepted_and_counted(tmp_path):
    pki = _fresh_pki()
    who = pki.issue_registrant(cs.PURCHASER, "Later", ["2"], cs.T0, cs.T1)
    pki.revoke(who.cert, cs.SIGNED + DAY)
    v = _verifier(_write_crl(tmp_path, pki))
    assert v.verify(sign_cms(cs.payload(), who)).kind == "cms"
    assert v.stats["revoked_after_signing"] == 1


def test_stale_crl_reject_and_warn(tmp_path):
    crl_dir = _write_crl(tmp_path, _fresh_pki(), cs.T0, cs.SIGNED - DAY)
    raw = sign_cms(cs.payload(), cs.signer())
    now = cs.SIGNED + timedelta(hours=1)
    assert _reject(_verifier(crl_dir), raw, now).reason is RejectReason.CRL_STALE
    warn = _verifier(crl_dir, stale_crl="warn")
    assert warn.verify(raw, now).kind == "cms"
    assert warn.stats["crl_stale_warnings"] == 1


def test_crl_fresh_at_signing_time_when_replaying(tmp_path):
    crl_dir = _write_crl(tmp_path, _fresh_pki(), cs.T0, cs.SIGNED + DAY)
    raw = sign_cms(cs.payload(), cs.signer())
    assert _verifier(crl_dir).verify(raw).kind == "cms"  # now=None: judged at signing
    assert _reject(_verifier(crl_dir), raw, cs.SIGNED + 2 * DAY).reason is RejectReason.CRL_STALE


def test_missing_crl_for_issuer(tmp_path):
    (tmp_path / "crl").mkdir()
    err = _reject(_verifier(tmp_path / "crl"), sign_cms(cs.payload(), cs.signer()))
    assert err.reason is RejectReason.CRL_STALE
    assert "no CRL" in err.detail


def test_crl_signed_by_another_key_is_ignored(tmp_path):
    other = DemoPKI.create(cs.T0, cs.T1, seed=99)  # same CA names, other keys
    crl_dir = _write_crl(tmp_path, other)
    v = _verifier(crl_dir)
    assert _reject(v, sign_cms(cs.payload(), cs.signer())).reason is RejectReason.CRL_STALE


def test_unreadable_crl_file_is_reported_not_fatal(tmp_path):
    crl_dir = _write_crl(tmp_path, _fresh_pki())
    (crl_dir / "junk.crl").write_bytes(b"junk")
    v = _verifier(crl_dir)
    assert v.verify(sign_cms(cs.payload(), cs.signer())).kind == "cms"
    assert any("junk.crl" in e for e in v.crls.errors)


def test_new_crl_file_takes_effect_without_restart(tmp_path):
    pki = _fresh_pki()
    who = pki.issue_registrant(cs.PURCHASER, "Soon revoked", ["2"], cs.T0, cs.T1)
    crl_dir = _write_crl(tmp_path, pki)
    v = _verifier(crl_dir)
    raw = sign_cms(cs.payload(), who)
    assert v.verify(raw).kind == "cms"
    pki.revoke(who.cert, cs.SIGNED - DAY)
    path = _write_crl(tmp_path, pki, cs.T0 + DAY) / "sub-ca.crl"
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 5_000_000_000))
    v.crls.interval_s = 0.0
    v.crls._next_check = 0.0
    assert _reject(v, raw).reason is RejectReason.CERT_REVOKED
    assert v.crls.reloads == 2


def test_directory_is_looked_at_most_once_per_interval(tmp_path):
    ticks = iter([0.0, 0.2, 0.5, 1.5])
    from connectors.crls import CrlStore

    store = CrlStore(_write_crl(tmp_path, _fresh_pki()), interval_s=1.0, clock=lambda: next(ticks))
    (tmp_path / "crl" / "second.crl").write_bytes(b"x")
    assert store.maybe_reload() is False  # 0.2 s: too soon to look
    assert store.maybe_reload() is False  # 0.5 s
    assert store.maybe_reload() is True  # 1.5 s: looked, found a new file


def test_crl_ages_per_issuer(tmp_path):
    v = _verifier(_write_crl(tmp_path, _fresh_pki(), cs.T0))
    ages = v.crl_ages(cs.T0 + DAY)
    assert ages == {cs.pki().sub_cert.subject.rfc4514_string(): 86400.0}
    assert Verifier(cs.settings(crl_dir=""), cs.catalog()).crl_ages() == {}


def test_cached_clean_path_still_goes_stale_at_next_update(tmp_path):
    crl_dir = _write_crl(tmp_path, _fresh_pki(), cs.T0, cs.SIGNED + DAY)
    raw = sign_cms(cs.payload(), cs.signer())
    v = _verifier(crl_dir)
    assert v.verify(raw, cs.SIGNED + timedelta(hours=1)).kind == "cms"  # path cached as clean
    assert v.verify(raw, cs.SIGNED + DAY).kind == "cms"  # at nextUpdate: still fresh
    err = _reject(v, raw, cs.SIGNED + DAY + timedelta(seconds=1))
    assert err.reason is RejectReason.CRL_STALE


def test_reload_that_drops_the_crl_ends_a_cached_clean_path(tmp_path):
    crl_dir = _write_crl(tmp_path, _fresh_pki())
    raw = sign_cms(cs.payload(), cs.signer())
    v = _verifier(crl_dir)
    assert v.verify(raw).kind == "cms"
    (crl_dir / "sub-ca.crl").unlink()
    v.crls._next_check = 0.0
    err = _reject(v, raw)
    assert err.reason is RejectReason.CRL_STALE and "no CRL" in err.detail
