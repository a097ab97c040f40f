"""ModelLens: navigation, access control and the shared sidebar; every screen lives in pages/."""

from pathlib import Path

import streamlit as st

from ui import auth, state
from ui.sidebar import render_sidebar

st.set_page_config(
    page_title="ModelLens", page_icon=str(Path(__file__).parent / "ui/assets/favicon.png"), layout="wide"
)
pages = {
    "": st.Page("pages/overview.py", title="Overview", icon=":material/home:", default=True),
    "importance": st.Page(
        "pages/global_importance.py", title="Global importance", icon=":material/bar_chart:", url_path="importance"
    ),
    "beeswarm": st.Page("pages/beeswarm.py", title="Beeswarm", icon=":material/scatter_plot:", url_path="beeswarm"),
    "rows": st.Page("pages/row_explorer.py", title="Row explorer", icon=":material/table_rows:", url_path="rows"),
    "cohorts": st.Page("pages/cohorts.py", title="Cohorts & errors", icon=":material/groups:", url_path="cohorts"),
    "diff": st.Page("pages/diff.py", title="Explanation diff", icon=":material/compare_arrows:", url_path="diff"),
    "share": st.Page("pages/share.py", title="Share & export", icon=":material/share:", url_path="share"),
}
navigation = st.navigation(list(pages.values()))
auth.gate()
state.follow_start_page(pages)
with st.sidebar:
    render_sidebar(page=navigation.url_path)
navigation.run()
