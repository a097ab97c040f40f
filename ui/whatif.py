"""The row explorer's what-if panel: edit a row's raw columns and see its exact explanation move.

A Streamlit fragment: editing a value reruns this panel only, not the page. The form is typed from the model
card (:func:`core.whatif.scenario.form_fields`); the explanation of the edited copy comes from the same explainer,
cached per (model, table, units, class, row, edits).
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from core.explanation import RowExplanation
from core.present.figures import format_number, shift_figure, waterfall_pair
from core.whatif.scenario import Field, form_fields
from ui import context, loaders, render

__all__ = ["panel"]

SHOWN = 6  # fields shown at first: the row's strongest contributions


def _key(row: int, name: str) -> str:
    return f"whatif:{row}:{name}"


def _input(field: Field, row: int) -> Any:
    key = _key(row, field.name)
    if field.options is not None:
        options: list[Any] = [*field.options, *([None] if field.allows_missing else [])]
        index = next((i for i, o in enumerate(options) if str(o) == str(field.value)), None)
        return st.selectbox(
            field.name, options, index=index, key=key, format_func=lambda o: "missing" if o is None else str(o)
        )
    span = f"observed {format_number(field.low)} to {format_number(field.high)}" if field.low is not None else None
    helps = f"{span}; leave empty for missing" if span and field.allows_missing else span
    if field.integer:
        value = None if field.value is None else int(field.value)
        return st.number_input(field.name, value=value, step=1, key=key, help=helps)
    value = None if field.value is None else float(field.value)
    return st.number_input(field.name, value=value, step=None, format="%g", key=key, help=helps)


def _same(a: Any, b: Any) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and str(a) == str(b)) or a == b


def _reset(row: int, names: list[str]) -> None:
    for name in names:
        st.session_state.pop(_key(row, name), None)


@st.fragment
def panel(ctx: context.Context, row: RowExplanation) -> None:
    """Edit row ``row``'s raw columns: the prediction and its waterfall, edited beside original."""
    row_id = int(row.row_id)
    names, _, _, _ = row.ordered()
    with st.expander("What if… edit this row and see the explanation move", icon=":material/tune:"):
        rest = names[SHOWN:]
        more = st.multiselect("More columns to edit", rest, key=f"whatif_more:{row_id}") if rest else []
        with render.guard():
            fields = form_fields(ctx.model, ctx.explainer.data, row_id, [*names[:SHOWN], *more])
        grid, values = st.columns(3), []
        for i, field in enumerate(fields):
            with grid[i % 3]:
                values.append(_input(field, row_id))
        changes = tuple((f.name, v) for f, v in zip(fields, values, strict=True) if not _same(v, f.value))
        st.button("Reset", on_click=_reset, args=(row_id, names), icon=":material/restart_alt:", disabled=not changes)
        if not changes:
            st.caption("Change a value above: the prediction and every contribution are recomputed exactly.")
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
