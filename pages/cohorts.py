import streamlit as st

from core.data.rows import example_query
from core.present.cohort_figures import (
    cohort_beeswarm_figure,
    cohort_importance_figure,
    cohort_prediction_figure,
    error_tree_figure,
    interval_figure,
)
from ui import cohorts, context, render, selection, state

st.title("Cohorts & errors")
with render.guard():
    ctx = context.current()
    given = cohorts.inputs(ctx)
app = state.get()
where = given.expl.coverage_label
st.caption(
    f"Attributions and their 95% intervals on the explained rows ({where}"
    + ("; they refine as the background explains the rest" if given.expl.is_sample else "")
    + "). Row counts, predictions and metrics use every row."
)

st.subheader("Compare cohorts")
cohorts.editor(given.table, example_query(given.table))
if not app.cohorts:
    st.info(
        "Name a group of rows to compare it with everyone: write it as in the row explorer's search, save a search "
        "there, or click a group in the error analysis below.",
        icon=":material/groups:",
    )
else:
    with render.guard():
        comparison = cohorts.comparison(ctx, given)
    names = list(comparison.cohorts)
    st.dataframe(comparison.summary(), hide_index=True, key="cohort_summary")
    top_n = render.top_n("Features shown", len(comparison.feature_names), 10, key="cohort_top")
    st.plotly_chart(cohort_importance_figure(comparison, top_n=top_n), key="cohort_importance")
    first, second = cohorts.pair(names)
    left, right = st.columns(2)
    first = left.selectbox("Difference from", names, index=names.index(first), key="cohort_first")
    second = right.selectbox("to", names, index=names.index(second), key="cohort_second")
    app.cohort_pair = (first, second)
    if first == second:
        st.caption("Pick two different cohorts to see their difference.")
    else:
        difference = comparison.difference(first, second)
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
    st.plotly_chart(cohort_prediction_figure(comparison, given.units), key="cohort_predictions")
    masks = {name: s.mask for name, s in comparison.cohorts.items()}
    st.plotly_chart(cohort_beeswarm_figure(given.expl, masks, top_n=min(top_n, 8)), key="cohort_beeswarm")
    render.report_toggle("cohorts", "Include the cohort comparison in the report")

st.subheader("Where the model is wrong")
if ctx.aligned.target is None:
    st.info(
        "Error analysis needs the target column: pick it in the sidebar, or upload a table that has it.",
        icon=":material/info:",
    )
    st.stop()
with render.guard():
    found = cohorts.analysis(ctx, given)
if not found.errors.any():
    st.success("The model is right on every row of this table: there is no error to analyse.")
    st.stop()
st.caption(
    f"A shallow tree over the raw columns, fitted to each row's error over all {len(found.errors):,} rows. "
    "Click a group to make it a cohort."
)
event = st.plotly_chart(error_tree_figure(found), key="error_tree", on_select="rerun", selection_mode="points")
clicked = selection.clicked_point(event, "error_tree")
if clicked:
    st.session_state["error_node"] = int(clicked[0])
    app_message = cohorts.add_node(found, int(clicked[0]), given.table)
    st.session_state["error_message"] = app_message
    st.rerun()
if st.session_state.get("error_message"):
    st.info(render.md(st.session_state["error_message"]), icon=":material/group_add:")
if found.attribution_gap is not None:
    st.plotly_chart(
        interval_figure(
            found.attribution_gap,
            title="Wrong minus right rows: mean |SHAP|",
            axis=f"difference in mean |SHAP| ({given.expl.units})",
        ),
        key="error_gap",
    )
node = st.session_state.get("error_node")
wrong = cohorts.wrong_rows(found, given.table, node)
label = next((n.label for n in found.nodes if n.node == node), None)
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
