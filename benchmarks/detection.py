"""Detection quality and replay throughput of the core, on labelled synthetic feeds.

For each seed: ``connectors.synthetic.generate`` writes a signed, labelled feed
(months of history, thousands of registrants, every anomaly kind); ``som train``'s
code fits the artifacts on the history before the anomaly window (no labels);
the replay driver runs the whole feed with those artifacts; every decision in the
evaluation window (from the first day anomalies may start) is compared with
``truth.jsonl``. The DEA formula baseline is scored from the same decisions (its
score is always reported). Verification is done once per feed and cached, since
it is the same for the engine and the baseline and is measured elsewhere.

``false_holds_clean`` counts false holds on registrants that carry no anomaly at
all; the rest are normal-labelled orders of a registrant during or after its
anomaly (for example its usual orders inside a burst), which a compliance officer
would look at anyway. Orders are held in the evaluation window only, where
anomalies make about 2.4% of the orders at ``som generate``'s default anomaly
rate (1% of the whole feed): at that prevalence a 1% hold rate caps per-order
recall near 40%, so ``false_hold_rate`` (false holds / normal orders) is printed too.

Detection is judged two ways: per anomalous order (each labelled order held or
not) and per anomaly event (an event is caught when any of its labelled orders is
held, which is when a compliance officer starts due diligence). ``RESULT`` uses
per-event recall; per-order recall is printed beside it.

    python benchmarks/detection.py                       # reported seeds
    python benchmarks/detection.py --seeds 11,12        # the tuning seeds
    python benchmarks/detection.py --seeds 11 --quick   # a one-minute smoke run
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from config import load_settings  # noqa: E402
from connectors.feed import read_feed  # noqa: E402
from engine.build import build_pipeline  # noqa: E402
from engine.pipeline import Received  # noqa: E402
from engine.records import Decision  # noqa: E402
from engine.replay import replay  # noqa: E402
from models.artifacts import load_models, save_models  # noqa: E402
from models.train import collect, fit_models  # noqa: E402

__all__ = ["run_seed", "main"]

ANOMALY_START = 0.6  # connectors.synthetic.scenario default
ANOMALY_RATE = 0.01  # som generate's default


class CachedVerifier:
    """Verification memoised by message bytes (same result, measured elsewhere)."""

    def __init__(self, inner, messages: list[bytes]) -> None:
        rec = Received.now()
        self.cache = {}
        for raw in messages:
            try:
                self.cache[raw] = inner.verify(raw, None)
            except Exception as exc:  # noqa: BLE001 - replayed as the same exception
                self.cache[raw] = exc
        self.received = rec

    def verify(self, raw: bytes, now=None):
        hit = self.cache[raw]
        if isinstance(hit, Exception):
            raise hit
        return hit


def feed_folder(work: Path, seed: int, registrants: int, days: int) -> Path:
    from connectors.synthetic import generate

    out = work / f"seed{seed}-r{registrants}-d{days}"
    if not (out / "truth.jsonl").is_file():
        generate(out, seed=seed, registrants=registrants, days=days, processes=2,
                 anomaly_rate=ANOMALY_RATE)
    else:  # a cached feed: its config follows this version of the engine's keys
        from connectors.synthetic.assemble import SUPPLIER
        from connectors.synthetic.outputs import write_config

        write_config(out, SUPPLIER["dea_number"])
    return out


def run_seed(folder: Path, days: int, on_context=None) -> dict:
    settings = load_settings(folder / "som.toml").with_overrides(
        verification={"time_rules_at": "signed"})
    messages = list(read_feed(folder / "feed.jsonl"))
    t0 = time.perf_counter()
    base = build_pipeline(settings)
    cached = CachedVerifier(base.verifier, messages)
    t_verify = time.perf_counter() - t0
    truth = [json.loads(x) for x in (folder / "truth.jsonl").open()]
    first = datetime.fromisoformat(truth[0]["signed_at"].replace("Z", "+00:00"))
    until = datetime(first.year, first.month, first.day, tzinfo=UTC) + timedelta(
        days=int(days * ANOMALY_START))
    lim = until.isoformat().replace("+00:00", "Z")
    history = [m for m, row in zip(messages, truth, strict=True) if row["signed_at"] < lim]
    base.verifier = cached
    t0 = time.perf_counter()
    data = collect(base, history, until)
    models_dir = Path(tempfile.mkdtemp(prefix="som-models-"))
    save_models(models_dir, fit_models(data, settings.scoring.iforest_quantile), data.window())
    t_train = time.perf_counter() - t0
    pipeline = build_pipeline(settings.with_overrides(scoring={"models_dir": str(models_dir)}))
    load_models(models_dir)  # the same checks a worker makes
    pipeline.verifier = cached
    pipeline.on_context = on_context
    outcomes = []
    t0 = time.perf_counter()
    replay(pipeline, messages, on_outcome=outcomes.append)
    t_replay = time.perf_counter() - t0
    return {"outcomes": outcomes, "truth": truth, "until": until, "times": {
        "verify_s": t_verify, "train_s": t_train, "replay_s": t_replay,
        "orders": len(messages)}}


def evaluate(runs: list[dict]) -> dict:
    """Counts for engine and baseline, overall and per kind, per order and per event."""
    c = {w: defaultdict(lambda: defaultdict(int)) for w in ("engine", "baseline")}
    events: dict = {w: {} for w in ("engine", "baseline")}
    codes = defaultdict(int)
    formula: list[tuple[float, bool]] = []  # (formula score, normal?) per evaluated order
    event_formula: dict = {}  # event -> highest formula score of its orders
    for i, run in enumerate(runs):
        lim = run["until"].isoformat().replace("+00:00", "Z")
        flagged = {row["purchaser_dea"]: row["anomaly"] for row in run["truth"] if row["anomaly"]}
        for out, row in zip(run["outcomes"], run["truth"], strict=True):
            if not isinstance(out, Decision) or row["signed_at"] < lim:
                continue
            kind = row["anomaly"] or "normal"
            f_score = out.scores.get("formula_baseline", 0.0)
            held = {"engine": out.decision == "HOLD", "baseline": f_score >= 1.0}
            formula.append((f_score, kind == "normal"))
            if row["anomaly"]:
                key = (i, row["purchaser_dea"], kind)
                event_formula[key] = max(event_formula.get(key, 0.0), f_score)
            if held["engine"] and out.reasons:
                codes[(kind != "normal", out.reasons[0].code)] += 1
            for who, h in held.items():
                for k in (kind, "all"):
                    c[who][k]["orders"] += 1
                    c[who][k]["held"] += h
                if kind == "normal" and row["purchaser_dea"] not in flagged:
                    c[who]["clean"]["orders"] += 1
                    c[who]["clean"]["held"] += h
                elif kind == "normal":  # a usual order of a registrant with an anomaly
                    # (any time in the evaluated window, before, during or after it)
                    c[who]["during:" + flagged[row["purchaser_dea"]]]["held"] += h
                if row["anomaly"]:
                    key = (i, row["purchaser_dea"], kind)
                    events[who][key] = events[who].get(key, False) or h
    return {"counts": c, "events": events, "codes": dict(codes), "formula": formula,
            "event_formula": event_formula}


def formula_tradeoff(ev: dict, caught: int, false_holds: int) -> dict:
    """The formula with its multipliers scaled, at the engine's recall and at its false holds.

    The formula's score is the order over 3x (8x) the average month, so holding at a
    score >= s is the formula with multipliers 3s and 8s. Two questions a compliance
    officer asks of the old rule: how many good orders would it hold to catch as many
    events as the engine (``at_engine_recall``), and how many events would it catch
    holding no more good orders than the engine (``recall_at_engine_false_holds``)?
    The formula has no baseline for a registrant with under 28 days of history (score
    0), so some recall is out of its reach at any multiplier (``max_recall``).
    """
    events = sorted(ev["event_formula"].values(), reverse=True)
    normal = sorted((s for s, is_normal in ev["formula"] if is_normal), reverse=True)
    reachable = [s for s in events if s > 0.0]

    if not events:
        return {"max_recall": None, "at_engine_recall": None, "at_recall_0.5": None,
                "at_recall_0.8": None, "recall_at_engine_false_holds": None}

    def at(need: int) -> dict | None:
        """The highest multiplier scale at which ``need`` events are caught."""
        need = max(1, need)
        if need > len(reachable):
            return None  # not reachable by scaling the multipliers
        s = reachable[need - 1]
        held = sum(1 for x, _ in ev["formula"] if x >= s)
        got = sum(1 for x in events if x >= s)
        return {"recall": round(got / len(events), 4), "multiplier_scale": round(s, 4),
                "false_holds": sum(1 for x in normal if x >= s),
                "hold_rate": round(held / max(len(ev["formula"]), 1), 5)}

    out: dict = {"max_recall": round(len(reachable) / max(len(events), 1), 4),
                 "at_engine_recall": at(caught),
                 "at_recall_0.5": at(math.ceil(0.5 * len(events) - 1e-9)),
                 "at_recall_0.8": at(math.ceil(0.8 * len(events) - 1e-9))}
    # hold only scores above the (budget + 1)-th highest normal one: <= budget false holds
    floor = normal[false_holds] if false_holds < len(normal) else 0.0
    out["recall_at_engine_false_holds"] = round(
        sum(1 for s in events if s > floor) / max(len(events), 1), 4)
    return out


def summarise(ev: dict, who: str) -> dict:
    c, events = ev["counts"][who], ev["events"][who]
    allc = c["all"]
    normal = c["normal"]
    anomalous = allc["orders"] - normal["orders"]
    caught = allc["held"] - normal["held"]
    per_kind = {}
    for kind in sorted(k for k in c if k not in ("all", "normal", "clean")
                       and not k.startswith("during:")):
        ek = [v for (_, _, k), v in events.items() if k == kind]
        held, other = c[kind]["held"], c["during:" + kind]["held"]
        per_kind[kind] = {"orders": c[kind]["orders"], "held": held,
                          "order_recall": held / max(c[kind]["orders"], 1), "events": len(ek),
                          "event_recall": sum(ek) / max(len(ek), 1),
                          # of the orders held from registrants with this anomaly (in the
                          # window), the share that carried it; the rest are their usual ones
                          "precision": held / max(held + other, 1)}
    return {
        "orders": allc["orders"], "anomalous_orders": anomalous, "held": allc["held"],
        "false_holds": normal["held"],
        "false_holds_clean": c["clean"]["held"],
        "clean_orders": c["clean"]["orders"],
        "clean_hold_rate": c["clean"]["held"] / max(c["clean"]["orders"], 1),
        "hold_rate": allc["held"] / max(allc["orders"], 1),
        "false_hold_rate": normal["held"] / max(normal["orders"], 1),
        "precision": caught / max(allc["held"], 1),
        "order_recall": caught / max(anomalous, 1),
        "event_recall": sum(events.values()) / max(len(events), 1),
        "events": len(events), "per_kind": per_kind,
    }


def report(engine: dict, baseline: dict, codes: dict) -> dict:
    print(f"{'':26} {'engine':>22} {'formula baseline':>22}")
    for key in ("orders", "anomalous_orders", "held", "false_holds", "false_holds_clean",
                "hold_rate", "false_hold_rate", "precision", "order_recall", "event_recall",
                "events"):
        e, b = engine[key], baseline[key]
        fmt = "{:>22.4f}" if isinstance(e, float) else "{:>22}"
        print(f"{key:26} " + fmt.format(e) + " " + fmt.format(b))
    print("\nper anomaly kind: orders, events; then for engine | baseline: share of the "
          "kind's orders held (order recall), event recall, precision")
    for kind, e in engine["per_kind"].items():
        b = baseline["per_kind"][kind]
        print(f"  {kind:26} {e['orders']:5d} {e['events']:4d}  {e['order_recall']:6.3f} "
              f"{e['event_recall']:6.3f} {e['precision']:6.3f} | {b['order_recall']:6.3f} "
              f"{b['event_recall']:6.3f} {b['precision']:6.3f}")
    print(f"  {'clean registrants':26} {engine['clean_orders']:5d}    -  "
          f"{engine['clean_hold_rate']:6.4f}      -      - | {baseline['clean_hold_rate']:6.4f}")
    print("\nengine holds by first reason (anomalous?, code):")
    for (anom, code), n in sorted(codes.items(), key=lambda x: -x[1]):
        print(f"  {'anomalous' if anom else 'normal':9} {code:22} {n}")
    return {
        "recall": round(engine["event_recall"], 4),
        "order_recall": round(engine["order_recall"], 4),
        "hold_rate": round(engine["hold_rate"], 5),
        "false_hold_rate": round(engine["false_hold_rate"], 5),
        # the share held if anomalous orders were 1% of them (som generate's rate over a
        # whole feed) instead of the 2.5% they are in the evaluated window: derived, not
        # measured; hold_rate above is the measured share. Conservative: false_hold_rate
        # includes the usual orders of registrants with an anomaly, held more often
        # than clean registrants' (clean_hold_rate)
        "hold_rate_at_1pct_anomalous": round(
            0.01 * engine["order_recall"] + 0.99 * engine["false_hold_rate"], 5),
        "precision": round(engine["precision"], 4),
        "clean_hold_rate": round(engine["clean_hold_rate"], 5),
        "baseline_recall": round(baseline["event_recall"], 4),
        "baseline_order_recall": round(baseline["order_recall"], 4),
        "baseline_hold_rate": round(baseline["hold_rate"], 5),
        "baseline_false_hold_rate": round(baseline["false_hold_rate"], 5),
        "false_holds": engine["false_holds"],
        "baseline_false_holds": baseline["false_holds"],
        "false_holds_vs_baseline": round(engine["false_holds"]
                                         / max(baseline["false_holds"], 1), 4),
        "per_kind": {k: {"recall": round(v["event_recall"], 3),
                         "held": round(v["order_recall"], 3),
                         "precision": round(v["precision"], 3)}
                     for k, v in engine["per_kind"].items()},
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="21,22,23", help="feed seeds (tuning: 11,12)")
    ap.add_argument("--registrants", type=int, default=1500)
    ap.add_argument("--days", type=int, default=180)
    ap.add_argument("--quick", action="store_true", help="300 registrants, 150 days")
    ap.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "som-detection"))
    ap.add_argument("--throughput", action="store_true", help="also measure replay throughput")
    args = ap.parse_args(argv)
    if args.quick:
        args.registrants, args.days = 300, 150
    work = Path(args.workdir)
    runs = []
    for seed in (int(s) for s in args.seeds.split(",")):
        t0 = time.perf_counter()
        folder = feed_folder(work, seed, args.registrants, args.days)
        t_gen = time.perf_counter() - t0
        run = run_seed(folder, args.days)
        print(f"seed {seed}: {run['times']['orders']} orders; generate {t_gen:.0f} s, verify "
              f"{run['times']['verify_s']:.0f} s, train {run['times']['train_s']:.0f} s, replay "
              f"{run['times']['replay_s']:.0f} s", flush=True)
        runs.append(run)
    ev = evaluate(runs)
    engine = summarise(ev, "engine")
    result = report(engine, summarise(ev, "baseline"), ev["codes"])
    caught = round(engine["event_recall"] * engine["events"])  # exact: a count over a count
    trade = formula_tradeoff(ev, caught, result["false_holds"])
    at = trade["at_engine_recall"]
    print("\nthe formula with scaled multipliers:")
    if at is None:
        print(f"  at the engine's recall ({result['recall']}): out of reach (the formula "
              f"catches at most {trade['max_recall']} of events at any multiplier)")
    else:
        print(f"  at the engine's recall ({result['recall']}): multipliers "
              f"x{at['multiplier_scale']}, {at['false_holds']} false holds, "
              f"{at['hold_rate']:.2%} of orders held")
    for target in ("0.5", "0.8"):
        row = trade[f"at_recall_{target}"]
        if row is not None:
            print(f"  at recall {target}: multipliers x{row['multiplier_scale']}, "
                  f"{row['false_holds']} false holds, {row['hold_rate']:.2%} of orders held")
    print(f"  with at most the engine's {result['false_holds']} false holds: recall "
          f"{trade['recall_at_engine_false_holds']}")
    result["baseline_scaled"] = trade
    if args.throughput:
        from benchmarks.replay_throughput import measure

        first = int(args.seeds.split(",")[0])
        result.update(measure(feed_folder(work, first, args.registrants, args.days)))
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
