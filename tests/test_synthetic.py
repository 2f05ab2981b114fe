"""The synthetic feed generator: reproducible, parseable, labelled, and replayable."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from config import load_settings
from config.settings import DEFAULT_CONFIG
from connectors.catalog import Catalog
from connectors.envelope import open_envelope
from connectors.feed import read_feed
from connectors.identifiers import dea_number_valid, order_number_valid
from connectors.orders import parse_order
from connectors.synthetic import ANOMALY_KINDS, build_scenario, generate
from connectors.synthetic import signer as signer_mod
from connectors.synthetic.names import name_initial
from connectors.synthetic.traffic import DAY
from engine.build import build_pipeline
from engine.cli import main
from engine.records import Rejection

START = datetime(2025, 1, 6, tzinfo=UTC)  # a Monday
CATALOG = Catalog.load(DEFAULT_CONFIG.with_name("catalog.csv"))
ORDER_KEYS = {"order_number", "form", "signed_at", "purchaser", "supplier", "lines"}
LETTERS = {"pharmacy": "ABF", "hospital": "ABF", "clinic": "M", "distributor": "RP"}


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def feed(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("feed")
    generate(out, seed=3, registrants=15, days=42, start=date(2025, 1, 6), bad_messages=8)
    return out


@pytest.fixture(scope="module")
def scenario():
    return build_scenario(CATALOG, seed=11, registrants=300, days=90, start=START)


def _payloads(out: Path) -> list[bytes | None]:
    """Each feed line's signed payload, or None when the message does not open."""
    result = []
    for raw in read_feed(out / "feed.jsonl"):
        try:
            result.append(open_envelope(raw).payload)
        except Exception:
            result.append(None)
    return result


def test_same_seed_same_feed(feed, tmp_path):
    again = tmp_path / "again"
    generate(again, seed=3, registrants=15, days=42, start=date(2025, 1, 6), bad_messages=8)
    for name in ("truth.jsonl", "registrants.jsonl", "som.toml", "catalog.csv"):
        assert (feed / name).read_bytes() == (again / name).read_bytes(), name
    assert _payloads(feed) == _payloads(again)
    # JSON envelopes are byte-identical; CMS differs only by its wall-clock signingTime.
    a, b = (p.joinpath("feed.jsonl").read_text().splitlines() for p in (feed, again))
    assert [x for x in a if x.startswith("{")] == [y for y in b if y.startswith("{")]


def test_other_seed_other_feed():
    a = build_scenario(CATALOG, seed=1, registrants=20, days=30, start=START)
    b = build_scenario(CATALOG, seed=2, registrants=20, days=30, start=START)
    dea = [[o.registrant.dea_number for o in s.orders] for s in (a, b)]
    assert dea[0] != dea[1]


def test_every_order_parses_and_carries_no_label(feed):
    truth = _jsonl(feed / "truth.jsonl")
    payloads = _payloads(feed)
    assert len(truth) == len(payloads)
    good = 0
    for row, payload in zip(truth, payloads, strict=True):
        if row["expected_rejection"]:
            continue
        data = json.loads(payload)
        assert set(data) == ORDER_KEYS
        assert "anomaly" not in payload.decode() and "peer_group" not in payload.decode()
        order = parse_order(payload)
        assert (order.order_number, order.purchaser.dea_number) == (
            row["order_number"], row["purchaser_dea"])
        assert order.signed_at.strftime("%Y-%m-%dT%H:%M:%SZ") == row["signed_at"]
        for line in order.lines:
            assert line.package_quantity == CATALOG.get(line.ndc).dosage_units_per_package
        good += 1
    assert good == len(truth) - 8


def test_feed_in_signing_order_with_unique_order_numbers(feed):
    truth = [r for r in _jsonl(feed / "truth.jsonl") if not r["expected_rejection"]]
    times = [r["signed_at"] for r in truth]
    assert times == sorted(times)
    keys = [(r["purchaser_dea"], r["order_number"]) for r in truth]
    assert len(set(keys)) == len(keys)
    assert all(order_number_valid(n) for _, n in keys)


def test_replay_rejects_exactly_the_bad_messages(feed):
    pipeline = build_pipeline(load_settings(feed / "som.toml"))
    truth = _jsonl(feed / "truth.jsonl")
    profiles: dict = {}
    got, ship_to = [], set()
    for raw in read_feed(feed / "feed.jsonl"):
        out = pipeline.process(raw, profiles)
        got.append(str(out.reason) if isinstance(out, Rejection) else None)
        if not isinstance(out, Rejection):  # the certificates carry the registered address
            ship_to.add(out.to_dict()["evidence"]["ship_to"])
    assert got == [r["expected_rejection"] for r in truth]
    assert ship_to == {"matched"}
    assert {r for r in got if r} == {
        "malformed", "bad_signature", "unknown_ndc", "bad_dea_check_digit", "ship_to_mismatch"}


