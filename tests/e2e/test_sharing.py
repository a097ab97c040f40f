"""Sharing in a real browser: a link opened in a fresh context shows the same view read-only; the HTML report
opens with the network disabled and draws its charts."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from playwright.sync_api import expect

from tests.conftest import ROOT
from tests.e2e.conftest import wait_idle
from tests.e2e.test_dashboard import upload


def waterfall_prediction(page, row: int) -> str:
    """The prediction annotation of the waterfall titled for this row (the old chart may linger in a rerun)."""
    title = page.locator(".gtitle", has_text=re.compile(rf"^Waterfall for row {row}$"))
    plot = page.locator(".st-key-waterfall .js-plotly-plot").filter(has=title)
    expect(plot).to_have_count(1, timeout=90_000)
    return plot.locator(".annotation-text", has_text="prediction").text_content()


def test_upload_pick_a_row_share_and_open_the_link_elsewhere(server, page, browser, uploads):
    base, model, frame = uploads
    upload(page, server, base / "churn.pkl", base / "customers.csv")
    page.locator('[data-testid="stSidebarNav"] a', has_text="Row explorer").click()
    grid = page.locator('.st-key-table [data-testid="stDataFrame"]')
    expect(grid.locator("canvas").first).to_be_visible()
    grid.click(position={"x": 15, "y": 35 * (4 + 1) + 17})
    prediction = waterfall_prediction(page, 4)
    page.get_by_role("button", name="Share this view").click()
    code = page.locator('[data-testid="stSidebar"] [data-testid="stCode"]')
    expect(code).to_be_visible()
    link = code.inner_text().strip()
    assert re.search(r"[?&]s=[A-Za-z0-9_-]{32}", link) and "page=rows" in link and "row=4" in link

    other = browser.new_context(viewport={"width": 1400, "height": 1100})  # a stakeholder: no uploads, no session
    try:
        viewer = other.new_page()
        viewer.goto(link)
        expect(viewer.locator("h1").first).to_have_text("Row explorer", timeout=90_000)
        assert waterfall_prediction(viewer, 4) == prediction
        expect(viewer.get_by_text("Shared view (read-only)")).to_be_visible()
        assert viewer.locator('[data-testid="stFileUploader"]').count() == 0
        assert viewer.locator(".st-key-mode").count() == 0
    finally:
        other.close()


def test_html_report_opens_offline_and_draws_its_charts(browser, uploads, tmp_path):
    base, model, frame = uploads
    out = tmp_path / "report.html"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "core.cli",
            "report",
            str(base / "churn.pkl"),
            str(base / "customers.csv"),
            "--rows",
            "3,17",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    html = out.read_text()
    assert "<script src=" not in html and "<link " not in html  # plotly.js inlined; no external files
    context = browser.new_context()
    try:
        page = context.new_page()
        blocked: list[str] = []
        page.route(re.compile(r"^(?!file:).*"), lambda route: (blocked.append(route.request.url), route.abort()))
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(out.as_uri())
        page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot .main-svg').length >= 6")
        assert page.locator(".gtitle", has_text="Waterfall for row 3").count() == 1
        assert page.locator(".gtitle", has_text="Waterfall for row 17").count() == 1
        assert page.locator(".bars path").count() > 0
        assert errors == [] and blocked == []
    finally:
        context.close()


def test_share_page_downloads_a_report_and_shap_values_that_add_up(server, page):
    page.goto(f"{server.url}/share?row=12")
    expect(page.locator("h1").first).to_have_text("Share & export", timeout=90_000)
    expect(page.get_by_role("button", name="CSV")).to_be_visible(timeout=90_000)  # the whole page has run
    wait_idle(page)
    page.get_by_role("button", name="Build report").click()
    with page.expect_download(timeout=90_000) as report:
        page.get_by_role("button", name="Download report (HTML)").click()
    html = Path(report.value.path()).read_text()
    assert "Waterfall for row 12" in html and "<script src=" not in html

    with page.expect_download(timeout=60_000) as csv:
        page.get_by_role("button", name="CSV").click()
    table = pd.read_csv(csv.value.path())
    contributions = table.filter(like="shap:")
    assert len(table) >= 20 and contributions.shape[1] == 30  # the breast-cancer demo: 30 columns
    np.testing.assert_allclose(
        table["base_value"] + contributions.sum(axis=1), table["prediction"], rtol=1e-6, atol=1e-12
    )
    assert page.locator('[data-testid="stException"]').count() == 0
