"""Group views in the dashboard: named cohorts (their editor and comparison), the error analysis, the diff.

The numbers come from :mod:`core.cohorts` through the caches in :mod:`ui.loaders`; this module reads widgets
and state and hands plain values to core. Cohorts live in :class:`ui.state.AppState` (and so in the URL and in
share links); the second upload of the explanation diff lives in the sidebar's "Compare with" box.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
import streamlit as st

from core.classes import class_index
from core.cohorts.compare import EVERYONE, CohortComparison, cohort_mask
from core.cohorts.diff import ExplanationDiff, models_diff, tables_diff
from core.cohorts.errortree import ErrorAnalysis
from core.data.metrics import headline_metrics, metric_output, prediction_column
from core.data.rows import example_query, rows_table
from core.errors import DataError
from core.explanation import Explanation
from core.loading.models import LoadedModel
from core.present.cohort_figures import (
    cohort_beeswarm_figure,
    cohort_importance_figure,
    cohort_prediction_figure,
    error_tree_figure,
    interval_figure,
)
from core.present.report import GroupSection, cohort_section, diff_section, error_section
from ui import context, loaders, render, selection, state

MAX_COHORTS = 8
NAME_CHARS = 40
OTHER_DATA, OTHER_MODEL = "other_data_file", "other_model_file"  # the sidebar's "Compare with" uploads


@dataclass(frozen=True, eq=False)
class Inputs:
    """What the group views read: the searchable table of every row, the scores metrics use, the explanation."""

    table: pd.DataFrame
    scores: Any
    expl: Explanation
    units: str


def search_table(ctx: context.Context, output: str) -> pd.DataFrame:
    """The row explorer's table of every row (row, prediction in the shown units, actual, inputs)."""
    keys = (ctx.model_key, ctx.data_key, state.get().target)
    shown = loaders.predictions(*keys, output, ctx.model, ctx.aligned).unwrap()
    units = ctx.prediction_units()
    return rows_table(
        ctx.aligned.frame, prediction_column(shown, ctx.model.classes, ctx.class_label), units, ctx.aligned.target
    )


def inputs(ctx: context.Context) -> Inputs:
    """Build :class:`Inputs` (raises typed errors: call inside ``render.guard``)."""
    expl = ctx.explanation()
    keys = (ctx.model_key, ctx.data_key, state.get().target)
    scores = loaders.predictions(*keys, metric_output(ctx.model.outputs), ctx.model, ctx.aligned).unwrap()
    return Inputs(search_table(ctx, expl.output), scores, expl, ctx.prediction_units())


def add(name: str, query: str, table: pd.DataFrame) -> str | None:
    """Add a named cohort to the session; returns why it was not added, or None."""
    app = state.get()
    name = " ".join(name.split())[:NAME_CHARS]
    if not name:
        return "Give the cohort a name."
    if "=" in name or name == EVERYONE:
        return f"A cohort's name cannot contain '=' or be {EVERYONE!r}; choose another."
    if any(c["name"] == name for c in app.cohorts):
        return f"There is already a cohort named {name!r}; choose another name or remove it first."
    if len(app.cohorts) >= MAX_COHORTS:
        return f"At most {MAX_COHORTS} cohorts: remove one first."
    try:
        rows = int(cohort_mask(table, query).sum())
    except DataError as exc:
        return str(exc)
    if rows == 0:
        return f"No rows match {query!r}: a cohort needs at least one row."
    app.cohorts.append({"name": name, "query": query.strip()})
    return None


def remove(index: int) -> None:
    """Remove the index-th cohort (a button's callback)."""
    cohorts = state.get().cohorts
    if 0 <= index < len(cohorts):
        del cohorts[index]


def editor(table: pd.DataFrame, placeholder: str) -> None:
    """The list of named cohorts (each removable) and a form that adds one."""
    app = state.get()
    for i, cohort in enumerate(app.cohorts):
        left, middle, right = st.columns([2, 5, 1])
        left.markdown(f"**{render.md(cohort['name'])}**")
        middle.code(cohort["query"] or "(every row)", language=None)
        right.button("Remove", key=f"remove_cohort_{i}_{cohort['name']}", on_click=remove, args=(i,))
    with st.form("add_cohort", clear_on_submit=True, border=True):
        left, right = st.columns([2, 5])
        name = left.text_input("Cohort name", placeholder="older clients", max_chars=NAME_CHARS, key="cohort_name")
        query = right.text_input(
            "Rows (the row explorer's search)",
            placeholder=placeholder,
            key="cohort_query",
            help='Terms joined by commas: age>60, city=Lyon, "name with spaces"<=3, prediction>0.9, actual=1.',
        )
        if st.form_submit_button("Add cohort", icon=":material/group_add:"):
            problem = add(name, query, table)
            if problem:
                st.error(problem, icon=":material/error:")
            else:
                st.rerun()  # the sidebar has already written the URL this run: write it with the new cohort


