"""LightGBM's trees as arrays, so ModelLens's exact TreeSHAP kernel can explain them (faster than LightGBM's own).

Read from ``Booster.dump_model()``: numerical splits ``x <= threshold`` in double precision, covers are the
data counts LightGBM's own TreeSHAP uses, and missing values route as LightGBM routes them: with missing type
``NaN`` to the default child, with ``None`` as if they were zero (so the default child here is the one 0.0
takes). Categorical splits and ``zero_as_missing`` (missing type ``Zero``) are not read
(:class:`UnsupportedBooster`); the engine then uses LightGBM's native contributions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.xgb_trees import UnsupportedBooster, XGBEnsemble, _fill_expectations

__all__ = ["from_booster"]


def _flatten(
    root: dict[str, Any],
) -> tuple[list[int], list[int], list[int], list[int], list[float], list[float], list[float]]:
    left, right, default, feature, threshold, value, count = [], [], [], [], [], [], []
    stack: list[tuple[dict[str, Any], int, str]] = [(root, -1, "")]
    while stack:
        node, parent, side = stack.pop()
        index = len(left)
        if parent >= 0:
            (left if side == "L" else right)[parent] = index
        left.append(-1)
        right.append(-1)
        default.append(-1)
        if "leaf_value" in node:
            if "leaf_coeff" in node:
                raise UnsupportedBooster("linear trees")
            feature.append(-1)
            threshold.append(0.0)
            value.append(float(node["leaf_value"]))
            count.append(float(node.get("leaf_count", 1) or 1))
            continue
        if node.get("decision_type") != "<=":
            raise UnsupportedBooster("categorical splits")
        missing = node.get("missing_type", "None")
        if missing == "Zero":
            raise UnsupportedBooster("zero_as_missing")
        thr = float(node["threshold"])
        feature.append(int(node["split_feature"]))
        threshold.append(thr)
        value.append(0.0)
        count.append(float(node.get("internal_count", 1) or 1))
        goes_left = bool(node.get("default_left")) if missing == "NaN" else thr >= 0.0
        default[index] = -2 if goes_left else -3  # resolved below, once the children have indices
        stack.append((node["right_child"], index, "R"))
        stack.append((node["left_child"], index, "L"))
    default = [left[i] if d == -2 else right[i] if d == -3 else -1 for i, d in enumerate(default)]
    return left, right, default, feature, threshold, value, count


def from_booster(booster: Any, n_trees: int | None = None) -> XGBEnsemble:
    """Read a LightGBM booster's trees (the first ``n_trees``) in the kernel's layout.

    Raises:
        UnsupportedBooster: Categorical splits, zero-as-missing, linear trees or averaged (random forest) output.
    """
    doc = booster.dump_model()
    if doc.get("average_output"):
        raise UnsupportedBooster("random-forest mode (averaged output)")
    per_iteration = int(doc.get("num_tree_per_iteration", 1))
    trees = doc["tree_info"][: n_trees or None]
    if any(t.get("num_cat", 0) for t in trees):
        raise UnsupportedBooster("categorical splits")
    flat = [_flatten(t["tree_structure"]) for t in trees]
    width, k = max(len(f[0]) for f in flat), len(flat)
    outputs = max(1, int(doc.get("num_class", 1))) if per_iteration > 1 else 1
    arrays = {
        name: np.full((k, width), fill, dtype=dtype)
        for name, fill, dtype in (
            ("left", -1, np.int32),
            ("right", -1, np.int32),
            ("default", -1, np.int32),
            ("feature", -1, np.int32),
            ("threshold", 0.0, np.float64),
            ("count", 0.0, np.float64),
        )
    }
    values = np.zeros((k, width, outputs))
    tree_class = np.arange(k) % per_iteration if outputs > 1 else np.zeros(k, dtype=np.int64)
    for t, (left, right, default, feature, threshold, value, count) in enumerate(flat):
        n = len(left)
        for name, data in (
            ("left", left),
            ("right", right),
            ("default", default),
            ("feature", feature),
            ("threshold", threshold),
            ("count", count),
        ):
            arrays[name][t, :n] = data
        leaf_values = np.asarray(value, dtype=np.float64)
        _fill_expectations(arrays["left"][t, :n], arrays["right"][t, :n], leaf_values, arrays["count"][t, :n])
        values[t, :n, tree_class[t]] = leaf_values
    return XGBEnsemble(
        children_left=arrays["left"],
        children_right=arrays["right"],
        children_default=arrays["default"],
        features=arrays["feature"],
        thresholds=arrays["threshold"],
        threshold_types=np.zeros((k, width), np.int32),
        values=values,
        node_sample_weight=arrays["count"],
        tree_class=tree_class.astype(np.int64),
        input_dtype="float64",
    )
