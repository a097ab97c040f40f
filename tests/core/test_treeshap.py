"""Exactness of the ModelLens TreeSHAP kernel (core.methods.trees.treeshap) against shap.TreeExplainer and exact rationals."""

import pickle

import numpy as np
import pandas as pd
import pytest
import shap
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from core.methods.trees import treeshap as fts
from tests.core.exact_ref import exact_tree_shap

TOL = 1e-9
N_TRAIN = 300


def _data(task: str, *, missing: bool = False, n: int = 420, n_features: int = 8):
    if task == "regression":
        X, y = make_regression(n, n_features, n_informative=5, noise=10.0, random_state=0)
    else:
        n_classes = 3 if task == "multiclass" else 2
        X, y = make_classification(n, n_features, n_informative=5, n_classes=n_classes, random_state=0)
    if missing:
        X = X.copy()
        X[np.random.default_rng(0).random(X.shape) < 0.15] = np.nan
    return X[:N_TRAIN], y[:N_TRAIN], X[N_TRAIN:]


def _reference(model_or_dict, X):
    explainer = shap.TreeExplainer(model_or_dict)
    ref = explainer.shap_values(X, check_additivity=False)
    ref = ref[:, :, None] if ref.ndim == 2 else ref
    pred = np.asarray(explainer.model.predict(X)).reshape(len(X), -1)
    return explainer, ref, pred


def _assert_exact(plan, X, ref, pred, expected, n_threads=1):
    out = fts.shap_values(plan, X, n_threads=n_threads)
    scale = max(1.0, float(np.abs(pred).max()))
    assert out.shape == ref.shape
    assert np.abs(out - ref).max() / scale <= TOL
    np.testing.assert_allclose(fts.expected_value(plan), np.atleast_1d(expected), rtol=0, atol=TOL * scale)
    additivity = out.sum(axis=1) + fts.expected_value(plan) - pred
    assert np.abs(additivity).max() / scale <= TOL


FAMILIES = [
    ("regression", False, lambda: DecisionTreeRegressor(random_state=0)),
    ("binary", False, lambda: DecisionTreeClassifier(random_state=0)),
    ("multiclass", False, lambda: DecisionTreeClassifier(random_state=0)),
    ("regression", True, lambda: DecisionTreeRegressor(random_state=0)),
    ("binary", True, lambda: DecisionTreeClassifier(random_state=0)),
    ("multiclass", True, lambda: DecisionTreeClassifier(random_state=0)),
    ("regression", False, lambda: RandomForestRegressor(10, random_state=0)),
    ("regression", False, lambda: RandomForestRegressor(10, max_depth=4, random_state=0)),
    ("binary", False, lambda: RandomForestClassifier(10, random_state=0)),
    ("multiclass", False, lambda: RandomForestClassifier(10, random_state=0)),
    ("binary", True, lambda: RandomForestClassifier(10, random_state=0)),
    ("regression", True, lambda: RandomForestRegressor(10, random_state=0)),
    ("regression", False, lambda: ExtraTreesRegressor(10, random_state=0)),
    ("binary", False, lambda: ExtraTreesClassifier(10, random_state=0)),
    ("multiclass", False, lambda: ExtraTreesClassifier(10, random_state=0)),
    ("regression", True, lambda: ExtraTreesRegressor(10, random_state=0)),
    ("binary", True, lambda: ExtraTreesClassifier(10, random_state=0)),
    ("multiclass", True, lambda: RandomForestClassifier(10, random_state=0)),
    ("regression", False, lambda: GradientBoostingRegressor(n_estimators=30, random_state=0)),
    ("binary", False, lambda: GradientBoostingClassifier(n_estimators=30, random_state=0)),
    ("binary", False, lambda: GradientBoostingClassifier(n_estimators=30, max_depth=6, random_state=0)),
    ("regression", False, lambda: HistGradientBoostingRegressor(max_iter=30)),
    ("regression", True, lambda: HistGradientBoostingRegressor(max_iter=30)),
    ("binary", False, lambda: HistGradientBoostingClassifier(max_iter=30)),
    ("binary", True, lambda: HistGradientBoostingClassifier(max_iter=30)),
    ("multiclass", False, lambda: HistGradientBoostingClassifier(max_iter=15)),
    ("multiclass", True, lambda: HistGradientBoostingClassifier(max_iter=15)),
]


@pytest.fixture(scope="module", autouse=True)
def _compiled():
    fts.warm_up()


@pytest.mark.parametrize("budget", [fts.DEFAULT_MEMORY_BUDGET_BYTES, 0], ids=["planned", "fallback"])
@pytest.mark.parametrize(("task", "missing", "make"), FAMILIES)
def test_matches_shap(task, missing, make, budget):
    X_train, y_train, X_test = _data(task, missing=missing)
    model = make().fit(X_train, y_train)
    explainer, ref, pred = _reference(model, X_test)
    plan = fts.prepare(fts.ensemble_from_model(model), memory_budget_bytes=budget)
    expected_kind = fts.KIND_PLANNED if budget else fts.KIND_FALLBACK
    assert np.all((plan.tree_kind == expected_kind) | (plan.tree_kind == fts.KIND_CONSTANT))
    _assert_exact(plan, X_test, ref, pred, explainer.expected_value)


