"""Issue 19's first-hour dashboard items under AppTest: the report's title, the pinned rows, a beeswarm click
landing on its row in the table, uploads acknowledged while they are read, Resume after Cancel."""

from __future__ import annotations

import html
import pickle
import time

import numpy as np
import pandas as pd
import pytest
from sklearn.neighbors import KNeighborsClassifier
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

from core.data.demo import DEMOS
from tests.core import zoo
from tests.pages.test_pages import _fresh_caches, app, arr, chart, upload  # noqa: F401 - _fresh_caches is an autouse fixture

HOSTILE_TITLE = 'Churn <script>alert("x")</script> & <b>Q3</b>'


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """The bytes each download button handed to Streamlit's media storage, by file name (a spy, not a stand-in)."""
    seen: dict[str, bytes] = {}
    original = MemoryMediaFileStorage.load_and_get_id

    def record(self, path_or_data, mimetype, kind, filename=None):
        if filename and isinstance(path_or_data, bytes):
            seen[filename] = path_or_data
        return original(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", record)
    return seen


def _build_report(at) -> None:
    next(b for b in at.button if b.label == "Build report").click().run()
    assert not at.exception
    assert "Download report (HTML)" in {b.label for b in at.get("download_button")}


def _title_and_heading(report: bytes) -> tuple[str, str]:
    text = report.decode()
    return text.split("<title>", 1)[1].split("</title>", 1)[0], text.split("<h1>", 1)[1].split("</h1>", 1)[0]


def test_the_report_takes_the_typed_title_escaped_once_and_a_share_keeps_it(downloads):
    at = app().run()
    at.switch_page("pages/share.py").run()
    field = next(t for t in at.text_input if t.label == "Title")
    assert field.value == DEMOS["breast-cancer"].title  # the demo's label until the user types one
    field.set_value(HOSTILE_TITLE).run()  # typed, not submitted: the report still uses it
    _build_report(at)
    escaped = html.escape(HOSTILE_TITLE, quote=True)
    assert _title_and_heading(downloads["modellens-report.html"]) == (escaped, escaped)
    assert "<script>alert" not in downloads["modellens-report.html"].decode()

    next(b for b in at.button if b.label == "Create link").click().run()
    params = dict(part.split("=", 1) for part in at.code[0].value.split("?", 1)[1].split("&"))
    downloads.clear()
    shared = app(**params).run()  # a new session on the link, read-only
    shared.switch_page("pages/share.py").run()
    assert not any(t.label == "Title" for t in shared.text_input)
    _build_report(shared)
    assert _title_and_heading(downloads["modellens-report.html"]) == (escaped, escaped)


def test_without_a_typed_title_the_report_is_named_after_what_it_explains(downloads):
    at = app().run()
    at.switch_page("pages/share.py").run()
    _build_report(at)
    label = html.escape(DEMOS["breast-cancer"].title)
    assert _title_and_heading(downloads["modellens-report.html"]) == (label, label)


def _waterfall_title(at) -> str:
    return chart(at, "Waterfall")["layout"]["title"]["text"]


def _pinned_lines(at) -> dict[int, str]:
    lines = [m.value for m in at.markdown if m.value.startswith("**Row ")]
    return {int(line.removeprefix("**Row ").split("**", 1)[0]): line for line in lines}


def test_pinned_rows_are_listed_with_their_prediction_and_open_and_unpin():
    at = app(row="3").run()
    at.switch_page("pages/row_explorer.py").run()
    assert not _pinned_lines(at)  # nothing pinned: no list
    next(b for b in at.button if b.label == "Pin for report").click().run()
    next(b for b in at.button if b.label == "Next").click().run()
    next(b for b in at.button if b.label == "Pin for report").click().run()
    assert _waterfall_title(at) == "Waterfall for row 4"
    listed = _pinned_lines(at)
    assert sorted(listed) == [3, 4] and at.session_state["app"].pinned == [3, 4]
    assert "(shown)" in listed[4] and "(shown)" not in listed[3]
    at.button(key="open_pinned_3").click().run()
    assert _waterfall_title(at) == "Waterfall for row 3"
    texts = [a["text"] for a in chart(at, "Waterfall")["layout"]["annotations"]]
    predicted = next(t for t in texts if t.startswith("<b>prediction ")).removeprefix("<b>prediction ").split("<")[0]
    assert f"prediction {predicted} (probability of" in _pinned_lines(at)[3].replace("\\", "")
    at.button(key="unpin_4").click().run()
    assert sorted(_pinned_lines(at)) == [3] and at.session_state["app"].pinned == [3]
    assert _waterfall_title(at) == "Waterfall for row 3"


def _table_shows(at, row: int) -> None:
    """The row table is on the page holding ``row`` (500 rows a page) with that row selected."""
    shown = at.dataframe[0].value
    position = at.session_state["table"]["selection"]["rows"]
    assert [int(shown["row"].iloc[p]) for p in position] == [row]
    assert at.number_input(key="row_page").value == row // 500 + 1
    where = f"Row {row} is selected (row {row % 500 + 1:,} of this page): scroll the table to see it."
    assert [c.value for c in at.main.caption if c.value.startswith(f"Row {row} ")] == (
        [where] if row % 500 >= 7 else []
    )


def test_a_beeswarm_click_turns_the_row_table_to_the_page_holding_the_row(monkeypatch):
    # the first sample is the whole table: no background pass ends mid-test with a rerun, which AppTest would
    # send to the page it last switched to (the beeswarm), not to the one the script switched to
    monkeypatch.setenv("MODELLENS_BUDGET_SECONDS", "600")
    at = app().run()
    at.switch_page("pages/beeswarm.py").run()
    assert not at.exception
    at.session_state["bees"] = {
        "selection": {
            "points": [{"customdata": [542, "worst radius", "15"]}],
            "point_indices": [0],
            "box": [],
            "lasso": [],
        }
    }
    at.run()
    assert at.title[0].value == "Row explorer" and at.query_params["row"] == "542"
    assert _waterfall_title(at) == "Waterfall for row 542"
    _table_shows(at, 542)
    at.switch_page("pages/row_explorer.py")  # where the browser now is (AppTest would rerun the beeswarm)
    at.number_input(key="row_page").set_value(1).run()  # paging away afterwards is the user's choice
    assert at.number_input(key="row_page").value == 1 and _waterfall_title(at) == "Waterfall for row 542"
    at.session_state["table"] = {"selection": {"rows": [9], "columns": [], "cells": []}}
    at.run()
    assert _waterfall_title(at) == "Waterfall for row 9"


def test_a_deep_link_and_next_keep_the_table_on_the_shown_row():
    at = app(row="499").run()
    at.switch_page("pages/row_explorer.py").run()
    _table_shows(at, 499)
    next(b for b in at.button if b.label == "Next").click().run()
    assert _waterfall_title(at) == "Waterfall for row 500"
    _table_shows(at, 500)


def _sidebar_keys(at) -> set[str]:
    return {b.key for b in at.sidebar.button if b.key}


def _run_until(at, key: str, *, seconds: float = 240) -> None:
    """Rerun (as the sidebar's progress fragment does every second) until the sidebar shows button ``key``."""
    deadline = time.monotonic() + seconds
    while key not in _sidebar_keys(at):
        assert time.monotonic() < deadline, f"no {key} button in time"
        time.sleep(0.5)
        at.run()


def test_cancel_keeps_the_rows_explained_and_resume_explains_the_rest():
    # exact Shapley over 64 coalitions of a k-NN: the pass over 800 rows takes seconds, so Cancel lands mid-pass
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(800, 6)), columns=[f"x{i}" for i in range(6)])
    model = KNeighborsClassifier(15).fit(frame, (frame.x0 + frame.x1 > 0).astype(int))
    at = upload(app(), pickle.dumps(model), frame.to_csv(index=False).encode())
    assert not at.exception and not at.error
    _run_until(at, "cancel_job")
    at.sidebar.button(key="cancel_job").click().run()
    _run_until(at, "resume_job")
    stopped = next(c.value for c in at.sidebar.caption if c.value.startswith("Stopped at "))
    done = int(stopped.removeprefix("Stopped at ").split(" ", 1)[0].replace(",", ""))
    assert 0 < done < 800 and stopped == f"Stopped at {done:,} of 800 rows: pages use the {done:,} rows explained."
    at.switch_page("pages/beeswarm.py").run()  # the pages use every finished row, not only the first sample
    assert f"computed on {done:,} of 800 rows" in chart(at, "Beeswarm")["layout"]["title"]["text"]
    assert "resume_job" in _sidebar_keys(at)  # a page that needs SHAP values does not restart the pass itself

    at.sidebar.button(key="resume_job").click().run()
    deadline = time.monotonic() + 300
    while "all 800 rows" not in chart(at, "Beeswarm")["layout"]["title"]["text"]:
        assert time.monotonic() < deadline and "resume_job" not in _sidebar_keys(at)
        time.sleep(0.5)
        at.run()
    bees = chart(at, "Beeswarm")
    assert sum(len(arr(t["x"])) for t in bees["data"]) == 6 * 800  # every row once
    assert not any(c.value.startswith("Stopped at ") for c in at.sidebar.caption)


