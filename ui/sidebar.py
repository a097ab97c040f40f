"""The shared sidebar: choose a demo or upload, see the model card, pick class / units / target, follow progress."""

from __future__ import annotations

import time

import streamlit as st

from core.classes import default_class_index
from core.data.alignment import Aligned
from core.data.demo import DEMOS
from core.engine.jobs import ExplainJob, describe_eta
from core.errors import ModelLensError
from core.loading.models import LoadedModel
from ui import context, loaders, render, share, state

MODEL_TYPES = ["pkl", "pickle", "joblib", "skops", "json", "ubj", "txt", "cbm", "zip", "z", "gz", "bz2", "xz", "lzma"]
DATA_TYPES = ["csv", "tsv", "txt", "parquet", "pq", "xlsx"]
MODES = ("Demo", "My model")


def render_sidebar(*, page: str = "") -> None:
    """Draw the sidebar and start (or reuse) the explanation; ``page`` is the shown page's url_path."""
    app = state.get()
    app.runs += 1  # the sidebar is drawn once per whole-app run: its timed fragments check they are still current
    st.markdown("## :material/center_focus_strong: ModelLens")
    live = st.container(key="sidebar_live")  # the timed fragments' place, the same in every sidebar: see _stale
    with live:
        st.empty()  # replaces at once what the last run left there ("Opening…"), instead of at the run's end
    if loaders.settings().allow_unsandboxed:
        st.warning(
            "Unsandboxed: this server opens models without the OS sandbox (MODELLENS_ALLOW_UNSANDBOXED). "
            "A file that slips past the allowlist could read or write what the server can. Trusted files only."
        )
    if loaders.settings().trust_pickles:
        st.warning("Trusted mode: pickles load without the safe loader. Only for files you trust, on your own machine.")
    if app.share_id:
        if not _shared_header(app.share_id):
            return
    else:
        _source_picker()
    pair = state.upload_pair()
    if pair is not None and pair not in app.opened:
        with live:
            _opening(pair, app.runs)  # the page opens a new upload, saying so; then the whole app reruns
        return
    try:
        src, model, aligned, _, _ = context.model_and_table()
    except context.NeedInput:
        return  # the page says which file is missing
    except ModelLensError:
        st.caption(":material/error: Not loaded: the reason is on the page.")  # shown once, where people look
        return
    render.model_card(model, compact=True)
    render.notices([*model.notices, *aligned.notices])
    _selectors(model, aligned)
    bar = st.empty()
    try:
        ctx = context.current(
            progress=lambda done, total: bar.progress(
                done / max(total, 1),
                f"Explaining a first sample: {done:,}/{total:,} rows" if total else "Explaining a first sample…",
            ),
            wait=page != "",  # the Overview draws before any row is explained, then starts the job
        )
    except ModelLensError:
        bar.empty()
        st.caption(":material/error: Not explained: the reason is on the page.")
        return
    bar.empty()
    method = ctx.result.method if ctx.result is not None else ctx.explainer.method  # a batch run's, a share's
    st.caption(f"Method: {render.md(method)}")
    with live:
        _progress(ctx.job)
    if not ctx.read_only:
        if not loaders.settings().read_only:  # a read-only server takes no uploads, not even a second one
            _compare_with()
        _share_button(ctx, page)
    state.sync_url(demo_active=src.is_demo)


def _source_picker() -> None:
    app = state.get()
    if loaders.settings().read_only:
        app.use_upload = False
        _demo_picker()
        st.caption("Uploads are off on this server (MODELLENS_READ_ONLY): it shows the demos and share links.")
        return
    mode = st.segmented_control("Explain", MODES, default=MODES[1] if app.use_upload else MODES[0], key="mode")
    app.use_upload = mode == MODES[1]
    if app.use_upload:
        st.file_uploader(
            "Model file",
            type=MODEL_TYPES,
            key="model_file",
            on_change=state.forget_upload,
            args=("model_file",),
            help="pickle / joblib, skops, XGBoost .json/.ubj, LightGBM .txt, CatBoost .cbm, MLflow/AutoML zip",
        )
        st.file_uploader(
            "Data file",
            type=DATA_TYPES,
            key="data_file",
            help="CSV/TSV, Parquet or Excel, with a header row",
            on_change=state.forget_upload,
            args=("data_file",),
        )
    else:
        _demo_picker()


def _demo_picker() -> None:
    app = state.get()
    names = list(DEMOS)
    app.demo = st.selectbox("Demo", names, index=names.index(app.demo), format_func=lambda n: DEMOS[n].title)
    st.caption(DEMOS[app.demo].story)


def _shared_header(share_id: str) -> bool:
    """The read-only banner of a shared view; False (with a clear message) when the link cannot be opened."""
    outcome = loaders.share(share_id)
    if outcome.error is not None:
        st.error(str(outcome.error), icon=":material/link_off:")
        st.button("Start your own analysis", on_click=state.leave_share, type="primary")
        return False
    record = outcome.value.record
    st.info(f"Shared view (read-only): **{render.md(record.title)}**", icon=":material/visibility:")
    st.caption(
        f"Shared {time.strftime('%d %b %Y', time.localtime(record.created))} · "
        f"link valid until {time.strftime('%d %b %Y', time.localtime(record.expires))}"
    )
    st.button("Leave shared view", on_click=state.leave_share)
    return True


