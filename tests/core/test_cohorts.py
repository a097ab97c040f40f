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
    alone = compare_cohorts(expl, masks, n_boot=100, seed=3, everyone=False)
    assert list(alone.cohorts) == ["old", "young"]
    np.testing.assert_allclose(alone.cohorts["old"].mean_abs, result.cohorts["old"].mean_abs)
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


def _planted(n: int = 4000, seed: int = 0):
    """A table, a real model trained on clean labels, and a target whose labels are flipped where age>60 in Lyon."""
    from sklearn.compose import make_column_transformer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OrdinalEncoder

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 90, n).astype(float),
            "income": rng.normal(50, 15, n).round(1),
            "city": rng.choice(["Lyon", "Nice", "Paris"], n),
        }
    )
    clean = (frame["income"] + rng.normal(0, 3, n) > 50).astype(int)
    encode = make_column_transformer((OrdinalEncoder(), ["city"]), remainder="passthrough")
    model = make_pipeline(encode, GradientBoostingClassifier(n_estimators=30, max_depth=2, random_state=0))
    model.fit(frame, clean)
    region = ((frame["age"] > 60) & (frame["city"] == "Lyon")).to_numpy()
    target = pd.Series(np.where(region, 1 - clean, clean))
    return model, frame, target, region


def test_errors_planted_in_one_region_make_that_region_the_top_node():
    from core.cohorts.errortree import error_analysis

    model, frame, target, region = _planted()
    expl = make_explainer(model, frame, output="probability").explain(np.arange(0, len(frame), 4), class_label=1)
    result = error_analysis(frame, target, model.predict(frame), "classification", expl, n_boot=100)
    top = result.nodes[0]
    assert result.error_definition.startswith("misclassified")
    assert (top.mask & region).sum() / top.mask.sum() > 0.9 and (top.mask & region).sum() / region.sum() > 0.9
    assert any(r.startswith("age > 6") for r in top.rules) and "city in {Lyon}" in top.rules
    assert top.error_rate > 0.8 and top.share > 0.5 and top.rows == top.mask.sum()
    assert [n.score for n in result.nodes] == sorted((n.score for n in result.nodes), reverse=True)
    table = cohort_table(frame, model.predict_proba(frame)[:, 1], "probability", target)
    for node in result.nodes:  # every node is a cohort: its query selects exactly its rows
        assert node.query is not None
        np.testing.assert_array_equal(cohort_mask(table, node.query), node.mask, err_msg=node.label)
    gap = result.attribution_gap
    assert gap is not None and set(gap["feature"]) == {"age", "income", "city"}
    wrong = result.errors[expl.row_ids]
    direct = np.abs(expl.values[wrong]).mean(0) - np.abs(expl.values[~wrong]).mean(0)
    np.testing.assert_allclose(gap.set_index("feature").loc[list(expl.feature_names), "shift"], direct)


def test_regression_errors_are_the_largest_residuals():
    from core.cohorts.errortree import error_analysis

    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"x": rng.uniform(0, 10, 2000), "z": rng.uniform(0, 1, 2000)})
    prediction = frame["x"].to_numpy() * 2
    target = pd.Series(prediction + np.where(frame["x"] > 8, rng.normal(0, 5, 2000), rng.normal(0, 0.1, 2000)))
    result = error_analysis(frame, target, prediction, "regression")
    assert "80th percentile" in result.error_definition and result.errors.mean() == pytest.approx(0.2, abs=0.01)
    assert result.nodes[0].rules[0].startswith("x > 7.9") and result.attribution_gap is None
    with pytest.raises(DataError, match="same rows"):
        error_analysis(frame, target[:10], prediction, "regression")

    holes = frame.assign(x=frame["x"].where(frame["z"] > 0.1))  # missing x: the tree sends those rows one way
    table = cohort_table(holes, prediction, "raw", target)
    for node in error_analysis(holes, target, prediction, "regression").nodes:
        assert (node.query is None) == any(r.endswith("or missing)") for r in node.rules), node.label
        if node.query is not None:
            np.testing.assert_array_equal(cohort_mask(table, node.query), node.mask, err_msg=node.label)


