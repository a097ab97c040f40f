"""Figures, importance, narrative, metrics and the rows table: their content, not pixels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.data.metrics import headline_metrics, prediction_column
from core.data.rows import filter_rows, page_of, rows_table
from core.engine.importance import global_importances, shap_importance, strongest_interaction
from core.errors import ExplanationError
from core.explanation import Explanation
from core.present import figures
from core.present.figures import format_number, format_value
from core.present.narrative import summarize

HOSTILE = "<img src=x onerror=alert(1)>"


def explanation(n=200, sample_of=None, names=("income", "tenure", HOSTILE, "city")) -> Explanation:
    rng = np.random.default_rng(0)
    data = pd.DataFrame(
        {
            "income": rng.normal(50_000, 10_000, n),
            "tenure": rng.integers(1, 60, n).astype(float),
            HOSTILE: rng.normal(size=n),
            "city": rng.choice(["Lyon", "<b>Nice</b>"], n),
        }
    )
    data.columns = list(names)
    values = np.column_stack(
        [
            (data.iloc[:, 0] - 50_000) / 1e5,
            -0.002 * data.iloc[:, 1],
            0.01 * data.iloc[:, 2],
            np.where(data.iloc[:, 3] == "Lyon", 0.05, -0.05),
        ]
    )
    base = np.full(n, 0.3)
    return Explanation(
        values,
        base,
        base + values.sum(1),
        data,
        tuple(names),
        "probability",
        "yes",
        "test",
        np.arange(n),
        (n, sample_of or n),
    )


def test_explanation_rejects_numbers_that_do_not_add_up():
    e = explanation()
    with pytest.raises(ExplanationError, match="does not add up"):
        Explanation(
            e.values,
            e.base_values,
            e.prediction + 0.01,
            e.data,
            e.feature_names,
            "probability",
            "yes",
            "m",
            e.row_ids,
            e.sample,
        )
    with pytest.raises(ExplanationError, match="one entry per row"):
        Explanation(
            e.values, e.base_values[:3], e.prediction, e.data, e.feature_names, "raw", None, "m", e.row_ids, e.sample
        )


def test_importance_bars_order_labels_units_and_other():
    e = explanation()
    fig = figures.importance_figure(shap_importance(e), top_n=2)
    bars = fig.data[0]
    assert list(bars.y) == ["2 other features", "tenure", "income"]  # plotly draws the first bar at the bottom
    assert bars.x[-1] >= bars.x[-2] and "probability of &#x27;yes&#x27;" in fig.layout.title.text
    assert bars.x[0] == pytest.approx(np.abs(e.values[:, 2:]).mean(0).sum())


def test_sampled_importance_has_uncertainty_and_all_kinds_are_named():
    e = explanation(sample_of=10_000)
    kinds = global_importances(
        e,
        model_importance={"label": "impurity", "values": [4, 3, 2, 1]},
        permutation={"mean": [0.1, 0.2, 0.0, 0.05], "std": [0.01] * 4, "scoring": "accuracy"},
    )
    assert [k.kind for k in kinds] == ["shap", "model", "permutation"]
    assert kinds[0].error is not None and kinds[0].note == "computed on 200 of 10,000 rows"
    assert list(kinds[2].values.index[:2]) == ["tenure", "income"]
    fig = figures.importance_figure(kinds[0])
    assert fig.data[0].error_x.array is not None


def test_beeswarm_points_colours_and_hostile_names():
    e = explanation()
    fig = figures.beeswarm_figure(e, max_display=4)
    assert {t.type for t in fig.data} == {"scattergl"}
    assert sum(len(t.x) for t in fig.data) == 4 * 200
    ticks = list(fig.layout.yaxis.ticktext)
    assert "&lt;img src=x onerror=alert(1)&gt;" in ticks and HOSTILE not in ticks
    cat = next(t for t in fig.data if t.name == "category")
    assert len(set(cat.marker.color)) == 2 and all("<" not in str(d[2]) for d in cat.customdata)
    capped = figures.beeswarm_figure(e, max_rows=50)
    assert "showing 50 points per feature" in capped.layout.title.text


def test_waterfall_starts_at_base_and_ends_at_prediction():
    row = explanation().row(7)
    fig = figures.waterfall_figure(row, max_display=2)
    wf = fig.data[0]
    assert fig.layout.title.text == "Waterfall for row 7" and wf.base == pytest.approx(row.base_value)
    assert list(wf.measure) == ["relative"] * 3 and wf.y[0] == "2 other features"
    assert wf.base + sum(wf.x) == pytest.approx(row.prediction)
    assert abs(wf.x[-1]) >= abs(wf.x[-2])  # largest push drawn nearest the prediction
    notes = [a.text for a in fig.layout.annotations]
    assert f"<b>prediction {format_number(row.prediction)}</b>" in notes
    assert f"average {format_number(row.base_value)}" in notes


def test_force_segments_sum_to_prediction_minus_base_and_escape_text():
    row = explanation(names=("income", "tenure", HOSTILE, "city")).row(3)
    fig = figures.force_figure(row)
    widths = sum(t.x[0] * (1 if t.marker.color == figures.POSITIVE else -1) for t in fig.data)
    assert widths == pytest.approx(row.prediction - row.base_value)
    texts = " ".join(str(t.hovertemplate) for t in fig.data)
    assert HOSTILE not in texts and "&lt;img" in texts
    with pytest.raises(ExplanationError, match="try expl.row"):
        figures.force_figure(explanation())


def test_dependence_and_interaction():
    e = explanation()
    assert strongest_interaction(e, "income") in e.feature_names
    fig = figures.dependence_figure(e, "city", color_by="income")
    assert list(fig.layout.xaxis.ticktext) == ["&lt;b&gt;Nice&lt;/b&gt;", "Lyon"]
    marker, income = fig.data[0].marker, e.data["income"].to_numpy()
    assert (marker.cmin, marker.cmax) == tuple(np.percentile(income, [5, 95]))  # the bar reads in income's own units
    np.testing.assert_array_equal(marker.color, income)
    assert "income = %{customdata[2]}" in fig.data[0].hovertemplate
    assert fig.data[0].customdata[0][2] == figures.format_value(income[0])
    by_city = figures.dependence_figure(e, "income", color_by="city").data[0].marker
    assert list(by_city.colorbar.ticktext) == ["&lt;b&gt;Nice&lt;/b&gt;", "Lyon"]
    with pytest.raises(ExplanationError, match="Unknown feature"):
        figures.dependence_figure(e, "nope")


def test_labels_are_escaped_once_in_entities_plotly_decodes():
    assert figures.esc("<img src=x onerror=\"t='x'\">") == "&lt;img src=x onerror=&#34;t=&#x27;x&#x27;&#34;&gt;"


def test_numbers_are_written_for_people():
    assert [format_number(v) for v in (215023.4, 180796.06, 1808.44, 12.34, 0.1534, 0.000123, 7.9e-6, 0)] == [
        "215,023",
        "180,796",
        "1808.4",
        "12.3",
        "0.153",
        "0.000123",
        "7.90e-06",
        "0",
    ]
    assert format_number(15000, signed=True) == "+15,000" and format_number(-2.5, signed=True) == "-2.5"
    assert [format_value(v) for v in (1960, 1960.0, 72000, 12345.0)] == ["1960", "1960", "72,000", "12,345"]


def test_a_regression_summary_has_no_scientific_notation_and_no_negligible_reasons():
    values = np.array([[15000.0, -2500.0, 7.9e-06, 0.0]])
    names = ("living area", "year built", "noise", "pool")
    data = pd.DataFrame([[2100, 1960, 0.3, 0]], columns=list(names))
    expl = Explanation(
        values, np.array([180796.06]), 180796.06 + values.sum(1), data, names, "raw", None, "t", [0], (1, 1)
    )
    assert summarize(expl.row(0)) == (
        "Predicted 193,296 model output (average 180,796). Pushed up most by living area = 2100 (+15,000); "
        "pulled down most by year built = 1960 (−2500)."
    )


def test_summary_sentence():
    values = np.array([[0.02, 0.21, -0.05, 0.0, 0.12, -0.004]])
    names = ("age", "income", "city", "plan", "tenure", "score")
    data = pd.DataFrame([[61, 72000.0, "Lyon", "basic", 2, 0.5]], columns=list(names))
    expl = Explanation(
        values, np.array([0.31]), 0.31 + values.sum(1), data, names, "probability", "yes", "t", [0], (1, 1)
    )
    assert summarize(expl.row(0)) == (
        "Predicted 0.61 probability of 'yes' (average 0.31). Pushed up most by income = 72,000 (+0.21) and "
        "tenure = 2 (+0.12); pulled down most by city = Lyon (−0.05) and score = 0.5 (−0.004)."
    )
    flat = Explanation(
        np.zeros((1, 6)), np.array([0.31]), np.array([0.31]), data, names, "probability", None, "t", [0], (1, 1)
    )
    assert (
        summarize(flat.row(0))
        == "Predicted 0.31 probability (average 0.31). No feature moved it noticeably away from the average."
    )


def test_metrics_and_prediction_column():
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]])
    scores = headline_metrics("binary", pd.Series(["no", "yes", "no"]), proba, ("no", "yes"))
    assert scores["accuracy"] == pytest.approx(2 / 3) and scores["ROC AUC"] == pytest.approx(1.0)
    assert headline_metrics("regression", pd.Series([1.0, 2.0, 3.0]), np.array([[1.0], [2.0], [4.0]]), None)[
        "MAE"
    ] == pytest.approx(1 / 3)
    np.testing.assert_array_equal(prediction_column(proba, ("no", "yes"), "no"), proba[:, 0])
    margin = np.array([[2.0], [-1.0]])  # a binary model's single log-odds column is the positive class's
    np.testing.assert_array_equal(prediction_column(margin, ("no", "yes"), "yes"), [2.0, -1.0])
    np.testing.assert_array_equal(prediction_column(margin, ("no", "yes"), "no"), [-2.0, 1.0])


def test_rows_table_search_and_paging():
    frame = pd.DataFrame({"age": [30, 61, 45], "city": ["Lyon", "Nice", "Lyon"]})
    table = rows_table(frame, np.array([0.1, 0.9, 0.5]), "probability", pd.Series(["no", "yes", "no"]))
    assert list(table.columns[:3]) == ["row", "prediction (probability)", "actual"]
    assert filter_rows(table, "lyon")["row"].tolist() == [0, 2]
    assert filter_rows(table, "age>40 city=lyon")["row"].tolist() == [2]
    assert filter_rows(table, "row:1")["row"].tolist() == [1]
    assert page_of(table, 2, size=2)["row"].tolist() == [2]


def test_force_and_waterfall_labels_never_share_a_place():
    names = ("a", "b", "c", "d", "e")
    values = np.array([[0.12, 0.11, -0.09, 0.05, -0.04]])
    data = pd.DataFrame([[1.0, 2.0, 3.0, 4.0, 5.0]], columns=list(names))
    row = Explanation(
        values, np.array([0.374]), 0.374 + values.sum(1), data, names, "probability", None, "t", [0], (1, 1)
    )
    notes = figures.force_figure(row.row(0)).layout.annotations
    labels = [(n.xanchor, n.ay) for n in notes if n.showarrow is not False and n.ay is not None]
    assert len(labels) == 5 and len(set(labels)) == 5  # each label its own row on its side
    assert {a for a, _ in labels} == {"left", "right"}  # pushes grow leftwards, pulls rightwards
    for fig in (figures.force_figure(row.row(0)), figures.waterfall_figure(row.row(0))):
        marks = {n.text.split(" ")[0].strip("<b>"): n.xanchor for n in fig.layout.annotations if n.showarrow is False}
        assert marks["prediction"] == "left" and {"right"} == {v for k, v in marks.items() if k != "prediction"}


def test_what_if_figures_share_an_axis_and_name_the_edit():
    expl = explanation()
    other_city = int(np.flatnonzero(expl.data["city"] != expl.data["city"].iloc[3])[0])
    a, b = expl.row(3), expl.row(other_city)
    left, right = figures.waterfall_pair(a, b, titles=("as it is", HOSTILE))
    assert left.layout.xaxis.range == right.layout.xaxis.range  # one axis: the two rows compare by eye
    assert right.layout.title.text == figures.esc(HOSTILE)
    for fig, row in ((left, a), (right, b)):
        lo, hi = fig.layout.xaxis.range
        assert lo < min(row.base_value, row.prediction) and hi > max(row.base_value, row.prediction)
    shift = pd.Series(b.values - a.values, index=list(expl.feature_names))
    fig = figures.shift_figure(shift, units="probability of 'yes'", changed={"city": (a.data["city"], b.data["city"])})
    bars = fig.data[0]
    assert list(bars.x) == sorted(bars.x, key=abs)  # largest move on top (plotly draws from the bottom)
    assert any(label.startswith("city: ") and "→" in label for label in bars.y)
    assert "&lt;b&gt;Nice&lt;/b&gt;" in " ".join(bars.y) and "<b>" not in " ".join(bars.y)  # data stays text
    with pytest.raises(ExplanationError, match="Nothing moved"):
        figures.shift_figure(shift * 0, units="x")


def test_the_prediction_histogram_is_counted_here_whatever_the_table_size():
    rng = np.random.default_rng(0)
    prediction = rng.beta(2, 5, 327_346)
    prediction[:7] = np.nan  # a model that gives no output for some rows: left out, not a bin of NaN
    actual = pd.Series(np.where(prediction > 0.3, "late", "on time"))
    fig = figures.prediction_figure(prediction, "probability of 'late'", actual=actual)
    assert [t.name for t in fig.data] == ["actual late", "actual on time"]
    finite = prediction[np.isfinite(prediction)]
    edges, expected = np.histogram_bin_edges(finite, bins=40), []
    for label in ("late", "on time"):
        expected.append(np.histogram(finite[(actual[np.isfinite(prediction)] == label).to_numpy()], bins=edges)[0])
    np.testing.assert_array_equal(np.stack([t.y for t in fig.data]), np.stack(expected))
    assert sum(int(t.y.sum()) for t in fig.data) == len(finite)
    np.testing.assert_allclose(fig.data[0].x - fig.data[0].width / 2, edges[:-1])
    assert len(fig.to_json()) < 50_000  # 4.4 MB as a plotly histogram of every row


def test_the_prediction_histogram_of_one_value_or_none():
    same = figures.prediction_figure(np.full(10, 3.0), "Sale_Price")
    assert int(same.data[0].y.sum()) == 10
    empty = figures.prediction_figure(np.full(3, np.nan), "Sale_Price")
    assert int(empty.data[0].y.sum()) == 0


def test_the_dependence_plot_of_a_large_table_draws_a_seeded_sample_and_says_so():
    e = explanation(n=12_000)
    fig = figures.dependence_figure(e, "income", color_by="city", max_rows=5000)
    trace = fig.data[0]
    rows = np.array([c[0] for c in trace.customdata])
    assert len(rows) == 5000 == len(set(rows.tolist())) and "5,000 of 12,000 rows drawn" in fig.layout.title.text
    np.testing.assert_array_equal(trace.y, e.values[rows, 0])  # each point is its own row's value
    np.testing.assert_array_equal(trace.x, e.data["income"].to_numpy()[rows])
    assert [c[2] for c in trace.customdata[:3]] == [figures.esc(v) for v in e.data["city"].to_numpy()[rows[:3]]]
    again = figures.dependence_figure(e, "income", color_by="city", max_rows=5000)
    np.testing.assert_array_equal(again.data[0].y, trace.y)  # the same sample at every rerun
    small = figures.dependence_figure(explanation(n=200), "income", max_rows=5000)
    assert len(small.data[0].y) == 200 and "rows drawn" not in small.layout.title.text
