"""Counterfactual search (core/whatif/counterfactual.py): every candidate checked against the real model in process."""

from __future__ import annotations

import dataclasses
import pickle

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from core.data.alignment import align
from core.engine.explain import make_explainer
from core.errors import DataError
from core.loading.models import LoadedModel, load_model
from core.whatif import counterfactual
from core.whatif.counterfactual import REFINE_VALUES, Goal, counterfactuals, goal_reached, parse_goal
from core.whatif.scenario import allowed_values
from tests.core import zoo


def _setup(name, pool, output="probability"):
    model, frame = zoo.builders()[name]()
    loaded = load_model(pickle.dumps(model), f"{name}.pkl", pool=pool)
    return model, loaded, make_explainer(loaded, align(loaded, frame), output=output)


def _edited(explainer, row, candidate):
    edited = explainer.data.iloc[[row]].copy()
    for column, (_, new) in candidate.changes.items():
        edited[column] = new
    return edited


def _check_common(explainer, loaded, row, candidates, *, freeze=(), bounds=None):
    """Frozen columns kept, bounds kept, observed values only, sorted, exact explanations."""
    data = explainer.data
    assert candidates, "the search found nothing, so nothing was checked"
    keys = [(len(c.changes), c.distance) for c in candidates]
    assert keys == sorted(keys)
    column_sets = [set(c.changes) for c in candidates]
    for i, a in enumerate(column_sets):  # no candidate changes a superset of another's columns
        assert not any(a > b for j, b in enumerate(column_sets) if j != i)
    for candidate in candidates:
        assert 1 <= len(candidate.changes) <= 3
        assert not set(candidate.changes) & set(freeze)
        for column, (old, new) in candidate.changes.items():
            assert old == data[column].iloc[row] or (old != old and data[column].isna().iloc[row])
            assert (data[column] == new).any(), f"{column}={new!r} does not occur in the table"
            levels = allowed_values(loaded, data, column)
            assert levels is None or new in levels
            lo, hi = (bounds or {}).get(column, (None, None))
            assert (lo is None or new >= lo) and (hi is None or new <= hi)
        edited = candidate.what_if.edited
        np.testing.assert_allclose(edited.base_values + edited.values.sum(axis=1), edited.prediction, atol=1e-9)
        assert candidate.prediction == pytest.approx(float(edited.prediction[0]))
        doc = candidate.to_json()
        assert doc["base"] + sum(doc["contributions"].values()) == pytest.approx(doc["prediction"], abs=1e-9)
        assert set(doc["changes"]) == set(candidate.changes)


def test_pipeline_with_a_category_in_the_middle_reaches_the_class_with_age_frozen_and_income_bounded(pool):
    model, loaded, explainer = _setup("pipe_rf", pool)
    data = explainer.data
    predicted = model.predict(data)
    row = int(np.flatnonzero((predicted == 0) & (data["city"] != "Paris").to_numpy())[0])
    freeze, bounds = ["age"], {"income": (float(data["income"].quantile(0.2)), float(data["income"].quantile(0.8)))}
    goal = parse_goal("1", loaded.classes, loaded.task)
    found = counterfactuals(loaded, explainer, row, goal, freeze=freeze, bounds=bounds, k=3)

    _check_common(explainer, loaded, row, found, freeze=freeze, bounds=bounds)
    for candidate in found:  # the real model, in this process, predicts the asked class for every candidate
        assert model.predict(_edited(explainer, row, candidate))[0] == 1
        np.testing.assert_allclose(
            candidate.prediction, model.predict_proba(_edited(explainer, row, candidate))[0, 1], atol=1e-9
        )
        assert candidate.what_if.edited.class_label == 1
    again = counterfactuals(loaded, explainer, row, goal, freeze=freeze, bounds=bounds, k=3)
    assert [c.changes for c in again] == [c.changes for c in found]  # deterministic


