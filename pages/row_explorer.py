import numpy as np
import streamlit as st

from core.data.rows import example_query, search_rows
from core.present.figures import force_figure, waterfall_figure
from core.present.narrative import summarize
from ui import cohorts, context, pinned, render, selection, state, whatif

st.title("Row explorer")
with render.guard():
    ctx = context.current()
    table_output = ctx.explanation().output
    table = cohorts.search_table(ctx, table_output)
app = state.get()
query = st.text_input(
    "Search rows",
    placeholder=example_query(table),
    key="row_query",
    help='Terms joined by commas: column>value, "name with spaces"<=value, prediction>0.9, city=Lyon, row:42, words.',
)
search = search_rows(table, query)
found = search.rows
if search.message:
    st.info(render.md(search.message), icon=":material/search_off:")
elif query.strip() and not ctx.read_only:
    with st.popover("Save as cohort", icon=":material/group_add:"):
        name = st.text_input("Cohort name", value=query.strip()[: cohorts.NAME_CHARS], key="cohort_from_search")
        if st.button("Save", key="save_cohort"):
            problem = cohorts.add(name, query, table)
            st.write(render.md(problem or f"Saved: compare '{name}' on the Cohorts & errors page."))
n = len(table)
app.row = current = app.row if app.row is not None and 0 <= app.row < n else 0
shown = selection.paged_rows(found, current)  # the page holding a row opened elsewhere, with the row selected
event = st.dataframe(shown, key="table", on_select="rerun", selection_mode="single-row", hide_index=True, height=280)
picked = selection.selected_row(event, "table", shown["row"].tolist())
if picked is not None:
    app.row = current = picked

left, middle, right, pin = st.columns(4)
left.button(
    "Previous", icon=":material/chevron_left:", disabled=current <= 0, on_click=state.set_row, args=(current - 1,)
)
middle.button(
    "Next", icon=":material/chevron_right:", disabled=current >= n - 1, on_click=state.set_row, args=(current + 1,)
)
lucky = int(np.random.default_rng().integers(n))
right.button("Random row", icon=":material/casino:", on_click=state.set_row, args=(lucky,))
pin.button(
    "Pin for report", icon=":material/push_pin:", disabled=current in app.pinned, on_click=pinned.pin, args=(current,)
)
pinned.panel(ctx, table_output)
state.sync_url(demo_active=ctx.source.is_demo)

with render.guard():
    row = ctx.job.row(current).for_class(ctx.class_label).row(0)
st.subheader(f"Row {current}")
st.markdown(render.md(summarize(row)))
if ctx.aligned.target is not None:
    st.caption(f"Actual value: {render.md(ctx.aligned.target.iloc[current])}")
st.plotly_chart(waterfall_figure(row), key="waterfall")
st.plotly_chart(force_figure(row), key="force")
whatif.panel(ctx, row)