def _compare_with() -> None:
    """The second upload slot: a table or a model to diff the explanations against (the Explanation diff page)."""
    from ui.cohorts import OTHER_DATA, OTHER_MODEL

    given = state.uploaded(OTHER_DATA) is not None or state.uploaded(OTHER_MODEL) is not None
    with st.expander("Compare with… (explanation diff)", expanded=given, icon=":material/compare_arrows:"):
        st.caption("A second table on this model, or a second model on this table.")
        for label, key, types, hint in (
            ("Second table", OTHER_DATA, DATA_TYPES, "The same columns, e.g. last month's rows"),
            ("Second model", OTHER_MODEL, MODEL_TYPES, "e.g. a retrained version"),
        ):
            st.file_uploader(label, type=types, key=key, help=hint, on_change=state.forget_upload, args=(key,))
        if state.uploaded(OTHER_DATA) is not None and state.uploaded(OTHER_MODEL) is not None:
            st.caption("Both given: the diff compares the tables; remove the table to compare the models.")


def _share_button(ctx: context.Context, page: str) -> None:
    app = state.get()
    if st.button("Share this view", icon=":material/share:", help="Save model, table and explanations; get a link"):
        with render.guard():
            record = share.create(ctx)
        app.share_link = share.link(record, page=page, row=app.row, class_label=app.class_label)
    if app.share_link:
        st.caption("Anyone with this link sees this view, read-only:")
        st.code(app.share_link, language=None, wrap_lines=True)


def _selectors(model: LoadedModel, aligned: Aligned) -> None:
    app = state.get()
    if aligned.target_name is None and aligned.ignored:
        options = ["(none)", *aligned.ignored]
        pick = st.selectbox(
            "Target column", options, help="Shown as the actual value; enables metrics and permutation importance."
        )
        app.target = None if pick == "(none)" else pick
    classes = model.classes
    if classes:
        labels = [str(c) for c in classes]
        default = (
            labels.index(str(app.class_label))
            if app.class_label is not None and str(app.class_label) in labels
            else default_class_index(labels)
        )
        app.class_label = st.selectbox("Class explained", labels, index=default, key="class_pick")
    else:
        app.class_label = None  # a regressor has no class: a stale ?class= would stay in the link
    outputs = list(model.outputs)
    if len(outputs) > 1:
        current = app.output if app.output in outputs else outputs[0]
        app.output = st.segmented_control("Units", outputs, default=current, key="output_pick") or current


def _stale(run: int) -> bool:
    """Whether a timed fragment drawn by whole-app run ``run`` is no longer in the sidebar.

    Streamlit forgets a fragment only when a whole-app run ends normally; a run that ends in ``st.stop()`` (a page
    asking for a file, a shown error) keeps the last run's fragments, and a timer tick queued during that run then
    draws the fragment at its old place, which the new sidebar may no longer have: the browser fails with "Bad
    delta path index" and the app goes blank (issue 20's lost uploads, switching to "My model" while the demo's
    rows were being explained). So both are drawn in one container right below the sidebar's title, which every
    sidebar has (a fragment run re-sends its block at its old place: an empty block there is harmless), and a
    stale fragment draws nothing in it.
    """
    return run != state.get().runs


@st.fragment(run_every=0.5)
def _opening(pair: str, run: int) -> None:
    """While the page opens the uploaded files (naming them, with their sizes), then rerun with the sidebar whole."""
    if _stale(run):
        return
    if pair in state.get().opened or state.upload_pair() != pair:
        st.rerun()
    st.caption(":material/hourglass_top: Opening the uploaded files: the page shows each step.")


@st.fragment(run_every=1.0)
def _live_progress(job: ExplainJob, run: int) -> None:
    if _stale(run):
        return
    status = job.status()
    if status.state == "pending":
        return  # the Overview starts the job once it has drawn: a later tick shows it
    ticked = st.session_state.get("_live_progress_run") == run  # else: drawn by the whole-app run itself
    st.session_state["_live_progress_run"] = run
    if not status.running:
        if ticked:
            st.rerun()  # a tick saw the job end: the whole app redraws with every row
        return  # the whole-app run drawing it already sees the end: a rerun here would drop its widget events
    st.progress(status.done / max(status.total, 1), text=f"Explaining every row: {describe_eta(status)}")
    st.button(
        "Cancel", on_click=job.cancel, key="cancel_job", help="Stop after the current chunk; every row explained stays."
    )


def _progress(job: ExplainJob) -> None:
    status = job.status()
    if status.running or status.state == "pending":  # pending: the Overview starts it at the end of this run
        _live_progress(job, state.get().runs)
    elif status.state in ("cancelled", "failed"):
        if status.state == "cancelled":
            st.caption(
                f"Stopped at {status.done:,} of {status.total:,} rows: pages use the {status.done:,} rows explained."
            )
        elif status.message:
            st.warning(status.message)
        if 0 < status.done < status.total:  # Resume explains only the rows still missing
            st.button("Resume", on_click=job.resume, key="resume_job", icon=":material/play_arrow:")