def test_a_regressor_reaches_a_threshold_with_the_smallest_move_it_tried(pool):
    model, loaded, explainer = _setup("pipe_gb_reg", pool, output="raw")
    predictions = model.predict(explainer.data)
    row = int(np.argsort(predictions)[len(predictions) // 5])
    threshold = float(np.quantile(predictions, 0.6))
    goal = parse_goal(f">{threshold}", None, loaded.task)
    assert goal == Goal(op=">", threshold=threshold)
    found = counterfactuals(loaded, explainer, row, goal, k=3)

    _check_common(explainer, loaded, row, found)
    for candidate in found:
        edited = _edited(explainer, row, candidate)
        assert model.predict(edited)[0] > threshold
        assert candidate.prediction == pytest.approx(model.predict(edited)[0], abs=1e-9)
        if len(candidate.changes) == 1 and allowed_values(loaded, explainer.data, *candidate.changes) is None:
            ((column, (old, new)),) = candidate.changes.items()
            observed = explainer.data[column].dropna().unique()
            between = observed[(np.minimum(old, new) < observed) & (observed < np.maximum(old, new))]
            if 0 < len(between) <= REFINE_VALUES:  # every observed value nearer the original was tried and fails
                rows = explainer.data.iloc[[row] * len(between)].assign(**{column: between})
                assert (model.predict(rows) <= threshold).all()


def test_a_multiclass_model_reaches_the_asked_class(pool):
    model, loaded, explainer = _setup("rf_multi", pool)
    predicted = model.predict(explainer.data)
    row = 0
    target = next(c for c in loaded.classes if c != predicted[row])
    goal = parse_goal(str(target), loaded.classes, loaded.task)
    found = counterfactuals(loaded, explainer, row, goal, k=3)

    _check_common(explainer, loaded, row, found)
    for candidate in found:
        proba = model.predict_proba(_edited(explainer, row, candidate))[0]
        assert model.classes_[int(np.argmax(proba))] == target
        assert candidate.what_if.edited.class_label == target
        assert candidate.prediction == pytest.approx(proba[list(model.classes_).index(target)], abs=1e-9)


def test_lightgbm_on_a_pandas_category_and_an_integer_column_in_log_odds(pool):
    frame, y, _ = zoo.tabular()
    frame = frame.assign(age=frame["age"].astype("int64"), city=frame["city"].astype("category"))
    frame = frame[["age", "city", "income", "tenure"]]
    model = lgb.LGBMClassifier(n_estimators=30, verbose=-1, n_jobs=1).fit(frame, y)
    loaded = load_model(pickle.dumps(model), "lgbm.pkl", pool=pool)
    explainer = make_explainer(loaded, align(loaded, frame), output="log-odds")
    row = int(np.flatnonzero(model.predict(frame) == 0)[0])
    found = counterfactuals(loaded, explainer, row, parse_goal("1", loaded.classes, loaded.task), k=3)

    _check_common(explainer, loaded, row, found)
    for candidate in found:
        edited = _edited(explainer, row, candidate)
        edited["city"] = pd.Categorical(edited["city"], categories=frame["city"].cat.categories)
        edited["age"] = edited["age"].astype("int64")
        assert model.predict(edited)[0] == 1
        assert candidate.prediction == pytest.approx(model.predict(edited, raw_score=True)[0], abs=1e-6)
        assert candidate.what_if.edited.output == "log-odds"


def test_a_goal_already_met_or_out_of_reach_gives_no_candidate(pool):
    model, loaded, explainer = _setup("pipe_rf", pool)
    row = 0
    own = model.predict(explainer.data.iloc[[row]])[0]
    goal = parse_goal(str(own), loaded.classes, loaded.task)
    assert goal_reached(loaded, explainer, row, goal)
    assert counterfactuals(loaded, explainer, row, goal) == []
    impossible = parse_goal(">1.5", loaded.classes, loaded.task)  # a probability never exceeds 1
    assert not goal_reached(loaded, explainer, row, impossible)
    assert counterfactuals(loaded, explainer, row, impossible, k=2) == []


@dataclasses.dataclass(frozen=True)
class CountingModel(LoadedModel):
    """The real loaded model, counting the rows its worker is asked to predict."""

    calls: list[int] = dataclasses.field(default_factory=list)

    def predict(self, frame, output=None):
        self.calls.append(len(frame))
        return super().predict(frame, output)


def test_the_search_never_predicts_more_rows_than_its_budget(pool, monkeypatch):
    model, loaded, explainer = _setup("pipe_rf", pool)
    counting = CountingModel(**{f.name: getattr(loaded, f.name) for f in dataclasses.fields(LoadedModel)})
    row = int(np.flatnonzero(model.predict(explainer.data) == 0)[0])
    counterfactuals(counting, explainer, row, Goal(label=1), k=5)
    assert sum(counting.calls) > 300  # the whole search needs more than the budget set below
    counting.calls.clear()
    monkeypatch.setattr(counterfactual, "MAX_ROWS", 300)
    bounded = counterfactuals(counting, explainer, row, Goal(label=1), k=5)
    assert sum(counting.calls) <= 300 and max(counting.calls) <= counterfactual.BATCH_ROWS
    assert bounded and all(model.predict(_edited(explainer, row, c))[0] == 1 for c in bounded)


def test_goals_and_constraints_that_cannot_work_say_what_to_do(pool):
    assert parse_goal(">=0.5", (0, 1), "binary") == Goal(op=">=", threshold=0.5)
    assert parse_goal("<120", None, "regression") == Goal(op="<", threshold=120.0)
    assert parse_goal("Yes", ("No", "Yes"), "binary") == Goal(label="Yes")
    with pytest.raises(DataError, match="regressor's goal is a threshold"):
        parse_goal("1", None, "regression")
    with pytest.raises(DataError, match="none of the model's classes"):
        parse_goal("Maybe", ("No", "Yes"), "binary")
    _, loaded, explainer = _setup("pipe_rf", pool)
    goal = Goal(label=1)
    with pytest.raises(DataError, match="'salary' is not one of the model's input columns"):
        counterfactuals(loaded, explainer, 0, goal, freeze=["salary"])
    with pytest.raises(DataError, match="'city' is not a number"):
        counterfactuals(loaded, explainer, 0, goal, bounds={"city": (0, 1)})
    with pytest.raises(DataError, match="bound of 'age' is empty"):
        counterfactuals(loaded, explainer, 0, goal, bounds={"age": (60, 20)})
    with pytest.raises(DataError, match="Row 999 is not in the table"):
        counterfactuals(loaded, explainer, 999, goal)
    with pytest.raises(DataError, match="Row -1 is not in the table"):
        goal_reached(loaded, explainer, -1, goal)


def test_bounds_parse_from_text_and_a_bad_one_says_the_form():
    from core.whatif.counterfactual import parse_bounds

    assert parse_bounds("income=20000:60000, age=:65,") == {"income": (20000.0, 60000.0), "age": (None, 65.0)}
    assert parse_bounds("") == {}
    with pytest.raises(DataError, match="COL=LOW:HIGH"):
        parse_bounds("age=old")
