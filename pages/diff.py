import streamlit as st

from core.present.cohort_figures import drift_figure, interval_figure
from core.present.figures import format_number, waterfall_pair
from ui import cohorts, context, render, selection

st.title("Explanation diff")
with render.guard():
    ctx = context.current()
if cohorts.second_upload() is None:
    render.empty_state(
        "Upload a second table (the same columns, e.g. last month's rows) or a second model (e.g. a retrained one) "
        "under “Compare with” in the sidebar to see what changed in why the model predicts."
    )
bar = st.empty()
with render.guard():
    view = cohorts.diff_view(
        ctx,
        progress=lambda done, total: bar.progress(
            done / max(total, 1), f"Explaining {done:,}/{total:,} rows" if total else "Explaining…"
        ),
    )
bar.empty()
assert view is not None
diff = view.diff
units = ctx.explanation().units
st.caption(render.md(view.note))
p = diff.prediction
st.markdown(
    f"Mean prediction: **{render.md(format_number(p['first']))}** ({render.md(view.first)}) → "
    f"**{render.md(format_number(p['second']))}** ({render.md(view.second)}); 95% interval of the shift "
    f"{render.md(format_number(p['low']))} to {render.md(format_number(p['high']))} ({render.md(units)})."
)
if any(view.metrics.values()):
    st.dataframe(
        [{"side": view.first, **view.metrics["first"]}, {"side": view.second, **view.metrics["second"]}],
        hide_index=True,
        key="diff_metrics",
    )
top_n = render.top_n("Features shown", len(diff.features), 12, key="diff_top")
st.plotly_chart(
    interval_figure(
        diff.features,
        title=f"{view.second} minus {view.first}: mean contribution",
        axis=f"shift in mean contribution ({units})",
        top_n=top_n,
    ),
    key="diff_shift",
)
if not diff.paired:
    st.plotly_chart(drift_figure(diff.features, statistic=diff.drift_statistic, top_n=top_n), key="diff_drift")
st.dataframe(diff.readable(view.first, view.second).head(top_n), hide_index=True, key="diff_table")

if view.disagreements is not None and view.pair is not None:
    st.subheader("Where the two models disagree most")
    event = st.dataframe(
        view.disagreements, key="disagreements", on_select="rerun", selection_mode="single-row", hide_index=True
    )
    rows = view.disagreements["row"].tolist()
    picked = selection.selected_row(event, "disagreements", rows)
    if picked is not None:
        st.session_state["disagreement_row"] = picked
    row = st.session_state.get("disagreement_row", rows[0] if rows else None)
    first, second = view.pair
    position = first.position_of(int(row)) if row is not None else None
    if position is not None:
        left, right = waterfall_pair(
            first.row(position), second.row(position), titles=(f"{view.first}: row {row}", f"{view.second}: row {row}")
        )
        a, b = st.columns(2)
        a.plotly_chart(left, key="disagree_first")
        b.plotly_chart(right, key="disagree_second")
render.report_toggle("diff", "Include the explanation diff in the report")
