import streamlit as st

from ui import cohorts, context, render

st.title("Cohorts & errors")
with render.guard():
    ctx = context.current()
    given = cohorts.inputs(ctx)
where = given.expl.coverage_label
st.caption(
    f"Attributions and their 95% intervals on the explained rows ({where}"
    + ("; they refine as the background explains the rest" if given.expl.is_sample else "")
    + "). Row counts, predictions and metrics use every row."
)

cohorts.compare_view(ctx, given)
cohorts.errors_view(ctx, given)