def test_a_shifted_feature_comes_first_in_the_diff_and_identical_models_show_no_difference():
    from sklearn.linear_model import LinearRegression

    from core.cohorts.diff import disagreements, explanation_diff, psi

    rng = np.random.default_rng(4)
    first = pd.DataFrame({"a": rng.normal(0, 1, 3000), "b": rng.normal(0, 1, 3000), "c": rng.choice(["u", "v"], 3000)})
    second = first.sample(frac=1, random_state=1).reset_index(drop=True).assign(b=lambda f: f["b"] + 1.5)
    X = first[["a", "b"]]
    model = LinearRegression().fit(X, X["a"] + 2 * X["b"] + rng.normal(0, 0.1, 3000))
    both = make_explainer(model, pd.concat([X, second[["a", "b"]]], ignore_index=True), output="raw")
    e1 = make_explainer(model, X, output="raw").explain()  # the same rows as e1_both, for the paired cases below
    e1_both, e2 = both.explain(np.arange(3000)), both.explain(np.arange(3000, 6000))  # one background for both
    result = explanation_diff(e1_both, e2, first_frame=first, second_frame=second, n_boot=100)
    top = result.features.iloc[0]
    assert top["feature"] == "b" and top["separated"] and top["low"] <= 3.0 <= top["high"]  # 2 x 1.5
    assert result.features.set_index("feature")["drift"].idxmax() == "b" and top["drift"] > 0.25
    assert result.prediction["shift"] == pytest.approx(e2.prediction.mean() - e1_both.prediction.mean())
    assert not result.paired and psi(first["c"], second["c"]) == pytest.approx(0, abs=1e-12)

    twin = LinearRegression().fit(X, X["a"] + 2 * X["b"] + rng.normal(0, 0.1, 3000))
    twin.coef_, twin.intercept_ = model.coef_.copy(), model.intercept_
    same = explanation_diff(e1, make_explainer(twin, X, output="raw").explain(), first_frame=X, second_frame=X)
    assert same.paired and np.all(same.features[["shift", "low", "high", "abs_shift"]].to_numpy() == 0)
    assert same.features["drift"].isna().all() and same.prediction["shift"] == 0

    other = LinearRegression().fit(X, X["a"] + 2 * X["b"] + 3 * (X["a"] > 2))
    e3 = make_explainer(other, X, output="raw").explain()
    top_rows = disagreements(e1, e3, k=5)
    gap = np.abs(e3.prediction - e1.prediction)
    assert len(top_rows) == 5 and np.allclose(np.abs(top_rows["difference"]), np.sort(gap)[::-1][:5])


def test_named_cohorts_count_every_row_and_score_every_row_but_attribute_the_explained_ones(explained):
    from core.cohorts.compare import Cohort, compare_named

    model, frame, expl, y = explained
    part = expl.take(np.arange(0, len(expl), 3))  # a first sample: a third of the rows explained
    proba = model.predict_proba(frame)
    table = cohort_table(frame, proba[:, 1], expl.units, y)
    cohorts = [Cohort("old in Lyon", "age>60, city=Lyon"), Cohort("young", "age<=40")]
    result = compare_named(part, table, cohorts, target=y, scores=proba, classes=(0, 1), task="binary", n_boot=50)
    old = ((frame["age"] > 60) & (frame["city"] == "Lyon")).to_numpy()
    assert result.table_rows == {EVERYONE: len(frame), "old in Lyon": old.sum(), "young": (frame["age"] <= 40).sum()}
    explained_old = old[part.row_ids]
    stats = result.cohorts["old in Lyon"]
    assert stats.rows == explained_old.sum() < old.sum()
    np.testing.assert_allclose(stats.mean_abs, np.abs(part.values[explained_old]).mean(axis=0))
    assert stats.metrics["accuracy"] == pytest.approx((proba[old].argmax(1) == y[old]).mean())
    assert stats.prediction["q50"] == pytest.approx(np.median(table.iloc[:, 1][old]))
    with pytest.raises(DataError, match="differ"):
        compare_named(part, table, [Cohort("a", "age>1"), Cohort("a", "age>2")])
    with pytest.raises(DataError, match="salary"):
        compare_named(part, table, [Cohort("rich", "salary>3")])


def test_predicted_values_are_labels_for_classifiers_and_numbers_for_regressors():
    from core.cohorts.errortree import predicted_values

    proba = np.array([[0.9, 0.1], [0.2, 0.8]])
    assert list(predicted_values(proba, ("no", "yes"), "binary")) == ["no", "yes"]
    assert list(predicted_values(np.array([[-1.0], [2.0]]), (0, 1), "binary")) == ["0", "1"]
    assert list(predicted_values(np.array([1.5, 2.5]), None, "regression")) == [1.5, 2.5]


def test_a_second_table_is_explained_with_the_first_tables_explainer_and_diffed_on_its_own_rows():
    from sklearn.linear_model import LinearRegression

    from core.cohorts.diff import explain_other_table, models_diff, tables_diff

    rng = np.random.default_rng(6)
    first = pd.DataFrame({"a": rng.normal(0, 1, 1500), "b": rng.normal(0, 1, 1500)})
    second = pd.DataFrame({"a": rng.normal(0, 1, 900), "b": rng.normal(2, 1, 900)})
    model = LinearRegression().fit(first, first["a"] + 2 * first["b"])
    explainer = make_explainer(model, first, output="raw")
    seen = []
    other = explain_other_table(explainer, second, rows=400, seed=1, chunk=150, progress=lambda d, t: seen.append(d))
    assert seen == [150, 300, 400] and other.total_rows == 900 and len(other) == 400
    np.testing.assert_allclose(other.prediction[:, 0], model.predict(second.iloc[other.row_ids]))
    direct = explainer.explain_frame(second.iloc[other.row_ids].reset_index(drop=True), other.row_ids)
    np.testing.assert_allclose(other.values, direct.values)  # one background: the same numbers as one call
    diff = tables_diff(explainer.explain(np.arange(0, 1500, 2)), first, other.for_class(None), second, n_boot=50)
    assert diff.features.iloc[0]["feature"] == "b" and diff.features.iloc[0]["drift"] > 0.25 and not diff.paired
    with pytest.raises(DataError, match="columns"):
        explain_other_table(explainer, second[["b", "a"]])

    a = explainer.explain(np.arange(0, 1500, 2))
    b = make_explainer(model, first, output="raw").explain(np.arange(0, 1500, 3))
    same, rows, (common_a, common_b) = models_diff(a, b, first)  # the rows both explained: every 6th
    np.testing.assert_array_equal(common_a.row_ids, np.arange(0, 1500, 6))
    np.testing.assert_array_equal(common_b.row_ids, common_a.row_ids)
    assert same.rows == {"first": 250, "second": 250} and same.paired
    assert np.all(same.features["shift"] == 0) and np.all(rows["difference"] == 0)


