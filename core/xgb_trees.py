"""XGBoost's trees as float64 arrays, so ModelLens's exact TreeSHAP kernel can explain them.

XGBoost predicts and computes its own contributions in float32: on a few hundred trees, its contributions
and its margin disagree by more than 1e-6 (relative), so they cannot be shown as adding up. Reading the
trees from the booster's JSON and evaluating them in float64 keeps XGBoost's routing exactly (inputs are
cast to float32 and ``x < split`` becomes ``x <= nextafter(split, -inf)``, missing values follow the default
child) while the arithmetic is exact: base value + contributions == the same trees' output computed in
float64, which equals XGBoost's own float32 margin to float32 precision.

Categorical splits, DART boosters and vector leaves are not read here (:class:`UnsupportedBooster`); the
engine then uses XGBoost's native contributions.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["UnsupportedBooster", "XGBEnsemble", "from_booster", "leaf_sums"]


class UnsupportedBooster(ValueError):
    """This booster uses something the float64 reader does not handle (categorical splits, DART, ...)."""


@dataclass
class XGBEnsemble:
    """Padded per-tree arrays in the layout :func:`core.treeshap.prepare` reads (shap's TreeEnsemble layout)."""

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


def _floats(value: Any) -> list[float]:
    return [float(x) for x in re.findall(r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?", str(value))]


def _tree_arrays(tree: dict[str, Any]) -> tuple[np.ndarray, ...]:
    if any(int(t) != 0 for t in tree.get("split_type", [])):
        raise UnsupportedBooster("categorical splits")
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
    _fill_expectations(left, right, values, cover)
    return left, right, default.astype(np.int32), features, thresholds, values, cover


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
    if any(t == "c" for t in booster.feature_types or ()):
        raise UnsupportedBooster("categorical features")
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
    width = max(len(p[0]) for p in parsed)
    k = len(parsed)

    def pad(i: int, fill: float, dtype: Any) -> np.ndarray:
        out = np.full((k, width), fill, dtype=dtype)
        for t, p in enumerate(parsed):
            out[t, : len(p[i])] = p[i]
        return out

    tree_class = np.asarray(model["tree_info"][:k], dtype=np.int64)
    values = np.zeros((k, width, outputs))
    for t, p in enumerate(parsed):
        values[t, : len(p[5]), tree_class[t]] = p[5]
    return XGBEnsemble(
        children_left=pad(0, -1, np.int32),
        children_right=pad(1, -1, np.int32),
        children_default=pad(2, -1, np.int32),
        features=pad(3, -1, np.int32),
        thresholds=pad(4, 0.0, np.float64),
        threshold_types=np.zeros((k, width), np.int32),
        values=values,
        node_sample_weight=pad(6, 0.0, np.float64),
        tree_class=tree_class,
    )


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
