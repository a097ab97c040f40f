"""Share links: save the current session to the store and build the link that reopens it."""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit, urlunsplit

import streamlit as st

from core.store import ShareRecord
from ui import auth, loaders, state
from ui.context import Context

PAGE_PATHS = ("importance", "beeswarm", "rows", "cohorts", "diff", "share")


def base_url() -> str:
    """The app's root URL as the browser sees it (page path and query removed)."""
    url = st.context.url or "http://localhost:8501/"
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    for page in PAGE_PATHS:
        if path.endswith("/" + page):
            path = path[: -len(page) - 1]
    return urlunsplit((parts.scheme, parts.netloc, path + "/", "", ""))


def link(record: ShareRecord, *, page: str = "", row: int | None = None, class_label: str | None = None) -> str:
    """``<root>/?s=<id>&page=…&row=…&class=…`` (the share's settings hold its cohorts)."""
    params = {"s": record.id}
    if page:
        params["page"] = page
    if row is not None:
        params["row"] = str(row)
    if class_label is not None:
        params["class"] = str(class_label)
    return base_url() + "?" + urlencode(params)


def view_title(ctx: Context) -> str:
    """The title of this view's share links and report: the one the user typed, else the source's label.

    A shared view keeps its share's title (its source's label); typed titles belong to one model and table.
    """
    typed = "" if ctx.read_only else state.get().titles.get(f"{ctx.model_key}:{ctx.data_key}", "")
    return typed or ctx.source.label


def title_input(ctx: Context) -> str:
    """The title field of the Share & export page (outside the share form, so the report sees it unsubmitted)."""
    typed = st.text_input("Title", value=view_title(ctx), max_chars=200, help="Names the share link and the report.")
    titles, key = state.get().titles, f"{ctx.model_key}:{ctx.data_key}"
    if typed.strip() and typed != ctx.source.label:
        titles[key] = typed
    else:
        titles.pop(key, None)
    return view_title(ctx)


def create(ctx: Context, *, title: str = "", days: float | None = None) -> ShareRecord:
    """Save model, table, settings and the explanations computed so far; return the share's record."""
    app = state.get()
    settings = {
        "output": ctx.explainer.output,
        "target": app.target,
        "class_label": app.class_label,
        "view": app.view,
        "row": app.row,
        "pinned": list(app.pinned),
        "scenarios": list(app.scenarios),
        "cohorts": [dict(c) for c in app.cohorts],
        "report_parts": list(app.report_parts),
    }
    result = ctx.job.result
    return loaders.store().save(
        model=ctx.source.model_bytes,
        model_name=ctx.source.model_name,
        data=ctx.source.data_bytes,
        data_name=ctx.source.data_name,
        settings=settings,
        result=result.to_bytes() if result is not None else None,
        title=title or view_title(ctx),
        owner=auth.current_user(),
        days=days,
    )
