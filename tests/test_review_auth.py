"""Signed officers' reviews: CMS (openssl) and JSON envelopes, chained to the reviews CA."""

from __future__ import annotations

import base64
import io
import json
from datetime import timedelta

import pytest

from config import ConfigError, load_settings
from connectors.demo_pki import DemoPKI
from connectors.signing import sign_cms, sign_json_envelope
from engine.build import build_pipeline
from engine.records import Decision, Rejected, RejectReason
from engine.replay import replay
from engine.review_auth import ReviewAuthenticator
from tests import csos_support as cs
from tests.review_support import SPIKE_DAY
from tests.review_support import review as plain_review
from tests.support import PURCHASERS
from tests.test_openssl import openssl_sign

AT = cs.SIGNED + timedelta(days=1)


def review(at=AT, **changes) -> bytes:
    body = {"order_number": "25X00A123", "purchaser_dea": cs.PURCHASER, "outcome": "cleared",
            "reviewed_at": at.isoformat().replace("+00:00", "Z"), "reviewer": "officer-17"}
    return json.dumps({**body, **changes}).encode()


@pytest.fixture(scope="module")
def case_system(tmp_path_factory):
    """The case-management system's CA (trust dir) and its signing identity."""
    tmp = tmp_path_factory.mktemp("reviews-ca")
    ca = DemoPKI.create(cs.T0, cs.T1, seed=41)
    ca.write(tmp)
    who = ca.issue_registrant("AB1234563", "Case System [TEST]", ["2"], cs.T0, cs.T1)
    return tmp / "trust", who


def _auth(case_system, require: bool = False) -> ReviewAuthenticator:
    return ReviewAuthenticator.from_dirs(case_system[0], require)


def _reason(auth: ReviewAuthenticator, raw: bytes) -> Rejected:
    with pytest.raises(Rejected) as info:
        auth.open(raw)
    return info.value


def test_signer_eku_lets_only_certificates_issued_for_reviews_sign(case_system, tmp_path):
    from cryptography import x509

    trust, who = case_system
    reviews_eku = "1.3.6.1.4.1.99999.1.7"  # the case system CA's own "signs reviews" usage
    ca = DemoPKI.create(cs.T0, cs.T1, seed=41)  # the same CA as the fixture's
    usage = x509.ExtendedKeyUsage([x509.ObjectIdentifier(reviews_eku)])
    officer = ca.issue_registrant("AB1234563", "Officer [TEST]", ["2"], cs.T0, cs.T1,
                                  extra=(usage,))
    auth = ReviewAuthenticator.from_dirs(trust, True, signer_eku=reviews_eku)
    assert "Officer [TEST]" in auth.open(sign_cms(review(), officer))[1].subject
    refused = _reason(auth, sign_cms(review(), who))  # no extended key usage at all
    assert refused.reason is RejectReason.UNTRUSTED_CHAIN and reviews_eku in refused.detail
    other = ca.issue_registrant("AB1234563", "Mail [TEST]", ["2"], cs.T0, cs.T1, extra=(
        x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.EMAIL_PROTECTION]),))
    assert _reason(auth, sign_cms(review(), other)).reason is RejectReason.UNTRUSTED_CHAIN
    cfg = tmp_path / "som.toml"
    cfg.write_text('[reviews]\nsigner_eku = "reviews"\n')
    with pytest.raises(ConfigError, match="signer_eku"):
        load_settings(cfg)
    cfg.write_text(f'[reviews]\nsigner_eku = "{reviews_eku}"\n')
    with pytest.raises(ConfigError, match="signer_eku needs trust_dir"):
        load_settings(cfg)


def test_openssl_signed_review_names_its_signer(case_system, tmp_path):
    _, who = case_system
    raw = openssl_sign(tmp_path, review(), who)
    got, signer = _auth(case_system, require=True).open(raw)
    assert (got.order_number, got.outcome, got.reviewer) == ("25X00A123", "cleared", "officer-17")
    assert "CN=Case System [TEST]" in signer.subject
    assert signer.serial == format(who.cert.serial_number, "x")


def test_json_envelope_and_pem_cms_reviews(case_system):
    _, who = case_system
    envelope = json.dumps(sign_json_envelope(review(), who)).encode()
    assert _auth(case_system, require=True).open(envelope)[1] is not None
    der = sign_cms(review(outcome="reported"), who)
    pem = (b"-----BEGIN CMS-----\n" + base64.encodebytes(der) + b"-----END CMS-----\n")
    got, signer = _auth(case_system, require=True).open(pem)
    assert got.outcome == "reported" and signer is not None