@pytest.mark.parametrize("budget", [fts.DEFAULT_MEMORY_BUDGET_BYTES, 0])
def test_gradient_boosting_multiclass(budget):
    X_train, y_train, X_test = _data("multiclass")
    model = GradientBoostingClassifier(n_estimators=20, random_state=0).fit(X_train, y_train)
    description = fts.gbc_multiclass_model(model)
    explainer, ref, _ = _reference(description, X_test)
    plan = fts.prepare(fts.ensemble_from_model(model), memory_budget_bytes=budget)
    _assert_exact(plan, X_test, ref, model.decision_function(X_test), explainer.expected_value)


def test_budget_fallback_on_deep_tree_is_exact():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(4000, 20))
    y = X[:, 0] + 3.0 * rng.normal(size=len(X))
    model = DecisionTreeRegressor(random_state=0).fit(X[:3500], y[:3500])
    assert model.get_depth() >= 35
    explainer, ref, pred = _reference(model, X[3500:3700])
    tiny = fts.prepare(explainer.model, memory_budget_bytes=1024)
    assert tiny.tree_kind.tolist() == [fts.KIND_FALLBACK]
    assert tiny.tree_bytes.tolist() == [0]
    _assert_exact(tiny, X[3500:3700], ref, pred, explainer.expected_value, n_threads=2)
    full = fts.prepare(explainer.model)
    assert full.tree_kind.tolist() == [fts.KIND_PLANNED]
    assert 1024 < full.tree_bytes[0] <= fts.DEFAULT_MEMORY_BUDGET_BYTES


def test_budget_splits_a_forest_and_is_respected():
    X_train, y_train, X_test = _data("regression")
    model = RandomForestRegressor(12, min_samples_leaf=1, max_samples=0.6, random_state=0).fit(X_train, y_train)
    explainer, ref, pred = _reference(model, X_test)
    sizes = fts.prepare(explainer.model).tree_bytes
    budget = int(np.median(sizes))
    plan = fts.prepare(explainer.model, memory_budget_bytes=budget)
    assert 0 < len(plan.fallback_trees) < plan.n_trees
    assert plan.tree_bytes.max() <= budget
    _assert_exact(plan, X_test, ref, pred, explainer.expected_value)


def test_single_node_trees():
    X_train, _, X_test = _data("regression")
    constant = DecisionTreeRegressor().fit(X_train, np.full(len(X_train), 3.5))
    explainer, ref, pred = _reference(constant, X_test)
    plan = fts.prepare(explainer.model)
    assert plan.tree_kind.tolist() == [fts.KIND_CONSTANT]
    _assert_exact(plan, X_test, ref, pred, explainer.expected_value)


def test_mixed_single_node_and_split_trees():
    X_train, y_train, X_test = _data("regression")
    forest = RandomForestRegressor(6, max_depth=3, random_state=0).fit(X_train, y_train)
    stump = DecisionTreeRegressor().fit(X_train, np.zeros(len(X_train)))
    forest.estimators_.append(stump)
    explainer, ref, pred = _reference(forest, X_test)
    plan = fts.prepare(explainer.model)
    assert plan.tree_kind[-1] == fts.KIND_CONSTANT
    _assert_exact(plan, X_test, ref, pred, explainer.expected_value)


@pytest.mark.parametrize("budget", [fts.DEFAULT_MEMORY_BUDGET_BYTES, 0])
def test_categorical_threshold_type_matches_shap_cpp(budget):
    X_train, y_train, _ = _data("regression")
    X_train = X_train.copy()
    X_train[:, 0] = np.random.default_rng(0).integers(1, 6, len(X_train))
    model = RandomForestRegressor(5, max_depth=6, random_state=0).fit(X_train, y_train)
    explainer = shap.TreeExplainer(model)
    ens = explainer.model
    on_f0 = (ens.features == 0) & (ens.children_left >= 0)
    ens.threshold_types[on_f0] = 1  # bitset test: category c goes left iff bit c-1 of int(threshold)
    ens.thresholds[on_f0] = 0b01011
    X_test = np.column_stack([np.arange(60) % 7, np.random.default_rng(1).normal(size=(60, 7))])
    X_test[::9, 0] = np.nan
    ref = explainer.shap_values(X_test, check_additivity=False)[:, :, None]
    pred = ens.predict(X_test).reshape(-1, 1)
    _assert_exact(fts.prepare(ens, memory_budget_bytes=budget), X_test, ref, pred, explainer.expected_value)


