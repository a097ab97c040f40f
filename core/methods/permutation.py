"""Model-agnostic, additive Shapley values on raw columns of any type (strings included).

For models without an exact fast method (SVMs, KNN, MLPs, stacking, AutoML ensembles, pipelines that mix
columns). The value function is interventional: ``v(S) = mean_b f(x_S, b_rest)`` over a small background
sample. Two estimators:

* **exact** for few features: every coalition is evaluated and weighted (true Shapley values of v);
* **antithetic permutations** otherwise: each permutation and its reverse; contributions telescope, so
  ``base + sum(values) == f(x)`` exactly for every row whatever the number of permutations.

``v(all) = f(x)`` and ``v(empty) = mean_b f(b)`` are computed once, never as averages of copies, so
additivity holds to rounding. Masked rows are built column by column with ``np.where`` on the original
values (shap's maskers turn frames into float arrays and fail on strings; nothing here does). Each row's
permutations are seeded by its row id, so results do not depend on batching or partitioning.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, cast

import numpy as np
import pandas as pd

from core.methods.families import Method

__all__ = ["PermutationMethod"]

MAX_BATCH_ROWS = 200_000


class _Columns:
    """Raw columns as numpy arrays plus what is needed to rebuild the model's input frame."""

    def __init__(self, frame: pd.DataFrame | np.ndarray):
        self.is_frame = isinstance(frame, pd.DataFrame)
        if self.is_frame:
            assert isinstance(frame, pd.DataFrame)
            self.names = list(frame.columns)
            self.dtypes = list(frame.dtypes)
            self.arrays = [frame.iloc[:, j].to_numpy() for j in range(frame.shape[1])]
        else:
            array = np.asarray(frame)
            self.names, self.dtypes = list(range(array.shape[1])), [array.dtype] * array.shape[1]
            self.arrays = [array[:, j] for j in range(array.shape[1])]

    def build(self, columns: list[np.ndarray]) -> Any:
        if not self.is_frame:
            return np.column_stack(columns)
        data = {}
        for name, dtype, col in zip(self.names, self.dtypes, columns, strict=True):
            data[name] = pd.Series(col, dtype=dtype) if isinstance(dtype, pd.CategoricalDtype) else col
        frame = pd.DataFrame(data)
        for name, dtype in zip(self.names, self.dtypes, strict=True):
            if not isinstance(dtype, pd.CategoricalDtype) and frame[name].dtype != dtype:
                frame[name] = frame[name].astype(dtype)
        return frame


