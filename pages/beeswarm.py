import streamlit as st

from core.present.figures import beeswarm_figure
from ui import context, render, selection, state

st.title("Beeswarm")
with render.guard():
    ctx = context.current()
expl = ctx.explanation("raw")
st.caption(
    f"Each point is one row; further right means the feature pushed the {render.md(expl.units)} up. "
    f"Colour is the feature's value. {expl.coverage_label.capitalize()}. Click a point to open that row."
)
shown = render.top_n("Features shown", len(expl.feature_names), 12)
event = st.plotly_chart(
    beeswarm_figure(expl, max_display=shown), key="bees", on_select="rerun", selection_mode="points"
)
clicked = selection.clicked_point(event, "bees")
if clicked:
    state.set_row(int(clicked[0]))
    st.switch_page("pages/row_explorer.py", query_params={"row": str(int(clicked[0]))})
