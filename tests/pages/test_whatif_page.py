"""The row explorer's what-if panel under AppTest: edit a value, see the exact explanation of the edited row."""

from __future__ import annotations

import numpy as np
import pytest
import streamlit as st

from core.isolation.workers import close_all_pools
from tests.pages.test_pages import app, arr, charts


@pytest.fixture(autouse=True)
def _fresh_caches():
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    close_all_pools()
    st.cache_resource.clear()


def _titled(at, title):
    return next(c for c in charts(at) if c["layout"].get("title", {}).get("text", "") == title)


def test_editing_a_value_explains_the_edited_row_beside_the_original(monkeypatch):
    monkeypatch.setenv("MODELLENS_BUDGET_SECONDS", "600")
    at = app(row="5").run()
    at.switch_page("pages/row_explorer.py").run()
    assert not at.exception
    inputs = [n for n in at.number_input if str(n.key).startswith("whatif:5:")]
    assert inputs, "the what-if form shows the row's strongest columns"
    assert not any(c["layout"].get("title", {}).get("text", "").startswith("Row 5 edited") for c in charts(at))
    first = inputs[0]
    name = str(first.key).split(":", 2)[2]
    first.set_value(first.value * 3).run()
    assert not at.exception
    original, edited = _titled(at, "Row 5 as it is"), _titled(at, "Row 5 edited")
    shift = _titled(at, "Change in contribution (probability of &#x27;malignant&#x27;)")
    moved = shift["data"][0]
    assert any(label.startswith(name) and "→" in label for label in moved["y"])  # the edited column, old → new
    metric = next(m for m in at.metric if m.label.startswith("Prediction"))
    assert metric.delta and "from" in metric.delta
    before = [t for t in original["data"] if t.get("type") == "waterfall"]
    after = [t for t in edited["data"] if t.get("type") == "waterfall"]
    assert before and after and not np.allclose(arr(before[0]["x"]), arr(after[0]["x"]))
    reset = next(b for b in at.button if b.label == "Reset")
    reset.click().run()
    assert not any(c["layout"].get("title", {}).get("text", "") == "Row 5 edited" for c in charts(at))
