"""The row explorer's what-if panel under AppTest: edit a value, see the exact explanation of the edited row,
pin the scenario, and open it from a share link and in the report."""

from __future__ import annotations

import pickle

import pandas as pd
import pytest

from core.config import Settings
from core.data.demo import demo_files
from tests.pages.test_pages import _fresh_caches, app, arr, charts  # noqa: F401 - _fresh_caches is autouse


def _titled(at, title):
    found = [c for c in charts(at) if c["layout"].get("title", {}).get("text", "") == title]
    return found[0] if found else None


def _demo_model():
    model_path, data_path = demo_files("breast-cancer", Settings.from_env().home)
    model = pickle.loads(model_path.read_bytes())  # noqa: S301 - the demo model this test suite just trained
    return model, pd.read_csv(data_path).drop(columns=["diagnosis"])


def _edited_prediction(at, row):
    edited = _titled(at, f"Row {row} edited")
    trace = next(t for t in edited["data"] if t.get("type") == "waterfall")
    return trace["base"] + sum(arr(trace["x"])), edited


def test_an_edit_gives_the_models_own_prediction_and_an_exact_waterfall(monkeypatch):
    monkeypatch.setenv("MODELLENS_BUDGET_SECONDS", "600")
    at = app(row="5").run()
    at.switch_page("pages/row_explorer.py").run()
    assert not at.exception
    inputs = [n for n in at.number_input if str(n.key).startswith("whatif:5:")]
    assert len(inputs) == 6, "the form shows the row's six strongest columns"
    assert _titled(at, "Row 5 edited") is None
    first = inputs[0]
    name = str(first.key).split(":", 2)[2]
    new_value = first.value * 3
    first.set_value(new_value).run()
    assert not at.exception

    model, frame = _demo_model()
    edited_row = frame.iloc[[5]].assign(**{name: new_value})
    positive = list(model.classes_).index("malignant")
    expected = model.predict_proba(edited_row)[0, positive]
    adds_up, _ = _edited_prediction(at, 5)  # base + contributions of the edited waterfall
    assert adds_up == pytest.approx(expected, abs=1e-9)
    assert _titled(at, "Row 5 as it is") is not None
    shift = _titled(at, "Change in contribution (probability of &#x27;malignant&#x27;)")
    assert any(label.startswith(name) and "→" in label for label in shift["data"][0]["y"])
    metric = next(m for m in at.metric if m.label.startswith("Prediction"))
    assert float(metric.value) == pytest.approx(expected, abs=5e-3) and "from" in metric.delta

    next(b for b in at.button if b.label == "Reset").click().run()
    assert _titled(at, "Row 5 edited") is None


def test_a_pinned_scenario_reaches_the_share_link_and_the_report(monkeypatch):
    monkeypatch.setenv("MODELLENS_BUDGET_SECONDS", "600")
    at = app(row="9").run()
    at.switch_page("pages/row_explorer.py").run()
    first = next(n for n in at.number_input if str(n.key).startswith("whatif:9:"))
    name = str(first.key).split(":", 2)[2]
    first.set_value(first.value / 4).run()
    prediction, _ = _edited_prediction(at, 9)
    next(b for b in at.button if b.label == "Pin this scenario").click().run()
    assert next(b for b in at.button if b.label == "Pin this scenario").disabled  # pinned once
    next(b for b in at.sidebar.button if b.label == "Share this view").click().run()
    link = at.sidebar.code[0].value
    params = dict(part.split("=", 1) for part in link.split("?", 1)[1].split("&"))

    viewer = app(**params).run()  # a stakeholder: a new session, read-only, the same edit already made
    assert not viewer.exception and viewer.title[0].value == "Row explorer"
    shown = next(n for n in viewer.number_input if n.key == first.key)
    assert shown.value == pytest.approx(first.value)
    assert _edited_prediction(viewer, 9)[0] == pytest.approx(prediction, abs=1e-12)

    viewer.switch_page("pages/share.py").run()
    next(b for b in viewer.button if b.label == "Build report").click().run()
    report = viewer.session_state["app"].report[1]
    assert "What-if scenarios" in report and f"{name}: " in report and "Row 9 edited" in report


def test_the_smallest_change_opens_as_a_what_if_that_reaches_the_goal(monkeypatch):
    monkeypatch.setenv("MODELLENS_BUDGET_SECONDS", "600")
    at = app(row="5").run()  # predicted malignant (0.89)
    at.switch_page("pages/row_explorer.py").run()
    assert at.selectbox(key="cf_goal:5").value == "benign"  # the other class is the natural question
    at.multiselect(key="cf_freeze:5").set_value(["worst concave points"]).run()
    next(b for b in at.button if b.label == "Find the smallest changes").click().run()
    assert not at.exception
    found = [m.value for m in at.markdown if m.value[:3] in {"1. ", "2. ", "3. "}]
    assert found and all("worst concave points" not in line for line in found)  # frozen
    next(b for b in at.button if b.key == "cf_open:5:0").click().run()
    malignant, _ = _edited_prediction(at, 5)
    assert malignant < 0.5  # the opened candidate really is predicted benign


def test_a_malformed_bound_is_one_sentence(monkeypatch):
    monkeypatch.setenv("MODELLENS_BUDGET_SECONDS", "600")
    at = app(row="5").run()
    at.switch_page("pages/row_explorer.py").run()
    at.text_input(key="cf_bounds:5").set_value("worst area=big").run()
    next(b for b in at.button if b.label == "Find the smallest changes").click().run()
    assert not at.exception
    assert any("is not COL=LOW:HIGH" in e.value for e in at.error)


def test_ice_and_partial_dependence_follow_the_class_selector():
    at = app(demo="wine").run()
    at.switch_page("pages/global_importance.py").run()
    at.toggle(key="ice_toggle").set_value(True).run()
    assert not at.exception
    ice = next(c for c in charts(at) if "60 rows" in c["layout"]["title"]["text"])
    assert "change from its first value" in ice["layout"]["title"]["text"]
    assert len(ice["data"]) == 61  # 60 rows + their average
    first_class = arr(ice["data"][-1]["y"])
    at.selectbox(key="class_pick").set_value("Grignolino").run()
    other = next(c for c in charts(at) if "60 rows" in c["layout"]["title"]["text"])
    assert "Grignolino" in other["layout"]["title"]["text"] and arr(other["data"][-1]["y"]) != first_class
