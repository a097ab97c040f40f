"""Inputs recoded by the trees' own split points, so a kernel that stores thresholds in float32 routes exactly.

Why: shap's interventional TreeSHAP (``dense_independent`` in its C extension) copies every threshold and leaf
value into a ``float``. A LightGBM threshold is a double, so a float64 input lying between the threshold and its
float32 rounding goes the other way than in LightGBM (a Unix time in seconds: float32 steps are 128 s there);
an XGBoost split is already a float32, but XGBoost compares ``float32(x)``, not ``x``. Either way the
explanation then adds up to a different output than the library's own prediction.

The fix is exact and library-independent: for each feature ``j`` let ``cuts_j`` be the sorted distinct
thresholds of every ``x <= t`` split on it. The code of a value is ``#{t in cuts_j : t < x}`` and the code of a
threshold is its index in ``cuts_j``; then ``x <= t`` exactly when ``code(x) <= code(t)``. Codes are small
integers (exact in float32 below 2**24), missing values stay NaN and follow the default child as before.
Inputs are first cast to the dtype the library itself reads (``input_dtype``: float32 for XGBoost and
scikit-learn trees, float64 for LightGBM), so the comparisons are the library's own.

Limits: numeric ``<=`` splits only (categorical splits raise ``ValueError``); leaf values stay float32 in
shap's kernel, about 1e-7 of the output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SplitCodes"]

MAX_CODES = 2**24  # integers float32 holds exactly


@dataclass(frozen=True)
class SplitCodes:
    """Per-feature sorted distinct thresholds, and the dtype the library casts inputs to before comparing."""

    cuts: tuple[np.ndarray, ...]
    input_dtype: str = "float64"

    @classmethod
    def from_trees(cls, trees: list[dict[str, np.ndarray]], n_features: int, *, input_dtype: str) -> SplitCodes:
        """The split points of trees in shap's dict layout (``children_left``, ``features``, ``thresholds``).

        Raises:
            ValueError: A categorical split, or more distinct thresholds on one feature than float32 counts.
        """
        per_feature: list[list[np.ndarray]] = [[] for _ in range(n_features)]
        for tree in trees:
            internal = np.asarray(tree["children_left"]) >= 0
            if np.any(np.asarray(tree.get("threshold_types", np.zeros(len(internal))))[internal] != 0):
                raise ValueError("categorical splits cannot be recoded")
            features = np.asarray(tree["features"])[internal]
            thresholds = np.asarray(tree["thresholds"], dtype=np.float64)[internal]
            for j in np.unique(features):
                per_feature[int(j)].append(thresholds[features == j])
        cuts = tuple(np.unique(np.concatenate(t)) if t else np.zeros(0) for t in per_feature)
        if max((len(c) for c in cuts), default=0) >= MAX_CODES:
            raise ValueError("too many distinct thresholds on one feature to recode exactly")
        return cls(cuts, input_dtype)

    def code_thresholds(self, features: np.ndarray, thresholds: np.ndarray, children_left: np.ndarray) -> np.ndarray:
        """Each split's threshold as its index among its feature's cuts (leaves keep 0)."""
        out = np.zeros(len(thresholds), dtype=np.float64)
        for node in np.flatnonzero(np.asarray(children_left) >= 0):
            cuts = self.cuts[int(features[node])]
            out[node] = float(np.searchsorted(cuts, float(thresholds[node]), side="left"))
        return out

    def code_inputs(self, X: np.ndarray) -> np.ndarray:
        """Rows as the library compares them (its dtype), then as codes; NaN stays NaN."""
        X = np.asarray(X, dtype=np.float64).astype(self.input_dtype).astype(np.float64)
        out = np.full(X.shape, np.nan)
        for j, cuts in enumerate(self.cuts):
            column = X[:, j]
            present = ~np.isnan(column)
            out[present, j] = np.searchsorted(cuts, column[present], side="left")
        return out
