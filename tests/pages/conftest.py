"""AppTest runs every script run with a fresh PagesManager that re-detects the pages/ folder and switches
to Streamlit's legacy folder navigation (running a page without app.py). The dashboard never runs that
way (`modellens serve` pins the flag, and app.py calls st.navigation); pin it here the same way."""

from __future__ import annotations

import pytest
from streamlit.runtime.pages_manager import PagesManager


@pytest.fixture(autouse=True)
def _navigation_v2(monkeypatch: pytest.MonkeyPatch) -> None:
    original = PagesManager.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init)
