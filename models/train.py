"""``som train``: replay history through the core and fit the cross-registrant models.

Features are computed by the very pipeline that will score, so training and
serving cannot drift apart. What is learned across registrants is only what the
stream driver cannot learn online without shared state: peer-group size
baselines and one isolation forest per peer group. No labels are used.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from engine.replay import replay
from models.artifacts import Models, save_models
from models.base import OrderContext
from models.iforest import IsolationForestScorer
from models.peers import PeerBaselines

__all__ = ["TrainingData", "collect", "fit_models", "train"]


@dataclass
class TrainingData:
    peer_rows: list[tuple] = field(default_factory=list)
    vectors: list[list[float]] = field(default_factory=list)
    order_meta: list[tuple[str, float, bool]] = field(default_factory=list)
    registrants: set[str] = field(default_factory=set)
    first_t: float | None = None
    last_t: float | None = None

    def add(self, ctx: OrderContext) -> None:
        f = ctx.features
        letter = ctx.purchaser_dea[:1]
        for fam in f.families:
            a = fam.amount
            self.peer_rows.append((letter, f.cold, f.volume_week, a.family, a.units, a.grams))
        self.vectors.append(f.vector())
        self.order_meta.append((ctx.purchaser_dea, f.volume_week, f.cold))
        self.registrants.add(ctx.purchaser_dea)
        self.first_t = ctx.t if self.first_t is None else min(self.first_t, ctx.t)
        self.last_t = ctx.t if self.last_t is None else max(self.last_t, ctx.t)

    def window(self) -> dict:
        def iso(t):
            return None if t is None else datetime.fromtimestamp(t, UTC).isoformat()

        return {"first_signed_at": iso(self.first_t), "last_signed_at": iso(self.last_t),
                "orders": len(self.vectors), "registrants": len(self.registrants)}


def collect(pipeline, messages: Iterable[bytes], until: datetime | None = None) -> TrainingData:
    """Run ``messages`` through the pipeline; keep features of orders signed before ``until``."""
    data = TrainingData()
    limit = until.timestamp() if until else float("inf")

    def keep(ctx: OrderContext) -> None:
        if ctx.t < limit:
            data.add(ctx)

    pipeline.on_context = keep
    try:
        replay(pipeline, messages)
    finally:
        pipeline.on_context = None
    return data


def fit_models(data: TrainingData, quantile: float = 0.999, random_state: int = 0) -> Models:
    """Peer baselines first (they define the groups), then a forest per group."""
    if len(data.vectors) < 2:
        raise ValueError(f"only {len(data.vectors)} orders in the training window; need more")
    peers = PeerBaselines.fit(data.peer_rows)
    groups = [peers.group(dea, vol, cold) for dea, vol, cold in data.order_meta]
    forest = IsolationForestScorer(quantile=quantile, random_state=random_state)
    forest.fit(np.asarray(data.vectors), groups=groups)
    return Models(peers, forest, {})


def train(pipeline, messages: Iterable[bytes], out_dir: str | Path, *,
          quantile: float = 0.999, until: datetime | None = None) -> dict:
    """Collect, fit and write artifacts; returns the manifest."""
    data = collect(pipeline, messages, until)
    models = fit_models(data, quantile)
    return save_models(out_dir, models, data.window())
