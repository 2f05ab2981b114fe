"""Replay throughput of the core with verification cached, on one core.

Verification is done once up front (its cost is measured by the CSOS benchmarks);
then the replay driver runs the feed through a pipeline whose verifier returns the
cached result, so what is timed is enrich, profile update, features, every scorer,
decide and the decision record. The reference in the same run is the same core
with only the DEA formula baseline (the engine before the scorers), so the ratio
shows what the scorers cost; the goal is 100,000 orders/s.

    python benchmarks/replay_throughput.py [--registrants 1500 --days 180 --seed 31] [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from config import load_settings  # noqa: E402
from connectors.feed import read_feed  # noqa: E402
from engine.build import build_pipeline  # noqa: E402
from engine.pipeline import Pipeline  # noqa: E402
from engine.records import RejectReason  # noqa: E402
from engine.replay import replay  # noqa: E402
from models.formula import FormulaBaseline  # noqa: E402
from models.train import collect, fit_models  # noqa: E402

__all__ = ["measure"]


def _timed(pipeline, messages: list[bytes], repeat: int, jobs: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        outcomes: list = []
        t0 = time.perf_counter()
        replay(pipeline, messages, profiles={}, on_outcome=outcomes.append, jobs=jobs)
        best = min(best, time.perf_counter() - t0)
        _check(outcomes)
    return len(messages) / best


def _check(outcomes: list) -> None:
    """A broken core is fast: refuse to time one that rejected orders as internal errors."""
    broken = [o for o in outcomes if getattr(o, "reason", None) == RejectReason.INTERNAL_ERROR]
    if broken:
        raise SystemExit(f"replay_throughput: {len(broken)} of {len(outcomes)} orders were "
                         f"rejected as internal_error ({broken[0].detail}); not timing a "
                         "broken core")


def measure(folder: Path, repeat: int = 2, jobs: int = 1) -> dict:
    """Orders/s of the full engine and of the formula-only core over one feed; with
    ``jobs`` > 1 also of the engine with the registrants shared among that many processes
    (``som replay --jobs``: a backtest's wall time, not the one-core goal)."""
    from benchmarks.detection import CachedVerifier
    from models.artifacts import save_models

    settings = load_settings(folder / "som.toml").with_overrides(
        verification={"time_rules_at": "signed"})
    messages = list(read_feed(folder / "feed.jsonl"))
    base = build_pipeline(settings)
    cached = CachedVerifier(base.verifier, messages)
    base.verifier = cached
    data = collect(base, messages)
    models_dir = Path(tempfile.mkdtemp(prefix="som-models-"))
    save_models(models_dir, fit_models(data), data.window())
    full = build_pipeline(settings.with_overrides(scoring={"models_dir": str(models_dir)}))
    full.verifier = cached
    sc = settings.scoring
    formula_only = Pipeline(settings, full.catalog, cached, [FormulaBaseline(
        sc.formula_multiplier_schedule_2, sc.formula_multiplier_schedule_3_5,
        sc.formula_window_days, sc.formula_min_history_days)])
    engine = _timed(full, messages, repeat)
    reference = _timed(formula_only, messages, repeat)
    result = {"orders": len(messages), "engine_orders_per_s": round(engine),
              "formula_only_orders_per_s": round(reference),
              "engine_vs_formula_only": round(engine / reference, 3),
              "goal_orders_per_s": 100_000}
    if jobs > 1:
        result["jobs"] = jobs
        result["engine_jobs_orders_per_s"] = round(_timed(full, messages, repeat, jobs))
    return result


def main(argv: list[str] | None = None) -> None:
    from benchmarks.detection import feed_folder

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--registrants", type=int, default=1500)
    ap.add_argument("--days", type=int, default=180)
    ap.add_argument("--seed", type=int, default=31)
    ap.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "som-detection"))
    ap.add_argument("--jobs", type=int, default=1,
                    help="also time `som replay --jobs N` (processes sharing the registrants)")
    args = ap.parse_args(argv)
    folder = feed_folder(Path(args.workdir), args.seed, args.registrants, args.days)
    result = measure(folder, jobs=args.jobs)
    print(f"{result['orders']} orders, verification cached, one process: engine "
          f"{result['engine_orders_per_s']:,} orders/s, formula-only core "
          f"{result['formula_only_orders_per_s']:,} orders/s")
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
