"""The row explorer's pinned rows: each listed with its prediction, a button that opens it and one that unpins it.

Pinning used to only grey the pin button; the list shows what share links and the report will carry
(``AppState.pinned``) and lets the user go back to a pinned row or drop it.
"""

from __future__ import annotations

import streamlit as st

from core.data.metrics import prediction_column
from core.present.figures import format_number
from ui import context, loaders, render, state


def pin(row: int) -> None:
    """Pin a row for share links and the report (the pin button's ``on_click``)."""
    app = state.get()
    if row not in app.pinned:
        app.pinned.append(row)


def unpin(row: int) -> None:
    """Drop a pinned row (the list's Unpin button)."""
    app = state.get()
    if row in app.pinned:
        app.pinned.remove(row)


def panel(ctx: context.Context, output: str) -> None:
    """List the pinned rows of this table (predictions in ``output`` units); nothing when none is pinned."""
    app = state.get()
    n = len(ctx.aligned.frame)
    rows = [r for r in app.pinned if 0 <= r < n]
    if not rows:
        return
    keys = (ctx.model_key, ctx.data_key, app.target)
    predictions = loaders.predictions(*keys, output, ctx.model, ctx.aligned).unwrap()
    column = prediction_column(predictions, ctx.model.classes, ctx.class_label)
    units = render.md(ctx.prediction_units())
    with st.expander(
        f"Pinned rows ({len(rows)}): in share links and the report", expanded=True, icon=":material/push_pin:"
    ):
        for row in rows:
            text, open_button, unpin_button = st.columns([6, 2, 2], vertical_alignment="center")
            shown = " (shown)" if row == app.row else ""
            text.markdown(f"**Row {row}**{shown} · prediction {render.md(format_number(column[row]))} ({units})")
            open_button.button(
                "Open", key=f"open_pinned_{row}", on_click=state.set_row, args=(row,), disabled=row == app.row
            )
            unpin_button.button("Unpin", key=f"unpin_{row}", on_click=unpin, args=(row,), icon=":material/close:")
