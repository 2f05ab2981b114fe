"""The verify stage: each rejection reason from a crafted message, and the happy path."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.signing import sign_cms, sign_json_envelope
from engine.records import Rejected, RejectReason
from engine.verify import Verifier
from tests import csos_support as cs


def _verifier(**changes) -> Verifier:
    return Verifier(cs.settings(**changes), cs.catalog())


def _reject(raw: bytes, now=None, **changes) -> Rejected:
    with pytest.raises(Rejected) as info:
        _verifier(**changes).verify(raw, now)
    return info.value


def test_cms_order_verifies():
    v = _verifier(supplier_dea=cs.SUPPLIER)
    got = v.verify(sign_cms(cs.payload(), cs.signer()), cs.SIGNED + timedelta(hours=1))
    assert got.kind == "cms"
    assert got.order.order_number == "25X00A123"
    assert got.signer_serial == f"{cs.signer().cert.serial_number:x}"
    assert got.cert_not_after == cs.T1
    assert len(got.raw_sha256) == 64
    assert v.stats["verified"] == 1


def test_json_order_verifies_and_replays_without_now():
    env = json.dumps(sign_json_envelope(cs.payload(), cs.signer(key_type="ec"))).encode()
    assert _verifier().verify(env).kind == "json"


def test_paper_order_allowed_and_refused():
    paper = cs.payload(form="dea222", form_number="123456789")
    got = _verifier().verify(paper)
    assert (got.kind, got.signer_serial, got.cert_not_after) == ("paper", None, None)
    err = _reject(paper, allow_paper=False)
    assert err.reason is RejectReason.PAPER_NOT_ALLOWED
    assert (err.order_number, err.purchaser_dea) == ("25X00A123", cs.PURCHASER)


def test_unsigned_csos_order_is_bad_signature():
    assert _reject(cs.payload()).reason is RejectReason.BAD_SIGNATURE
    env = json.dumps({"payload": base64.b64encode(cs.payload()).decode()}).encode()
    err = _reject(env)
    assert (err.reason, err.detail) == (RejectReason.BAD_SIGNATURE, "unsigned CSOS order")


def test_too_large():
    big = b"0" * (10 * 1024 * 1024)
    assert _reject(big).reason is RejectReason.TOO_LARGE


def test_wrong_supplier():
    err = _reject(sign_cms(cs.payload(), cs.signer()), supplier_dea="RS1234563")
    assert err.reason is RejectReason.WRONG_SUPPLIER
    assert err.purchaser_dea == cs.PURCHASER


def test_unknown_ndc_names_the_ndc():
    lines = [{"line": 1, "ndc": "12345-6789-01", "package_quantity": 1, "packages": 1}]
    err = _reject(sign_cms(cs.payload(lines=lines), cs.signer()))
    assert err.reason is RejectReason.UNKNOWN_NDC
    assert "12345-6789-01" in err.detail


def test_future_dated_and_expired():
    raw = sign_cms(cs.payload(), cs.signer())
    early = cs.SIGNED - timedelta(minutes=6)
    assert _reject(raw, early).reason is RejectReason.FUTURE_DATED
    _verifier().verify(raw, cs.SIGNED - timedelta(minutes=4))
    late = cs.SIGNED + timedelta(days=61)
    assert _reject(raw, late).reason is RejectReason.ORDER_EXPIRED
    _verifier().verify(raw, cs.SIGNED + timedelta(days=59))


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"order_number": "25Y00A123"}, RejectReason.BAD_ORDER_NUMBER),
        ({"lines": []}, RejectReason.MISSING_FIELD),
        ({"signed_at": "yesterday"}, RejectReason.MALFORMED),
    ],
)
def test_order_defects_pass_through(changes, reason):
    assert _reject(sign_cms(cs.payload(**changes), cs.signer())).reason is reason


def test_bad_dea_check_digit():
    data = cs.order()
    data["purchaser"]["dea_number"] = "BP1234564"
    raw = sign_cms(json.dumps(data).encode(), cs.signer())
    assert _reject(raw).reason is RejectReason.BAD_DEA_CHECK_DIGIT


def test_cms_content_not_json():
    err = _reject(sign_cms(b"\x89PNG not an order", cs.signer()))
    assert err.reason is RejectReason.MALFORMED


def test_stats_count_rejections():
    v = _verifier()
    with pytest.raises(Rejected):
        v.verify(b"garbage")
    assert v.stats["rejected"] == 1


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=400) | st.text(max_size=200).map(str.encode))
def test_verifier_raises_only_rejected(raw):
    v = _verifier()
    try:
        v.verify(raw, cs.SIGNED)
    except Rejected:
        pass
    assert v.stats.get("internal_errors", 0) == 0


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_verifier_on_mutated_orders_raises_only_rejected(data):
    order = cs.order()
    field = data.draw(st.sampled_from(sorted(order)))
    order[field] = data.draw(st.none() | st.integers() | st.text(max_size=12) | st.just([]))
    v = _verifier()
    try:
        v.verify(sign_cms(json.dumps(order).encode(), cs.signer()), cs.SIGNED)
    except Rejected:
        pass
    assert v.stats.get("internal_errors", 0) == 0


def test_no_file_io_per_order(monkeypatch):
    import builtins
    import os
    import pathlib

    v = _verifier()
    raws = [sign_cms(cs.payload(order_number=f"25X00A{i:03d}"), cs.signer()) for i in range(20)]
    v.verify(raws[0])

    def refuse(*args, **kwargs):
        raise AssertionError("file I/O while verifying an order")

    monkeypatch.setattr(builtins, "open", refuse)
    monkeypatch.setattr(pathlib.Path, "read_bytes", refuse)
    monkeypatch.setattr(os, "scandir", refuse)
    v.crls._next_check = float("inf")  # the once-a-second CRL directory look is the exception
    for raw in raws:
        assert v.verify(raw).kind == "cms"
    assert v.chain_cache["misses"] == 1
