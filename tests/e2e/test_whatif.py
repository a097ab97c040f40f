"""What-if in a real browser: edit a value of an uploaded pipeline's row, read the edited waterfall, pin the
scenario and open it from a share link as a stakeholder."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from core.present.figures import format_number
from tests.e2e.conftest import wait_idle
from tests.e2e.test_dashboard import upload


def _prediction(page, title: str) -> str:
    heading = page.locator(".gtitle", has_text=re.compile(rf"^{re.escape(title)}$"))
    plot = page.locator(".js-plotly-plot").filter(has=heading)
    expect(plot).to_have_count(1, timeout=90_000)
    return plot.locator(".annotation-text", has_text="prediction").text_content()


def test_edit_a_row_see_its_exact_waterfall_and_share_the_scenario(server, page, browser, uploads):
    base, model, frame = uploads
    upload(page, server, base / "churn.pkl", base / "customers.csv")
    page.locator('[data-testid="stSidebarNav"] a', has_text="Row explorer").click()
    grid = page.locator('.st-key-table [data-testid="stDataFrame"]')
    expect(grid.locator("canvas").first).to_be_visible()
    grid.click(position={"x": 15, "y": 35 * (4 + 1) + 17})
    wait_idle(page)
    # the background pass over every row ends with a rerun: let it land first, or it may redraw the form mid-edit
    expect(page.get_by_text(re.compile(r"^Explaining every row"))).to_have_count(0, timeout=90_000)
    wait_idle(page)
    page.get_by_text("What if… edit this row").click()
    age = page.get_by_role("spinbutton", name="age")
    for _ in range(3):
        # An edit typed while a rerun redraws the form can be lost (seen 2 times in 3 runs here, before this
        # stop's changes too: a known defect of the form, not what this test checks), so a lost edit is typed again
        expect(age).to_be_visible()
        age.click()
        age.press("Control+A")
        age.type("79")
        age.press("Enter")
        wait_idle(page)
        page.wait_for_timeout(1000)  # noqa: PLR2004 - not a timing check: a rerun that would undo the edit lands
        wait_idle(page)
        if age.input_value() == "79":
            break
    edited = frame.iloc[[4]].assign(age=79.0)
    expected = model.predict_proba(edited)[0, 1]
    assert _prediction(page, "Row 4 edited") == f"prediction {format_number(expected)}"  # the model's own output
    page.get_by_role("button", name="Pin this scenario").click()
    wait_idle(page)
    page.get_by_role("button", name="Share this view").click()
    code = page.locator('[data-testid="stSidebar"] [data-testid="stCode"]')
    expect(code).to_be_visible()
    link = code.inner_text().strip()

    other = browser.new_context(viewport={"width": 1400, "height": 1400})  # a stakeholder: no uploads, no session
    try:
        viewer = other.new_page()
        viewer.goto(link)
        expect(viewer.locator("h1").first).to_have_text("Row explorer", timeout=90_000)
        assert _prediction(viewer, "Row 4 edited") == f"prediction {format_number(expected)}"
        expect(viewer.get_by_role("spinbutton", name="age")).to_have_value("79")
        expect(viewer.get_by_text("Shared view (read-only)")).to_be_visible()
    finally:
        other.close()