def test_a_changed_signed_review_is_a_bad_signature(case_system):
    _, who = case_system
    envelope = sign_json_envelope(review(), who)
    envelope["payload"] = base64.b64encode(review(outcome="reported")).decode()
    err = _reason(_auth(case_system), json.dumps(envelope).encode())
    assert err.reason is RejectReason.BAD_SIGNATURE
    assert (err.order_number, err.purchaser_dea) == ("25X00A123", cs.PURCHASER)  # for reconciling


def test_a_review_signed_under_another_ca_is_untrusted(case_system):
    err = _reason(_auth(case_system), sign_cms(review(), cs.signer()))  # the orders' PKI
    assert err.reason is RejectReason.UNTRUSTED_CHAIN
    assert (err.order_number, err.purchaser_dea) == ("25X00A123", cs.PURCHASER)


def test_the_signer_must_be_valid_when_the_review_was_made(case_system):
    _, who = case_system
    late = review(at=cs.T1 + timedelta(days=1))
    assert _reason(_auth(case_system), sign_cms(late, who)).reason is RejectReason.CERT_EXPIRED


def test_unsigned_reviews_only_while_signatures_are_not_required(case_system):
    got, signer = _auth(case_system).open(review())
    assert got.outcome == "cleared" and signer is None
    err = _reason(_auth(case_system, require=True), review())
    assert err.reason is RejectReason.BAD_SIGNATURE and "require_signature" in err.detail
    assert err.order_number == "25X00A123"
    # bad input is still named by its field, signed or not
    err = _reason(_auth(case_system, require=True), b'{"outcome": "cleared"}')
    assert err.reason is RejectReason.MALFORMED and "order_number" in err.detail


def test_a_signed_review_needs_a_reviews_ca(case_system):
    _, who = case_system
    err = _reason(ReviewAuthenticator(None), sign_cms(review(), who))
    assert err.reason is RejectReason.UNTRUSTED_CHAIN and "reviews.trust_dir" in err.detail


def test_replay_applies_signed_reviews_in_time_and_records_their_signer(
    held, case_system, tmp_path
):
    """The core with [reviews] require_signature: a signed clearance releases the repeat of
    a held spike (and its record names the signer); the same review unsigned is rejected,
    so the repeat stays held."""
    tf, settings, messages, repeat = held
    trust, who = case_system
    strict = settings.with_overrides(reviews={"trust_dir": str(trust),
                                              "require_signature": True})
    probe: list = []
    replay(build_pipeline(settings), messages, on_outcome=probe.append)
    spike = next(o for o in probe if isinstance(o, Decision) and o.decision == "HOLD"
                 and o.purchaser_dea == PURCHASERS[0])
    cleared = plain_review(spike.order_number, "cleared", SPIKE_DAY + timedelta(days=1))
    for raw, expect in ((openssl_sign(tmp_path, cleared, who), "RELEASE"), (cleared, "HOLD")):
        out: list = []
        records = io.BytesIO()
        summary = replay(build_pipeline(strict), [*messages, repeat], on_outcome=out.append,
                         reviews=[raw], reviews_out=records, rejections_out=records)
        last = [o for o in out if isinstance(o, Decision)][-1]
        assert last.order_number == "25X900009" and last.decision == expect
        (line,) = records.getvalue().splitlines()
        record = json.loads(line)
        if expect == "RELEASE":
            assert summary.reviews == 1 and record["record"] == "review"
            assert "Case System [TEST]" in record["signer"]["subject"]
            assert record["signer"]["serial"] == format(who.cert.serial_number, "x")
        else:
            assert summary.reviews_rejected == 1 and record["reason"] == "bad_signature"


def test_require_signature_without_a_ca_names_the_keys(tmp_path):
    from config import ConfigError, load_settings

    cfg = tmp_path / "som.toml"
    cfg.write_text("[reviews]\nrequire_signature = true\n")
    with pytest.raises(ConfigError, match="reviews") as info:
        load_settings(cfg)
    assert "trust_dir" in str(info.value) and str(cfg) in str(info.value)
    cfg.write_text('[reviews]\nallowed_signers = ["CN=Case System"]\n')
    with pytest.raises(ConfigError, match="allowed_signers needs trust_dir"):
        load_settings(cfg)