def test_group_figures_draw_every_cohort_and_escape_user_text(explained):
    import json

    from core.cohorts.compare import Cohort, compare_named
    from core.cohorts.errortree import error_analysis
    from core.present import cohort_figures as cf

    model, frame, expl, y = explained
    proba = model.predict_proba(frame)
    table = cohort_table(frame, proba[:, 1], expl.units, y)
    hostile = "<img src=x onerror=alert(1)>"
    result = compare_named(expl, table, [Cohort(hostile, "age>60")], target=y, scores=proba, classes=(0, 1), n_boot=30)
    figures = [
        cf.cohort_importance_figure(result, top_n=3),
        cf.cohort_prediction_figure(result, expl.units),
        cf.cohort_beeswarm_figure(expl, {k: s.mask for k, s in result.cohorts.items()}, top_n=3),
        cf.interval_figure(result.difference(EVERYONE, hostile), title=f"{hostile} - everyone", axis="a"),
    ]
    assert [len(f.data) for f in figures[:2]] == [2, 2] and len(figures[2].data) >= 2
    for fig in figures:
        text = json.dumps(fig.to_plotly_json(), default=str)
        assert hostile not in text and "&lt;img" in text
    with pytest.raises(Exception, match="no errors"):  # the forest fits its training rows perfectly
        cf.error_tree_figure(error_analysis(frame, y, model.predict(frame), "binary", expl, n_boot=30))
    planted, rows, target, _ = _planted(1000)
    analysis = error_analysis(rows, target, planted.predict(rows), "binary")
    tree = cf.error_tree_figure(analysis)
    assert len(tree.data[0].x) == min(10, sum(n.node != 0 and n.errors > 0 for n in analysis.nodes))
    assert {c[0] for c in tree.data[0].customdata} <= {n.node for n in analysis.nodes}


def test_a_large_table_is_bootstrapped_by_random_blocks_with_the_row_bootstrap_spread():
    from core.cohorts.compare import BLOCK_ROWS

    rng = np.random.default_rng(8)
    n = BLOCK_ROWS * 3
    matrix = np.column_stack([rng.normal(2.0, 3.0, n), rng.exponential(1.0, n)])
    reps = bootstrap_means(matrix, 300, seed=1)
    np.testing.assert_array_equal(reps, bootstrap_means(matrix, 300, seed=1))  # seeded
    expected = matrix.std(axis=0) / np.sqrt(n)  # the standard error the row bootstrap estimates
    np.testing.assert_allclose(reps.std(axis=0), expected, rtol=0.15)
    np.testing.assert_allclose(reps.mean(axis=0), matrix.mean(axis=0), atol=3 * expected.max())


def test_splits_on_one_category_read_as_one_rule_and_large_tables_fit_on_a_sample(monkeypatch):
    from core.cohorts import errortree

    rng = np.random.default_rng(9)
    n = 6000
    frame = pd.DataFrame({"city": rng.choice(list("abcdef"), n), "x": rng.uniform(0, 1, n)})
    wrong = frame["city"].isin(["c", "d"]).to_numpy() & (rng.random(n) < 0.9)
    prediction = np.zeros(n, dtype=int)
    target = pd.Series(np.where(wrong, 1, 0))
    full = errortree.error_analysis(frame, target, prediction, "binary", max_depth=4)
    for node in full.nodes:
        assert sum(r.startswith("city in") for r in node.rules) <= 1, node.rules
    table = cohort_table(frame, prediction.astype(float), "raw", target)
    for node in full.nodes:  # a narrowed rule names exactly the node's levels, and its query its rows
        levels = set(frame["city"][node.mask])
        rule = next((r for r in node.rules if r.startswith("city in")), None)
        if rule is not None:
            assert set(rule.removeprefix("city in {").removesuffix("}").split(", ")) >= levels
        np.testing.assert_array_equal(cohort_mask(table, node.query), node.mask, err_msg=node.label)
    assert full.nodes[0].rules == ("city in {c, d}",)

    monkeypatch.setattr(errortree, "FIT_ROWS", 2000)  # the splits from a sample, the counts from every row
    sampled = errortree.error_analysis(frame, target, prediction, "binary", max_depth=4)
    top = sampled.nodes[0]
    assert top.rows == top.mask.sum() > 1000 and top.errors == int(wrong[top.mask].sum())
