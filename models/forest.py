"""An isolation forest exported from scikit-learn as flat numpy arrays, scored by a walk.

Scoring one order with scikit-learn costs milliseconds (DESIGN.md section 4); the
exported forest is a handful of arrays: all trees' nodes concatenated, leaves
pointing to themselves, so a fixed number of vectorised steps (the deepest
tree's depth) moves every (tree, row) pair to its leaf. Values at the leaves are
scikit-learn's own path lengths, so ``score_samples`` equals scikit-learn's.

>>> import numpy as np
>>> from sklearn.ensemble import IsolationForest
>>> X = np.random.default_rng(0).normal(size=(300, 3))
>>> m = IsolationForest(n_estimators=20, random_state=0).fit(X)
>>> f = ExportedForest.from_sklearn(m)
>>> bool(np.allclose(f.score_samples(X), m.score_samples(X), rtol=0, atol=1e-12))
True
"""

from __future__ import annotations

import numpy as np

__all__ = ["ExportedForest", "ForestBank"]

_ARRAYS = ("feature", "threshold", "left", "right", "value", "roots")


class ExportedForest:
    """feature/threshold/left/right/value per node; ``roots`` index each tree's root."""

    def __init__(self, feature, threshold, left, right, value, roots, depth: int, denom: float):
        self.feature = np.asarray(feature, dtype=np.int64)
        self.threshold = np.asarray(threshold, dtype=np.float64)
        self.left = np.asarray(left, dtype=np.int64)
        self.right = np.asarray(right, dtype=np.int64)
        self.value = np.asarray(value, dtype=np.float64)
        self.roots = np.asarray(roots, dtype=np.int64)
        self.depth = int(depth)
        self.denom = float(denom)
        self._flat = np.stack([self.left, self.right], axis=1).ravel()

    @classmethod
    def from_sklearn(cls, model) -> ExportedForest:
        """Flatten a fitted ``sklearn.ensemble.IsolationForest``."""
        from sklearn.ensemble._iforest import _average_path_length

        feats, thrs, lefts, rights, values, roots = [], [], [], [], [], []
        offset, depth = 0, 0
        for i, (est, cols) in enumerate(zip(model.estimators_, model.estimators_features_,
                                            strict=True)):
            t = est.tree_
            n = t.node_count
            leaf = t.children_left == -1
            idx = np.arange(n)
            feats.append(np.where(leaf, 0, np.asarray(cols)[np.maximum(t.feature, 0)]))
            thrs.append(np.where(leaf, np.inf, t.threshold))
            lefts.append(np.where(leaf, idx, t.children_left) + offset)
            rights.append(np.where(leaf, idx, t.children_right) + offset)
            values.append(model._decision_path_lengths[i]
                          + model._average_path_length_per_tree[i] - 1.0)
            roots.append(offset)
            depth = max(depth, int(t.max_depth))
            offset += n
        denom = len(model.estimators_) * float(_average_path_length([model._max_samples])[0])
        return cls(np.concatenate(feats), np.concatenate(thrs), np.concatenate(lefts),
                   np.concatenate(rights), np.concatenate(values), np.asarray(roots), depth,
                   denom)

    def score_samples(self, X) -> np.ndarray:  # noqa: N803 - scikit-learn naming
        """scikit-learn's ``score_samples``: minus the anomaly score, lower is stranger."""
        X = np.asarray(X, dtype=np.float32)  # as scikit-learn compares
        if X.ndim == 1:
            X = X.reshape(1, -1)
        bank = self.__dict__.get("_bank")
        if bank is None:
            bank = self.__dict__["_bank"] = ForestBank([self])
        return bank.score_samples(X, np.zeros(X.shape[0], dtype=np.int64))

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        out = {f"{prefix}{k}": getattr(self, k) for k in _ARRAYS}
        out[f"{prefix}meta"] = np.asarray([self.depth, self.denom], dtype=np.float64)
        return out

    @classmethod
    def from_arrays(cls, arrays, prefix: str) -> ExportedForest:
        meta = arrays[f"{prefix}meta"]
        return cls(*(arrays[f"{prefix}{k}"] for k in _ARRAYS), int(meta[0]), float(meta[1]))


class ForestBank:
    """Several exported forests, walked together.

    A micro-batch's orders belong to several peer groups, each with its own forest;
    walking each group's rows separately pays the walk's fixed cost (depth x a few
    array operations) once per group. Here the forests' nodes are concatenated and each
    row starts at its own forest's roots, so one walk scores the whole batch; a row's
    score is the one its forest's ``score_samples`` gives, to the last bit (the same
    comparisons, the same tree-by-tree sum, extra steps leave a leaf where it is).

    >>> import numpy as np
    >>> from sklearn.ensemble import IsolationForest
    >>> rng = np.random.default_rng(0)
    >>> a, b = rng.normal(size=(300, 3)), rng.normal(5, 2, size=(300, 3))
    >>> fa, fb = (ExportedForest.from_sklearn(IsolationForest(n_estimators=20,
    ...     random_state=0).fit(x)) for x in (a, b))
    >>> X = np.vstack([a[:5], b[:5]]).astype(np.float32)
    >>> which = np.array([0] * 5 + [1] * 5)
    >>> got = ForestBank([fa, fb]).score_samples(X, which)
    >>> bool(np.array_equal(got, np.concatenate([fa.score_samples(X[:5]),
    ...                                           fb.score_samples(X[5:])])))
    True
    """

    def __init__(self, forests: list[ExportedForest]) -> None:
        feature, threshold, flat, value, roots = [], [], [], [], []
        offset = 0
        for f in forests:
            feature.append(f.feature)
            threshold.append(f.threshold)
            flat.append(f._flat + offset)
            value.append(f.value)
            roots.append(f.roots + offset)
            offset += len(f.feature)
        # A forest with fewer trees walks extra ones that are one leaf worth 0.0 at the end:
        # adding 0.0 to its sum changes no bit.
        feature.append(np.zeros(1, dtype=np.int64))
        threshold.append(np.full(1, np.inf))
        flat.append(np.array([offset, offset], dtype=np.int64))
        value.append(np.zeros(1))
        trees = max(len(r) for r in roots)
        roots = [np.concatenate([r, np.full(trees - len(r), offset, dtype=np.int64)])
                 for r in roots]
        self.feature = np.concatenate(feature)
        self.threshold = np.concatenate(threshold)
        self.value = np.concatenate(value)
        self._flat = np.concatenate(flat)
        self.roots = np.stack(roots)  # (forest, tree)
        self.depth = max(f.depth for f in forests)
        self.denom = np.array([f.denom for f in forests], dtype=np.float64)

    def score_samples(self, X, which) -> np.ndarray:  # noqa: N803 - scikit-learn naming
        """``score_samples`` of each row ``X[i]`` in forest ``which[i]``."""
        X = np.asarray(X, dtype=np.float32)  # as scikit-learn compares
        which = np.asarray(which, dtype=np.int64)
        rows = np.arange(X.shape[0])
        node = self.roots[which].T.copy()  # (tree, row)
        feature, threshold, children = self.feature, self.threshold, self._flat
        for _ in range(self.depth):  # children[node, right?] of the flattened (n, 2) table
            node = children[(node << 1) | (X[rows, feature[node]] > threshold[node])]
        depths = np.cumsum(self.value[node], axis=0)[-1]  # tree by tree, as scikit-learn adds
        denom = self.denom[which]
        with np.errstate(divide="ignore", invalid="ignore"):
            scores = -(2.0 ** (-depths / denom))
        return np.where(denom == 0, -1.0, scores)
