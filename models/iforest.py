"""Isolation forest per peer group over the per-order feature vector.

Trained by ``som train`` with scikit-learn on history, one forest per peer group
(pooled ``all`` for groups with too few orders), then exported to flat arrays and
scored by ``models.forest``'s numpy walk, a micro-batch of orders at a time
(``assess_batch``: the drivers' batches through ``Pipeline.monitor_batch``). The
limit per group is a high quantile of the training orders' own anomaly scores, so
"unusual" means "rarer than
``1 - quantile`` of this peer group's history". The detail names the features
furthest from the group's typical order, so the hold is explainable.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator

from models.base import Finding, OrderContext, lazy_finding
from models.features import FEATURES
from models.forest import ExportedForest, ForestBank

__all__ = ["IsolationForestScorer"]

POOLED = "all"


class IsolationForestScorer(BaseEstimator):
    """Anomaly score of the order's feature vector within its peer group's forest."""

    name = "iforest"

    def __init__(
        self,
        n_estimators: int = 100,
        max_samples: int = 256,
        quantile: float = 0.999,
        min_group_orders: int = 500,
        random_state: int = 0,
    ) -> None:
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.quantile = quantile
        self.min_group_orders = min_group_orders
        self.random_state = random_state

    def fit(self, X, y=None, groups=None) -> IsolationForestScorer:  # noqa: N803
        """Fit one forest per peer group in ``groups`` (plus a pooled one)."""
        from sklearn.ensemble import IsolationForest

        X = np.asarray(X, dtype=np.float64)
        groups = np.asarray(groups if groups is not None else [POOLED] * len(X))
        self.forests_: dict[str, ExportedForest] = {}
        self.limits_: dict[str, float] = {}
        self.centers_: dict[str, np.ndarray] = {}
        self.scales_: dict[str, np.ndarray] = {}
        names = [POOLED] + sorted({str(g) for g in groups} - {POOLED})
        for name in names:
            rows = X if name == POOLED else X[groups == name]
            if len(rows) < (2 if name == POOLED else self.min_group_orders):
                continue
            model = IsolationForest(n_estimators=self.n_estimators,
                                    max_samples=min(self.max_samples, len(rows)),
                                    random_state=self.random_state).fit(rows)
            forest = ExportedForest.from_sklearn(model)
            self.forests_[name] = forest
            self.limits_[name] = float(np.quantile(-forest.score_samples(rows), self.quantile))
            center = np.median(rows, axis=0)
            self.centers_[name] = center
            self.scales_[name] = np.maximum(np.median(np.abs(rows - center), axis=0) * 1.4826,
                                            1e-3)
        return self

    def assess(self, ctx: OrderContext) -> list[Finding]:
        return self.assess_batch([ctx])[0]

    def assess_batch(self, ctxs: list[OrderContext]) -> list[list[Finding]]:
        """Findings for a micro-batch of orders: one vectorised walk of every group's forest.

        Each row's score is the one a single-order call gives, to the last bit (the
        walk's comparisons and the tree-by-tree sum are the same; ``models.forest``).
        """
        out: list[list[Finding]] = [[] for _ in ctxs]
        forests = getattr(self, "forests_", None)
        if not forests:
            return out
        bank, index, names = self._bank(forests)
        pooled = index.get(POOLED)
        rows, which, vectors = [], [], []
        for i, ctx in enumerate(ctxs):
            group = ctx.features.peer_group
            k = index.get(group, pooled)
            if k is None:
                continue
            rows.append(i)
            which.append(k)
            vectors.append(ctx.features.vector())
        if not rows:
            return out
        scores = -bank.score_samples(np.array(vectors, dtype=np.float32), which)
        for i, k, vector, score in zip(rows, which, vectors, scores.tolist(), strict=True):
            out[i] = self._findings(names[k], vector, score)
        return out

    def _bank(
        self, forests: dict[str, ExportedForest]
    ) -> tuple[ForestBank, dict[str, int], list[str]]:
        """All forests in one walk, built once per set of forests (``fit`` or a load)."""
        key = tuple((name, id(forest)) for name, forest in forests.items())
        cached = self.__dict__.get("_walk")
        if cached is None or cached[0] != key:  # a new or changed set of forests
            names = sorted(forests)
            cached = (key, ForestBank([forests[n] for n in names]),
                      {n: k for k, n in enumerate(names)}, names, list(forests.values()))
            self.__dict__["_walk"] = cached  # (the forests kept alive: their ids stay theirs)
        return cached[1], cached[2], cached[3]

    def _findings(self, name: str, vector: list[float], score: float) -> list[Finding]:
        limit = self.limits_[name]
        if score < limit:
            return [lazy_finding("isolation_forest", round(score / limit, 4), round(score, 4),
                                 round(limit, 4), _under_detail, (name, score, limit), True)]
        x = np.asarray(vector)
        z = (x - self.centers_[name]) / self.scales_[name]
        top = np.argsort(-np.abs(z))[:2]
        unusual = ", ".join(f"{FEATURES[i]} = {x[i]:.2f} (typical {self.centers_[name][i]:.2f})"
                            for i in top)
        detail = (f"isolation forest of peer group {name}: anomaly score {score:.3f} against a "
                  f"limit of {limit:.3f} (the {self.quantile:.1%} quantile of the group's "
                  f"history); most unusual: {unusual}")
        return [Finding("isolation_forest", round(score / limit, 4), round(score, 4),
                        round(limit, 4), detail, hold=True)]


def _under_detail(name: str, score: float, limit: float) -> str:
    return (f"isolation forest of peer group {name}: anomaly score {score:.3f}, "
            f"under the limit {limit:.3f}")
