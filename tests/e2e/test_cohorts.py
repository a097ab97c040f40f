"""Cohorts, error analysis and the explanation diff in a real browser, on an uploaded model whose errors were
planted in one region: click the error tree's top group to make it a cohort, open a wrong row, then upload a second
table in the sidebar's "Compare with" box and read the diff."""

from __future__ import annotations

import os
import pickle
import re

import pytest
from playwright.sync_api import expect

from tests.conftest import ROOT
from tests.core.test_cohorts import _planted
from tests.e2e.conftest import wait_idle
from tests.e2e.test_dashboard import drawn_charts, upload

SHOTS = os.environ.get("MODELLENS_SCREENSHOTS")  # set to keep screenshots of each view in test-artifacts/


def _shot(page, name: str) -> None:
    if SHOTS:
        (ROOT / "test-artifacts").mkdir(exist_ok=True)
        page.screenshot(path=str(ROOT / "test-artifacts" / f"cohorts-{name}.png"), full_page=True)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    model, frame, target, region = _planted(1500)
    base = tmp_path_factory.mktemp("planted")
    (base / "planted.pkl").write_bytes(pickle.dumps(model))
    frame.assign(target=target).to_csv(base / "loans.csv", index=False)
    later = frame.assign(income=frame["income"] + 12, target=target)  # next month: incomes moved up
    later.to_csv(base / "loans-later.csv", index=False)
    return base, model, frame, region


def _open(page, name: str) -> None:
    page.locator('[data-testid="stSidebarNav"] a', has_text=name).click()
    expect(page.locator("h1").first).to_have_text(name)
    wait_idle(page)


def test_error_tree_click_makes_a_cohort_and_a_wrong_row_opens(server, page, planted):
    base, model, frame, region = planted
    page.set_viewport_size({"width": 1400, "height": 4200})  # every chart of the page on screen (and drawn)
    upload(page, server, base / "planted.pkl", base / "loans.csv")
    _open(page, "Cohorts & errors")
    bars = page.locator(".st-key-error_tree .bars path")
    expect(bars.first).to_be_visible()
    top = page.locator(".st-key-error_tree .ytick text").last.text_content()  # the top bar: the densest errors
    assert "age > 6" in top and "city in {Lyon}" in top
    box = bars.last.bounding_box()  # plotly's drag layer covers the bars: click where the bar is drawn
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    cohort = page.get_by_text(re.compile(r"^node \d+ \(\d+% wrong\)$"))
    expect(cohort).to_be_visible()
    assert "cohort=node" in page.url
    legend = page.locator(".st-key-cohort_importance .legendtext")
    expect(legend).to_have_count(2)
    assert legend.nth(1).text_content().startswith("node ")
    keys = [
        "cohort_importance",
        "cohort_difference",
        "cohort_predictions",
        "cohort_beeswarm",
        "error_tree",
        "error_gap",
    ]
    for key in keys:  # each chart drawn with real marks, none blank
        page.wait_for_function(f"() => document.querySelectorAll('.st-key-{key} .js-plotly-plot .main-svg').length")
        assert drawn_charts(page, key) == 1, key
    _shot(page, "compare")

    grid = page.locator('.st-key-wrong_rows [data-testid="stDataFrame"]')
    grid.scroll_into_view_if_needed()
    expect(grid.locator("canvas").first).to_be_visible()
    grid.click(position={"x": 15, "y": 35 + 17})  # the first wrong row
    expect(page.locator("h1").first).to_have_text("Row explorer")
    title = page.locator(".st-key-waterfall .gtitle", has_text=re.compile(r"^Waterfall for row \d+$"))
    expect(title).to_have_count(1)
    row = int(title.text_content().rsplit(" ", 1)[1])
    assert model.predict(frame.iloc[[row]])[0] != (1 - model.predict(frame.iloc[[row]])[0])  # a real row id
    assert page.locator('[data-testid="stException"]').count() == 0


def test_a_second_table_in_the_sidebar_drives_the_diff(server, page, planted):
    base, *_ = planted
    page.set_viewport_size({"width": 1400, "height": 2400})
    upload(page, server, base / "planted.pkl", base / "loans.csv")
    _open(page, "Explanation diff")
    expect(page.get_by_text("Compare with", exact=False).first).to_be_visible()
    page.locator('[data-testid="stSidebar"] summary', has_text="Compare with").click()
    slot = page.locator('.st-key-other_data_file input[type="file"]')
    slot.set_input_files(str(base / "loans-later.csv"))
    expect(page.locator(".st-key-other_data_file").get_by_role("button", name="Remove loans-later.csv")).to_be_visible()
    shift = page.locator(".st-key-diff_shift .gtitle")
    expect(shift).to_have_text("loans-later.csv minus loans.csv: mean contribution", timeout=90_000)
    wait_idle(page)
    assert page.locator(".st-key-diff_shift .ytick text").last.text_content() == "income"  # largest shift on top
    assert page.locator(".st-key-diff_drift .ytick text").last.text_content() == "income"
    assert drawn_charts(page, "diff_shift") == 1 and drawn_charts(page, "diff_drift") == 1
    _shot(page, "diff")
    assert page.locator('[data-testid="stException"]').count() == 0
