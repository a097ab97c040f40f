"""The class rules every view shares (core/classes.py): default class, label matching, the complement."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from core.classes import class_index, complement, default_class, output_column
from core.errors import ExplanationError


def test_default_class_is_the_positive_of_two_and_the_first_of_many():
    assert default_class(("No", "Yes")) == "Yes"
    assert default_class(("a", "b", "c")) == "a"
    assert default_class(None) is None


def test_labels_match_by_value_then_text_and_unknown_labels_name_the_classes():
    assert class_index((0, 1), "1") == 1  # a label from a link or a selectbox is text
    assert class_index((0, 1), None) == 1
    with pytest.raises(ExplanationError, match=r"\[0, 1\]"):
        class_index((0, 1), "2")


def test_complement_is_the_negative_class_of_a_real_binary_model():
    X, y = make_classification(n_samples=200, n_features=4, random_state=0)
    model = LogisticRegression().fit(X, y)
    proba, margin = model.predict_proba(X), model.decision_function(X)  # margin: the positive class's log-odds
    column, negate = output_column(class_index(model.classes_, 0), binary_single=True)
    assert (column, negate) == (0, True)
    np.testing.assert_allclose(complement(proba[:, 1], output="probability", kind="prediction"), proba[:, 0])
    log_odds_0 = np.log(proba[:, 0]) - np.log(proba[:, 1])
    np.testing.assert_allclose(complement(margin, output="log-odds", kind="prediction"), log_odds_0, atol=1e-9)
    contributions = model.coef_[0] * (X - X.mean(axis=0))  # exact for a linear margin
    flipped = complement(contributions, output="log-odds", kind="values")
    base0 = complement(np.array(model.decision_function(X.mean(axis=0, keepdims=True))), output="log-odds", kind="base")
    np.testing.assert_allclose(base0 + flipped.sum(axis=1), log_odds_0, atol=1e-9)
