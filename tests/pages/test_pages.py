"""Every page under AppTest, on the demos and on uploads, asserting what the charts contain."""

from __future__ import annotations

import base64
import json
import pickle

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from core.isolation.workers import close_all_pools
from core.present.figures import format_number
from tests.conftest import ROOT
from tests.core import attacks, zoo

APP = str(ROOT / "app.py")


@pytest.fixture(autouse=True)
def _fresh_caches():
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    close_all_pools()
    st.cache_resource.clear()


def app(**query) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    for key, value in query.items():
        at.query_params[key] = value
    return at


def charts(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def arr(value) -> list:
    """Plotly JSON arrays: plain lists, or typed arrays ({"dtype", "bdata"}) since plotly 6."""
    if isinstance(value, dict) and "bdata" in value:
        raw = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        return raw.reshape(value["shape"]).tolist() if "shape" in value else raw.tolist()
    return list(value)


def chart(at: AppTest, title_start: str) -> dict:
    found = [c for c in charts(at) if c["layout"]["title"]["text"].startswith(title_start)]
    assert found, [c["layout"]["title"]["text"] for c in charts(at)]
    return found[0]


def test_overview_on_the_demo():
    at = app().run()
    assert not at.exception
    assert at.title[0].value == "Overview"
    metrics = {m.label: float(m.value) for m in at.metric}
    assert metrics["accuracy"] > 0.95 and metrics["ROC AUC"] > 0.98  # in-sample (the demo's training rows), and said so
    assert any("trained on these rows" in c.value for c in at.caption)
    hist = chart(at, "Predictions")
    assert [t["name"] for t in hist["data"]] == ["actual benign", "actual malignant"]
    assert "probability of &#x27;malignant&#x27;" in hist["layout"]["title"]["text"]


def test_global_importance_bars_kinds_and_dependence():
    at = app().run()
    at.switch_page("pages/global_importance.py").run()
    assert not at.exception
    bars = chart(at, "Global importance")["data"][0]
    assert len(bars["y"]) == 16 and bars["y"][0] == "15 other features"
    values = arr(bars["x"])[1:]
    assert values == sorted(values)  # largest on top
    at.slider[0].set_value(5).run()
    assert len(chart(at, "Global importance")["data"][0]["y"]) == 6
    kinds = at.segmented_control(key="kind_pick")
    assert "Model's own" in kinds.options and "Permutation" not in kinds.options
    at.toggle[0].set_value(True).run()
    assert "Permutation" in at.segmented_control(key="kind_pick").options
    assert not at.main.get("progress")  # the shuffling's bar is gone once done (the sidebar's may still explain rows)
    at.segmented_control(key="kind_pick").set_value("permutation").run()
    shuffled = charts(at)[0]["data"][0]
    assert len(shuffled["y"]) == 6 and max(arr(shuffled["x"])) > 0  # a real score drop on the top columns
    at.segmented_control(key="kind_pick").set_value("shap").run()
    top = chart(at, "Global importance")["data"][0]["y"][-1]
    assert chart(at, "Dependence")["layout"]["title"]["text"].startswith(f"Dependence: {top}")


def test_clicking_a_bar_opens_its_dependence_view():
    at = app().run()
    at.switch_page("pages/global_importance.py").run()
    at.session_state["importance"] = {
        "selection": {"points": [{"customdata": ["mean texture"]}], "point_indices": [3], "box": [], "lasso": []}
    }
    at.run()
    assert chart(at, "Dependence")["layout"]["title"]["text"].startswith("Dependence: mean texture, coloured by")


def test_beeswarm_and_a_click_opens_the_row_explorer(monkeypatch):
    # the first sample is then the whole table, however busy the machine is
    monkeypatch.setenv("MODELLENS_BUDGET_SECONDS", "600")
    at = app().run()
    at.switch_page("pages/beeswarm.py").run()
    assert not at.exception
    bees = chart(at, "Beeswarm")
    assert "all 569 rows" in bees["layout"]["title"]["text"]
    assert sum(len(arr(t["x"])) for t in bees["data"]) == 12 * 569
    at.session_state["bees"] = {
        "selection": {
            "points": [{"customdata": [42, "worst radius", "15"]}],
            "point_indices": [0],
            "box": [],
            "lasso": [],
        }
    }
    at.run()
    assert at.title[0].value == "Row explorer"
    assert chart(at, "Waterfall for row")["layout"]["title"]["text"] == "Waterfall for row 42"
    assert at.query_params["row"] == "42"


def test_row_explorer_selection_buttons_and_summary():
    at = app().run()
    at.switch_page("pages/row_explorer.py").run()
    assert chart(at, "Waterfall")["layout"]["title"]["text"] == "Waterfall for row 0"
    at.session_state["table"] = {"selection": {"rows": [7], "columns": [], "cells": []}}
    at.run()
    waterfall = chart(at, "Waterfall")
    assert waterfall["layout"]["title"]["text"] == "Waterfall for row 7"
    assert chart(at, "Force view")["layout"]["title"]["text"] == "Force view for row 7"
    assert any(m.value.startswith("Predicted") for m in at.markdown)
    at.button[1].click().run()  # next
    assert chart(at, "Waterfall")["layout"]["title"]["text"] == "Waterfall for row 8"
    assert at.query_params["row"] == "8"


def test_deep_link_reopens_row_class_and_units():
    at = app(row="11", **{"class": "benign"}).run()
    at.switch_page("pages/row_explorer.py").run()
    assert chart(at, "Waterfall")["layout"]["title"]["text"] == "Waterfall for row 11"
    assert "probability of &#x27;benign&#x27;" in chart(at, "Waterfall")["layout"]["xaxis"]["title"]["text"]


def test_multiclass_demo_units_and_classes():
    at = app(demo="wine").run()
    assert not at.exception
    assert at.selectbox(key="class_pick").options == ["Barbera", "Barolo", "Grignolino"]
    assert at.segmented_control(key="output_pick").options == ["log-odds", "probability"]
    at.switch_page("pages/global_importance.py").run()
    assert "log-odds of &#x27;Barbera&#x27;" in chart(at, "Global importance")["layout"]["title"]["text"]
    assert "SHAP (all classes)" in at.segmented_control(key="kind_pick").options
    at.selectbox(key="class_pick").set_value("Barolo").run()
    at.segmented_control(key="output_pick").set_value("probability").run()
    assert "probability of &#x27;Barolo&#x27;" in chart(at, "Global importance")["layout"]["title"]["text"]


@pytest.fixture(scope="module")
def pipeline_upload():
    model, frame = zoo.builders()["pipe_rf"]()
    table = frame.assign(churn=model.predict(frame), customer_id=range(len(frame)))
    return pickle.dumps(model), table.to_csv(index=False).encode()


def upload(at: AppTest, model: bytes | None, data: bytes | None, names=("model.pkl", "data.csv")) -> AppTest:
    at.run()
    at.segmented_control(key="mode").set_value("My model").run()
    if model is not None:
        at.sidebar.file_uploader(key="model_file").set_value((names[0], model, "application/octet-stream"))
    if data is not None:
        at.sidebar.file_uploader(key="data_file").set_value((names[1], data, "text/csv"))
    return at.run()


def test_uploaded_pipeline_on_every_page(pipeline_upload):
    at = upload(app(), *pipeline_upload)
    assert not at.exception and not at.error
    assert any("RandomForestClassifier" in m.value for m in at.markdown)
    assert any("Ignored 1 column" in c.value and "customer" in c.value for c in at.caption)
    at.switch_page("pages/global_importance.py").run()
    raw = chart(at, "Global importance")["data"][0]["y"]
    assert sorted(raw) == ["age", "city", "income", "plan", "tenure"]
    at.segmented_control(key="view_pick").set_value("engineered").run()
    engineered = chart(at, "Global importance")["data"][0]["y"]
    assert any("city_Paris" in y for y in engineered) and len(engineered) > 5
    at.switch_page("pages/beeswarm.py").run()
    bees = chart(at, "Beeswarm")
    assert not at.exception and "probability of 1" in bees["layout"]["title"]["text"]
    assert sorted(bees["layout"]["yaxis"]["ticktext"]) == sorted(raw)
    at.switch_page("pages/row_explorer.py").run()
    waterfall = chart(at, "Waterfall")
    assert waterfall["layout"]["title"]["text"] == "Waterfall for row 0"
    model = pickle.loads(pipeline_upload[0])  # our own model, trained in the fixture
    frame = zoo.builders()["pipe_rf"]()[1]
    want = model.predict_proba(frame.iloc[:1])[0, 1]
    assert f"<b>prediction {format_number(want)}</b>" in [a["text"] for a in waterfall["layout"]["annotations"]]


def test_missing_data_file_explains_the_next_step(pipeline_upload):
    at = upload(app(), pipeline_upload[0], None)
    assert not at.exception
    assert "Upload a data file" in at.info[0].value


def test_unsafe_upload_is_one_sentence(pipeline_upload):
    evil = pickle.dumps(attacks.Reduce(__import__("os").system, "true"))
    at = upload(app(), evil, pipeline_upload[1])
    assert not at.exception
    assert any("posix.system" in e.value for e in at.error)


def test_data_that_does_not_match(pipeline_upload):
    at = upload(app(), pipeline_upload[0], b"age,income\n1,2\n")
    assert not at.exception
    assert any("lacks 3 columns the model needs: 'tenure', 'city', 'plan'" in e.value for e in at.error)


def test_worker_crash_shows_an_error_and_the_app_keeps_working(monkeypatch):
    import cloudpickle

    from tests.core import crashers

    cloudpickle.register_pickle_by_value(crashers)  # the sandboxed worker cannot import the tests package
    monkeypatch.setenv("MODELLENS_TRUST_PICKLES", "1")
    at = upload(app(), cloudpickle.dumps(crashers.SegfaultRegressor()), b"a,b\n1,2\n3,4\n")
    assert not at.exception
    assert any("crashed in native code" in e.value for e in at.error)
    assert any("Trusted mode" in w.value for w in at.warning)
    at.segmented_control(key="mode").set_value("Demo").run()
    assert not at.exception and chart(at, "Predictions")


def test_every_number_is_in_the_unit_its_label_names():
    from sklearn.datasets import load_wine
    from sklearn.ensemble import GradientBoostingClassifier

    data = load_wine(as_frame=True)
    y = np.asarray(["Barolo", "Grignolino", "Barbera"])[data.target]
    model = GradientBoostingClassifier(n_estimators=100, max_depth=3, random_state=0).fit(data.data, y)
    margins = model.decision_function(data.data)  # the demo's own log-odds, classes in sorted order
    at = app(demo="wine").run()
    hist = chart(at, "Predictions")
    assert "log-odds of &#x27;Barbera&#x27;" in hist["layout"]["title"]["text"]
    # counted on the server: every row once, in bins spanning the log-odds themselves (not 0 to 1)
    centres, widths = arr(hist["data"][0]["x"]), arr(hist["data"][0]["width"])
    edges = np.append(np.asarray(centres) - np.asarray(widths) / 2, centres[-1] + widths[-1] / 2)
    np.testing.assert_allclose(edges[[0, -1]], [margins[:, 0].min(), margins[:, 0].max()], rtol=1e-9, atol=1e-9)
    counted = np.sum([arr(trace["y"]) for trace in hist["data"]], axis=0)
    np.testing.assert_array_equal(counted, np.histogram(margins[:, 0], bins=40)[0])
    assert counted.sum() == len(margins)
    at.switch_page("pages/row_explorer.py").run()
    table = at.dataframe[0].value
    column = "prediction (log-odds of 'Barbera')"
    np.testing.assert_allclose(table[column].to_numpy(), np.round(margins[table["row"].to_numpy(), 0], 4))
    at.segmented_control(key="output_pick").set_value("probability").run()
    table = at.dataframe[0].value
    proba = model.predict_proba(data.data)[table["row"].to_numpy(), 0]
    np.testing.assert_allclose(table["prediction (probability of 'Barbera')"].to_numpy(), np.round(proba, 4))


def test_the_regression_demo_finds_its_target_and_shows_metrics_unasked():
    at = app(demo="diabetes").run()
    assert not at.exception
    assert {m.label for m in at.metric} == {"R²", "MAE", "RMSE"}
    assert any("'progression' looks like the target" in c.value for c in at.caption)
    at.switch_page("pages/row_explorer.py").run()
    assert "prediction (progression)" in at.dataframe[0].value.columns
    at.switch_page("pages/global_importance.py").run()
    assert "SHAP" in at.segmented_control(key="kind_pick").options
    assert "SHAP (this class)" not in at.segmented_control(key="kind_pick").options