def add_node(analysis: ErrorAnalysis, node_id: int, table: pd.DataFrame) -> str:
    """Make an error-tree node a cohort; returns the sentence to show."""
    node = next((n for n in analysis.nodes if n.node == node_id), None)
    if node is None:
        return "That group is gone (the analysis was recomputed); click it again."
    if node.query is None:
        return (
            f"'{node.label}' includes rows with missing values, which the search syntax cannot select exactly; "
            "it was not added as a cohort."
        )
    problem = add(f"{node.name} ({node.error_rate:.0%} wrong)", node.query, table)
    return problem or f"Added the cohort '{node.label}': compare it above."


def view_key(ctx: context.Context, given: Inputs) -> tuple[object, ...]:
    """What the group views' caches are keyed by: model, table, target, units, class and rows explained so far."""
    return (ctx.model_key, ctx.data_key, state.get().target, given.expl.output, str(ctx.class_label), len(given.expl))


def comparison(ctx: context.Context, given: Inputs) -> CohortComparison:
    """The session's cohorts compared (cached; typed errors raised)."""
    cohorts = tuple((c["name"], c["query"]) for c in state.get().cohorts)
    return loaders.cohort_comparison(  # type: ignore[no-any-return]
        view_key(ctx, given),
        cohorts,
        given.expl,
        given.table,
        ctx.aligned.target,
        given.scores,
        ctx.model,
    ).unwrap()


def pair(names: list[str]) -> tuple[str, str]:
    """The two cohorts the difference is drawn between (the session's choice, else everyone and the first)."""
    chosen = state.get().cohort_pair
    if chosen and chosen[0] in names and chosen[1] in names and chosen[0] != chosen[1]:
        return chosen[0], chosen[1]
    return names[0], names[min(1, len(names) - 1)]


def analysis(ctx: context.Context, given: Inputs) -> ErrorAnalysis:
    """The error analysis of every row (cached; the table must have its target)."""
    if ctx.aligned.target is None:
        raise DataError("Error analysis needs the target column: pick it in the sidebar or add it to the table.")
    return loaders.error_analysis(  # type: ignore[no-any-return]
        view_key(ctx, given),
        ctx.aligned.frame,
        ctx.aligned.target,
        given.scores,
        ctx.model,
        given.expl,
    ).unwrap()


def wrong_rows(found: ErrorAnalysis, table: pd.DataFrame, node_id: int | None = None) -> pd.DataFrame:
    """The wrong rows of the table (of one node when given), as the row explorer shows them."""
    mask = found.errors.copy()
    node = next((n for n in found.nodes if n.node == node_id), None)
    if node is not None:
        mask &= node.mask
    return table[mask]


@dataclass(frozen=True, eq=False)
class DiffView:
    """One explanation diff as the page shows it."""

    diff: ExplanationDiff
    first: str
    second: str
    metrics: dict[str, dict[str, float]]
    disagreements: pd.DataFrame | None = None
    pair: tuple[Explanation, Explanation] | None = None  # two models: both explanations of the common rows
    note: str = ""


def second_upload() -> tuple[str, Any] | None:
    """("table", file) or ("model", file) from the sidebar's "Compare with" box, or None."""
    data, model = state.uploaded(OTHER_DATA), state.uploaded(OTHER_MODEL)
    if data is not None:
        return "table", data
    if model is not None:
        return "model", model
    return None


def _metrics(model: LoadedModel, actual: pd.Series | None, scores: Any) -> dict[str, float]:
    return headline_metrics(model.task, actual, scores, model.classes) if actual is not None else {}


