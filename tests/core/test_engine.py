"""The explain engine: additive in every unit, equal to the model's own output, equal to shap where shap runs."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import shap

from core.engine.engine import Engine
from core.engine.explain import make_explainer
from core.errors import ExplanationError
from core.explanation import check_additivity
from core.methods.permutation import PermutationMethod
from tests.core import zoo

ZOO = zoo.builders()
SKIP_ENGINE = {"ttr_log1p"}  # explained fine, but has no classes/proba quirks worth a separate case


@pytest.fixture(scope="module")
def fitted():
    return {name: build() for name, build in ZOO.items()}


def own_output(model, X, output: str) -> np.ndarray:
    """The model's output computed independently of the engine, (n, K)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        final = model.steps[-1][1] if hasattr(model, "steps") else model
        module = type(final).__module__
        if output == "probability":
            out = model.predict_proba(X)
        elif output == "raw" and not hasattr(model, "classes_"):
            out = model.predict(X)
        elif module.startswith("xgboost"):
            out = model.predict(X, output_margin=True)
        elif module.startswith("lightgbm"):
            out = model.predict(X, raw_score=True)
        elif module.startswith("catboost"):
            out = model.predict(X, prediction_type="RawFormulaVal")
        else:
            out = model.decision_function(X)
    out = np.asarray(out, dtype=np.float64)
    return out[:, None] if out.ndim == 1 else out


def _frame(X) -> pd.DataFrame:
    return X if isinstance(X, pd.DataFrame) else pd.DataFrame(X, columns=[f"c{i}" for i in range(X.shape[1])])


@pytest.mark.parametrize("name", sorted(set(ZOO) - SKIP_ENGINE))
def test_every_family_in_every_unit_adds_up_to_the_models_own_output(fitted, name):
    model, X = fitted[name]
    frame = _frame(X).iloc[:40].reset_index(drop=True)
    background = _frame(X).iloc[40:140].reset_index(drop=True)
    engine = Engine(model, background)
    for output in engine.outputs:
        engine = Engine(model, background, output=output)
        result = engine.explain(frame, np.arange(len(frame)))
        want = own_output(model, frame if isinstance(X, pd.DataFrame) else frame.to_numpy(), output)
        if engine.binary_single:
            want = want[:, 1:] if want.shape[1] == 2 else want
        # XGBoost predicts in float32; the engine evaluates the same trees in float64 (see core.methods.trees.xgb)
        tolerance = 3e-5 if name.startswith("xgb") else 1e-6
        error = np.abs(result.prediction - want) / np.maximum(1.0, np.abs(want))
        assert error.max() <= tolerance, f"{name}/{output}: {error.max():.1e}"
        for k in range(result.values.shape[2]):
            assert check_additivity(result.base[:, k], result.values[:, :, k], result.prediction[:, k]) <= 1e-6


TREE_VS_SHAP = [
    "rf_clf",
    "rf_multi",
    "rf_reg",
    "et_clf",
    "dt_reg",
    "gb_clf",
    "gb_reg",
    "hgb_clf",
    "hgb_multi",
    "hgb_reg",
    "xgb_clf",
    "xgb_multi",
    "xgb_reg",
    "lgbm_clf",
    "lgbm_multi",
    "lgbm_reg",
    "catboost_clf",
    "catboost_reg",
]


@pytest.mark.parametrize("name", TREE_VS_SHAP)
def test_tree_values_match_shap_tree_explainer(fitted, name):
    model, X = fitted[name]
    frame = X.iloc[:30]
    engine = Engine(model, X.iloc[40:140])
    output = engine.output
    result = engine.explain(frame, np.arange(30))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = np.asarray(shap.TreeExplainer(model).shap_values(frame), dtype=np.float64)
    if reference.ndim == 2:
        reference = reference[:, :, None]
    if engine.binary_single and reference.shape[2] == 2:
        reference = reference[:, :, 1:]
    scale = max(1.0, float(np.abs(result.prediction).max()))
    tolerance = 1e-5 if name.startswith(("xgb", "lgbm")) else 1e-9  # float32 boosters
    assert np.abs(result.values - reference).max() / scale < tolerance, f"{name} in {output}"