def _caterpillar(depth: int, n_features: int) -> dict:
    """A chain tree: node i splits feature i % n_features; its left child is a leaf."""
    n = 2 * depth + 1
    cl, cr = np.full(n, -1, np.int32), np.full(n, -1, np.int32)
    feat, thr = np.full(n, -2, np.int32), np.zeros(n)
    weight, values = np.zeros(n), np.zeros((n, 1))
    spine, w = 0, 1e6
    for i in range(depth):
        cl[spine], cr[spine], feat[spine], thr[spine] = spine + 1, spine + 2, i % n_features, np.sin(i)
        weight[spine], weight[spine + 1] = w, w * 0.3
        values[spine + 1, 0] = np.cos(3.0 * i)
        spine, w = spine + 2, w * 0.7
    weight[spine], values[spine, 0] = w, 2.0
    tree = {"children_left": cl, "children_right": cr, "children_default": cr.copy(), "features": feat,
            "thresholds": thr, "values": values, "node_sample_weight": weight}  # fmt: skip
    return {"trees": [tree], "base_offset": 0.5}


@pytest.mark.parametrize("budget", [fts.DEFAULT_MEMORY_BUDGET_BYTES, 0])
def test_very_deep_chain_with_repeated_features(budget):
    model = _caterpillar(depth=150, n_features=6)
    X = np.random.default_rng(0).normal(scale=1.2, size=(40, 6))
    X[::7, 2] = np.nan
    explainer, ref, pred = _reference(model, X)
    plan = fts.prepare(explainer.model, memory_budget_bytes=budget)
    assert plan.dims[0] == 150
    _assert_exact(plan, X, ref, pred, explainer.expected_value)


def test_call_restores_thread_count_and_numba_config():
    import numba

    X_train, y_train, X_test = _data("regression")
    plan = fts.prepare(fts.ensemble_from_model(DecisionTreeRegressor(max_depth=3).fit(X_train, y_train)))
    before = numba.get_num_threads(), numba.core.config.SLP_VECTORIZE
    fts.shap_values(plan, X_test, n_threads=1)
    assert (numba.get_num_threads(), numba.core.config.SLP_VECTORIZE) == before


def test_few_rows_threads_and_input_forms():
    X_train, y_train, X_test = _data("multiclass")
    model = RandomForestClassifier(8, random_state=0).fit(X_train, y_train)
    plan = fts.prepare(fts.ensemble_from_model(model))
    full = fts.shap_values(plan, X_test, n_threads=1)
    np.testing.assert_allclose(fts.shap_values(plan, X_test, n_threads=2), full, rtol=0, atol=1e-14)
    for n in (1, 3, 9):
        np.testing.assert_allclose(fts.shap_values(plan, X_test[:n], n_threads=2), full[:n], rtol=0, atol=1e-14)
    np.testing.assert_allclose(fts.shap_values(plan, X_test[0]), full[:1], rtol=0, atol=1e-14)
    frame = pd.DataFrame(X_test, columns=[f"c{i}" for i in range(X_test.shape[1])])
    np.testing.assert_allclose(fts.shap_values(plan, frame), full, rtol=0, atol=1e-14)
    assert fts.shap_values(plan, X_test[:0]).shape == (0, X_test.shape[1], 3)
    with pytest.raises(ValueError, match="at least"):
        fts.shap_values(plan, X_test[:, :3])


def test_plan_pickles():
    X_train, y_train, X_test = _data("binary")
    model = HistGradientBoostingClassifier(max_iter=10).fit(X_train, y_train)
    plan = fts.prepare(fts.ensemble_from_model(model))
    clone = pickle.loads(pickle.dumps(plan))
    np.testing.assert_array_equal(fts.shap_values(clone, X_test), fts.shap_values(plan, X_test))


def test_hgb_native_categorical_is_unsupported():
    X_train, y_train, _ = _data("binary")
    X_train = X_train.copy()
    X_train[:, 0] = np.random.default_rng(0).integers(0, 4, len(X_train))
    model = HistGradientBoostingClassifier(max_iter=5, categorical_features=[0]).fit(X_train, y_train)
    with pytest.raises(fts.UnsupportedModelError, match="categorical"):
        fts.ensemble_from_model(model)


def test_foreign_ensemble_is_unsupported():
    ens = fts._tiny_ensemble()
    ens.model_type = "xgboost"
    with pytest.raises(fts.UnsupportedModelError, match="xgboost"):
        fts.prepare(ens)


def test_deep_wide_tree_matches_exact_rational_reference():
    """Many distinct features per path: exact to rounding where shap's own recursion drifts."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(2500, 120))
    y = X[:, 0] + 3.0 * rng.normal(size=len(X))
    model = DecisionTreeRegressor(random_state=0).fit(X[:-2], y[:-2])
    ens = shap.TreeExplainer(model).model
    plan = fts.prepare(ens)
    assert plan.dims[1] >= 11  # at least 21 distinct features on some root-leaf path
    x = X[-1].astype(np.float32).astype(np.float64)
    arrays = [ens.children_left, ens.children_right, ens.children_default, ens.features, ens.thresholds]
    exact = exact_tree_shap(*(a[0] for a in arrays), ens.node_sample_weight[0], ens.values[0][:, 0], x, X.shape[1])
    ours = fts.shap_values(plan, X[-1:])[0, :, 0]
    scale = max(1.0, abs(float(model.predict(X[-1:])[0])))
    assert np.abs(ours - np.array([float(v) for v in exact])).max() / scale <= 1e-13


def test_warm_up_reports_timings():
    timings = fts.warm_up()
    assert set(timings) == {"prepare_s", "shap_values_s"}
