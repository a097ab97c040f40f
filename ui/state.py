"""Typed session state: one dataclass under one key, synced with the URL's query parameters.

The URL carries what a link must reopen: ``row``, ``class``, ``output``, ``view``, ``demo``, the share id
``s`` and each named cohort (``cohort=NAME=QUERY``, repeated). It is read once per session (deep links) and
written on every run, so reloading or pasting the URL reopens the same view. Choices live here; computed
results never do (they are cached in ui/loaders.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from core.data.demo import DEMOS

__all__ = [
    "REPORT_PARTS",
    "AppState",
    "adopt_share_settings",
    "parse_cohort_param",
    "follow_start_page",
    "forget_upload",
    "get",
    "leave_share",
    "set_row",
    "sync_url",
    "upload_pair",
    "uploaded",
]

KEY = "app"
DEFAULT_DEMO = "breast-cancer"
URL_KEYS = ("s", "demo", "row", "class", "output", "view", "cohort")
REPORT_PARTS = ("cohorts", "errors", "diff")  # group views a user can pin into the report


@dataclass
class AppState:
    """The user's choices in this session."""

    demo: str = DEFAULT_DEMO
    use_upload: bool = False
    share_id: str | None = None
    target: str | None = None
    class_label: str | None = None
    output: str = "auto"
    view: str = "raw"
    row: int | None = None
    pinned: list[int] = field(default_factory=list)
    adopted_share: str | None = None
    start_page: str | None = None
    scenarios: list[dict[str, Any]] = field(default_factory=list)  # pinned what-ifs: {"row", "changes", "class"}
    share_link: str | None = None  # the last link this session created (shown until a new one)
    report: tuple[object, str] | None = None  # (what it shows, the HTML): survives reruns
    cohorts: list[dict[str, str]] = field(default_factory=list)  # named cohorts: {"name", "query"}
    report_parts: list[str] = field(default_factory=list)  # group views pinned for the report (REPORT_PARTS)
    cohort_pair: tuple[str, str] | None = None  # the two cohorts whose difference is drawn (first, second)
    uploads: dict[str, Any] = field(default_factory=dict)  # uploader key -> its file (see :func:`uploaded`)
    titles: dict[str, str] = field(default_factory=dict)  # "model:data" digests -> the title typed for them
    opened: set[str] = field(default_factory=set)  # upload pairs opened (or refused) once: see :func:`upload_pair`
    runs: int = 0  # whole-app runs so far (fragment reruns not counted): see ui.sidebar.current_run


def parse_cohort_param(text: str) -> dict[str, str] | None:
    """``NAME=QUERY`` (the URL's form of a cohort) as {"name", "query"}, or None when it has no name."""
    name, sep, query = text.partition("=")
    return {"name": name.strip(), "query": query.strip()} if sep and name.strip() else None


def _from_url(state: AppState) -> None:
    params = st.query_params
    if params.get("demo") in DEMOS:
        state.demo = params["demo"]
    state.share_id = params.get("s") or None
    state.class_label = params.get("class") or None
    state.output = params.get("output") or "auto"
    state.view = "engineered" if params.get("view") == "engineered" else "raw"
    row = params.get("row")
    state.row = int(row) if row is not None and row.isdigit() else None
    state.start_page = params.get("page") or None
    state.cohorts = [c for c in map(parse_cohort_param, params.get_all("cohort")[:20]) if c is not None]


def get() -> AppState:
    """This session's state (created from the URL on first access)."""
    if KEY not in st.session_state:
        state = AppState()
        _from_url(state)
        st.session_state[KEY] = state
    return st.session_state[KEY]


def uploaded(key: str) -> Any:
    """The file in the sidebar uploader ``key``, surviving a page switch a script makes.

    ``st.switch_page`` from a script (a beeswarm click, a wrong row) resets every widget's state on the server,
    although the browser still shows the files: the last file each uploader gave is kept here, and dropped only
    when the user removes it (:func:`forget_upload`, the uploader's ``on_change``).
    """
    app = get()
    value = st.session_state.get(key)
    if value is not None:
        app.uploads[key] = value
        return value
    return app.uploads.get(key)