def test_feed_folder_files(feed):
    settings = load_settings(feed / "som.toml")
    v = settings.verification
    assert (v.trust_dir, v.intermediates_dir, v.crl_dir) == ("trust", "intermediates", "crl")
    assert v.time_rules_at == "signed" and dea_number_valid(v.supplier_dea)
    assert settings.resolve(settings.catalog.path).read_bytes() == (
        DEFAULT_CONFIG.with_name("catalog.csv").read_bytes())
    events = _jsonl(feed / "anomalies.jsonl")
    truth = [r for r in _jsonl(feed / "truth.jsonl") if r["anomaly"]]
    assert sum(e["orders"] for e in events) == len(truth)
    for name in ("trust/root.pem", "intermediates/sub-ca.pem", "crl/sub-ca.crl"):
        assert (feed / name).is_file()
    text = "".join(p.read_text(errors="replace") for p in feed.rglob("*") if p.is_file())
    assert "PRIVATE KEY" not in text


def test_dea_numbers_valid_and_shaped(feed):
    regs = _jsonl(feed / "registrants.jsonl")
    assert len({r["dea_number"] for r in regs}) == len(regs)
    for r in regs:
        assert dea_number_valid(r["dea_number"])
        assert r["dea_number"][0] in LETTERS[r["type"]]
        assert r["dea_number"][1] == name_initial(r["name"])
        assert r["peer_group"] == f"{r['type']}:{r['size_class']}"
        assert "key" not in json.dumps(r).lower()


def test_every_anomaly_kind_present_after_history(scenario):
    counts = scenario.anomaly_counts()
    assert all(counts[k] > 0 for k in ANOMALY_KINDS), counts
    first = int(scenario.days * 0.6) * DAY
    assert all(o.t >= first for o in scenario.orders if o.anomaly)
    share = sum(counts.values()) / len(scenario.orders)
    assert 0.005 <= share <= 0.02, share


def test_anomaly_rate_zero_means_clean_traffic():
    s = build_scenario(CATALOG, seed=5, registrants=40, days=60, start=START, anomaly_rate=0)
    assert not any(o.anomaly for o in s.orders) and not s.anomalies


def test_cadence_roughly_as_configured(scenario):
    per_reg: dict[str, list] = defaultdict(list)
    for o in scenario.orders:
        if o.anomaly is None:
            per_reg[o.registrant.dea_number].append(o)
    rate: dict[str, list[float]] = defaultdict(list)
    on_habit = total = 0
    for reg in scenario.population:
        orders = per_reg[reg.dea_number]
        weeks = (scenario.days - reg.onboard_day) / 7
        if reg.onboard_day or not orders:
            continue
        rate[reg.cadence].append(len(orders) / weeks)
        on_habit += sum((START.weekday() + o.t // DAY) % 7 in reg.weekdays for o in orders)
        total += len(orders)
    assert 0.8 <= np.mean(rate["weekly"]) <= 1.1
    assert 1.7 <= np.mean(rate["twice_weekly"]) <= 2.2
    assert 4.5 <= np.mean(rate["daily"]) <= 6.1
    assert on_habit / total > 0.85


def test_restricted_registrants_never_order_narcotics(scenario):
    restricted = [r for r in scenario.population if "2" not in r.schedules]
    assert restricted
    for o in scenario.orders:
        for ndc, _ in o.lines:
            assert CATALOG.get(ndc).schedule in o.registrant.schedules


def test_peer_groups_cover_types_and_sizes(scenario):
    groups = Counter(r.peer_group for r in scenario.population)
    assert {g.split(":")[0] for g in groups} == set(LETTERS)
    assert {g.split(":")[1] for g in groups} == {"small", "medium", "large"}


def test_pool_signing_keeps_order(feed, monkeypatch):
    from connectors.demo_pki import DemoPKI, key_pool

    pki = DemoPKI.create(START, datetime(2026, 1, 1, tzinfo=UTC), seed=1)
    ident = pki.issue_registrant("BP1234563", "Bluefern Pharmacy", ["2"], START,
                                 datetime(2026, 1, 1, tzinfo=UTC), key=key_pool(1, seed=1)[0])
    jobs = [("BP1234563", b'{"n":%d}' % i, False, None) for i in range(40)]
    serial = list(signer_mod.sign_stream(jobs, {"BP1234563": ident}, count=len(jobs)))
    monkeypatch.setattr(signer_mod, "POOL_THRESHOLD", 0)
    pooled = list(signer_mod.sign_stream(jobs, {"BP1234563": ident}, count=len(jobs),
                                         processes=2))
    assert pooled == serial


def test_cli_generate_and_flag_errors(tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["generate", "--out", str(tmp_path / "f"), "--registrants", "8",
                               "--days", "21", "--seed", "3", "--bad-messages", "2"])
    assert res.exit_code == 0, res.output
    assert "orders from" in res.output and (tmp_path / "f" / "feed.jsonl").is_file()
    for flag, value in (("--cms-share", "1.5"), ("--days", "3"), ("--supplier-dea", "RL1357920"),
                        ("--anomaly-rate", "0.9")):
        res = runner.invoke(main, ["generate", "--out", str(tmp_path / "g"), flag, value])
        assert res.exit_code == 2 and flag in res.output, res.output
