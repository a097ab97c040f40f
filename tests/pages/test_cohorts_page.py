"""Cohorts & errors and Explanation diff under AppTest: cohorts from the URL and the form, every row counted as
pandas counts it, the error tree's click making a cohort, a second table or model driving the diff, and all of it
in share links and the report."""

from __future__ import annotations

import pickle

import pandas as pd
import pytest

from core.config import Settings
from core.data.demo import demo_files
from tests.core.test_cohorts import _planted
from tests.pages.test_pages import _fresh_caches, app, arr, chart, charts, upload  # noqa: F401 - autouse fixture


@pytest.fixture(scope="module")
def demo_table():
    return pd.read_csv(demo_files("breast-cancer", Settings.from_env().home)[1])


def _summary(at) -> pd.DataFrame:
    return next(d.value for d in at.dataframe if "cohort" in d.value.columns)


def test_cohorts_from_the_link_and_the_form_count_every_row_as_pandas_does(demo_table):
    at = app(cohort=["big=mean radius>15", "small=mean radius<=12"]).run()
    at.switch_page("pages/cohorts.py").run()
    assert not at.exception and not at.error
    summary = _summary(at).set_index("cohort")
    radius = demo_table["mean radius"]
    assert summary["rows"].to_dict() == {"everyone": 569, "big": (radius > 15).sum(), "small": (radius <= 12).sum()}
    assert 0 < summary.loc["big", "explained"] <= summary.loc["big", "rows"]
    bars = chart(at, "Mean |SHAP| per cohort")
    assert [t["name"].split(" (")[0] for t in bars["data"]] == ["everyone", "big", "small"]
    assert all(t["error_x"]["visible"] for t in bars["data"])
    assert chart(at, "big minus everyone")  # the difference, with its intervals
    assert len(chart(at, "Predictions per cohort")["data"]) == 3
    assert chart(at, "Beeswarm per cohort")

    at.text_input(key="cohort_name").set_value("Big texture")  # the query in the row explorer's syntax:
    at.text_input(key="cohort_query").set_value('"mean texture">25')
    next(b for b in at.button if b.label == "Add cohort").click().run()
    summary = _summary(at).set_index("cohort")
    assert summary.loc["Big texture", "rows"] == (demo_table["mean texture"] > 25).sum()
    assert at.query_params["cohort"] == ["big=mean radius>15", "small=mean radius<=12", 'Big texture="mean texture">25']

    at.text_input(key="cohort_name").set_value("nonsense")
    at.text_input(key="cohort_query").set_value("salary>3")
    next(b for b in at.button if b.label == "Add cohort").click().run()
    assert any("no column named 'salary'" in e.value for e in at.error) and not at.exception
    next(b for b in at.button if b.label == "Remove").click().run()  # removes "big"
    assert list(_summary(at)["cohort"]) == ["everyone", "small", "Big texture"]


@pytest.fixture(scope="module")
def planted_upload():
    model, frame, target, region = _planted(1500)
    return pickle.dumps(model), frame.assign(target=target).to_csv(index=False).encode(), region


def test_the_error_tree_finds_the_planted_region_and_a_click_makes_it_a_cohort(planted_upload):
    model, data, region = planted_upload
    at = upload(app(), model, data)
    at.switch_page("pages/cohorts.py").run()
    assert not at.exception and not at.error
    tree = chart(at, "Where the model is wrong")
    bars = tree["data"][0]
    top = len(bars["y"]) - 1  # the top bar: most errors, densest (rate x share): the planted age > 60 in Lyon
    assert arr(bars["x"])[top] > 0.8
    label = bars["customdata"][top][1]
    assert "age &gt; 6" in label and "city in {Lyon}" in label
    at.session_state["error_tree"] = {
        "selection": {
            "points": [{"customdata": bars["customdata"][top]}],
            "point_indices": [top],
            "box": [],
            "lasso": [],
        }
    }
    at.run()
    summary = _summary(at)
    assert len(summary) == 2 and summary["cohort"][1].startswith("node ")
    added = summary.iloc[1]
    assert abs(added["rows"] - region.sum()) / region.sum() < 0.1 and added["accuracy"] < 0.2
    assert chart(at, "Wrong minus right rows")
    wrong = next(d.value for d in at.dataframe if "row" in d.value.columns and "age" in d.value.columns)
    at.session_state["wrong_rows"] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()
    assert at.title[0].value == "Row explorer" and not at.exception and not at.error  # the uploads survived
    assert chart(at, "Waterfall")["layout"]["title"]["text"] == f"Waterfall for row {wrong['row'].iloc[0]}"