def table_diff(ctx: context.Context, upload: Any, *, progress: Any = None) -> DiffView:
    """The current table against a second table on the same model (one explainer for both)."""
    app = state.get()
    other_bytes = upload.getvalue()
    other_key = loaders.digest(other_bytes)
    other_table = loaders.table(other_key, upload.name, other_bytes).unwrap()
    other = loaders.aligned(ctx.model_key, other_key, app.target, ctx.model, other_table).unwrap()
    if list(other.frame.columns) != list(ctx.aligned.frame.columns):
        raise DataError("The second table does not have the first table's columns; upload a table with the same ones.")
    expl = ctx.explanation()
    # a sample sized like the first view (never the whole second table in the page): labelled "N of M rows"
    rows = ctx.explainer.sample_size(2 * loaders.settings().explain_budget_seconds)
    lazy = loaders.other_table(ctx.model_key, ctx.data_key, other_key, expl.output, rows, ctx.explainer, other.frame)
    result = lazy.get(progress).unwrap()
    second = result.for_class(ctx.class_label)
    diff = tables_diff(expl, ctx.aligned.frame, second, other.frame)
    score_output = metric_output(ctx.model.outputs)
    first_scores = loaders.predictions(
        ctx.model_key, ctx.data_key, app.target, score_output, ctx.model, ctx.aligned
    ).unwrap()
    second_scores = loaders.predictions(ctx.model_key, other_key, app.target, score_output, ctx.model, other).unwrap()
    metrics = {
        "first": _metrics(ctx.model, ctx.aligned.target, first_scores),
        "second": _metrics(ctx.model, other.target, second_scores),
    }
    note = f"{ctx.source.data_name}: {expl.coverage_label}; {upload.name}: {second.coverage_label}."
    return DiffView(diff, ctx.source.data_name, upload.name, metrics, note=note)


def model_diff(ctx: context.Context, upload: Any, *, progress: Any = None) -> DiffView:
    """The current model against a second model on the same table (each in its own worker)."""
    app = state.get()
    other_bytes = upload.getvalue()
    other_key = loaders.digest(other_bytes)
    trusted = loaders.settings().trust_pickles
    other = loaders.model(other_key, upload.name, trusted, other_bytes).unwrap()
    table = loaders.table(ctx.data_key, ctx.source.data_name, ctx.source.data_bytes).unwrap()
    aligned = loaders.aligned(other.sha256, ctx.data_key, app.target, other, table).unwrap()
    output = ctx.explainer.output if ctx.explainer.output in other.outputs else "auto"
    explainer = loaders.explainer(other.sha256, ctx.data_key, app.target, output, other, aligned).unwrap()
    if explainer.output != ctx.explainer.output:
        raise DataError(
            f"The second model explains in {explainer.output} and the first in {ctx.explainer.output}; "
            "pick units both have in the sidebar."
        )
    job = loaders.job(other.sha256, ctx.data_key, app.target, explainer.output, explainer, other)
    job.run_sample(progress=progress)
    job.start_refinement()
    label = ctx.class_label
    if other.classes and label is not None and str(label) not in [str(c) for c in other.classes]:
        raise DataError(f"The second model has no class {label!r}; its classes are {list(other.classes)}.")
    if other.classes and label is not None:
        label = other.classes[class_index(other.classes, label)]
    second = job.result.for_class(label)
    diff, rows, (a, b) = models_diff(ctx.explanation(), second, ctx.aligned.frame)
    score_output = metric_output(ctx.model.outputs)
    first_scores = loaders.predictions(ctx.model_key, ctx.data_key, app.target, score_output, ctx.model, ctx.aligned)
    other_output = metric_output(other.outputs)
    second_scores = loaders.predictions(other.sha256, ctx.data_key, app.target, other_output, other, aligned)
    metrics = {
        "first": _metrics(ctx.model, ctx.aligned.target, first_scores.unwrap()),
        "second": _metrics(other, aligned.target, second_scores.unwrap()),
    }
    note = f"On the {diff.rows['first']:,} rows both models have explained so far ({a.coverage_label} for the first)."
    return DiffView(diff, ctx.source.model_name, upload.name, metrics, rows, (a, b), note)


def diff_view(ctx: context.Context, *, progress: Any = None) -> DiffView | None:
    """The diff the sidebar's second upload asks for, or None when there is none."""
    other = second_upload()
    if other is None:
        return None
    kind, upload = other
    return (table_diff if kind == "table" else model_diff)(ctx, upload, progress=progress)


def report_sections(ctx: context.Context) -> list[GroupSection]:
    """The group views the user pinned for the report (typed errors raised: call inside ``render.guard``)."""
    app = state.get()
    if not app.report_parts:
        return []
    given = inputs(ctx)
    out = []
    if "cohorts" in app.report_parts and app.cohorts:
        found = comparison(ctx, given)
        first, second = pair(list(found.cohorts))
        if first != second:
            out.append(cohort_section(found, first, second))
    if "errors" in app.report_parts and ctx.aligned.target is not None:
        out.append(error_section(analysis(ctx, given)))
    if "diff" in app.report_parts:
        view = diff_view(ctx)
        if view is not None:
            out.append(diff_section(view.diff, first=view.first, second=view.second, units=given.expl.units))
    return out


