"""Rendering helpers shared by pages: the error boundary, empty states, the model card, safe text."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import streamlit as st

from core.errors import ModelLensError
from core.loading.models import LoadedModel
from ui import state

log = logging.getLogger(__name__)
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def md(text: Any) -> str:
    """User text made inert for st.markdown (markdown and HTML characters escaped)."""
    return _MD_SPECIAL.sub(r"\\\1", str(text))


@contextlib.contextmanager
def guard() -> Iterator[None]:
    """The one place a typed error becomes one sentence on the page (and the script stops)."""
    try:
        yield
    except ModelLensError as exc:
        if getattr(exc, "is_prompt", False):  # nothing went wrong: the user still has to give a file (NeedInput)
            st.info(str(exc), icon=":material/upload_file:")
            st.stop()
        log.info("shown to the user: %s", exc)
        st.error(str(exc), icon=":material/error:")
        st.stop()


def size_label(n_bytes: int) -> str:
    """A file's size as the uploader shows it: ``512 bytes``, ``820 KB``, ``13.5 MB`` (1 KB = 1024 bytes)."""
    if n_bytes < 1024:
        return f"{n_bytes} bytes"
    if n_bytes < 1024**2:
        return f"{n_bytes / 1024:.0f} KB"
    return f"{n_bytes / 1024**2:.1f} MB"


@contextlib.contextmanager
def opening(files: dict[str, int]) -> Iterator[Callable[[str, str], None]]:
    """Acknowledge uploaded files while they are opened: a status box naming each file with its size.

    Yields ``step(what, name)``: ``what`` says what is under way, ``{}`` standing for the file (``"Reading {}"``).
    A typed error marks the box with the step that stopped (the error's own sentence follows, from :func:`guard`).
    """

    def named(name: str) -> str:
        return f"{md(name)} ({size_label(files[name])})"

    everything = " and ".join(named(name) for name in files)
    box = st.status(f"Received {everything}: opening…", expanded=True)
    doing = [f"Opening {everything}"]

    def step(what: str, name: str) -> None:
        doing[0] = what.format(named(name))
        box.update(label=f"{doing[0]}…")

    try:
        with box:
            yield step
    except ModelLensError:
        box.update(label=f"{doing[0]}: stopped, the reason is below.", state="error")
        raise
    box.update(label=f"Opened {everything}.", state="complete", expanded=False)


def empty_state(message: str) -> None:
    """Explain why there is nothing to show and what to do next, then stop the page."""
    st.info(message, icon=":material/info:")
    st.stop()


def model_card(model: LoadedModel, *, compact: bool = False) -> None:
    """The model card: library, class, task, classes, features, pipeline steps, notices."""
    task = {"binary": "binary classification", "multiclass": "multiclass classification"}.get(model.task, "regression")
    st.markdown(f"**{md(model.estimator)}** · {md(model.library)} · {task}")
    if compact:  # the sidebar's reminder; the whole card is on the Overview
        return
    if model.classes:
        st.caption("Classes: " + ", ".join(md(c) for c in model.classes))
    n = model.n_features if model.n_features is not None else "?"
    named = "named columns" if model.feature_names is not None else "unnamed columns (matched by position)"
    st.caption(f"{n} input {named} · file {md(model.filename)} ({md(model.format)}) · sha256 {model.sha256[:12]}…")
    st.caption(f":material/shield: {md(model.isolation)}")
    if model.automl:
        members, featurization = model.automl_tables()
        st.markdown("**Ensemble members** (each explained on its own, then weighted)")
        st.table(members)
        st.markdown("**Featurization** (Azure AutoML's own summary)")
        st.table(featurization)
        return
    if len(model.steps) > 1 or model.steps[0].get("detail"):
        st.table([{"step": s["name"], "class": s["class"], "details": s.get("detail", "")} for s in model.steps])


def notices(items: list[str] | tuple[str, ...]) -> None:
    """Notices about the upload (columns ignored, version skew, target detected)."""
    for item in items:
        st.caption(f":material/info: {md(item)}")


def top_n(label: str, n_features: int, default: int, *, key: str | None = None) -> int:
    """A "features shown" slider that copes with tiny models (no slider below four features)."""
    if n_features <= 3:
        return n_features
    upper = min(40, n_features)
    return int(st.slider(label, 3, upper, min(default, upper), key=key))


def report_toggle(part: str, label: str) -> None:
    """A toggle that pins a group view (``cohorts``, ``errors``, ``diff``) into the HTML report."""
    app = state.get()
    on = st.toggle(label, value=part in app.report_parts, key=f"report_{part}", help="Share & export builds it")
    if on and part not in app.report_parts:
        app.report_parts.append(part)
    elif not on and part in app.report_parts:
        app.report_parts.remove(part)