def rescaled_interventional_shapley(margin, x: np.ndarray, background: np.ndarray) -> np.ndarray:
    """What shap's interventional TreeSHAP gives in probability, computed by enumeration without shap.

    For each background row r: the exact Shapley values of the log-odds game m(x on S, r elsewhere) over all
    2^n coalitions, scaled by (sigmoid(m(x)) - sigmoid(m(r))) / (m(x) - m(r)); then the mean over r.
    """
    from math import factorial

    n = len(x)
    masks = (np.arange(2**n)[:, None] >> np.arange(n)) & 1  # coalition s holds feature j when bit j is set
    rows = np.where(masks[None, :, :] == 1, x[None, None, :], background[:, None, :]).reshape(-1, n)
    m = np.asarray(margin(rows), dtype=np.float64).reshape(len(background), 2**n)
    weight = np.array([factorial(k) * factorial(n - k - 1) / factorial(n) for k in range(n)])
    phi = np.zeros((len(background), n))
    for j in range(n):
        without = np.flatnonzero(masks[:, j] == 0)
        phi[:, j] = ((m[:, without | (1 << j)] - m[:, without]) * weight[masks[without].sum(axis=1)]).sum(axis=1)
    mx, mr = m[:, -1], m[:, 0]
    sigmoid = 1 / (1 + np.exp(-m[:, [-1, 0]]))
    same = np.isclose(mx, mr, rtol=0, atol=0)
    scale = np.where(same, 1.0, (sigmoid[:, 0] - sigmoid[:, 1]) / np.where(same, 1.0, mx - mr))
    return (phi * scale[:, None]).mean(axis=0)


@pytest.mark.parametrize("name", ["gb_clf", "hgb_clf", "xgb_clf", "lgbm_clf"])
def test_probability_unit_of_binary_boosters_is_rescaled_interventional_shapley(fitted, name):
    """The probability switch: checked against an enumeration over all 2^6 coalitions that never calls shap."""
    model, X = fitted[name]
    background = X.iloc[40:90].reset_index(drop=True)
    engine = Engine(model, background, output="probability")
    assert "log-odds values rescaled to probability per background row" in engine.method_name
    result = engine.explain(X.iloc[:3], np.arange(3))
    k = result.values.shape[2] - 1
    for i in range(3):
        want = rescaled_interventional_shapley(
            lambda rows: own_output(model, pd.DataFrame(rows, columns=X.columns), "log-odds")[:, -1],
            X.iloc[i].to_numpy(dtype=np.float64),
            background.to_numpy(dtype=np.float64),
        )
        np.testing.assert_allclose(result.values[i, :, k], want, atol=2e-6, err_msg=f"{name} row {i}")


@pytest.mark.parametrize("name", ["pipe_rf", "pipe_gb_reg", "pipe_lgbm", "pipe_xgb", "pipe_logreg"])
def test_pipeline_fold_back_equals_engineered_values_summed_per_raw_column(fitted, name):
    model, F = fitted[name]
    output = "log-odds" if name == "pipe_logreg" else "auto"
    engine = Engine(model, F.iloc[40:140], output=output)
    assert engine.folded, engine.notes
    result = engine.explain(F.iloc[:25], np.arange(25))
    plan = engine.plan
    for raw_index, raw_name in enumerate(plan.raw_names):
        summed = result.engineered[:, plan.source == raw_index].sum(axis=1)
        np.testing.assert_allclose(result.values[:, raw_index], summed, rtol=0, atol=1e-12, err_msg=raw_name)
    # the engineered values are the final estimator's own exact values on the transformed data
    if name in ("pipe_rf", "pipe_gb_reg"):
        Xt = model[:-1].transform(F.iloc[:25])
        reference = np.asarray(shap.TreeExplainer(model.steps[-1][1]).shap_values(Xt))
        reference = reference if reference.ndim == 3 else reference[:, :, None]
        np.testing.assert_allclose(result.engineered, reference, atol=1e-10)
    assert "engineered columns, summed onto raw columns" in engine.method_name


