"""Clicks on charts and tables: report a selection only when it changed since the previous run.

A widget's selection persists across reruns and page switches; acting on it every run would, for example,
jump back to the row explorer each time the user returns to the beeswarm. Reading return values (not
on_select callbacks) also works under AppTest, whose injected selections do not fire callbacks.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from core.data.rows import PAGE_SIZE, page_of

_SEEN = "_selection_seen"
IN_VIEW = 7  # rows the row explorer's table shows before it scrolls (280 px high: a header and 35 px a row)


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


def paged_rows(found: pd.DataFrame, row: int, *, key: str = "table", page_key: str = "row_page") -> pd.DataFrame:
    """Draw the pager of the row table ``key`` and return the page of ``found`` to show, ``row`` selected on it.

    A row opened somewhere else (a beeswarm click, a deep link, Previous / Next, the pinned list) turns the
    table to the page holding it, once: paging away afterwards is the user's choice. A table selection is a
    position in the rows drawn, and Streamlit keeps it when they change; so when the drawn rows change (another
    page, another search) the selection is set again from ``row``: selected where it is drawn, else none.
    """
    seen = st.session_state.setdefault(_SEEN, {})
    ids = found["row"].to_numpy()
    pages = max(1, -(-len(ids) // PAGE_SIZE))
    where, opened = np.flatnonzero(ids == row), seen.get(f"{key}:row") != row
    if where.size and opened:
        st.session_state[page_key] = int(where[0]) // PAGE_SIZE + 1
    elif int(st.session_state.get(page_key, 1)) > pages:  # a narrower search than the page the user was on
        st.session_state[page_key] = pages
    seen[f"{key}:row"] = row
    page = st.number_input(f"Page (of {pages}, {len(ids):,} rows)", 1, pages, key=page_key) if pages > 1 else 1
    shown = page_of(found, int(page))
    drawn = (int(page), len(ids), hash(ids.tobytes()))
    if seen.get(f"{key}:drawn") != drawn or opened:
        seen[f"{key}:drawn"] = drawn
        at = np.flatnonzero(shown["row"].to_numpy() == row)[:1]
        st.session_state[key] = {"selection": {"rows": at.tolist(), "columns": [], "cells": []}}
        seen[key] = row if at.size else None  # what :func:`selected_row` will read back: no new selection
    position = np.flatnonzero(shown["row"].to_numpy() == row)
    if position.size and position[0] >= IN_VIEW:  # the grid cannot be scrolled from here: say where the row is
        st.caption(f"Row {row} is selected (row {int(position[0]) + 1:,} of this page): scroll the table to see it.")
    return shown
