"""Permutation importance in the worker: scikit-learn's measure, with shuffled copies predicted in few calls."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingRegressor, RandomForestClassifier
from sklearn.inspection import permutation_importance
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from core.loading.models import load_model


def _table(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.integers(18, 90, n),
            "plan": rng.choice(["basic", "plus", "pro"], n),  # a category in the middle, strings
            "income": rng.normal(50, 15, n).round(1),
            "noise": rng.normal(size=n),
        }
    )


def _pipeline(estimator):
    encode = ColumnTransformer([("plan", OneHotEncoder(), ["plan"])], remainder="passthrough")
    return make_pipeline(encode, estimator)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_it_agrees_with_scikit_learn_on_a_pipeline_with_a_category_in_the_middle(pool, task):
    frame = _table(1_500)
    signal = (frame["plan"] == "pro") * 2.0 + (frame["income"] - 50) / 10
    if task == "classification":
        y = (signal + np.random.default_rng(1).normal(0, 0.5, len(frame)) > 1).astype(int)
        model = _pipeline(RandomForestClassifier(n_estimators=40, random_state=0)).fit(frame, y)
    else:
        y = signal + np.random.default_rng(1).normal(0, 0.2, len(frame))
        model = _pipeline(GradientBoostingRegressor(n_estimators=60, random_state=0)).fit(frame, y)
    loaded = load_model(pickle.dumps(model), "model.pkl", pool=pool)

    reported: list[tuple] = []
    ours = loaded.permutation_importance(
        frame, pd.Series(y), rows=800, seed=3, progress=lambda *args: reported.append(args)
    )
    assert reported[0] == (0, 4, None) and reported[-1][:2] == (4, 4) and reported[-1][2] == 0
    assert [r[0] for r in reported] == sorted({r[0] for r in reported})  # columns done only grow

    sample = frame.sample(800, random_state=3)
    reference = permutation_importance(
        model, sample, np.asarray(y)[sample.index], n_repeats=5, random_state=3, scoring=ours["scoring"]
    )
    assert ours["scoring"] == ("accuracy" if task == "classification" else "r2")
    mean, std = np.asarray(ours["mean"]), np.asarray(ours["std"])
    assert mean.shape == std.shape == (4,)
    # the same quantity, other random shuffles: within the spread of the two estimates (and a small floor)
    spread = 3 * np.sqrt(std**2 + reference.importances_std**2) / np.sqrt(5) + 0.02
    assert np.all(np.abs(mean - reference.importances_mean) <= spread), (mean, reference.importances_mean)
    assert set(np.argsort(-mean)[:2]) == {1, 2}  # plan and income, the columns the target was made of
    again = loaded.permutation_importance(frame, pd.Series(y), rows=800, seed=3)
    np.testing.assert_array_equal(again["mean"], mean)  # seeded
    # however the columns are grouped into requests, each column's figure is the same
    rows = sample.reset_index(drop=True)
    target = np.asarray(y)[sample.index]
    whole = loaded.handle.call("permutation_importance", frame=rows, target=target, seed=3)
    np.testing.assert_array_equal(whole["mean"], mean)
    apart = [
        loaded.handle.call("permutation_importance", frame=rows, target=target, seed=3, columns=[j])["mean"][0]
        for j in (3, 0, 2, 1)
    ]
    np.testing.assert_array_equal(whole["mean"], [apart[1], apart[3], apart[2], apart[0]])
