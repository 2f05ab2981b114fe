"""``som verify`` and ``som certs expiring``: JSON lines out, exit codes 0/1/2."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from click.testing import CliRunner

from connectors.feed import write_feed
from connectors.signing import sign_cms, sign_json_envelope
from engine.cli import main
from tests import csos_support as cs

AT = "2025-03-05T00:00:00Z"


@pytest.fixture()
def trust_args() -> list[str]:
    root = cs.trust_root()
    return [
        "--trust-dir", str(root / "trust"),
        "--intermediates-dir", str(root / "intermediates"),
        "--crl-dir", str(root / "crl"),
        "--catalog", str(_catalog_csv(root)),
    ]  # fmt: skip


def _catalog_csv(root):
    path = root / "catalog.csv"
    if not path.exists():
        rows = ["ndc,product,drug_code,family,schedule,dosage_units_per_package,"
                "base_mg_per_unit,mme_factor"]  # fmt: skip
        for p in cs.catalog().products.values():
            rows.append(f"{p.ndc},{p.product},{p.drug_code},{p.family},{p.schedule},100,1.0,0")
        path.write_text("\n".join(rows) + "\n")
    return path


def _run(args: list[str]):
    result = CliRunner().invoke(main, args)
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return result, rows


def test_verify_files_all_verified(tmp_path, trust_args):
    good = tmp_path / "good.der"
    good.write_bytes(sign_cms(cs.payload(), cs.signer()))
    result, rows = _run(["verify", str(good), *trust_args, "--at", AT])
    assert result.exit_code == 0, result.output
    assert rows == [
        {"file": str(good), "order_number": "25X00A123", "purchaser_dea": cs.PURCHASER,
         "status": "verified", "reason": None, "detail": None, "ship_to": "matched"}
    ]  # fmt: skip


def test_verify_reports_rejections_with_exit_1(tmp_path, trust_args):
    good, bad = tmp_path / "good.der", tmp_path / "bad.bin"
    good.write_bytes(sign_cms(cs.payload(), cs.signer()))
    bad.write_bytes(b"\x00garbage")
    result, rows = _run(["verify", str(good), str(bad), *trust_args, "--at", AT])
    assert result.exit_code == 1
    assert [r["status"] for r in rows] == ["verified", "rejected"]
    assert rows[1]["reason"] == "malformed"


def test_verify_feed(tmp_path, trust_args):
    feed = tmp_path / "feed.jsonl"
    write_feed(feed, [sign_cms(cs.payload(), cs.signer()),
                      sign_json_envelope(cs.payload(), cs.signer(dea="AB1234563"))])  # fmt: skip
    result, rows = _run(["verify", "--feed", str(feed), *trust_args, "--supplier-dea", cs.SUPPLIER])
    assert result.exit_code == 1
    assert [(r["file"], r["status"], r["reason"]) for r in rows] == [
        (f"{feed}:1", "verified", None),
        (f"{feed}:2", "rejected", "dea_mismatch"),
    ]


def test_verify_usage_errors(tmp_path, trust_args):
    result, _ = _run(["verify", str(tmp_path / "missing.der"), *trust_args])
    assert result.exit_code == 2 and "missing.der" in result.output
    result, _ = _run(["verify", *trust_args])
    assert result.exit_code == 2
    result, _ = _run(["verify", "x", "--trust-dir", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "nope" in result.output
    (tmp_path / "bad.pem").write_text("junk")
    (tmp_path / "m").write_bytes(b"x")
    result, _ = _run(["verify", str(tmp_path / "m"), "--trust-dir", str(tmp_path)])
    assert result.exit_code == 2 and "bad.pem" in result.output


def test_time_flags_name_themselves_when_wrong(tmp_path, trust_args):
    """Each command that takes the trust flags gets them whole; a bad time names its flag."""
    feed = tmp_path / "feed.jsonl"
    write_feed(feed, [sign_cms(cs.payload(), cs.signer())])
    result, _ = _run(["verify", "--feed", str(feed), *trust_args, "--at", "yesterday"])
    assert result.exit_code == 2 and "--at" in result.output and "yesterday" in result.output
    out = tmp_path / "models"
    result, _ = _run(["train", "--orders", str(feed), "--out", str(out), "--until", "soon",
                      *trust_args])
    assert result.exit_code == 2 and "--until" in result.output and "soon" in result.output
    result, _ = _run(["replay", str(feed), *trust_args, "--at", AT, "--models",
                      str(tmp_path / "none")])
    assert result.exit_code != 0 and "none" in result.output


def test_certs_expiring(tmp_path, trust_args):
    soon = cs.pki().issue_registrant(
        "AB1234563", "Soon", ["2"], cs.T0, cs.SIGNED + timedelta(days=30)
    )
    feed = tmp_path / "feed.jsonl"
    write_feed(feed, [sign_cms(cs.payload(), cs.signer()), sign_cms(_for("AB1234563"), soon)])
    args = ["certs", "expiring", "--days", "45", "--feed", str(feed), *trust_args, "--at", AT]
    result, rows = _run(args)
    assert result.exit_code == 0, result.output
    assert rows[0]["purchaser_dea"] == "AB1234563" and 28 < rows[0]["days_left"] < 31
    assert rows[-1]["expiring"] == 1 and rows[-1]["certificates"] == 2
    result, _ = _run(["certs", "expiring", *trust_args])
    assert result.exit_code == 2


def _for(dea: str) -> bytes:
    data = cs.order()
    data["purchaser"]["dea_number"] = dea
    return json.dumps(data).encode()
