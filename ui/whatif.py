"""The row explorer's what-if panel: edit a row's raw columns and see its exact explanation move.

A Streamlit fragment: editing a value reruns this panel only, not the page. The form is typed from the model
card (:func:`core.whatif.scenario.form_fields`); the explanation of the edited copy comes from the same explainer,
cached per (model, table, units, class, row, edits).
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from core.explanation import RowExplanation
from core.present.figures import (
    format_number,
    format_value,
    ice_figure,
    sensitivity_figure,
    shift_figure,
    waterfall_pair,
)
from core.present.report import ScenarioView
from core.whatif.scenario import Field, form_fields
from ui import context, loaders, render, state

__all__ = ["ice_section", "panel", "scenario_views"]

SHOWN = 6  # fields shown at first: the row's strongest contributions


def _key(row: int, name: str) -> str:
    return f"whatif:{row}:{name}"


def _input(field: Field, row: int, start: Any) -> Any:
    key = _key(row, field.name)
    if field.options is not None:
        options: list[Any] = [*field.options, *([None] if field.allows_missing else [])]
        index = next((i for i, o in enumerate(options) if str(o) == str(start)), None)
        return st.selectbox(
            field.name, options, index=index, key=key, format_func=lambda o: "missing" if o is None else str(o)
        )
    span = f"observed {format_number(field.low)} to {format_number(field.high)}" if field.low is not None else None
    helps = f"{span}; leave empty for missing" if span and field.allows_missing else span
    if field.integer:
        value = None if start is None else int(start)
        return st.number_input(field.name, value=value, step=1, key=key, help=helps)
    value = None if start is None else float(start)
    return st.number_input(field.name, value=value, step=None, format="%g", key=key, help=helps)


def _same(a: Any, b: Any) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and str(a) == str(b)) or a == b


def _reset(row: int, names: list[str]) -> None:
    for name in names:
        st.session_state.pop(_key(row, name), None)


def _pin(row: int, changes: tuple[tuple[str, Any], ...], class_label: Any) -> None:
    app = state.get()
    scenario = {"row": row, "changes": [list(c) for c in changes], "class": class_label}
    if scenario not in app.scenarios:
        app.scenarios.append(scenario)


def _pinned(row: int) -> list[dict[str, Any]]:
    return [s for s in state.get().scenarios if s.get("row") == row and isinstance(s.get("changes"), list)]


@st.fragment
def panel(ctx: context.Context, row: RowExplanation) -> None:
    """Edit row ``row``'s raw columns: the prediction and its waterfall, edited beside original.

    A shared view opens a scenario pinned on this row with its edits already made.
    """
    row_id = int(row.row_id)
    names, _, _, _ = row.ordered()
    pinned = _pinned(row_id)
    preset = {str(c[0]): c[1] for c in pinned[-1]["changes"]} if pinned and ctx.read_only else {}
    title = "What if… edit this row and see the explanation move"
    with st.expander(title, icon=":material/tune:", expanded=bool(preset)):
        rest = [n for n in names[SHOWN:] if n not in preset]
        more = st.multiselect("More columns to edit", rest, key=f"whatif_more:{row_id}") if rest else []
        shown = [*names[:SHOWN], *[n for n in names[SHOWN:] if n in preset], *more]
        with render.guard():
            fields = form_fields(ctx.model, ctx.explainer.data, row_id, shown)
        grid, values = st.columns(3), []
        for i, field in enumerate(fields):
            with grid[i % 3]:
                values.append(_input(field, row_id, preset.get(field.name, field.value)))
        changes = tuple((f.name, v) for f, v in zip(fields, values, strict=True) if not _same(v, f.value))
        reset, pin = st.columns([1, 4])
        reset.button(
            "Reset", on_click=_reset, args=(row_id, names), icon=":material/restart_alt:", disabled=not changes
        )
        scenario = {"row": row_id, "changes": [list(c) for c in changes], "class": ctx.class_label}
        pin.button(
            "Pin this scenario",
            on_click=_pin,
            args=(row_id, changes, ctx.class_label),
            icon=":material/push_pin:",
            disabled=not changes or ctx.read_only or scenario in state.get().scenarios,
            help="Pinned scenarios go into share links and the report, each beside its original row.",
        )
        if pinned:
            st.caption(f"{len(pinned)} scenario(s) pinned on this row (in share links and the report).")
        if not changes:
            st.caption("Change a value above: the prediction and every contribution are recomputed exactly.")
            _sensitivity(ctx, row_id, names, changes)
            _counterfactuals(ctx, row_id, names, row)
            return
        with render.guard():
            result = loaders.whatif(
                ctx.model_key,
                ctx.data_key,
                ctx.explainer.output,
                str(ctx.class_label),
                row_id,
                changes,
                ctx.explainer,
                ctx.model,
                ctx.class_label,
            ).unwrap()
        original, edited = result.original.row(0), result.edited.row(0)
        units = result.original.units
        st.metric(
            f"Prediction ({units})",
            format_number(edited.prediction),
            delta=f"{format_number(edited.prediction - original.prediction, signed=True)} "
            f"from {format_number(original.prediction)}",
            delta_color="off",
        )
        before, after = waterfall_pair(original, edited, titles=(f"Row {row_id} as it is", f"Row {row_id} edited"))
        left, right = st.columns(2)
        left.plotly_chart(before, key="whatif_original")
        right.plotly_chart(after, key="whatif_edited")
        with render.guard():
            st.plotly_chart(shift_figure(result.shift, units=units, changed=result.changed), key="whatif_shift")
        _sensitivity(ctx, row_id, names, changes)
        _counterfactuals(ctx, row_id, names, row)


def _open_candidate(row: int, changes: dict[str, tuple[Any, Any]], fields: dict[str, Field], first: list[str]) -> None:
    """Put a counterfactual's values into the form (its columns added to the form when not shown yet)."""
    more_key = f"whatif_more:{row}"
    extra = [c for c in changes if c not in first]
    st.session_state[more_key] = [
        *st.session_state.get(more_key, []),
        *(c for c in extra if c not in st.session_state.get(more_key, [])),
    ]
    for column, (_, new) in changes.items():
        field = fields.get(column)
        if field is not None and field.options is None and new is not None:
            new = int(new) if field.integer else float(new)
        st.session_state[_key(row, column)] = new


