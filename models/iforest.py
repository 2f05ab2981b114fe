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
from models.forest import ExportedForest

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
        """Findings for a micro-batch of orders: one vectorised walk per peer group.

        Each row's score is the one a single-order call gives, to the last bit (the
        walk's comparisons and the tree-by-tree sum are the same).
        """
        out: list[list[Finding]] = [[] for _ in ctxs]
        forests = getattr(self, "forests_", None)
        if not forests:
            return out
        by_forest: dict[str, list[int]] = {}
        vectors = []
        for i, ctx in enumerate(ctxs):
            vectors.append(ctx.features.vector())
            group = ctx.features.peer_group
            name = group if group in forests else POOLED
            if name in forests:
                by_forest.setdefault(name, []).append(i)
        for name, rows in by_forest.items():
            forest = forests[name]
            if len(rows) == 1:  # the online case: fewer array operations for one row
                x = np.array(vectors[rows[0]], dtype=np.float32)
                scores = -forest._score_one(x)
            else:
                scores = -forest.score_samples(np.array([vectors[i] for i in rows],
                                                        dtype=np.float32))
            for i, score in zip(rows, scores.tolist(), strict=True):
                out[i] = self._findings(name, vectors[i], score)
        return out

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