def test_som_review_signs_with_the_officers_key_and_names_a_wrong_one(case_system, tmp_path):
    from click.testing import CliRunner
    from cryptography.hazmat.primitives import serialization as ser

    from engine.cli import main

    trust, who = case_system
    pem = ser.Encoding.PEM
    cert = tmp_path / "officer.pem"
    cert.write_bytes(b"".join(c.public_bytes(pem) for c in (who.cert, *who.chain)))
    key = tmp_path / "officer.key"
    key.write_bytes(who.key.private_bytes(pem, ser.PrivateFormat.PKCS8, ser.NoEncryption()))
    args = ["review", "--order", "25X00A123", "--dea", cs.PURCHASER, "--outcome", "cleared",
            "--reviewer", "officer-17", "--at", "2025-03-05T10:00:00Z", "--print"]
    result = CliRunner().invoke(main, [*args, "--sign-cert", str(cert), "--sign-key", str(key)])
    assert result.exit_code == 0, result.output
    (line,) = result.stdout.splitlines()
    got, signer = ReviewAuthenticator.from_dirs(trust, True).open(line.encode())
    assert got.reviewer == "officer-17" and "Case System [TEST]" in signer.subject
    # as CMS SignedData, printed as a reviews-file line (base64 in a JSON string)
    result = CliRunner().invoke(main, [*args, "--sign-cert", str(cert), "--sign-key", str(key),
                                       "--sign-as", "cms"])
    assert result.exit_code == 0, result.output
    der = base64.b64decode(json.loads(result.stdout))
    assert der[:1] == b"\x30"  # a DER SEQUENCE (ContentInfo)
    got, signer = ReviewAuthenticator.from_dirs(trust, True).open(der)
    assert got.outcome == "cleared" and "Case System [TEST]" in signer.subject
    result = CliRunner().invoke(main, [*args, "--sign-as", "cms"])
    assert result.exit_code == 2 and "--sign-cert" in result.output
    other = tmp_path / "other.key"
    other.write_bytes(cs.signer().key.private_bytes(pem, ser.PrivateFormat.PKCS8,
                                                    ser.NoEncryption()))
    result = CliRunner().invoke(main, [*args, "--sign-cert", str(cert), "--sign-key", str(other)])
    assert result.exit_code == 2 and "--sign-key" in result.output
    result = CliRunner().invoke(main, [*args, "--sign-cert", str(cert)])
    assert result.exit_code == 2 and "--sign-key" in result.output


def test_a_live_review_needs_its_signer_valid_at_receipt_too(case_system):
    """Backdating a review into an expired certificate's life does not work on the stream."""
    _, who = case_system
    raw = sign_cms(review(), who)
    auth = _auth(case_system)
    assert auth.open(raw, received_at=AT + timedelta(hours=1))[1].issuer.startswith("CN=")
    with pytest.raises(Rejected) as info:
        auth.open(raw, received_at=cs.T1 + timedelta(days=1))
    assert info.value.reason is RejectReason.CERT_EXPIRED


def test_a_review_dated_after_its_receipt_is_refused(held):
    """It would stand over every later real review of the order (the newest stands)."""
    from engine.pipeline import Received
    from engine.records import Rejection

    tf, settings, messages, _ = held
    pipeline, profiles = build_pipeline(settings), {}
    replay(pipeline, messages, profiles=profiles)
    received = Received(SPIKE_DAY.timestamp() + 86400, "2025-05-20T15:00:00.000Z")
    late = plain_review("25X000096", "cleared", SPIKE_DAY + timedelta(days=30))
    out = pipeline.review(late, profiles, received)
    assert isinstance(out, Rejection) and out.reason == RejectReason.FUTURE_DATED
    assert out.order_number == "25X000096" and "clock skew" in out.detail


