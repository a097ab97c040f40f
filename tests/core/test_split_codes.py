"""Rows and thresholds recoded by the trees' split points: shap's float32 kernel then routes as the library does."""

from __future__ import annotations

import warnings

import lightgbm as lgb
import numpy as np
import pytest
import shap
import xgboost as xgb

from core.methods.trees.split_codes import SplitCodes


def _unix_times(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Unix times in seconds over two days (float32 steps are 128 s there) and a target that follows them."""
    rng = np.random.default_rng(seed)
    X = np.column_stack([1_700_000_000 + rng.integers(0, 2 * 86400, n), rng.normal(size=n)]).astype(np.float64)
    y = np.sin(X[:, 0] / 5000.0) + 0.1 * X[:, 1]
    return X, y


def _dict_model(ensemble, codes: SplitCodes) -> dict:
    trees = []
    for t in range(ensemble.values.shape[0]):
        left, features = ensemble.children_left[t], ensemble.features[t]
        trees.append({"children_left": left, "children_right": ensemble.children_right[t],
                      "children_default": ensemble.children_default[t], "features": features,
                      "thresholds": codes.code_thresholds(features, ensemble.thresholds[t], left),
                      "values": ensemble.values[t], "node_sample_weight": ensemble.node_sample_weight[t]})  # fmt: skip
    return {"trees": trees, "base_offset": ensemble.base_offset, "tree_output": "raw_value", "input_dtype": np.float64}


def _interventional(model, X: np.ndarray, background: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        explainer = shap.TreeExplainer(model, data=background, feature_perturbation="interventional")
        return explainer.shap_values(X, check_additivity=False).sum(axis=1) + explainer.expected_value


def _trees(model) -> tuple[object, list[dict]]:
    ensemble = shap.TreeExplainer(model).model
    trees = [{"children_left": ensemble.children_left[t], "features": ensemble.features[t],
              "thresholds": ensemble.thresholds[t], "threshold_types": ensemble.threshold_types[t]}
             for t in range(ensemble.values.shape[0])]  # fmt: skip
    return ensemble, trees


def test_lightgbm_double_thresholds_route_every_row_as_lightgbm_does():
    X, y = _unix_times(1000, seed=1)
    booster = lgb.train({"verbose": -1, "num_leaves": 31, "min_data_in_leaf": 5}, lgb.Dataset(X, y), 60)
    ensemble, trees = _trees(booster)
    codes = SplitCodes.from_trees(trees, 2, input_dtype="float64")
    cuts = codes.cuts[0]
    between = (X[:, :1] > np.minimum(cuts, cuts.astype(np.float32))) & (
        X[:, :1] <= np.maximum(cuts, cuts.astype(np.float32))
    )
    assert between.any()  # rows that a float32 copy of a threshold sends the other way
    own = booster.predict(X)
    background = X[::40]
    coded = _interventional(_dict_model(ensemble, codes), codes.code_inputs(X), codes.code_inputs(background))
    np.testing.assert_allclose(coded, own, rtol=1e-6, atol=1e-6)
    plain = _interventional(booster, X, background)  # shap on the booster itself: float32 thresholds
    assert np.abs(plain - own).max() > 1e-3


def test_xgboost_compares_float32_inputs():
    rng = np.random.default_rng(2)
    X = np.column_stack([1e6 + rng.uniform(0, 50, 1000), rng.normal(size=1000)])  # float32 steps of 1/16 there
    y = np.sin(X[:, 0] / 3.0) + 0.1 * X[:, 1]
    booster = xgb.train({"max_depth": 6, "eta": 0.3, "tree_method": "hist"}, xgb.DMatrix(X, y), 60)
    ensemble, trees = _trees(booster)
    codes = SplitCodes.from_trees(trees, 2, input_dtype="float32")
    own = booster.predict(xgb.DMatrix(X), output_margin=True)
    coded = _interventional(_dict_model(ensemble, codes), codes.code_inputs(X), codes.code_inputs(X[::40]))
    np.testing.assert_allclose(coded, own, rtol=2e-5, atol=2e-5)


def test_codes_keep_missing_values_and_refuse_categorical_splits():
    codes = SplitCodes((np.array([0.5, 2.0]),), "float64")
    np.testing.assert_array_equal(codes.code_inputs(np.array([[np.nan], [0.5], [1.0], [3.0]]))[:, 0][1:], [0, 1, 2])
    assert np.isnan(codes.code_inputs(np.array([[np.nan]])))[0, 0]
    tree = {"children_left": np.array([1, -1, -1]), "features": np.array([0, -1, -1]),
            "thresholds": np.array([1.0, 0, 0]), "threshold_types": np.array([1, -1, -1])}  # fmt: skip
    with pytest.raises(ValueError, match="categorical splits"):
        SplitCodes.from_trees([tree], 1, input_dtype="float64")
