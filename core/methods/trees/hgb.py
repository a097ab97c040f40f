"""HistGradientBoosting's trees with native categorical splits, as arrays ModelLens's TreeSHAP kernel explains.

shap reads a categorical HistGradientBoosting split as a numeric threshold, so these models had no exact tree
method. scikit-learn predicts on its internal encoding of the input (``_preprocessor``: the categorical columns'
levels as codes 0..k-1, first, then the numeric columns) and routes a row exactly so (``_predictor.pyx``):
a missing value, or an unknown category, goes to the node's missing side; a category in the node's left bitset
goes left, any other known category right; a number ``x <= threshold`` goes left. The kernel's categorical test
is a bitset of the codes that go left, read through float32, and its input is the code + 1
(:func:`encode_rows`), so features of at most :data:`MAX_LEVELS` levels are read; anything else is
:class:`~core.methods.trees.treeshap.UnsupportedModelError` and the engine keeps the model-agnostic explainer.

Node covers are the training sample counts scikit-learn keeps (path-dependent TreeSHAP's weights); features are
mapped back to the raw input columns, so contributions land on the columns the user uploaded.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.methods.trees.treeshap import UnsupportedModelError
from core.methods.trees.xgb import XGBEnsemble, _fill_expectations, padded_ensemble

__all__ = ["MAX_LEVELS", "encode_rows", "from_model"]

MAX_LEVELS = 24  # the kernel reads a categorical bitset through float32: 24 exact bits


def _column_order(est: Any) -> np.ndarray:
    """Raw column index of each column of the model's internal encoding."""
    prep = getattr(est, "_preprocessor", None)
    if prep is None or not hasattr(prep, "output_indices_"):
        raise UnsupportedModelError("this scikit-learn version's categorical encoding is not read")
    flags = np.asarray(est.is_categorical_, dtype=bool)
    order = np.empty(len(flags), dtype=np.int64)
    for name, positions in (("encoder", np.flatnonzero(flags)), ("numerical", np.flatnonzero(~flags))):
        order[prep.output_indices_[name]] = positions
    return order


def _tree(predictor: Any, order: np.ndarray) -> tuple[np.ndarray, ...]:
    nodes = predictor.nodes
    leaf = nodes["is_leaf"].astype(bool)
    left = np.where(leaf, -1, nodes["left"]).astype(np.int32)
    right = np.where(leaf, -1, nodes["right"]).astype(np.int32)
    default = np.where(nodes["missing_go_to_left"].astype(bool), left, right).astype(np.int32)
    features = np.where(leaf, -1, order[nodes["feature_idx"]]).astype(np.int32)
    categorical = ~leaf & nodes["is_categorical"].astype(bool)
    thresholds = np.where(leaf, 0.0, nodes["num_threshold"]).astype(np.float64)
    bitsets = np.asarray(predictor.raw_left_cat_bitsets, dtype=np.uint32)
    for node in np.flatnonzero(categorical):
        thresholds[node] = float(int(bitsets[nodes["bitset_idx"][node], 0]) & ((1 << MAX_LEVELS) - 1))
    values = np.where(leaf, nodes["value"], 0.0).astype(np.float64)
    cover = nodes["count"].astype(np.float64)
    _fill_expectations(left, right, values, cover)
    return left, right, default, features, thresholds, values, cover, categorical.astype(np.int32)


def from_model(est: Any) -> XGBEnsemble:
    """Read a fitted HistGradientBoosting model with categorical features (raw-score units).

    Raises:
        UnsupportedModelError: A categorical feature with more than :data:`MAX_LEVELS` levels, or an encoding
            this reader does not know.
    """
    order = _column_order(est)
    encoder = est._preprocessor.named_transformers_["encoder"]
    if any(len(c) > MAX_LEVELS for c in encoder.categories_):
        raise UnsupportedModelError(f"a categorical column has more than {MAX_LEVELS} levels")
    per_iteration = int(est.n_trees_per_iteration_)
    parsed = [_tree(p, order) for iteration in est._predictors for p in iteration]
    tree_class = np.arange(len(parsed)) % per_iteration
    return padded_ensemble(
        parsed,
        tree_class,
        per_iteration,
        base_offset=np.asarray(est._baseline_prediction, dtype=np.float64).reshape(-1),
        input_dtype="float64",
    )


def encode_rows(est: Any, X: Any) -> np.ndarray:
    """Raw rows as the kernel reads them: numbers as they are, a category as its code + 1, missing/unknown NaN."""
    order = _column_order(est)
    encoded = np.asarray(est._preprocessor.transform(X), dtype=np.float64)
    flags = np.asarray(est.is_categorical_, dtype=bool)
    out = np.empty_like(encoded)
    out[:, order] = encoded
    out[:, flags] += 1.0  # NaN stays NaN
    return out
