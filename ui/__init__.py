"""Streamlit glue: cached loaders, typed session state, the page context, the sidebar, rendering helpers."""
