"""Cohorts, error analysis and explanation diff (core/cohorts): real models trained here, numbers checked directly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.cohorts.compare import EVERYONE, bootstrap_means, cohort_mask, cohort_table, compare_cohorts
from core.engine.explain import make_explainer
from core.errors import DataError
from core.explanation import Explanation
from tests.core import zoo


@pytest.fixture(scope="module")
def explained():
    model, frame = zoo.builders()["pipe_rf"]()
    explainer = make_explainer(model, frame, output="probability")
    expl = explainer.explain(class_label=1)
    _, y, _ = zoo.tabular()
    return model, frame, expl, pd.Series(y)


def test_cohort_masks_are_exactly_pandas_own_filter(explained):
    _, frame, expl, y = explained
    table = cohort_table(frame, expl.prediction, expl.units, y)
    cases = {
        "age>60, city=Lyon": (frame["age"] > 60) & (frame["city"] == "Lyon"),
        "age<=40": frame["age"] <= 40,
        '"city"!=Paris, plan=pro': (frame["city"] != "Paris") & (frame["plan"] == "pro"),
        "actual=1, tenure>=3": (y == 1) & (frame["tenure"] >= 3),
        "age>200": frame["age"] > 200,
    }
    for query, expected in cases.items():
        np.testing.assert_array_equal(cohort_mask(table, query), expected.to_numpy(), err_msg=query)
    with pytest.raises(DataError, match="no column named 'salary'"):
        cohort_mask(table, "salary>3")


def test_mean_abs_shap_and_metrics_per_cohort_equal_a_direct_computation(explained):
    model, frame, expl, y = explained
    table = cohort_table(frame, expl.prediction, expl.units, y)
    masks = {"old": cohort_mask(table, "age>60"), "young": cohort_mask(table, "age<=60")}
    proba = model.predict_proba(frame)
    result = compare_cohorts(expl, masks, n_boot=100, seed=3, target=y, prediction=proba, classes=(0, 1), task="c")
    assert list(result.cohorts) == [EVERYONE, "old", "young"]
    for name, mask in masks.items():
        stats = result.cohorts[name]
        np.testing.assert_allclose(stats.mean_abs, np.abs(expl.values[mask]).mean(axis=0))
        np.testing.assert_allclose(stats.mean, expl.values[mask].mean(axis=0))
        assert stats.rows == mask.sum() and np.all(stats.low <= stats.mean_abs) and np.all(stats.mean_abs <= stats.high)
        assert stats.metrics["accuracy"] == pytest.approx((proba[mask].argmax(1) == y[mask]).mean())
        assert stats.prediction["mean"] == pytest.approx(expl.prediction[mask].mean())
    assert result.cohorts[EVERYONE].rows == len(frame)
    diff = result.difference("young", "old")
    shifts = result.cohorts["old"].mean_abs - result.cohorts["young"].mean_abs
    assert list(diff["shift"]) == sorted(shifts, key=abs, reverse=True)
    assert np.all((diff["low"] <= diff["shift"]) & (diff["shift"] <= diff["high"]))
    with pytest.raises(DataError, match="no cohort named 'nobody'"):
        result.difference("old", "nobody")


def test_bootstrap_is_seeded_and_matches_plain_resampling():
    rng = np.random.default_rng(1)
    matrix = rng.normal(size=(50, 3))
    reps = bootstrap_means(matrix, 7, seed=5)
    np.testing.assert_array_equal(reps, bootstrap_means(matrix, 7, seed=5))
    idx = np.random.default_rng(5).integers(0, 50, size=(7, 50))
    np.testing.assert_allclose(reps, matrix[idx].mean(axis=1))


def _explanation(values: np.ndarray, start: int = 0) -> Explanation:
    n, f = values.shape
    names = tuple(f"x{j}" for j in range(f))
    return Explanation(
        values=values,
        base_values=np.zeros(n),
        prediction=values.sum(axis=1),
        data=pd.DataFrame(values, columns=list(names)),
        feature_names=names,
        output="raw",
        class_label=None,
        method="arrays",
        row_ids=np.arange(start, start + n),
        sample=(n, n),
    )


def test_difference_intervals_cover_the_true_difference_at_about_their_nominal_rate():
    # Contributions are exponential with mean 1 in cohort a and 1.3 in cohort b: the true shift in mean |SHAP| is 0.3.
    rng = np.random.default_rng(7)
    covered, separated = 0, 0
    for rep in range(200):
        values = np.vstack([rng.exponential(1.0, (150, 1)), rng.exponential(1.3, (150, 1))])
        mask = np.arange(300) >= 150
        result = compare_cohorts(_explanation(values), {"a": ~mask, "b": mask}, n_boot=200, seed=rep)
        row = result.difference("a", "b").iloc[0]
        covered += row["low"] <= 0.3 <= row["high"]
        separated += row["separated"]
    assert 0.85 <= covered / 200 <= 0.99
    assert separated > 0  # the shift is found at least sometimes (its power is modest at 150 rows)
