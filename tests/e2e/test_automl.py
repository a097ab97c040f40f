"""An Azure AutoML model.pkl uploaded in the browser: its card, its method, and a row's exact waterfall."""

from __future__ import annotations

import re

import numpy as np
import pytest
from playwright.sync_api import expect

from core.present.figures import format_number
from tests.e2e.conftest import wait_idle
from tests.e2e.test_dashboard import drawn_charts, upload_files

pytestmark = pytest.mark.automl


def test_upload_an_automl_model_and_see_an_exact_waterfall(server, page, automl_models):
    folder = automl_models["binary_int"]
    upload_files(page, server, folder / "model.pkl", folder / "data.csv")
    expect(page.get_by_text(re.compile(r"Method: Azure AutoML ensemble"))).to_be_visible(timeout=60_000)
    wait_idle(page)
    expect(page.get_by_text("Ensemble members", exact=False)).to_be_visible()
    main = page.get_by_test_id("stMainBlockContainer")
    expect(main.get_by_text(re.compile(r"Azure AutoML model \(runtime 1\.62\.0, Python 3\.10"))).to_be_visible()

    page.locator('[data-testid="stSidebarNav"] a', has_text="Row explorer").click()
    expect(page.locator(".st-key-waterfall .gtitle", has_text=re.compile(r"^Waterfall for row 0$"))).to_have_count(1)
    expected = np.load(folder / "expected_output.npy")[0, 1]  # class 1, computed by the AutoML runtime itself
    shown = page.locator(".st-key-waterfall .annotation-text", has_text=f"prediction {format_number(expected)}")
    expect(shown).to_have_count(1)
    assert drawn_charts(page, "waterfall") == 1
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.page_errors == []
