"""LightGBM's trees as arrays, so ModelLens's exact TreeSHAP kernel can explain them (faster than LightGBM's own).

Read from ``Booster.dump_model()``: numerical splits ``x <= threshold`` in double precision, covers are the
data counts LightGBM's own TreeSHAP uses, and missing values route as LightGBM routes them: with missing type
``NaN`` to the default child, with ``None`` as if they were zero (so the default child here is the one 0.0
takes). Categorical splits (``==``, the categories listed go left) are read when every listed category is
below :data:`MAX_KERNEL_LEVELS` (the kernel's bitset, read through float32): :func:`encode_rows` gives the
kernel a category as its value + 1 (a pandas category as its code in the training levels), and routes as
LightGBM does: a missing value, a negative value or one beyond the bitset right (checked against LightGBM's
own contributions, missing types ``NaN`` and ``None`` alike). ``zero_as_missing`` (missing type ``Zero``) and
linear trees are not read (:class:`UnsupportedBooster`); the engine then uses LightGBM's native contributions.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from core.methods.trees.xgb import (
    MAX_KERNEL_LEVELS,
    UnsupportedBooster,
    XGBEnsemble,
    _fill_expectations,
    padded_ensemble,
)

__all__ = ["MAX_KERNEL_LEVELS", "categorical_inputs", "encode_rows", "from_booster"]
_OUT_OF_RANGE = 32.0  # a kernel input whose bit (31) no bitset here sets: the row goes right


def _categorical_split(node: dict[str, Any]) -> tuple[float, bool]:
    """(bitset of the categories that go left, whether a missing value goes left) of an ``==`` split."""
    if node.get("missing_type", "None") == "Zero":
        raise UnsupportedBooster("zero_as_missing")
    cats = {int(c) for c in str(node["threshold"]).split("||") if c.strip()}
    if any(c >= MAX_KERNEL_LEVELS or c < 0 for c in cats):
        raise UnsupportedBooster(f"categorical splits on values beyond {MAX_KERNEL_LEVELS - 1}")
    return float(sum(1 << c for c in cats)), False  # a missing category always goes right


def _flatten(
    root: dict[str, Any],
) -> tuple[list[int], list[int], list[int], list[int], list[float], list[float], list[float], list[int]]:
    left: list[int]
    right: list[int]
    left, right, default, feature, threshold, value, count, kind = [], [], [], [], [], [], [], []
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
            kind.append(0)
            continue
        missing = node.get("missing_type", "None")
        if missing == "Zero":
            raise UnsupportedBooster("zero_as_missing")
        if node.get("decision_type") == "==":
            thr, goes_left = _categorical_split(node)
            kind.append(1)
        elif node.get("decision_type") == "<=":
            thr = float(node["threshold"])
            goes_left = bool(node.get("default_left")) if missing == "NaN" else thr >= 0.0
            kind.append(0)
        else:
            raise UnsupportedBooster(f"{node.get('decision_type')} splits")
        feature.append(int(node["split_feature"]))
        threshold.append(thr)
        value.append(0.0)
        count.append(float(node.get("internal_count", 1) or 1))
        default[index] = -2 if goes_left else -3  # resolved below, once the children have indices
        stack.append((node["right_child"], index, "R"))
        stack.append((node["left_child"], index, "L"))
    default = [left[i] if d == -2 else right[i] if d == -3 else -1 for i, d in enumerate(default)]
    return left, right, default, feature, threshold, value, count, kind


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
    flat = [_flatten(t["tree_structure"]) for t in trees]
    outputs = max(1, int(doc.get("num_class", 1))) if per_iteration > 1 else 1
    tree_class = np.arange(len(flat)) % per_iteration if outputs > 1 else np.zeros(len(flat), dtype=np.int64)
    parsed = []
    for left, right, default, feature, threshold, value, count, kind in flat:
        leaf_values, cover = np.asarray(value, dtype=np.float64), np.asarray(count, dtype=np.float64)
        _fill_expectations(np.asarray(left, dtype=np.int32), np.asarray(right, dtype=np.int32), leaf_values, cover)
        parsed.append((left, right, default, feature, threshold, leaf_values, cover, kind))
    return padded_ensemble(
        parsed, tree_class, outputs, input_dtype="float64", categorical_levels=_kernel_levels(booster)
    )


def _kernel_levels(booster: Any) -> dict[int, list[Any]]:
    """Categorical feature -> its pandas levels (code order), or [] for an integer-coded one."""
    return {i: levels if kind == "category" else [] for i, (kind, levels) in categorical_inputs(booster).items()}


def encode_rows(ensemble: XGBEnsemble, X: Any) -> np.ndarray:
    """Rows as the kernel reads them: numbers as they are; a categorical feature's category c as c + 1.

    A pandas category column is coded in its training levels (as LightGBM recodes it); a missing or unknown
    category is NaN; a negative value or one beyond the bitset goes right, as in LightGBM.
    """
    if not ensemble.categorical_levels:
        return np.asarray(X.toarray() if hasattr(X, "toarray") else X, dtype=np.float64)
    frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(X)
    out = np.empty(frame.shape, dtype=np.float64)
    for j in range(frame.shape[1]):
        column = frame.iloc[:, j]
        levels = ensemble.categorical_levels.get(j)
        if levels is None:
            out[:, j] = np.asarray(column, dtype=np.float64)
            continue
        if levels or isinstance(column.dtype, pd.CategoricalDtype):
            values = column.astype(object).where(column.notna(), None)
            codes = pd.Categorical(values, categories=levels or list(column.cat.categories)).codes
            value = np.where(codes < 0, np.nan, codes.astype(np.float64))
        else:
            value = np.trunc(np.asarray(column, dtype=np.float64))  # LightGBM casts to int
        outside = ~np.isnan(value) & ((value < 0) | (value >= MAX_KERNEL_LEVELS))
        out[:, j] = np.where(outside, _OUT_OF_RANGE, value + 1.0)
    return out


def categorical_inputs(booster: Any) -> dict[int, tuple[str, list[Any]]]:
    """Feature index -> (kind, levels) of a booster's categorical inputs, from its own model text.

    The model text names its categorical features by index (``[categorical_feature: 1,3]``, else the
    ``feature_infos`` entries that list values rather than a ``[min:max]`` range). ``pandas_categorical``
    holds the levels of the columns that had a pandas ``category`` dtype at training, in column order; LightGBM
    makes exactly those its categorical features unless it was told otherwise, so the lists go to those
    indices. When the two counts differ (integer-coded categories named explicitly, or ordered pandas
    categories that LightGBM reads as numbers), each list goes to the column whose recorded values fit it,
    preferring categorical features. Pandas columns are ``category`` (the model needs that dtype and those
    levels); integer-coded categorical features are ``categorical`` with the values seen in training.
    """
    text = booster.model_to_string(num_iteration=1)
    infos = _feature_infos(text)
    cat_idx = _categorical_indices(text, infos, booster.feature_name())
    lists = list(getattr(booster, "pandas_categorical", None) or [])
    out: dict[int, tuple[str, list[Any]]] = {
        i: ("categorical", _seen_levels(infos[i])) for i in cat_idx if i < len(infos)
    }
    for j, cats in _place_pandas_lists(lists, infos, set(cat_idx)).items():
        out[j] = ("category", [c.item() if isinstance(c, np.generic) else c for c in cats])
    return dict(sorted(out.items()))


def _feature_infos(text: str) -> list[str]:
    match = re.search(r"^feature_infos=(.*)$", text, flags=re.MULTILINE)
    return match.group(1).split(" ") if match else []


def _categorical_indices(text: str, infos: list[str], names: list[str]) -> list[int]:
    match = re.search(r"^\[categorical_feature: (.*)\]$", text, flags=re.MULTILINE)
    if match and match.group(1).strip():
        out = []
        for item in match.group(1).replace("name:", "").split(","):
            item = item.strip()
            if item.lstrip("-").isdigit():
                out.append(int(item))
            elif item in names:
                out.append(names.index(item))
        return sorted({i for i in out if i >= 0})
    return [i for i, info in enumerate(infos) if info != "none" and not info.startswith("[")]


def _seen_levels(info: str) -> list[Any]:
    """Non-negative category values a categorical feature's ``feature_infos`` lists (negative ones are missing)."""
    if info == "none" or info.startswith("["):
        return []
    return sorted({int(v) for v in info.split(":") if v.lstrip("-").isdigit() and int(v) >= 0})


