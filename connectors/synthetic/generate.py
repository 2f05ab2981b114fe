"""``som generate``: a signed, labelled synthetic feed folder ready for replay.

Writes ``feed.jsonl`` (messages in signing order, DESIGN.md 3.5), ``truth.jsonl``
(one row per feed line, same order: labels never enter a signed order),
``anomalies.jsonl`` (one row per injected anomaly event: kind, registrant, labelled
orders, first signing time; a registrant carries at most one event), the demo PKI
(``trust/``, ``intermediates/``, ``crl/``), ``catalog.csv``, ``registrants.jsonl`` and
``som.toml``. Private keys stay in memory. Certificates cover the whole span with a
margin and the CRL runs from ``start`` to ten years after the end, so replaying the
feed as history meets no expiry or stale CRL.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np

from config.settings import DEFAULT_CONFIG
from connectors.catalog import Catalog
from connectors.demo_pki import DemoPKI, Identity, key_pool
from connectors.feed import write_feed
from connectors.identifiers import dea_number_valid
from connectors.synthetic.assemble import SUPPLIER, iso, order_dict, payload, truth_row
from connectors.synthetic.badmessages import break_check_digit, elsewhere, plan_bad_messages
from connectors.synthetic.outputs import copy_catalog, write_config, write_jsonl
from connectors.synthetic.scenario import Scenario, build_scenario
from connectors.synthetic.signer import Job, sign_stream

__all__ = ["generate", "KEY_POOL_SIZE", "FILES"]

KEY_POOL_SIZE = 8
FILES = ["feed.jsonl", "truth.jsonl", "anomalies.jsonl", "registrants.jsonl", "catalog.csv",
         "som.toml", "trust/root.pem", "intermediates/sub-ca.pem", "crl/sub-ca.crl"]
_FORMAT, _BAD = 4, 5


def _utc(start: date | datetime) -> datetime:
    if isinstance(start, datetime):
        return start.astimezone(UTC) if start.tzinfo else start.replace(tzinfo=UTC)
    return datetime(start.year, start.month, start.day, tzinfo=UTC)


def _identities(scenario: Scenario, pki: DemoPKI, seed: int) -> dict[str, Identity]:
    keys = key_pool(KEY_POOL_SIZE, seed=seed)
    nb, na = pki.sub_cert.not_valid_before_utc, pki.sub_cert.not_valid_after_utc
    return {
        reg.dea_number: pki.issue_registrant(
            reg.dea_number, reg.name, reg.schedules, nb, na, key=keys[reg.index % len(keys)],
            address=reg.address,
        )
        for reg in scenario.population
    }


def _plan(scenario: Scenario, bad_messages: int, seed: int, cms_share: float, supplier: dict,
          catalog: Catalog) -> tuple[list[Job], list[dict]]:
    """Signing jobs and truth rows, line for line."""
    start, orders = scenario.start, scenario.orders
    bad = plan_bad_messages(orders, bad_messages, np.random.default_rng([seed, _BAD]))
    cms = np.random.default_rng([seed, _FORMAT]).random(len(orders) + len(bad)) < cms_share
    jobs: list[Job] = []
    truth: list[dict] = []
    b = 0
    for i, order in enumerate(orders):
        while b < len(bad) and bad[b].position == i:
            item = bad[b]
            b += 1
            line = len(jobs) + 1
            if item.order is None:
                jobs.append((None, item.noise, False, "raw"))
                truth.append({**truth_row(order, start, line, item.reason), "order_number": None,
                              "purchaser_dea": None, "peer_group": None})
                continue
            data = order_dict(item.order, start, catalog, supplier)
            if item.kind == "bad_dea_check_digit":
                dea = item.order.registrant.dea_number
                data["purchaser"]["dea_number"] = break_check_digit(dea)
            elif item.kind == "ship_to_elsewhere":
                data["purchaser"]["address"] = elsewhere(data["purchaser"]["address"])
            jobs.append((item.order.registrant.dea_number, payload(data), bool(cms[line - 1]),
                         "tamper" if item.kind == "tampered" else None))
            row = truth_row(item.order, start, line, item.reason)
            truth.append({**row, "purchaser_dea": data["purchaser"]["dea_number"]})
        jobs.append((order.registrant.dea_number,
                     payload(order_dict(order, start, catalog, supplier)),
                     bool(cms[len(jobs)]), None))
        truth.append(truth_row(order, start, len(jobs)))
    return jobs, truth


def generate(
    out_dir: str | Path, *, seed: int = 7, registrants: int = 200, days: int = 120,
    start: date | datetime = date(2025, 1, 1), cms_share: float = 0.5,
    anomaly_rate: float = 0.01, supplier_dea: str = SUPPLIER["dea_number"],
    bad_messages: int = 0, catalog_path: str | Path | None = None,
    processes: int | None = None,
) -> dict:
    """Write a feed folder and return a summary (counts and file paths)."""
    if not 0.0 <= cms_share <= 1.0:
        raise ValueError(f"cms_share must be within 0..1, got {cms_share}")
    if not 0.0 <= anomaly_rate < 0.5:
        raise ValueError(f"anomaly_rate must be within 0..0.5, got {anomaly_rate}")
    if bad_messages < 0:
        raise ValueError(f"bad_messages must be >= 0, got {bad_messages}")
    supplier_dea = supplier_dea.upper()
    if not dea_number_valid(supplier_dea):
        raise ValueError(f"supplier_dea {supplier_dea!r} is not a valid DEA number")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    catalog_src = Path(catalog_path) if catalog_path else DEFAULT_CONFIG.with_name("catalog.csv")
    catalog = Catalog.load(catalog_src)
    t0 = _utc(start)
    scenario = build_scenario(catalog, seed=seed, registrants=registrants, days=days, start=t0,
                              anomaly_rate=anomaly_rate, taken={supplier_dea})
    end = t0 + timedelta(days=days)
    pki = DemoPKI.create(t0 - timedelta(days=30), end + timedelta(days=365), seed=seed)
    pki.write(out, pki.crl(t0, end + timedelta(days=3650)))
    identities = _identities(scenario, pki, seed)
    supplier = {**SUPPLIER, "dea_number": supplier_dea}
    jobs, truth = _plan(scenario, bad_messages, seed, cms_share, supplier, catalog)
    lines = write_feed(out / "feed.jsonl",
                       sign_stream(jobs, identities, count=len(jobs), processes=processes))
    write_jsonl(out / "truth.jsonl", truth)
    write_jsonl(out / "registrants.jsonl", (r.to_dict() for r in scenario.population))
    write_jsonl(out / "anomalies.jsonl", (
        {"kind": a["kind"], "purchaser_dea": a["dea_number"], "orders": a["orders"],
         "first_signed_at": iso(t0, a["first_t"])} for a in scenario.anomalies))
    copy_catalog(catalog_src, out)
    write_config(out, supplier_dea)
    counts = scenario.anomaly_counts()
    return {
        "out_dir": str(out),
        "seed": seed,
        "start": t0.date().isoformat(),
        "days": days,
        "registrants": len(scenario.population),
        "orders": len(scenario.orders),
        "messages": lines,
        "cms_messages": sum(1 for j in jobs if j[2]),
        "anomalous_orders": sum(counts.values()),
        "anomalies": counts,
        "anomaly_events": len(scenario.anomalies),
        "bad_messages": len(jobs) - len(scenario.orders),
        "files": FILES,
    }