def test_mixing_pipeline_falls_back_to_agnostic_on_raw_string_columns():
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, PolynomialFeatures

    F, yb, _ = zoo.tabular()
    prep = ColumnTransformer([("cat", OneHotEncoder(), ["city", "plan"])], remainder="passthrough")
    model = make_pipeline(prep, PolynomialFeatures(2), LogisticRegression(max_iter=2000))
    F = F.fillna(0)
    model.fit(F, yb)
    engine = Engine(model, F.iloc[:60])
    assert not engine.folded and isinstance(engine.method, PermutationMethod)
    assert any("PolynomialFeatures" in n for n in engine.notes)
    result = engine.explain(F.iloc[60:70], np.arange(60, 70))
    assert result.values.shape == (10, 5, 2)
    np.testing.assert_allclose(result.prediction, model.predict_proba(F.iloc[60:70]), atol=1e-12)


def test_native_categorical_boosters_with_string_and_missing_values():
    import lightgbm as lgb

    F, yb, _ = zoo.tabular()
    F = F.astype({"city": "category", "plan": "category"})
    model = lgb.LGBMClassifier(n_estimators=20, verbose=-1).fit(F, yb)
    engine = Engine(model, F.iloc[:80])
    result = engine.explain(F.iloc[80:100], np.arange(20))
    np.testing.assert_allclose(result.prediction[:, 0], model.predict(F.iloc[80:100], raw_score=True), rtol=1e-9)
    assert np.isnan(F["tenure"]).any()


def test_permutation_is_deterministic_per_row_id_and_independent_of_batching(fitted):
    model, X = fitted["svc"]
    engine = Engine(model, X.iloc[100:200])
    whole = engine.explain(X.iloc[:12], np.arange(12))
    parts = [engine.explain(X.iloc[i : i + 5], np.arange(i, i + 5)) for i in (0, 5, 10)]
    stacked = np.concatenate([p.values for p in parts])[:12]
    np.testing.assert_array_equal(whole.values, stacked[:12])


def test_exact_enumeration_for_few_features_equals_shap_exact():
    from sklearn.neighbors import KNeighborsRegressor

    X, _, _, yr = zoo.numeric()
    X = X.iloc[:, :4].fillna(0).to_numpy()
    model = KNeighborsRegressor().fit(X, yr)
    background = pd.DataFrame(X[:20])
    engine = Engine(model, background)
    assert engine.method_name.startswith("Exact Shapley")
    ours = engine.explain(pd.DataFrame(X[50:55]), np.arange(5)).values[:, :, 0]
    masker = shap.maskers.Independent(X[:20], max_samples=50)
    reference = shap.explainers.ExactExplainer(model.predict, masker)(X[50:55]).values
    np.testing.assert_allclose(ours, reference, atol=1e-9)


def test_units_not_available_are_refused_with_a_choice(fitted):
    model, X = fitted["rf_clf"]
    with pytest.raises(ExplanationError, match="choose probability"):
        Engine(model, X.iloc[:50], output="log-odds")


def test_negative_class_of_a_single_output_binary_model_is_its_exact_complement(fitted):
    model, X = fitted["xgb_clf"]
    for output in ("log-odds", "probability"):
        explainer = make_explainer(model, X, output=output)
        result = explainer.explain_all(range(20))
        pos, neg = result.for_class(1), result.for_class(0)
        np.testing.assert_allclose(neg.values, -pos.values)
        if output == "probability":
            np.testing.assert_allclose(neg.prediction, model.predict_proba(X.iloc[:20])[:, 0], atol=1e-7)
        else:
            np.testing.assert_allclose(neg.prediction, -pos.prediction)


def test_models_fitted_on_bare_arrays(fitted):
    model, X = fitted["linreg_array"]
    frame = _frame(X)
    explainer = make_explainer(model, frame)
    expl = explainer.explain(range(10))
    np.testing.assert_allclose(expl.prediction, model.predict(X[:10]), rtol=1e-12)
    assert expl.method.startswith("Linear SHAP")


def test_sklearn_trees_use_the_modellens_kernel_even_where_shap_cannot(fitted):
    model, X = fitted["gb_multi"]
    engine = Engine(model, X.iloc[:80])
    assert engine.method_name == "TreeSHAP (path-dependent, ModelLens kernel)" and engine.output == "log-odds"
    result = engine.explain(X.iloc[80:90], np.arange(10))
    np.testing.assert_allclose(result.prediction, model.decision_function(X.iloc[80:90]), rtol=1e-12)


