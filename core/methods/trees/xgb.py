"""XGBoost's trees as float64 arrays, so ModelLens's exact TreeSHAP kernel can explain them.

XGBoost predicts and computes its own contributions in float32: on a few hundred trees, its contributions
and its margin disagree by more than 1e-6 (relative), so they cannot be shown as adding up. Reading the
trees from the booster's JSON and evaluating them in float64 keeps XGBoost's routing exactly (inputs are
cast to float32 and ``x < split`` becomes ``x <= nextafter(split, -inf)``, missing values follow the default
child) while the arithmetic is exact: base value + contributions == the same trees' output computed in
float64, which equals XGBoost's own float32 margin to float32 precision.

Categorical splits are read for pandas categories XGBoost stored with the model (3.x) of at most
:data:`MAX_KERNEL_LEVELS` levels: the kernel's categorical test is a bitset of the categories that go left
(XGBoost lists those that go right; a missing value follows the default child), and :func:`encode_rows`
gives it each category's code + 1. DART boosters, vector leaves and other categorical features are not read
here (:class:`UnsupportedBooster`); the engine then uses XGBoost's native contributions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "MAX_KERNEL_LEVELS",
    "UnsupportedBooster",
    "XGBEnsemble",
    "encode_rows",
    "from_booster",
    "leaf_sums",
    "stored_categories",
]


MAX_KERNEL_LEVELS = 24  # the kernel reads a categorical bitset through float32: 24 exact bits


class UnsupportedBooster(ValueError):
    """This booster uses something the float64 reader does not handle (categorical splits, DART, ...)."""


@dataclass
class XGBEnsemble:
    """Padded per-tree arrays in the layout :func:`~core.methods.trees.treeshap.prepare` reads (shap's layout)."""

    children_left: np.ndarray
    children_right: np.ndarray
    children_default: np.ndarray
    features: np.ndarray
    thresholds: np.ndarray
    threshold_types: np.ndarray
    values: np.ndarray
    node_sample_weight: np.ndarray
    tree_class: np.ndarray
    base_offset: np.ndarray = field(default_factory=lambda: np.zeros(1))
    input_dtype: str = "float32"
    tree_limit: int | None = None
    model_type: str = "internal"
    categorical_levels: dict[int, list[Any]] = field(default_factory=dict)  # feature -> levels in code order


def _floats(value: Any) -> list[float]:
    return [float(x) for x in re.findall(r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?", str(value))]


def _right_categories(tree: dict[str, Any]) -> dict[int, list[int]]:
    """Node -> the category codes XGBoost sends to its right child."""
    cats = tree.get("categories", [])
    return {
        int(node): [int(c) for c in cats[int(start) : int(start) + int(size)]]
        for node, start, size in zip(
            tree.get("categories_nodes", []),
            tree.get("categories_segments", []),
            tree.get("categories_sizes", []),
            strict=True,
        )
    }


def _tree_arrays(tree: dict[str, Any]) -> tuple[np.ndarray, ...]:
    left = np.asarray(tree["left_children"], dtype=np.int32)
    right = np.asarray(tree["right_children"], dtype=np.int32)
    if len(tree["base_weights"]) != len(left):
        raise UnsupportedBooster("vector leaves")
    split = np.asarray(tree["split_conditions"], dtype=np.float32)
    leaf = left < 0
    default = np.where(np.asarray(tree["default_left"], dtype=np.int32) == 1, left, right)
    thresholds = np.where(leaf, 0.0, np.nextafter(split, np.float32(-np.inf))).astype(np.float64)
    values = np.where(leaf, split, 0.0).astype(np.float64)
    cover = np.asarray(tree["sum_hessian"], dtype=np.float64)
    features = np.where(leaf, -1, np.asarray(tree["split_indices"], dtype=np.int64)).astype(np.int32)
    types = np.asarray(tree.get("split_type", [0] * len(left)), dtype=np.int32)
    for node, right_codes in _right_categories(tree).items():
        if types[node] != 1 or any(c >= MAX_KERNEL_LEVELS for c in right_codes):
            raise UnsupportedBooster(f"categorical splits over more than {MAX_KERNEL_LEVELS} levels")
        thresholds[node] = float(((1 << MAX_KERNEL_LEVELS) - 1) & ~sum(1 << c for c in set(right_codes)))
    _fill_expectations(left, right, values, cover)
    return left, right, default.astype(np.int32), features, thresholds, values, cover, types


def _fill_expectations(left: np.ndarray, right: np.ndarray, values: np.ndarray, cover: np.ndarray) -> None:
    """Internal node value = cover-weighted sum of its children's over its own cover (root: the expectation)."""
    order, stack = [], [0]
    while stack:
        node = stack.pop()
        order.append(node)
        if left[node] >= 0:
            stack += [int(left[node]), int(right[node])]
    for node in reversed(order):  # children before parents
        if left[node] >= 0:
            a, b = int(left[node]), int(right[node])
            # divided by the parent's own cover, exactly as path-dependent TreeSHAP weights each branch
            values[node] = (values[a] * cover[a] + values[b] * cover[b]) / max(cover[node], 1e-280)


def from_booster(booster: Any, n_trees: int | None = None) -> XGBEnsemble:
    """Read a booster's trees (the first ``n_trees``, e.g. up to its best iteration).

    Raises:
        UnsupportedBooster: DART, categorical splits, multi-target regression or vector leaves.
    """
    levels = _kernel_levels(booster)
    doc = json.loads(booster.save_raw("json"))
    learner = doc["learner"]
    booster_doc = learner["gradient_booster"]
    if booster_doc.get("name") != "gbtree":
        raise UnsupportedBooster(f"{booster_doc.get('name')} boosters")
    params = learner["learner_model_param"]
    if int(params.get("num_target", "1") or 1) > 1:
        raise UnsupportedBooster("multi-target models")
    outputs = max(1, int(params.get("num_class", "0") or 0))
    model = booster_doc["model"]
    trees = model["trees"][: n_trees or None]
    parsed = [_tree_arrays(t) for t in trees]
    tree_class = np.asarray(model["tree_info"][: len(parsed)], dtype=np.int64)
    return padded_ensemble(parsed, tree_class, outputs, categorical_levels=levels)


def padded_ensemble(
    parsed: Sequence[Sequence[Any]], tree_class: np.ndarray, n_outputs: int, **extra: Any
) -> XGBEnsemble:
    """Trees read one by one, padded into the kernel's arrays (XGBoost, LightGBM and HistGradientBoosting share it).

    Args:
        parsed: Per tree, (left, right, default, features, thresholds, leaf values, cover, threshold types).
        tree_class: The output (class) each tree adds to.
        n_outputs: How many outputs the ensemble has.
        **extra: The ensemble's other fields (base offset, input dtype, categorical levels).
    """
    k, width = len(parsed), max(len(p[0]) for p in parsed)

    def pad(i: int, fill: float, dtype: Any) -> np.ndarray:
        out = np.full((k, width), fill, dtype=dtype)
        for t, p in enumerate(parsed):
            out[t, : len(p[i])] = p[i]
        return out

    values = np.zeros((k, width, n_outputs))
    for t, p in enumerate(parsed):
        values[t, : len(p[5]), tree_class[t]] = p[5]
    return XGBEnsemble(
        children_left=pad(0, -1, np.int32),
        children_right=pad(1, -1, np.int32),
        children_default=pad(2, -1, np.int32),
        features=pad(3, -1, np.int32),
        thresholds=pad(4, 0.0, np.float64),
        threshold_types=pad(7, 0, np.int32),
        values=values,
        node_sample_weight=pad(6, 0.0, np.float64),
        tree_class=np.asarray(tree_class, dtype=np.int64),
        **extra,
    )


def stored_categories(booster: Any) -> dict[int, list[Any]]:
    """Feature index -> the categories XGBoost stored at training, in code order ({} when it stored none)."""
    try:
        pairs = booster.get_categories(export_to_arrow=True).to_arrow() or []
    except Exception:  # noqa: BLE001 - XGBoost before 3.1, no pyarrow, or no stored categories
        return {}
    return {
        i: [v.item() if isinstance(v, np.generic) else v for v in arr.to_pylist()]
        for i, (_, arr) in enumerate(pairs)
        if arr is not None
    }


def _kernel_levels(booster: Any) -> dict[int, list[Any]]:
    """Levels of every categorical feature, when the kernel can read them all (else UnsupportedBooster)."""
    categorical = [i for i, t in enumerate(booster.feature_types or ()) if t == "c"]
    if not categorical:
        return {}
    stored = stored_categories(booster)
    if any(i not in stored for i in categorical):
        raise UnsupportedBooster("categorical features without stored levels")
    if any(len(stored[i]) > MAX_KERNEL_LEVELS for i in categorical):
        raise UnsupportedBooster(f"categorical features with more than {MAX_KERNEL_LEVELS} levels")
    return {i: stored[i] for i in categorical}


def encode_rows(ensemble: XGBEnsemble, X: Any) -> np.ndarray:
    """Rows as the kernel reads them: numbers as they are, a category as its code + 1, missing or unknown NaN."""
    if not ensemble.categorical_levels:
        return np.asarray(X.toarray() if hasattr(X, "toarray") else X, dtype=np.float64)
    frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(X)
    out = np.empty(frame.shape, dtype=np.float64)
    for j in range(frame.shape[1]):
        column = frame.iloc[:, j]
        if j in ensemble.categorical_levels:
            values = column.astype(object).where(column.notna(), None)
            codes = pd.Categorical(values, categories=ensemble.categorical_levels[j]).codes.astype(np.float64)
            out[:, j] = np.where(codes < 0, np.nan, codes + 1.0)
        else:
            out[:, j] = np.asarray(column, dtype=np.float64)
    return out


def leaf_sums(booster: Any, ensemble: XGBEnsemble, dmatrix: Any) -> np.ndarray:
    """(n, outputs) sum of the leaf values each row reaches, in float64 (no base score)."""
    leaves = booster.predict(dmatrix, pred_leaf=True, iteration_range=(0, 0), strict_shape=True)
    leaves = np.asarray(leaves, dtype=np.int64).reshape(leaves.shape[0], -1)[:, : ensemble.values.shape[0]]
    trees = np.arange(leaves.shape[1])
    per_tree = ensemble.values[trees[None, :], leaves, ensemble.tree_class[None, :]]  # (n, n_trees)
    out = np.zeros((leaves.shape[0], ensemble.values.shape[2]))
    for k in range(out.shape[1]):
        out[:, k] = per_tree[:, ensemble.tree_class == k].sum(axis=1)
    return out