def test_som_replay_reads_cms_signed_reviews_from_a_file(held, case_system, tmp_path):
    """A reviews file holds CMS as a feed does: a JSON string with the base64 of the DER."""
    import subprocess
    import sys

    from connectors.feed import line_for

    tf, _, messages, _ = held
    trust, who = case_system
    config = tf.config.parent / "som-signed-reviews.toml"
    config.write_text(tf.config.read_text() + f'\n[reviews]\ntrust_dir = "{trust}"\n'
                      "require_signature = true\n")
    probe: list = []
    replay(build_pipeline(load_settings(config)), messages, on_outcome=probe.append)
    spike = next(o for o in probe if isinstance(o, Decision) and o.decision == "HOLD"
                 and o.purchaser_dea == PURCHASERS[0])
    cms = sign_cms(plain_review(spike.order_number, "reported", SPIKE_DAY + timedelta(days=1)),
                   who)
    reviews = tmp_path / "reviews.jsonl"
    reviews.write_text(line_for(cms) + "\n")
    out = tmp_path / "decisions.jsonl"
    proc = subprocess.run([sys.executable, "-m", "engine.cli", "replay", str(tf.feed),
                           "--config", str(config), "--out", str(out), "--reviews", str(reviews)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    (line,) = (tmp_path / "decisions.reviews.jsonl").read_text().splitlines()
    record = json.loads(line)
    assert record["outcome"] == "reported" and "Case System [TEST]" in record["signer"]["subject"]


def test_load_identity_names_what_is_wrong(case_system):
    from cryptography.hazmat.primitives import serialization as ser
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from connectors.signing import load_identity

    _, who = case_system
    pem = ser.Encoding.PEM
    cert = b"".join(c.public_bytes(pem) for c in (who.cert, *who.chain))
    raw_key = who.key.private_bytes(pem, ser.PrivateFormat.PKCS8, ser.NoEncryption())
    assert load_identity(cert, raw_key).cert == who.cert
    ed = ed25519.Ed25519PrivateKey.generate().private_bytes(
        pem, ser.PrivateFormat.PKCS8, ser.NoEncryption())
    for bad_cert, bad_key, says in ((cert, ed, "key: does not belong"),
                                    (b"junk", raw_key, "certificate:"),
                                    (cert, b"junk", "key: not")):
        with pytest.raises(ValueError, match=says):
            load_identity(bad_cert, bad_key)


def test_a_revoked_or_unlisted_review_signer_is_refused(tmp_path):
    """With the reviews CA's CRL, a departed officer's certificate stops signing from its
    revocation on; with allowed_signers, only the listed subjects sign at all."""
    ca = DemoPKI.create(cs.T0, cs.T1, seed=43)
    officer = ca.issue_registrant("AB1234563", "Officer 17 [TEST]", ["2"], cs.T0, cs.T1)
    system = ca.issue_registrant("AB1234563", "Case System [TEST]", ["2"], cs.T0, cs.T1)
    ca.revoke(officer.cert, AT + timedelta(days=10))
    ca.write(tmp_path, crl=ca.crl(cs.T0, cs.T1))
    trust, crls = tmp_path / "trust", tmp_path / "crl"
    auth = ReviewAuthenticator.from_dirs(trust, True, crls)
    assert auth.open(sign_cms(review(), officer))[1] is not None  # before the revocation
    late = sign_cms(review(at=AT + timedelta(days=11)), officer)
    err = _reason(auth, late)
    assert err.reason is RejectReason.CERT_REVOKED and err.order_number == "25X00A123"
    listed = system.cert.subject.rfc4514_string()
    auth = ReviewAuthenticator.from_dirs(trust, True, crls, (listed,))
    assert auth.open(sign_cms(review(), system))[1].subject == listed
    err = _reason(auth, sign_cms(review(), officer))
    assert err.reason is RejectReason.UNTRUSTED_CHAIN and "allowed_signers" in err.detail


def test_a_revoked_signer_cannot_backdate_a_live_review(tmp_path):
    ca = DemoPKI.create(cs.T0, cs.T1, seed=47)
    officer = ca.issue_registrant("AB1234563", "Officer 9 [TEST]", ["2"], cs.T0, cs.T1)
    ca.revoke(officer.cert, AT + timedelta(days=10))
    ca.write(tmp_path, crl=ca.crl(cs.T0, cs.T1))
    auth = ReviewAuthenticator.from_dirs(tmp_path / "trust", True, tmp_path / "crl")
    backdated = sign_cms(review(), officer)  # says AT, before the revocation
    assert auth.open(backdated)[1] is not None  # a replayed history: judged at reviewed_at
    with pytest.raises(Rejected) as info:  # on the stream: it arrived after the revocation
        auth.open(backdated, received_at=AT + timedelta(days=11))
    assert info.value.reason is RejectReason.CERT_REVOKED


def test_the_same_message_is_opened_once_for_routing_and_applying(case_system, monkeypatch):
    import engine.review_auth as ra

    calls = []
    real = ra.open_envelope
    monkeypatch.setattr(ra, "open_envelope", lambda *a: calls.append(1) or real(*a))
    _, who = case_system
    raw = sign_cms(review(), who)
    auth = _auth(case_system)
    assert auth.open(raw)[1] == auth.open(raw)[1] and len(calls) == 1
    auth.open(bytes(bytearray(raw)))  # equal bytes, another message (a redelivery): again
    assert len(calls) == 2