def test_categorical_hist_gradient_boosting_follows_its_categorical_splits_or_says_why_not():
    from sklearn.ensemble import HistGradientBoostingClassifier

    F, yb, _ = zoo.tabular()
    F = F.astype({"city": "category", "plan": "category"})
    model = HistGradientBoostingClassifier(max_iter=20, categorical_features="from_dtype").fit(F, yb)
    engine = Engine(model, F.iloc[:60])
    assert "HistGradientBoosting's categorical trees" in engine.method_name and not engine.notes
    result = engine.explain(F.iloc[60:66], np.arange(6))
    np.testing.assert_allclose(result.prediction[:, 0], model.decision_function(F.iloc[60:66]), rtol=1e-12)
    engine = Engine(model, F.iloc[:60], output="probability")  # its exact tree path is in log-odds
    assert isinstance(engine.method, PermutationMethod)
    assert any("categorical" in note for note in engine.notes)


def test_xgboost_is_read_in_float64_and_adds_up_exactly_even_on_large_ensembles():
    import xgboost as xgb

    X, yb, _, yr = zoo.numeric(n=3000)
    for model, y in (
        (xgb.XGBClassifier(n_estimators=300, max_depth=6, n_jobs=1), yb),
        (xgb.XGBRegressor(n_estimators=300, max_depth=6, n_jobs=1), yr * 50),
    ):
        model.fit(X.iloc[:2000], y[:2000])
        engine = Engine(model, X.iloc[2000:2100])
        assert "XGBoost's trees" in engine.method_name
        result = engine.explain(X.iloc[2100:], np.arange(900))
        assert check_additivity(result.base[:, 0], result.values[:, :, 0], result.prediction[:, 0]) < 1e-12
        margin = model.predict(X.iloc[2100:], output_margin=True)
        assert np.max(np.abs(result.prediction[:, 0] - margin) / np.maximum(1, np.abs(margin))) < 3e-5


def test_xgboost_early_stopping_uses_the_best_iteration():
    import xgboost as xgb

    X, yb, _, _ = zoo.numeric(n=3000)
    model = xgb.XGBClassifier(n_estimators=500, max_depth=4, early_stopping_rounds=5, n_jobs=1)
    model.fit(X.iloc[:1500], yb[:1500], eval_set=[(X.iloc[1500:2000], yb[1500:2000])], verbose=False)
    assert model.best_iteration < 499
    result = Engine(model, X.iloc[:100]).explain(X.iloc[2000:2200], np.arange(200))
    margin = model.predict(X.iloc[2000:2200], output_margin=True)
    assert np.max(np.abs(result.prediction[:, 0] - margin)) < 3e-5


def test_lightgbm_trees_through_the_kernel_match_lightgbm_and_fall_back_when_unreadable():
    import lightgbm as lgb

    X, yb, ym, _ = zoo.numeric(n=1500)
    X_test = X.iloc[1000:].copy()
    X_test.iloc[::4, 2] = np.nan  # missing at predict time where training had none: LightGBM reads it as 0
    for y in (yb, ym):
        model = lgb.LGBMClassifier(n_estimators=60, verbose=-1, n_jobs=1).fit(X.iloc[:1000].fillna(0), y[:1000])
        engine = Engine(model, X.iloc[:100])
        assert "LightGBM's trees" in engine.method_name
        ours = engine.explain(X_test, np.arange(len(X_test)))
        contrib = model.predict(X_test, pred_contrib=True)
        contrib = np.stack(contrib, 1) if isinstance(contrib, list) else contrib
        native = np.asarray(contrib).reshape(len(X_test), -1, X.shape[1] + 1)
        np.testing.assert_allclose(ours.values, np.moveaxis(native[:, :, :-1], 1, 2), atol=1e-10)
    F, _, _ = zoo.tabular()
    F["shop"] = pd.Categorical([f"s{i % 30}" for i in range(len(F))])  # beyond the kernel's 24-level bitset
    F = F.astype({"city": "category", "plan": "category"})
    y = (F["shop"].cat.codes % 7 == 3).astype(int)
    categorical = lgb.LGBMClassifier(n_estimators=20, verbose=-1, min_data_per_group=2, cat_smooth=1).fit(F, y)
    engine = Engine(categorical, F.iloc[:50])
    assert engine.method_name == "TreeSHAP (LightGBM native)" and any("categorical" in n for n in engine.notes)
