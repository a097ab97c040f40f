"""ModelLens: navigation and the shared sidebar; every screen lives in pages/."""

import streamlit as st

from ui.sidebar import render_sidebar

st.set_page_config(page_title="ModelLens", page_icon="🔍", layout="wide")
navigation = st.navigation(
    [
        st.Page("pages/overview.py", title="Overview", icon="🏠", default=True),
        st.Page("pages/global_importance.py", title="Global importance", icon="📊", url_path="importance"),
        st.Page("pages/beeswarm.py", title="Beeswarm", icon="🐝", url_path="beeswarm"),
        st.Page("pages/row_explorer.py", title="Row explorer", icon="🔎", url_path="rows"),
    ]
)
with st.sidebar:
    render_sidebar()
navigation.run()
