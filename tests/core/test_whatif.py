"""What-if on raw columns (core/whatif/scenario.py): exact on both rows, typed from the model card, in one call."""

from __future__ import annotations

import pickle

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from core.data.alignment import align
from core.engine.explain import make_explainer
from core.errors import DataError
from core.loading.models import load_model
from core.whatif.scenario import allowed_values, what_if
from tests.core import zoo


def _setup(name, pool, output="probability"):
    model, frame = zoo.builders()[name]()
    loaded = load_model(pickle.dumps(model), f"{name}.pkl", pool=pool)
    aligned = align(loaded, frame)
    return model, loaded, make_explainer(loaded, aligned, output=output)


def test_an_edited_pipeline_row_is_explained_exactly_and_predicts_what_the_model_predicts(pool):
    model, loaded, explainer = _setup("pipe_rf", pool)
    row = 3
    original = explainer.data.iloc[row]
    new_city = next(c for c in ("Paris", "Lyon") if c != original["city"])
    result = what_if(explainer, loaded, row, {"city": new_city, "age": "71", "plan": original["plan"]}, class_label=1)

    assert set(result.changed) == {"city", "age"}  # an unchanged value is not a change
    assert result.changed["age"] == (original["age"], 71.0)
    for side in (result.original, result.edited):  # exact: base + contributions = prediction, on both rows
        np.testing.assert_allclose(side.base_values + side.values.sum(axis=1), side.prediction, atol=1e-9)
    edited_frame = explainer.data.iloc[[row]].assign(city=new_city, age=71.0)
    np.testing.assert_allclose(result.edited.prediction, model.predict_proba(edited_frame)[:, 1], atol=1e-9)
    np.testing.assert_allclose(result.original.prediction, model.predict_proba(explainer.data.iloc[[row]])[:, 1])
    shift = result.shift
    assert shift["city"] != 0 and shift["age"] != 0
    doc = result.to_json()
    assert (
        doc["class"] == 1 and doc["output"] == "probability" and doc["changed"]["city"] == [original["city"], new_city]
    )
    assert set(doc["edited"]["contributions"]) == set(explainer.feature_names)


def test_values_are_typed_by_the_model_card_and_a_wrong_one_says_what_is_allowed(pool):
    _, loaded, explainer = _setup("pipe_rf", pool)
    assert sorted(allowed_values(loaded, explainer.data, "city")) == ["Lyon", "Nice", "Paris"]
    assert allowed_values(loaded, explainer.data, "age") is None
    with pytest.raises(DataError, match="not a level of 'city'.*Lyon"):
        what_if(explainer, loaded, 0, {"city": "Berlin"})
    with pytest.raises(DataError, match="'age' is a number"):
        what_if(explainer, loaded, 0, {"age": "old"})
    with pytest.raises(DataError, match="not one of the model's input columns"):
        what_if(explainer, loaded, 0, {"salary": "3"})
    with pytest.raises(DataError, match="no missing values"):
        what_if(explainer, loaded, 0, {"age": ""})
    missing = what_if(explainer, loaded, 0, {"tenure": "NA"})  # tenure has missing values in the table
    assert np.isnan(missing.edited.data["tenure"].iloc[0])
    np.testing.assert_allclose(
        missing.edited.base_values + missing.edited.values.sum(axis=1), missing.edited.prediction, atol=1e-9
    )


def test_a_pandas_category_level_of_a_lightgbm_model_in_log_odds(pool):
    frame, y, _ = zoo.tabular()
    frame = frame.assign(city=frame["city"].astype("category"))[["age", "city", "income", "tenure"]]
    model = lgb.LGBMClassifier(n_estimators=30, verbose=-1, n_jobs=1).fit(frame, y)
    loaded = load_model(pickle.dumps(model), "lgbm.pkl", pool=pool)
    explainer = make_explainer(loaded, align(loaded, frame), output="log-odds")
    row = int(np.flatnonzero(frame["city"] == "Nice")[0])
    result = what_if(explainer, loaded, row, {"city": "Paris"})
    edited = frame.iloc[[row]].copy()
    edited["city"] = pd.Categorical(["Paris"], categories=frame["city"].cat.categories)
    np.testing.assert_allclose(result.edited.prediction, model.predict(edited, raw_score=True), atol=1e-6)
    np.testing.assert_allclose(
        result.edited.base_values + result.edited.values.sum(axis=1), result.edited.prediction, atol=1e-9
    )
    assert result.edited.output == "log-odds" and set(result.changed) == {"city"}


def test_sensitivity_sweeps_observed_values_with_the_models_own_predictions(pool):
    model, loaded, explainer = _setup("pipe_rf", pool)
    from core.whatif.sensitivity import sensitivity

    sweep = sensitivity(explainer, loaded, 4, "age", changes={"city": "Paris"}, class_label=1, points=9)
    observed = explainer.data["age"]
    assert sweep.grid == sorted(sweep.grid) and min(sweep.grid) == observed.min() and max(sweep.grid) == observed.max()
    copies = explainer.data.iloc[[4] * len(sweep.grid)].assign(city="Paris", age=sweep.grid)
    np.testing.assert_allclose(sweep.prediction, model.predict_proba(copies)[:, 1], atol=1e-9)
    expl = sweep.explanation
    np.testing.assert_allclose(expl.base_values + expl.values.sum(axis=1), sweep.prediction, atol=1e-9)
    assert sweep.contribution.std() > 0  # age moves its own contribution
    levels = sensitivity(explainer, loaded, 4, "city", class_label=1)
    assert sorted(levels.grid) == ["Lyon", "Nice", "Paris"] and levels.categorical


def test_ice_curves_are_the_models_own_predictions_for_the_chosen_class(pool):
    from core.whatif.sensitivity import ice_bundle

    model, frame = zoo.builders()["rf_multi"]()
    loaded = load_model(pickle.dumps(model), "rf_multi.pkl", pool=pool)
    explainer = make_explainer(loaded, align(loaded, frame), output="probability")
    feature = str(frame.columns[1])
    bundle = ice_bundle(explainer, loaded, feature, class_label=model.classes_[2], rows=15, points=7)
    assert bundle.curves.shape == (15, len(bundle.grid)) and len(set(bundle.rows)) == 15
    for i, row in enumerate(bundle.rows):
        copies = frame.iloc[[row] * len(bundle.grid)].copy()
        copies[feature] = bundle.grid
        np.testing.assert_allclose(bundle.curves[i], model.predict_proba(copies)[:, 2], atol=1e-12)
    np.testing.assert_allclose(bundle.centred[:, 0], 0.0)
    np.testing.assert_allclose(bundle.average, bundle.curves.mean(axis=0))
