"""The target column is found in the uploaded table for regressors and bare-array models too (issues 19, 20)."""

from __future__ import annotations

import pickle
from types import SimpleNamespace

import numpy as np
import pandas as pd
from sklearn.datasets import load_diabetes
from sklearn.tree import DecisionTreeClassifier

from core.data.alignment import align
from core.loading.models import load_model


def _card(features, *, task="regression", classes=None):
    n = len(features) if features is not None else 3
    return SimpleNamespace(
        feature_names=features, n_features=n, input_kinds={}, categories={}, classes=classes, task=task, steps=()
    )


def test_a_regression_target_is_found_beside_the_inputs():
    data = load_diabetes(as_frame=True)
    frame = data.data.assign(progression=data.target)
    aligned = align(_card(list(data.data.columns)), frame)
    assert aligned.target_name == "progression"
    assert any("the only numeric column the model does not use" in n for n in aligned.notices)
    np.testing.assert_array_equal(aligned.target.to_numpy(), data.target.to_numpy())


def test_a_row_id_is_never_taken_for_the_target():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"Order": np.arange(1, 101), "area": rng.normal(size=100), "Sale_Price": rng.normal(size=100)})
    aligned = align(_card(["area"]), frame)
    assert aligned.target_name == "Sale_Price" and aligned.ignored == ("Order",)
    only_id = align(_card(["area"]), frame.drop(columns="Sale_Price"))
    assert only_id.target_name is None


def test_a_classifier_target_is_found_by_its_values_not_a_binary_feature():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=50), "flag": rng.integers(0, 2, 50), "survived": rng.integers(0, 2, 50)})
    aligned = align(_card(["x"], task="binary", classes=(0, 1)), frame)
    assert aligned.target_name == "survived"  # both fit the classes; the last column is where exports put it


def test_a_bare_array_model_with_its_target_in_the_table(pool):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    tree = DecisionTreeClassifier(max_depth=3).fit(X, y)
    model = load_model(pickle.dumps(tree), "tree.pkl", pool=pool)
    frame = pd.DataFrame(X, columns=["pclass", "age", "fare"]).assign(survived=y)
    aligned = align(model, frame)
    assert aligned.by_position and aligned.target_name == "survived"
    assert list(aligned.frame.columns) == ["pclass", "age", "fare"]
    assert "matched the table's columns by position ('pclass'→0, 'age'→1, 'fare'→2)" in " ".join(aligned.notices)
    np.testing.assert_array_equal(model.predict(aligned.frame, "probability"), tree.predict_proba(X))
