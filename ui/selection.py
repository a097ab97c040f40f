"""Clicks on charts and tables: report a selection only when it changed since the previous run.

A widget's selection persists across reruns and page switches; acting on it every run would, for example,
jump back to the row explorer each time the user returns to the beeswarm. Reading return values (not
on_select callbacks) also works under AppTest, whose injected selections do not fire callbacks.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

_SEEN = "_selection_seen"


def _changed(key: str, value: Any) -> bool:
    seen = st.session_state.setdefault(_SEEN, {})
    if seen.get(key) == value:
        return False
    seen[key] = value
    return value is not None


def clicked_point(event: Any, key: str) -> list[Any] | None:
    """Return the customdata of a newly clicked plotly point, else None."""
    points = (
        (event or {}).get("selection", {}).get("points", []) if isinstance(event, dict) or hasattr(event, "get") else []
    )
    custom = points[0].get("customdata") if points else None
    if custom is not None and not isinstance(custom, list):
        custom = [custom]
    return custom if _changed(key, repr(custom) if custom is not None else None) else None


def selected_row(event: Any, key: str, row_ids: list[int]) -> int | None:
    """Row id of a newly selected dataframe row (positions map through ``row_ids``), else None."""
    rows = (event or {}).get("selection", {}).get("rows", []) if hasattr(event, "get") else []
    row_id = int(row_ids[int(rows[0])]) if rows and int(rows[0]) < len(row_ids) else None
    return row_id if _changed(key, row_id) else None
