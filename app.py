"""ModelLens: navigation and the shared sidebar; every screen lives in pages/."""

from pathlib import Path

import streamlit as st

from ui.sidebar import render_sidebar

st.set_page_config(
    page_title="ModelLens", page_icon=str(Path(__file__).parent / "ui/assets/favicon.png"), layout="wide"
)
navigation = st.navigation(
    [
        st.Page("pages/overview.py", title="Overview", icon=":material/home:", default=True),
        st.Page(
            "pages/global_importance.py", title="Global importance", icon=":material/bar_chart:", url_path="importance"
        ),
        st.Page("pages/beeswarm.py", title="Beeswarm", icon=":material/scatter_plot:", url_path="beeswarm"),
        st.Page("pages/row_explorer.py", title="Row explorer", icon=":material/table_rows:", url_path="rows"),
    ]
)
with st.sidebar:
    render_sidebar()
navigation.run()