def test_a_second_table_drives_the_diff_and_the_shifted_column_comes_first(demo_table):
    at = app().run()
    at.switch_page("pages/diff.py").run()
    assert any("Compare with" in i.value for i in at.info)  # nothing to compare yet: says what to upload
    shifted = demo_table.assign(**{"worst concave points": demo_table["worst concave points"] * 1.6})
    at.sidebar.file_uploader(key="other_data_file").set_value(
        ("next-month.csv", shifted.to_csv(index=False).encode(), "text/csv")
    )
    at.run()
    assert not at.exception and not at.error
    shift = chart(at, "next-month.csv minus breast-cancer.csv")
    assert shift["data"][0]["y"][-1] == "worst concave points"  # largest on top
    drift = chart(at, "Input drift per column")
    assert drift["data"][0]["y"][-1] == "worst concave points" and arr(drift["data"][0]["x"])[-1] > 0.25
    table = next(d.value for d in at.dataframe if "input drift (PSI)" in d.value.columns)
    assert table["feature"].iloc[0] == "worst concave points" and table["beyond noise"].iloc[0]
    assert table.drop(index=0)["input drift (PSI)"].max() < 0.1  # the others did not move (below "moderate")


def test_a_second_model_shows_where_the_two_disagree_with_both_waterfalls(demo_table):
    from sklearn.ensemble import RandomForestClassifier

    features = demo_table.drop(columns=["diagnosis"])
    other = RandomForestClassifier(n_estimators=20, max_depth=3, random_state=1).fit(features, demo_table["diagnosis"])
    at = app().run()
    at.sidebar.file_uploader(key="other_model_file").set_value(("retrained.pkl", pickle.dumps(other), "application/x"))
    at.switch_page("pages/diff.py").run()
    assert not at.exception and not at.error
    assert chart(at, "retrained.pkl minus breast-cancer.pkl")
    assert not [c for c in charts(at) if c["layout"]["title"]["text"].startswith("Input drift")]  # one table
    rows = next(d.value for d in at.dataframe if "difference" in d.value.columns)
    assert rows["difference"].abs().is_monotonic_decreasing
    first = rows["row"].iloc[0]
    titles = [c["layout"]["title"]["text"] for c in charts(at)]
    assert f"breast-cancer.pkl: row {first}" in titles and f"retrained.pkl: row {first}" in titles
    mine = other.predict_proba(features.iloc[[first]])[0, list(other.classes_).index("malignant")]
    assert rows["second"].iloc[0] == pytest.approx(mine, abs=1e-9)


def test_cohorts_travel_in_share_links_and_pinned_views_reach_the_report():
    at = app(cohort=["big=mean radius>15"]).run()
    at.switch_page("pages/cohorts.py").run()
    at.toggle(key="report_cohorts").set_value(True).run()
    at.toggle(key="report_errors").set_value(True).run()
    at.switch_page("pages/share.py").run()
    next(b for b in at.button if b.label == "Build report").click().run()
    assert not at.exception
    html = at.session_state["app"].report[1]
    assert "<h2>Cohorts</h2>" in html and "<h2>Where the model is wrong</h2>" in html
    assert "big minus everyone: mean |SHAP|" in html

    next(b for b in at.sidebar.button if b.label == "Share this view").click().run()
    link = at.sidebar.code[0].value
    params = dict(part.split("=", 1) for part in link.split("?", 1)[1].split("&"))
    shared = app(**params).run()  # a new session opens the link: the cohort comes from the share's settings
    shared.switch_page("pages/cohorts.py").run()
    assert not shared.exception
    assert list(_summary(shared)["cohort"]) == ["everyone", "big"]