class PermutationMethod(Method):
    """Additive model-agnostic Shapley values against a background sample.

    Args:
        predict: ``f(X) -> (n, K)`` in the units being explained (the whole model, raw input).
        background: Background rows (a DataFrame of raw columns, or an array).
        n_permutations: Antithetic permutation pairs per row (default: about 500 model evaluations per
            background row, like shap's default).
        seed: Base seed; each row's permutations use ``(seed, row_id)``.
        exact_max_features: Use exact enumeration up to this many features when it is not much dearer.
        binary_single: The outputs are a binary classifier's positive class only.
    """

    def __init__(
        self,
        predict: Callable[[Any], np.ndarray],
        background: pd.DataFrame | np.ndarray,
        *,
        n_permutations: int | None = None,
        seed: int = 0,
        exact_max_features: int = 10,
        binary_single: bool = False,
    ):
        self.predict = predict
        self.background = _Columns(background)
        self.n_background = len(background)
        self.n_features = len(self.background.arrays)
        f = self.n_features
        self.n_permutations = n_permutations or max(2, math.ceil(250 / max(f - 1, 1)))
        self.seed = seed
        self.binary_single = binary_single
        cost_exact = 2**f - 2
        self.exact = f <= exact_max_features and cost_exact <= 4 * self.n_permutations * max(f - 1, 1)
        self.base = np.asarray(predict(background), dtype=np.float64).mean(axis=0)
        b = self.n_background
        self.name = (
            f"Exact Shapley (all {2**f} coalitions, {b} background rows)"
            if self.exact
            else f"Permutation SHAP ({self.n_permutations} antithetic permutations, {b} background rows)"
        )

    def explain(self, X: Any, row_ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Explain rows; ``row_ids`` (positions in the uploaded table) seed each row's permutations."""
        rows = _Columns(X)
        n = len(rows.arrays[0]) if rows.arrays else 0
        row_ids = np.arange(n) if row_ids is None else np.asarray(row_ids)
        prediction = np.asarray(self.predict(X), dtype=np.float64)
        k = prediction.shape[1]
        values = np.zeros((n, self.n_features, k))
        masks = [self._masks(int(rid)) for rid in row_ids]
        per_row = (len(masks[0]) if masks else 1) * self.n_background
        step = max(1, MAX_BATCH_ROWS // max(per_row, 1))
        for start in range(0, n, step):
            idx = range(start, min(n, start + step))
            v = self._coalition_values(rows, idx, [masks[i] for i in idx], k)
            for local, i in enumerate(idx):
                values[i] = self._combine(masks[i], v[local], prediction[i])
        base = np.broadcast_to(self.base, (n, k)).copy()
        return values, base, prediction

    # -- coalitions ---------------------------------------------------------------------------------
    def _masks(self, row_id: int) -> np.ndarray:
        """Boolean coalitions (C, F) for one row, excluding the empty and full coalitions."""
        f = self.n_features
        if self.exact:
            codes = np.arange(1, 2**f - 1, dtype=np.int64)
            return ((codes[:, None] >> np.arange(f)) & 1).astype(bool)
        rng = np.random.default_rng([self.seed, row_id])
        masks = []
        for _ in range(self.n_permutations):
            perm = rng.permutation(f)
            for order in (perm, perm[::-1]):
                mask = np.zeros((f - 1, f), dtype=bool)
                for step in range(f - 1):
                    mask[step:, order[step]] = True
                masks.append(mask)
        return np.concatenate(masks) if masks else np.zeros((0, f), dtype=bool)

    def _coalition_values(self, rows: _Columns, idx: range, masks: list[np.ndarray], k: int) -> list[np.ndarray]:
        """v(S) for every coalition of every row in idx: mean over background of f(x_S, b_rest)."""
        b = self.n_background
        columns = []
        for j, bg in enumerate(self.background.arrays):
            parts = []
            for local, i in enumerate(idx):
                use_x = np.repeat(masks[local][:, j], b)
                parts.append(np.where(use_x, rows.arrays[j][i], np.tile(bg, len(masks[local]))))
            columns.append(np.concatenate(parts) if parts else bg[:0])
        if not columns or len(columns[0]) == 0:
            return [np.zeros((0, k)) for _ in idx]
        out = np.asarray(self.predict(self.background.build(columns)), dtype=np.float64)
        result, offset = [], 0
        for local in range(len(idx)):
            c = len(masks[local])
            result.append(out[offset : offset + c * b].reshape(c, b, k).mean(axis=1))
            offset += c * b
        return result

    def _combine(self, masks: np.ndarray, v: np.ndarray, fx: np.ndarray) -> np.ndarray:
        """Shapley values (F, K) of one row from its coalition values v (C, K)."""
        f = self.n_features
        if f == 1:
            return cast(np.ndarray, (fx - self.base)[None, :])
        if self.exact:
            return self._exact_values(v, fx)
        phi = np.zeros((f, len(fx)))
        per = f - 1
        for p in range(len(masks) // per):
            block, states = masks[p * per : (p + 1) * per], v[p * per : (p + 1) * per]
            full = np.vstack([self.base[None, :], states, fx[None, :]])  # v(S_0) .. v(S_F)
            order = _order_from_masks(block, f)
            phi[order] += np.diff(full, axis=0)
        return phi / (len(masks) // per)

    def _exact_values(self, v: np.ndarray, fx: np.ndarray) -> np.ndarray:
        f = self.n_features
        table = np.vstack([self.base[None, :], v, fx[None, :]])  # indexed by coalition code 0 .. 2^f - 1
        codes = np.arange(2**f)
        sizes = np.array([bin(c).count("1") for c in codes])
        weights = np.array([math.factorial(s) * math.factorial(f - s - 1) / math.factorial(f) for s in range(f)])
        phi = np.zeros((f, table.shape[1]))
        for j in range(f):
            without = codes[(codes >> j) & 1 == 0]
            gain = table[without | (1 << j)] - table[without]
            phi[j] = (weights[sizes[without]][:, None] * gain).sum(axis=0)
        return phi


def _order_from_masks(block: np.ndarray, f: int) -> np.ndarray:
    """Recover the permutation from its F-1 nested coalitions (the last feature is the one never added)."""
    added = np.argmax(np.diff(np.vstack([np.zeros(f, bool), block]).astype(np.int8), axis=0), axis=1)
    last = np.setdiff1d(np.arange(f), added)
    return np.concatenate([added, last])
