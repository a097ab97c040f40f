"""Issue 19's first-hour dashboard items under AppTest: the report's title, the pinned rows, a beeswarm click
landing on its row in the table, uploads acknowledged while they are read, Resume after Cancel."""

from __future__ import annotations

import html

import pytest
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

from core.data.demo import DEMOS
from tests.pages.test_pages import _fresh_caches, app, chart  # noqa: F401 - _fresh_caches is an autouse fixture

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
