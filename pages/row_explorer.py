import numpy as np
import streamlit as st

from core.data.rows import PAGE_SIZE, example_query, page_of, search_rows
from core.present.figures import force_figure, waterfall_figure
from core.present.narrative import summarize
from ui import cohorts, context, render, selection, state, whatif

st.title("Row explorer")
with render.guard():
    ctx = context.current()
    table = cohorts.search_table(ctx, ctx.explanation().output)
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
pages = max(1, -(-len(found) // PAGE_SIZE))
page = st.number_input(f"Page (of {pages}, {len(found):,} rows)", 1, pages, 1, key="row_page") if pages > 1 else 1
shown = page_of(found, int(page))
event = st.dataframe(shown, key="table", on_select="rerun", selection_mode="single-row", hide_index=True, height=280)
picked = selection.selected_row(event, "table", shown["row"].tolist())
if picked is not None:
    app.row = picked

left, middle, right, pin = st.columns(4)
n = len(table)
current = app.row if app.row is not None and 0 <= app.row < n else 0
if left.button("Previous", icon=":material/chevron_left:", disabled=current <= 0):
    current -= 1
if middle.button("Next", icon=":material/chevron_right:", disabled=current >= n - 1):
    current += 1
if right.button("Random row", icon=":material/casino:"):
    current = int(np.random.default_rng().integers(n))
app.row = current
if pin.button("Pin for report", icon=":material/push_pin:", disabled=current in app.pinned):
    app.pinned.append(current)
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