def _counterfactuals(ctx: context.Context, row: int, names: list[str], explained: RowExplanation) -> None:
    """The smallest change that reaches a class or a threshold, and its candidates to open as what-ifs."""
    st.markdown("**Smallest change that reaches…**")
    goal_col, freeze_col, k_col = st.columns([2, 3, 1])
    if ctx.model.classes:
        labels = [str(c) for c in ctx.model.classes]
        shown = str(explained.class_label)
        likely = explained.prediction > (0.5 if explained.output == "probability" else 0.0)  # the shown class wins
        current = shown if likely else next((x for x in labels if x != shown), shown)
        goal = goal_col.selectbox(
            "Goal",
            [*labels, "a threshold…"],
            index=next(i for i, x in enumerate(labels) if x != current) if len(labels) > 1 else 0,
            key=f"cf_goal:{row}",
            help="A class the edited row must be predicted as, or a threshold on this class.",
        )
        if goal == "a threshold…":
            goal = goal_col.text_input("Threshold", value=">0.5", key=f"cf_threshold:{row}")
    else:
        goal = goal_col.text_input(
            "Goal",
            value="",
            placeholder=">120",
            key=f"cf_threshold:{row}",
            help="A threshold on the prediction, e.g. >120 or <=3.5.",
        )
    freeze = freeze_col.multiselect("Never change", names, key=f"cf_freeze:{row}", help="e.g. age, sex")
    k = int(k_col.number_input("How many", 1, 5, 3, key=f"cf_k:{row}"))
    bounds = st.text_input(
        "Keep numbers within",
        key=f"cf_bounds:{row}",
        placeholder="income=20000:60000, age=:65",
        help="COLUMN=LOW:HIGH, comma-separated; either side may be empty.",
    )
    request_key = f"cf_request:{row}"
    request = (str(goal), tuple(freeze), bounds.strip(), k)
    if st.button("Find the smallest changes", key=f"cf_find:{row}", icon=":material/search:", disabled=not goal):
        st.session_state[request_key] = request  # kept: a rerun (e.g. the background job ending) keeps the answer
    asked = st.session_state.get(request_key)
    if asked is None:
        return
    if asked != request:
        st.caption("The goal or constraints changed since this search: press Find again to update it.")
    with render.guard():
        found = loaders.counterfactuals(
            ctx.model_key,
            ctx.data_key,
            ctx.explainer.output,
            str(ctx.class_label),
            row,
            *asked[:3],
            asked[3],
            ctx.explainer,
            ctx.model,
            ctx.class_label,
        ).unwrap()
    if not found:
        st.info("No change of up to three columns, to values seen in the table, reaches this goal.")
        return
    fields = {f.name: f for f in form_fields(ctx.model, ctx.explainer.data, row)}
    for i, candidate in enumerate(found):
        edits = "; ".join(f"{c}: {format_value(a)} → {format_value(b)}" for c, (a, b) in candidate.changes.items())
        text, button = st.columns([5, 1])
        text.markdown(f"{i + 1}. {render.md(edits)} — prediction **{format_number(candidate.prediction)}**")
        button.button(
            "Open",
            key=f"cf_open:{row}:{i}",
            on_click=_open_candidate,
            args=(row, candidate.changes, fields, names[:SHOWN]),
            help="Edit the row this way above.",
        )


