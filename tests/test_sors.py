"""``som sors``: report rows for the orders officers reported, nothing left out silently."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from engine.sors import sors_row, standing_reports
from tests.review_support import SPIKE_DAY, WEEKS, review
from tests.support import PURCHASERS, START, SUPPLIER, build_feed, som


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    """The small feed replayed with reviews: its spike reported; one released order reported,
    then cleared the next day (its standing review is the clearance)."""
    tmp = tmp_path_factory.mktemp("sors")
    tf = build_feed(tmp, weeks=WEEKS, bad=False)
    out = tmp / "decisions.jsonl"
    proc = som("replay", str(tf.feed), "--config", str(tf.config), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    decisions = [json.loads(x) for x in out.read_text().splitlines()]
    spike = next(d for d in decisions if d["decision"] == "HOLD"
                 and d["purchaser_dea"] == PURCHASERS[0])
    released = next(d for d in decisions if d["decision"] == "RELEASE"
                    and d["purchaser_dea"] == PURCHASERS[1])
    reviews = tmp / "reviews.jsonl"
    reviews.write_bytes(b"\n".join([
        review(spike["order_number"], "reported", SPIKE_DAY + timedelta(days=1),
               note="no prescriptions to match"),
        review(released["order_number"], "reported", START + timedelta(days=30),
               dea=PURCHASERS[1]),
        review(released["order_number"], "cleared", START + timedelta(days=31),
               dea=PURCHASERS[1]),
    ]) + b"\n")
    proc = som("replay", str(tf.feed), "--config", str(tf.config), "--out", str(out),
               "--reviews", str(reviews))
    assert proc.returncode == 0, proc.stderr
    return tf, out, tmp / "decisions.reviews.jsonl", spike


def test_a_reported_hold_gives_one_row_with_its_lines_reasons_and_reporter(replayed, tmp_path):
    tf, decisions, applied, spike = replayed
    rows_path = tmp_path / "sors.jsonl"
    proc = som("sors", str(tf.feed), "--decisions", str(decisions), "--reviews-applied",
               str(applied), "--config", str(tf.config), "--out", str(rows_path))
    assert proc.returncode == 0, proc.stderr
    (row,) = [json.loads(x) for x in rows_path.read_text().splitlines()]
    assert row["ordering_registrant_dea"] == PURCHASERS[0]
    assert row["reporting_registrant_dea"] == SUPPLIER["dea_number"]
    assert row["order_number"] == spike["order_number"]
    assert row["transaction_id"] == f"{PURCHASERS[0]}:{spike['order_number']}"
    assert row["order_received_date"] == spike["received_at"][:10]
    oxy, alp = row["lines"]
    assert (oxy["ndc"], oxy["quantity"], oxy["dosage_units"], oxy["schedule"]) == (
        "99901-0102-01", 40, 4000, "2")
    assert oxy["dosage_strength_mg_base"] == 8.97 and oxy["unit"] == "package of 100"
    assert (alp["ndc"], alp["schedule"]) == ("99901-1101-01", "4")
    # a Schedule II line: the CSOS order number stands for the order form number
    assert row["order_form_number"] == spike["order_number"]
    assert row["hold_reasons"] == [r["code"] for r in spike["reasons"]]
    assert row["hold_reasons"][0] == "size_own"
    assert spike["reasons"][0]["detail"] in row["circumstances"]
    assert row["circumstances"].endswith("officer's note: no prescriptions to match")
    assert row["reviewer"] == "officer-17" and row["decision"] == "HOLD"
    assert row["evidence"]["raw_sha256"] == spike["evidence"]["raw_sha256"]
    assert row["evidence"]["config_version"] == spike["config_version"]


def test_a_reported_order_without_its_decision_or_message_is_named(replayed, tmp_path):
    tf, decisions, applied, spike = replayed
    others = tmp_path / "others.jsonl"
    others.write_text("".join(line + "\n" for line in decisions.read_text().splitlines()
                              if spike["order_number"] not in line))
    proc = som("sors", str(tf.feed), "--decisions", str(others), "--reviews-applied",
               str(applied), "--config", str(tf.config))
    assert proc.returncode == 1 and proc.stdout == ""
    assert spike["order_number"] in proc.stderr and "no decision" in proc.stderr
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    proc = som("sors", str(empty), "--decisions", str(decisions), "--reviews-applied",
               str(applied), "--config", str(tf.config))
    assert proc.returncode == 1 and "not in the feed" in proc.stderr


def test_bad_input_files_name_their_flag_and_line(replayed, tmp_path):
    tf, decisions, applied, _ = replayed
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"decision": "HOLD"}\nnot json\n')
    proc = som("sors", str(tf.feed), "--decisions", str(bad), "--reviews-applied",
               str(applied), "--config", str(tf.config))
    assert proc.returncode == 2 and "--decisions" in proc.stderr and "line 2" in proc.stderr
    proc = som("sors", str(tf.feed), "--decisions", str(decisions), "--reviews-applied",
               str(tmp_path / "gone.jsonl"), "--config", str(tf.config))
    assert proc.returncode == 2 and "--reviews-applied" in proc.stderr
    assert "gone.jsonl" in proc.stderr


def test_the_standing_review_decides_and_a_release_says_so():
    def r(number, outcome, at):
        return {"record": "review", "order_number": number, "purchaser_dea": "BP1234563",
                "outcome": outcome, "reviewed_at": at, "reviewer": "o-1"}

    at = "2025-06-03T14:00:00Z"
    reviews = [r("A", "cleared", at), r("A", "reported", at), r("B", "reported", at),
               r("B", "cleared", "2025-06-03T14:00:01Z"), {"record": "decision"}]
    assert list(standing_reports(reviews)) == [("BP1234563", "A")]  # same second: reported
    from connectors.catalog import Catalog
    from connectors.orders import Order, OrderLine, Party

    order = Order("25X00A123", "csos", START, Party("BP1234563", "P", "1 Main St"),
                  Party(SUPPLIER["dea_number"], "S", "9 Depot Rd"),
                  (OrderLine(1, "99901-1101-01", "Alprazine", 100, 2),))
    catalog = Catalog.load(Path(__file__).resolve().parent.parent / "config" / "catalog.csv")
    decision = {"decision": "RELEASE", "reasons": [], "received_at": "2025-06-01T10:00:00Z"}
    row = sors_row(reviews[1], decision, order, catalog)
    assert row["order_form_number"] is None  # Schedule IV only: no order form
    assert row["circumstances"].startswith("released by the engine, reported by the officer")
    assert row["order_received_date"] == "2025-06-01"


def test_the_decided_message_is_reported_not_a_resend_with_its_number(replayed, tmp_path):
    """A resend under the same order number (rejected duplicate_order by the engine) is in
    the feed too: the row has the decided message's lines, found by digest or, when the
    archive holds other bytes, by signing time and signer; never the resend's."""
    from connectors.feed import read_feed, write_feed
    from connectors.signing import sign_cms
    from engine.records import raw_sha256
    from tests.support import order, payload

    tf, decisions, applied, spike = replayed
    resend = order(PURCHASERS[0], spike["order_number"], SPIKE_DAY + timedelta(days=2),
                   [("99901-0102-01", 100, 1)])
    raw = sign_cms(payload(resend), tf.identities[PURCHASERS[0]])
    original = list(read_feed(tf.feed))
    both, only_resend = tmp_path / "both.jsonl", tmp_path / "resend.jsonl"
    write_feed(both, [raw, *original])  # the resend first: order must not matter
    decided_digest = spike["evidence"]["raw_sha256"]
    write_feed(only_resend, [raw, *(m for m in original if raw_sha256(m) != decided_digest)])
    other_bytes = tmp_path / "decisions-other-bytes.jsonl"
    other_bytes.write_text("".join(
        json.dumps({**d, "evidence": {**d["evidence"], "raw_sha256": "0" * 64}}) + "\n"
        if d["order_number"] == spike["order_number"] else json.dumps(d) + "\n"
        for d in map(json.loads, decisions.read_text().splitlines())))

    def rows(feed, decided):
        proc = som("sors", str(feed), "--decisions", str(decided), "--reviews-applied",
                   str(applied), "--config", str(tf.config))
        return proc, [json.loads(x) for x in proc.stdout.splitlines()]

    for decided in (decisions, other_bytes):
        proc, (row,) = rows(both, decided)
        assert proc.returncode == 0, proc.stderr
        assert row["lines"][0]["quantity"] == 40
    proc, got = rows(only_resend, other_bytes)
    assert proc.returncode == 1 and got == [] and "not in the feed" in proc.stderr