@pytest.fixture(scope="module")
def churn_upload() -> tuple[bytes, bytes]:
    model, frame = zoo.builders()["pipe_rf"]()
    return pickle.dumps(model), frame.assign(churn=model.predict(frame)).to_csv(index=False).encode()


def _kb(data: bytes) -> str:
    return f"{round(len(data) / 1024)} KB"


def test_an_upload_is_acknowledged_by_name_and_size_while_it_opens(churn_upload):
    model, data = churn_upload
    assert 1024 < len(model) < 1024**2 and 1024 < len(data) < 1024**2  # sizes in KB below
    at = upload(app(), model, None, names=("churn model.pkl", "customers.csv"))
    assert not at.exception and not at.error  # a missing file is a prompt, not an error, and says what came
    assert [i.value for i in at.info] == [
        f"Received churn model.pkl ({_kb(model)}). Upload a data file (CSV, Parquet or Excel) in the sidebar to "
        "explain your own model, or switch back to a demo."
    ]
    at.sidebar.file_uploader(key="data_file").set_value(("customers.csv", data, "text/csv")).run()
    # the run that opens the pair: the page names both files with their sizes; the sidebar waits for it
    assert not at.exception and not at.error and not at.info
    box = at.main.status[0]
    assert box.state == "complete"
    assert box.label.replace("\\", "") == f"Opened churn model.pkl ({_kb(model)}) and customers.csv ({_kb(data)})."
    assert any("Opening the uploaded files" in c.value for c in at.sidebar.caption)
    assert chart(at, "Predictions")  # the Overview drew in the same run
    at.run()  # the sidebar's wait ends (every half second in a browser): the whole sidebar, no box any more
    assert not at.main.status and not any("Opening the uploaded files" in c.value for c in at.sidebar.caption)
    assert any("RandomForestClassifier" in m.value for m in at.sidebar.markdown)


def test_a_file_that_cannot_be_read_is_named_once(churn_upload):
    broken = b"\x00\x01 not a table \x00" * 100
    at = upload(app(), churn_upload[0], broken, names=("model.pkl", "broken.csv"))
    assert not at.exception
    box = at.main.status[0]
    assert (
        box.state == "error"
        and box.label.replace("\\", "") == f"Reading broken.csv ({_kb(broken)}): stopped, the reason is below."
    )
    assert len(at.error) == 1 and "'broken.csv'" in at.error[0].value
    at.run()  # later runs: the reason once, on the page; the sidebar points to it
    assert not at.main.status and len(at.error) == 1 and "'broken.csv'" in at.error[0].value