def _sensitivity(ctx: context.Context, row: int, names: list[str], changes: tuple[tuple[str, Any], ...]) -> None:
    edited = dict(changes)
    default = next((names.index(c) for c, _ in changes if c in names), 0)
    feature = st.selectbox("Sensitivity of", names, index=default, key=f"whatif_sweep:{row}")
    with render.guard():
        sweep = loaders.sensitivity(
            ctx.model_key,
            ctx.data_key,
            ctx.explainer.output,
            str(ctx.class_label),
            row,
            feature,
            changes,
            ctx.explainer,
            ctx.model,
            ctx.class_label,
        ).unwrap()
    figure = sensitivity_figure(
        feature,
        sweep.grid,
        sweep.prediction,
        sweep.contribution,
        units=sweep.explanation.units,
        current=ctx.explainer.data[feature].iloc[row],
        edited=edited.get(feature),
    )
    st.plotly_chart(figure, key="whatif_sensitivity")


def scenario_views(ctx: context.Context) -> list[ScenarioView]:
    """The pinned scenarios as the report draws them (each explained exactly, the original beside it)."""
    views = []
    for scenario in state.get().scenarios:
        changes = tuple((str(c[0]), c[1]) for c in scenario.get("changes") or ())
        class_label = scenario.get("class")
        with render.guard():
            result = loaders.whatif(
                ctx.model_key,
                ctx.data_key,
                ctx.explainer.output,
                str(class_label),
                int(scenario["row"]),
                changes,
                ctx.explainer,
                ctx.model,
                class_label,
            ).unwrap()
        views.append(ScenarioView(result.original.row(0), result.edited.row(0), dict(result.changed)))
    return views


def ice_section(ctx: context.Context, feature: str) -> None:
    """The dependence view's ICE bundle and partial dependence for ``feature`` (the class selector's class)."""
    if not st.toggle("Each row's curve (ICE) and their average", key="ice_toggle", help=ICE_HELP):
        return
    with render.guard():
        bundle = loaders.ice(
            ctx.model_key,
            ctx.data_key,
            ctx.explainer.output,
            str(ctx.class_label),
            feature,
            ctx.explainer,
            ctx.model,
            ctx.class_label,
        ).unwrap()
    units = ctx.explanation().units
    st.plotly_chart(ice_figure(feature, bundle.grid, bundle.curves, units=units), key="ice")


ICE_HELP = (
    "The model's prediction for 60 sampled rows as this feature alone sweeps its observed values (centred at the "
    "first value); the bold line is their average, the partial dependence. Lines that cross show interactions."
)