def _fits(info: str, n_levels: int, categorical: bool) -> bool:
    """Whether a column's recorded values can be the codes 0..n_levels-1 of a pandas category."""
    if info == "none":
        return True
    if categorical:
        return all(v < n_levels for v in _seen_levels(info))
    lo_hi = [float(v) for v in info.strip("[]").split(":")] if info.startswith("[") else []
    return len(lo_hi) == 2 and lo_hi[0] >= 0 and lo_hi[1] <= n_levels - 1 and all(v.is_integer() for v in lo_hi)


def _place_pandas_lists(lists: list[list[Any]], infos: list[str], cat_idx: set[int]) -> dict[int, list[Any]]:
    """Column index of each ``pandas_categorical`` list (lists are in column order)."""
    if not lists:
        return {}
    if len(lists) == len(cat_idx):
        return dict(zip(sorted(cat_idx), lists, strict=True))
    n, m = len(lists), len(infos)
    # best[i][j]: most lists i.. placed on categorical features using columns j.. (-1: impossible)
    best = [[-1] * (m + 1) for _ in range(n + 1)]
    best[n] = [0] * (m + 1)
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            skip = best[i][j + 1]
            take = -1
            if best[i + 1][j + 1] >= 0 and _fits(infos[j], len(lists[i]), j in cat_idx):
                take = best[i + 1][j + 1] + (j in cat_idx)
            best[i][j] = max(skip, take)
    if best[0][0] < 0:  # nothing fits (a record LightGBM would not write): keep the categorical features' order
        return dict(zip(sorted(cat_idx), lists, strict=False))
    out, j = {}, 0
    for i in range(n):
        while not (
            best[i + 1][j + 1] >= 0
            and _fits(infos[j], len(lists[i]), j in cat_idx)
            and best[i + 1][j + 1] + (j in cat_idx) == best[i][j]
        ):
            j += 1
        out[j] = lists[i]
        j += 1
    return out
