"""Categorical inputs read from each library's own record, explained exactly on the user's raw file (issue 15).

A categorical zoo: every library that records categorical inputs, fitted here on a small table whose text
categoricals sit *between* numeric columns, with an integer-coded categorical too. Each model goes through the
public flow (``load_model`` with the safe loader → ``load_table`` of a CSV → ``align`` → ``make_explainer``) on
a table with unseen levels and missing values, and is checked against the library itself, run here on the raw
frame: the card names the right columns and levels, base + contributions equals the library's own output, and
equals shap.TreeExplainer's values where shap reads the model.
"""

from __future__ import annotations

import io
import pickle
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
import shap

import core
from core.config import Settings
from core.isolation.workers import WorkerPool

CITIES, PLANS = ["Lyon", "Paris", "Nice", "Lille"], ["basic", "pro", "max"]


def table(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Text categoricals between numeric columns, an integer-coded one (grade), missing tenure."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, n).astype(float),
            "city": rng.choice(CITIES, n),
            "income": rng.lognormal(10, 0.5, n).round(0),
            "grade": rng.integers(1, 6, n),
            "plan": rng.choice(PLANS, n),
            "tenure": rng.exponential(5, n).round(2),
        }
    )
    frame.loc[rng.choice(n, n // 10, replace=False), "tenure"] = np.nan
    score = (
        0.04 * (frame["age"] - 50)
        + 1.2 * (frame["city"] == "Paris")
        - 0.9 * (frame["city"] == "Nice")
        - 0.8 * (frame["plan"] == "max")
        + 1.0 * (frame["grade"] == 3)
        - 0.1 * frame["tenure"].fillna(3)
    )
    y_bin = (score + rng.normal(0, 0.5, n) > 0).astype(int).to_numpy()
    return frame, y_bin, (score * 10 + rng.normal(0, 1, n)).to_numpy()


def explained_table() -> pd.DataFrame:
    """The user's file: unseen levels (text and integer) and missing values in categorical columns."""
    frame, _, _ = table(60, seed=1)
    frame.loc[0:3, "city"] = "Marseille"
    frame.loc[4:6, "city"] = np.nan
    frame.loc[7, "plan"] = "gold"
    frame.loc[8, "grade"] = 9
    frame.loc[9, "plan"] = np.nan
    return frame


def as_category(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    return frame.astype(dict.fromkeys(columns, "category"))


@dataclass
class Case:
    """A fitted model, the levels its card must show, and the library's own output on the raw frame."""

    model: Any
    categorical: dict[str, list[Any]]  # column -> levels ([] when the library keeps none)
    own: Callable[[pd.DataFrame], np.ndarray]  # raw explained frame -> the library's output in explained units
    shap_values: Callable[[pd.DataFrame], np.ndarray] | None = None  # raw frame -> shap's values (positive class)
    output: str = "auto"


def _fit(model: Any, X: Any, y: Any, **kwargs: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(X, y, **kwargs)


def _shap_tree(model: Any, prepare: Callable[[pd.DataFrame], Any]) -> Callable[[pd.DataFrame], np.ndarray]:
    def run(raw: pd.DataFrame) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            values = shap.TreeExplainer(model).shap_values(prepare(raw))
        values = np.asarray(values)
        return values[..., 1] if values.ndim == 3 else values

    return run


def _lightgbm_cases(F: pd.DataFrame, y: np.ndarray, yr: np.ndarray) -> dict[str, Case]:
    import lightgbm as lgb

    typed = as_category(F, ["city", "plan"])
    clf = _fit(lgb.LGBMClassifier(n_estimators=25, min_child_samples=5, verbose=-1), typed, y)
    mixed = _fit(
        lgb.LGBMRegressor(n_estimators=25, min_child_samples=5, verbose=-1),
        typed,
        yr,
        categorical_feature=["city", "grade", "plan"],
    )

    def raw(frame: pd.DataFrame) -> pd.DataFrame:
        return as_category(frame, ["city", "plan"])

    return {
        "lightgbm_pandas_categories": Case(
            clf,
            {"city": sorted(CITIES), "plan": sorted(PLANS)},
            lambda f: clf.predict(raw(f), raw_score=True),
            _shap_tree(clf, raw),
        ),
        "lightgbm_integer_coded_and_pandas": Case(
            mixed,
            {"city": sorted(CITIES), "grade": [1, 2, 3, 4, 5], "plan": sorted(PLANS)},
            lambda f: mixed.predict(raw(f)),
            _shap_tree(mixed, raw),
        ),
    }


def _xgboost_case(F: pd.DataFrame, y: np.ndarray) -> Case:
    import xgboost as xgb

    columns = ["city", "grade", "plan"]
    model = _fit(xgb.XGBClassifier(n_estimators=25, max_depth=3, enable_categorical=True), as_category(F, columns), y)
    levels = {"city": sorted(CITIES), "grade": [1, 2, 3, 4, 5], "plan": sorted(PLANS)}

    def raw(frame: pd.DataFrame) -> pd.DataFrame:  # XGBoost 3 refuses unseen levels: the user marks them missing
        return frame.assign(**{c: pd.Categorical(frame[c], categories=levels[c]) for c in columns})

    return Case(model, levels, lambda f: model.predict(raw(f), output_margin=True), _shap_tree(model, raw))


def _catboost_case(F: pd.DataFrame, y: np.ndarray) -> Case:
    import catboost

    columns = ["city", "grade", "plan"]
    model = _fit(catboost.CatBoostClassifier(iterations=25, depth=4, verbose=0, cat_features=columns), F, y)

    def raw(frame: pd.DataFrame) -> pd.DataFrame:  # CatBoost cannot read missing categories: the usual fill
        return frame.fillna(dict.fromkeys(columns, "nan"))

    return Case(
        model,
        dict.fromkeys(columns, []),
        lambda f: model.predict(raw(f), prediction_type="RawFormulaVal"),
        _shap_tree(model, raw),
    )


def _hgb_cases(F: pd.DataFrame, y: np.ndarray, yr: np.ndarray) -> dict[str, Case]:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    by_dtype = HistGradientBoostingClassifier(max_iter=20, categorical_features="from_dtype")
    by_dtype = _fit(by_dtype, as_category(F, ["city", "plan"]), y)
    by_name = _fit(HistGradientBoostingRegressor(max_iter=20, categorical_features=["city", "grade", "plan"]), F, yr)
    return {
        "hgb_from_dtype": Case(
            by_dtype,
            {"city": sorted(CITIES), "plan": sorted(PLANS)},
            lambda f: by_dtype.decision_function(as_category(f, ["city", "plan"])),
        ),
        "hgb_named_text_and_integer": Case(
            by_name,
            {"city": sorted(CITIES), "grade": [1, 2, 3, 4, 5], "plan": sorted(PLANS)},
            by_name.predict,
        ),
    }


def _pipeline_cases(F: pd.DataFrame, y: np.ndarray, yr: np.ndarray) -> dict[str, Case]:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler, TargetEncoder

    numeric = ["age", "income", "tenure"]
    onehot = make_pipeline(
        ColumnTransformer(
            [
                ("num", SimpleImputer(), numeric),
                (
                    "cat",
                    make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")),
                    ["plan", "city"],
                ),
                ("grade", OneHotEncoder(handle_unknown="ignore"), ["grade"]),
            ]
        ),
        GradientBoostingClassifier(n_estimators=20, max_depth=3, random_state=0),
    )
    ordinal = make_pipeline(  # columns routed by position
        ColumnTransformer(
            [
                (
                    "cat",
                    OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-2),
                    [1, 4],
                )
            ],
            remainder="passthrough",
        ),
        RandomForestRegressor(n_estimators=15, max_depth=5, random_state=0),
    )
    target = make_pipeline(
        ColumnTransformer(
            [
                ("te", TargetEncoder(random_state=0), ["city", "grade"]),
                ("num", make_pipeline(SimpleImputer(), StandardScaler()), numeric),
            ]
        ),
        LogisticRegression(),
    )
    for model, labels in ((onehot, y), (ordinal, yr), (target, y)):
        _fit(model, F, labels)
    return {
        "pipeline_onehot": Case(
            onehot,
            {"city": sorted(CITIES), "grade": [1, 2, 3, 4, 5], "plan": sorted(PLANS)},
            onehot.decision_function,
        ),
        "pipeline_ordinal_by_position": Case(ordinal, {"city": sorted(CITIES), "plan": sorted(PLANS)}, ordinal.predict),
        "pipeline_target_encoder": Case(
            target, {"city": sorted(CITIES), "grade": [1, 2, 3, 4, 5]}, target.decision_function, output="log-odds"
        ),
    }


@pytest.fixture(scope="module")
def zoo() -> dict[str, Case]:
    F, y, yr = table(300, seed=0)
    cases = _lightgbm_cases(F, y, yr) | _hgb_cases(F, y, yr) | _pipeline_cases(F, y, yr)
    return cases | {
        "xgboost_enable_categorical": _xgboost_case(F, y),
        "catboost_text_and_integer": _catboost_case(F, y),
    }


@pytest.fixture(scope="module")
def module_pool():
    pool = WorkerPool(Settings.from_env())
    yield pool
    pool.close()


# name -> (the method shown, and the note that says why when it is not ModelLens's own exact tree path)
METHODS = {
    "lightgbm_pandas_categories": ("ModelLens kernel on LightGBM's trees", None),
    "lightgbm_integer_coded_and_pandas": ("ModelLens kernel on LightGBM's trees", None),
    "xgboost_enable_categorical": ("ModelLens kernel on XGBoost's trees", None),
    "catboost_text_and_integer": ("TreeSHAP (CatBoost native)", None),
    "hgb_from_dtype": ("ModelLens kernel on HistGradientBoosting's categorical trees", None),
    "hgb_named_text_and_integer": ("ModelLens kernel on HistGradientBoosting's categorical trees", None),
    "pipeline_onehot": ("ModelLens kernel) on 15 engineered columns", None),
    "pipeline_ordinal_by_position": ("ModelLens kernel) on 6 engineered columns", None),
    "pipeline_target_encoder": ("Linear SHAP", None),
}
NAMES = list(METHODS)


def _upload(model: Any, name: str) -> bytes:
    if "pipeline" in name:  # pipelines travel as joblib files, boosters as pickles
        buffer = io.BytesIO()
        joblib.dump(model, buffer)
        return buffer.getvalue()
    return pickle.dumps(model)


@pytest.mark.parametrize("name", NAMES)
def test_categorical_zoo_card_alignment_and_exact_contributions(zoo, module_pool, name):
    case = zoo[name]
    raw = explained_table()
    suffix = ".joblib" if "pipeline" in name else ".pkl"
    loaded = core.load_model(_upload(case.model, name), name + suffix, pool=module_pool)
    data = core.load_table(raw.to_csv(index=False).encode(), "customers.csv")
    aligned = core.align(loaded, data)

    categorical = {c for c, kind in loaded.input_kinds.items() if kind != "numeric"}
    assert categorical == set(case.categorical)
    for column, levels in case.categorical.items():
        assert sorted(loaded.categories.get(column, []), key=str) == sorted(levels, key=str), column
    unseen = " ".join(n for n in aligned.notices if "not seen in training" in n)
    for column in case.categorical:  # every column with recorded levels names its unseen level
        if case.categorical[column] and column in ("city", "plan", "grade"):
            assert repr(column) in unseen

    expl = core.make_explainer(loaded, aligned, output=case.output).explain()
    method, note = METHODS[name]
    assert method in expl.method
    assert note is None or any(note in n for n in expl.notes), expl.notes
    total = expl.base_values + expl.values.sum(axis=1)
    own = np.asarray(case.own(raw), dtype=np.float64).reshape(len(raw), -1)[:, -1]
    np.testing.assert_allclose(expl.prediction, own, rtol=1e-6, atol=1e-6 * np.abs(own).max())
    np.testing.assert_allclose(total, own, rtol=1e-6, atol=1e-6 * np.abs(own).max())
    if case.shap_values is not None:
        np.testing.assert_allclose(expl.values, case.shap_values(raw), atol=1e-6 * np.abs(own).max())


def test_pipeline_engineered_values_equal_shap_on_the_encoded_columns(zoo, module_pool):
    pipeline, raw = zoo["pipeline_onehot"].model, explained_table()
    loaded = core.load_model(_upload(pipeline, "pipeline"), "onehot.joblib", pool=module_pool)
    aligned = core.align(loaded, core.load_table(raw.to_csv(index=False).encode(), "customers.csv"))
    expl = core.make_explainer(loaded, aligned).explain(view="engineered")
    reference = _shap_tree(pipeline[-1], pipeline[0].transform)(raw)
    np.testing.assert_allclose(expl.values, reference, atol=1e-9)


def test_integer_coded_pandas_categories_in_the_middle_explain_the_right_input(module_pool):
    """Integer levels on the wrong column would not fail: every value would read as unseen, silently."""
    import lightgbm as lgb

    rng = np.random.default_rng(3)
    n = 300
    frame = pd.DataFrame(
        {
            "visits": rng.integers(0, 4, n),
            "region": rng.choice([10, 20, 30], n),
            "spend": rng.normal(size=n),
            "channel": rng.choice([7, 8], n),
        }
    )
    y = (frame["region"] == 20) * 2.0 + frame["spend"] + (frame["channel"] == 8) + rng.normal(0, 0.1, n)
    typed = as_category(frame, ["region", "channel"])
    model = _fit(lgb.LGBMRegressor(n_estimators=20, min_child_samples=5, verbose=-1), typed, y)
    loaded = core.load_model(pickle.dumps(model), "regions.pkl", pool=module_pool)
    assert loaded.input_kinds == {"visits": "numeric", "region": "category", "spend": "numeric", "channel": "category"}
    assert loaded.categories == {"region": [10, 20, 30], "channel": [7, 8]}

    aligned = core.align(loaded, core.load_table(frame.to_csv(index=False).encode(), "regions.csv"))
    assert not aligned.notices
    expl = core.make_explainer(loaded, aligned).explain()
    own = model.predict(typed)
    np.testing.assert_allclose(expl.base_values + expl.values.sum(axis=1), own, rtol=1e-6)
    assert np.abs(expl.values[:, 1]).mean() > np.abs(expl.values[:, 0]).mean()  # region matters, visits do not


def test_large_categorical_xgboost_adds_up_with_xgboost_routing():
    """XGBoost's own float32 contributions miss its margin on large ensembles; its categorical trees are read."""
    import xgboost as xgb

    from core.engine.engine import Engine

    F, _, yr = table(2500, seed=4)
    F.loc[F.index[::9], "city"] = np.nan
    typed = as_category(F, ["city", "grade", "plan"])
    model = _fit(xgb.XGBRegressor(n_estimators=200, max_depth=6, enable_categorical=True, n_jobs=1), typed, yr * 50)
    engine = Engine(model, typed.iloc[:100])
    assert "ModelLens kernel on XGBoost's trees" in engine.method_name
    X = typed.iloc[2000:]
    result = engine.explain(X, np.arange(len(X)))  # raises unless base + values == prediction to 1e-6
    native = model.get_booster().predict(xgb.DMatrix(X, enable_categorical=True), pred_contribs=True)
    scale = np.abs(native).max()
    np.testing.assert_allclose(result.values[:, :, 0], native[:, :-1], atol=2e-6 * scale)
    margin = model.predict(X, output_margin=True)
    np.testing.assert_allclose(result.prediction[:, 0], margin, atol=2e-6 * np.abs(margin).max())


def test_xgboost_categories_beyond_the_kernels_bitset_use_xgboost_and_say_why():
    import xgboost as xgb

    from core.engine.engine import Engine

    F, y, _ = table(400, seed=5)
    F["shop"] = pd.Categorical([f"s{i % 30}" for i in range(len(F))])
    typed = as_category(F, ["city", "plan"])
    model = _fit(xgb.XGBClassifier(n_estimators=10, max_depth=3, enable_categorical=True), typed, y)
    engine = Engine(model, typed.iloc[:50])
    assert engine.method_name == "TreeSHAP (XGBoost native)"
    assert any("more than 24 levels" in note for note in engine.notes)
    result = engine.explain(typed.iloc[50:80], np.arange(30))
    np.testing.assert_allclose(result.prediction[:, 0], model.predict(typed.iloc[50:80], output_margin=True), rtol=1e-6)


def _hgb_goes_left(est: Any, predictor: Any, node: Any, encoded_row: np.ndarray) -> bool:
    """scikit-learn's routing of one raw row at one node (``_predictor.pyx``), on its own internal encoding."""
    value = encoded_row[node["feature_idx"]]
    if np.isnan(value):
        return bool(node["missing_go_to_left"])
    if node["is_categorical"]:
        code = int(value)
        word = int(predictor.raw_left_cat_bitsets[node["bitset_idx"], code // 32])
        return bool((word >> (code % 32)) & 1)
    return bool(value <= node["num_threshold"])


def _path_dependent_expectation(est: Any, predictor: Any, encoded_row: np.ndarray, known: set[int]) -> float:
    """E[tree | features in ``known`` fixed] as path-dependent TreeSHAP defines it (covers weight unknown splits)."""
    nodes = predictor.nodes

    def walk(i: int) -> float:
        node = nodes[i]
        if node["is_leaf"]:
            return float(node["value"])
        left, right = int(node["left"]), int(node["right"])
        if int(node["feature_idx"]) in known:
            return walk(left if _hgb_goes_left(est, predictor, node, encoded_row) else right)
        return (nodes[left]["count"] * walk(left) + nodes[right]["count"] * walk(right)) / node["count"]

    return walk(0)


def test_categorical_hgb_values_equal_brute_force_shapley_of_the_path_dependent_game():
    """No shap reference reads these splits: enumerate every coalition of the game path-dependent TreeSHAP defines."""
    from itertools import combinations
    from math import factorial

    from sklearn.ensemble import HistGradientBoostingRegressor

    from core.engine.engine import Engine

    F, _, yr = table(300, seed=6)
    model = _fit(HistGradientBoostingRegressor(max_iter=3, max_depth=4, categorical_features=["city", "plan"]), F, yr)
    raw = explained_table().iloc[[0, 4, 7, 9, 12, 20]]  # unseen city, missing city, unseen plan, missing plan, ...
    engine = Engine(model, F.iloc[:50])
    assert "HistGradientBoosting's categorical trees" in engine.method_name
    ours = engine.explain(raw, np.arange(len(raw))).values[:, :, 0]

    encoded = np.asarray(model._preprocessor.transform(raw), dtype=np.float64)
    flags = np.asarray(model.is_categorical_)
    raw_of = np.concatenate([np.flatnonzero(flags), np.flatnonzero(~flags)])  # internal column -> raw column
    n = len(raw_of)
    weight = [factorial(k) * factorial(n - k - 1) / factorial(n) for k in range(n)]
    for r in range(len(raw)):
        expected = np.zeros(n)
        for predictor in (p for iteration in model._predictors for p in iteration):
            for j in range(n):
                others = [i for i in range(n) if i != j]
                for k in range(n):
                    for subset in combinations(others, k):
                        gain = _path_dependent_expectation(model, predictor, encoded[r], {*subset, j})
                        gain -= _path_dependent_expectation(model, predictor, encoded[r], set(subset))
                        expected[raw_of[j]] += weight[k] * gain
        np.testing.assert_allclose(ours[r], expected, atol=1e-10)


def test_text_levels_that_a_csv_reads_as_numbers_still_find_their_level(module_pool):
    """Levels '1'..'3' come back from a CSV as the numbers 1..3: they are the same categories, not unseen ones."""
    import lightgbm as lgb

    rng = np.random.default_rng(7)
    n = 300
    frame = pd.DataFrame({"x": rng.normal(size=n), "tier": rng.choice(["1", "2", "3"], n), "z": rng.normal(size=n)})
    y = (frame["tier"] == "2") * 2.0 + frame["x"] + rng.normal(0, 0.1, n)
    typed = as_category(frame, ["tier"])
    model = _fit(lgb.LGBMRegressor(n_estimators=15, min_child_samples=5, verbose=-1), typed, y)
    loaded = core.load_model(pickle.dumps(model), "tiers.pkl", pool=module_pool)
    assert loaded.categories == {"tier": ["1", "2", "3"]}

    data = core.load_table(frame.to_csv(index=False).encode(), "tiers.csv")
    assert pd.api.types.is_numeric_dtype(data["tier"])
    aligned = core.align(loaded, data)
    assert not aligned.notices
    expl = core.make_explainer(loaded, aligned).explain()
    np.testing.assert_allclose(expl.base_values + expl.values.sum(axis=1), model.predict(typed), rtol=1e-6)


def test_lightgbm_categorical_splits_route_as_lightgbm_on_odd_values():
    """Negative, fractional, never-seen and missing category values: the kernel's values are LightGBM's own."""
    import lightgbm as lgb

    from core.engine.engine import Engine

    F, _, yr = table(1500, seed=8)
    F.loc[F.index[::11], "city"] = np.nan
    typed = as_category(F, ["city", "plan"])
    kwargs = {"min_child_samples": 5, "min_data_per_group": 5, "cat_smooth": 1, "verbose": -1, "n_jobs": 1}
    model = _fit(lgb.LGBMRegressor(n_estimators=60, **kwargs), typed, yr, categorical_feature=["city", "grade", "plan"])
    raw = explained_table()
    raw["grade"] = raw["grade"].astype(float)
    raw.loc[10:13, "grade"] = [-1.0, 2.7, np.nan, 40.0]
    X = as_category(raw, ["city", "plan"])
    engine = Engine(model, typed.iloc[:100])
    assert "ModelLens kernel on LightGBM's trees" in engine.method_name
    ours = engine.explain(X, np.arange(len(X)))
    native = np.asarray(model.predict(X, pred_contrib=True))
    np.testing.assert_allclose(ours.values[:, :, 0], native[:, :-1], atol=1e-9)
    np.testing.assert_allclose(ours.prediction[:, 0], model.predict(X), rtol=1e-12)
