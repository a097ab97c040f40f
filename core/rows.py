"""The row explorer's table: every row with its prediction (and actual), searchable and paged."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["filter_rows", "page_of", "rows_table"]

PAGE_SIZE = 500


def rows_table(frame: pd.DataFrame, prediction: np.ndarray, units: str, actual: pd.Series | None) -> pd.DataFrame:
    """Row id, prediction, actual (when known), then the input columns."""
    table = pd.DataFrame({"row": np.arange(len(frame)), f"prediction ({units})": np.round(prediction, 4)})
    if actual is not None:
        table["actual"] = actual.to_numpy()
    return pd.concat([table, frame.reset_index(drop=True)], axis=1)


def filter_rows(table: pd.DataFrame, query: str) -> pd.DataFrame:
    """Rows whose text (any column) contains every word of the query, case-insensitively.

    A query like ``row:42`` jumps to one row id; ``column>value`` / ``column<value`` filter numbers.
    """
    query = query.strip()
    if not query:
        return table
    mask = np.ones(len(table), dtype=bool)
    for word in query.split():
        mask &= _match(table, word)
    return table[mask]


def _match(table: pd.DataFrame, word: str) -> np.ndarray:
    if word.lower().startswith("row:") and word[4:].isdigit():
        return (table["row"] == int(word[4:])).to_numpy()
    for op in (">=", "<=", ">", "<", "="):
        name, sep, value = word.partition(op)
        if sep and name in table.columns:
            column = pd.to_numeric(table[name], errors="coerce")
            try:
                number = float(value)
            except ValueError:
                return (table[name].astype(str).str.lower() == value.lower()).to_numpy()
            result = {
                ">=": column >= number,
                "<=": column <= number,
                ">": column > number,
                "<": column < number,
                "=": column == number,
            }[op]
            return result.fillna(False).to_numpy(dtype=bool)
    text = table.astype(str).apply(lambda c: c.str.contains(word, case=False, regex=False))
    return text.any(axis=1).to_numpy()


def page_of(table: pd.DataFrame, page: int, size: int = PAGE_SIZE) -> pd.DataFrame:
    """One page of the table (pages are numbered from 1)."""
    start = max(0, (page - 1) * size)
    return table.iloc[start : start + size]