def compare_view(ctx: context.Context, given: Inputs) -> None:
    """The cohorts: their editor, numbers side by side, the difference of two, predictions, beeswarms."""
    app = state.get()
    st.subheader("Compare cohorts")
    editor(given.table, example_query(given.table))
    if not app.cohorts:
        st.info(
            "Name a group of rows to compare it with everyone: write it as in the row explorer's search, save a search "
            "there, or click a group in the error analysis below.",
            icon=":material/groups:",
        )
    else:
        with render.guard():
            found = comparison(ctx, given)
        names = list(found.cohorts)
        st.dataframe(found.summary(), hide_index=True, key="cohort_summary")
        top_n = render.top_n("Features shown", len(found.feature_names), 10, key="cohort_top")
        st.plotly_chart(cohort_importance_figure(found, top_n=top_n), key="cohort_importance")
        first, second = pair(names)
        left, right = st.columns(2)
        first = left.selectbox("Difference from", names, index=names.index(first), key="cohort_first")
        second = right.selectbox("to", names, index=names.index(second), key="cohort_second")
        app.cohort_pair = (first, second)
        if first == second:
            st.caption("Pick two different cohorts to see their difference.")
        else:
            difference = found.difference(first, second)
            separated = int(difference["separated"].sum())
            st.caption(
                f"{separated} of {len(difference)} features differ beyond resampling noise (coloured bars: the 95% "
                "interval of the difference excludes zero; grey bars do not)."
            )
            st.plotly_chart(
                interval_figure(
                    difference,
                    title=f"{second} minus {first}: mean |SHAP|",
                    axis=f"difference in mean |SHAP| ({given.expl.units})",
                    top_n=top_n,
                ),
                key="cohort_difference",
            )
        st.plotly_chart(cohort_prediction_figure(found, given.units), key="cohort_predictions")
        masks = {name: s.mask for name, s in found.cohorts.items()}
        st.plotly_chart(cohort_beeswarm_figure(given.expl, masks, top_n=min(top_n, 8)), key="cohort_beeswarm")
        render.report_toggle("cohorts", "Include the cohort comparison in the report")


def errors_view(ctx: context.Context, given: Inputs) -> None:
    """Where the model is wrong: the error tree (click a group: a cohort), the gap, the wrong rows."""
    app = state.get()
    st.subheader("Where the model is wrong")
    if ctx.aligned.target is None:
        st.info(
            "Error analysis needs the target column: pick it in the sidebar, or upload a table that has it.",
            icon=":material/info:",
        )
        st.stop()
    with render.guard():
        tree = analysis(ctx, given)
    if not tree.errors.any():
        st.success("The model is right on every row of this table: there is no error to analyse.")
        st.stop()
    st.caption(
        f"A shallow tree over the raw columns, fitted to each row's error over all {len(tree.errors):,} rows. "
        "Click a group to make it a cohort."
    )
    event = st.plotly_chart(error_tree_figure(tree), key="error_tree", on_select="rerun", selection_mode="points")
    clicked = selection.clicked_point(event, "error_tree")
    if clicked:
        st.session_state["error_node"] = int(clicked[0])
        app_message = add_node(tree, int(clicked[0]), given.table)
        st.session_state["error_message"] = app_message
        st.rerun()
    if st.session_state.get("error_message"):
        st.info(render.md(st.session_state["error_message"]), icon=":material/group_add:")
    if tree.attribution_gap is not None:
        st.plotly_chart(
            interval_figure(
                tree.attribution_gap,
                title="Wrong minus right rows: mean |SHAP|",
                axis=f"difference in mean |SHAP| ({given.expl.units})",
            ),
            key="error_gap",
        )
    node = st.session_state.get("error_node")
    wrong = wrong_rows(tree, given.table, node)
    label = next((n.label for n in tree.nodes if n.node == node), None)
    st.markdown(f"**Wrong rows{f' in {render.md(label)}' if label else ''}** ({len(wrong):,}): click one to open it.")
    shown = wrong.head(500)
    picked_event = st.dataframe(
        shown, key="wrong_rows", on_select="rerun", selection_mode="single-row", hide_index=True, height=240
    )
    picked = selection.selected_row(picked_event, "wrong_rows", shown["row"].tolist())
    if picked is not None:
        app.row = picked
        st.switch_page("pages/row_explorer.py")
    render.report_toggle("errors", "Include the error analysis in the report")