def upload_pair() -> str | None:
    """The uploaded model and table as one key (their upload ids), None unless both are given in upload mode.

    The first run that opens a pair does it on the page, saying so with the files' names and sizes
    (:func:`ui.render.opening`); the sidebar waits for it (it would otherwise open them unseen, the page
    still showing the last run's "upload a data file" prompt) and the app reruns once they are open.
    """
    model, data = uploaded("model_file"), uploaded("data_file")
    if not get().use_upload or model is None or data is None:
        return None
    return f"{model.file_id}:{data.file_id}"


def forget_upload(key: str) -> None:
    """An uploader's ``on_change``: keep its new file, or forget the old one when the user removed it."""
    value = st.session_state.get(key)
    if value is None:
        get().uploads.pop(key, None)
    else:
        get().uploads[key] = value


def set_row(row: int | None) -> None:
    """Select a row (the row explorer shows it; the URL records it)."""
    get().row = row


def sync_url(*, demo_active: bool) -> None:
    """Write the state's shareable parts to the URL (only keys whose value changed)."""
    state = get()
    wanted = {
        "s": state.share_id,
        "demo": state.demo if demo_active and state.demo != DEFAULT_DEMO else None,
        "row": str(state.row) if state.row is not None else None,
        "class": state.class_label,
        "output": state.output if state.output != "auto" else None,
        "view": state.view if state.view != "raw" else None,
    }
    cohorts = [f"{c['name']}={c['query']}" for c in state.cohorts]
    if st.query_params.get_all("cohort") != cohorts:
        st.query_params["cohort"] = cohorts  # type: ignore[assignment]  # a list: one parameter per cohort
    for key, value in wanted.items():
        if value is None:
            if key in st.query_params:
                del st.query_params[key]
        elif st.query_params.get(key) != value:
            st.query_params[key] = value


def adopt_share_settings(share_id: str, settings: dict[str, object]) -> None:
    """Apply a share's saved settings once (the link's own row / class parameters win)."""
    state = get()
    if state.adopted_share == share_id:
        return
    state.adopted_share = share_id
    state.output = str(settings.get("output") or state.output)
    state.target = settings.get("target") or None  # type: ignore[assignment]
    state.view = str(settings.get("view") or state.view)
    if state.class_label is None and settings.get("class_label") is not None:
        state.class_label = str(settings["class_label"])
    if state.row is None and isinstance(settings.get("row"), int):
        state.row = int(settings["row"])  # type: ignore[arg-type]
    state.pinned = [int(r) for r in settings.get("pinned") or []]  # type: ignore[union-attr]
    state.scenarios = [dict(s) for s in settings.get("scenarios") or [] if isinstance(s, dict)]  # type: ignore[union-attr]
    saved = [c for c in settings.get("cohorts") or [] if isinstance(c, dict)]  # type: ignore[union-attr]
    if saved and not state.cohorts:
        state.cohorts = [{"name": str(c.get("name", "")), "query": str(c.get("query", ""))} for c in saved]
    parts = [p for p in settings.get("report_parts") or [] if p in REPORT_PARTS]  # type: ignore[union-attr]
    state.report_parts = parts


def leave_share() -> None:
    """Back from a shared view to the user's own (demo or uploads)."""
    state = get()
    state.share_id = state.adopted_share = None
    state.row, state.class_label, state.output, state.target = None, None, "auto", None


def follow_start_page(pages: dict[str, object]) -> None:
    """Open the page a link names (``?page=rows``) once per session."""
    state = get()
    target, state.start_page = state.start_page, None
    if target and target in pages:
        params = {k: v for k, v in st.query_params.to_dict().items() if k != "page"}
        st.switch_page(pages[target], query_params=params)  # type: ignore[arg-type]
