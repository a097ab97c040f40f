"""The row explorer's table: every row with its prediction (and actual), searchable and paged.

The search syntax (:func:`search_rows`) is meant to be typed by people, on tables whose column names have
spaces ("worst radius") and whose prediction column is named after its unit:

* terms are joined by commas (``age>60, sex=female``) or, where that reads unambiguously, spaces;
* a condition is ``column OP value`` with ``OP`` one of ``>= <= != > < =``; the column may be written as
  shown, in any case, quoted (``"worst radius">25`` or with backticks), and ``prediction`` / ``actual``
  name the prediction and actual columns whatever their unit;
* a value with spaces is quoted (``city="New York"``);
* ``row:42`` jumps to a row id; any other word must appear somewhere in the row (case-insensitive).

A term that names no column makes the whole search match nothing, and the result says why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import cast

import numpy as np
import pandas as pd

__all__ = ["PAGE_SIZE", "SearchResult", "example_query", "filter_rows", "page_of", "rows_table", "search_rows"]

PAGE_SIZE = 500
_OPS = (">=", "<=", "!=", ">", "<", "=")
_CONDITION = re.compile(
    r"(?P<name>\"[^\"]*\"|`[^`]*`|'[^']*'|[^<>=!\"'`,]+?)\s*(?P<op>>=|<=|!=|>|<|=)\s*"
    r"(?P<value>\"[^\"]*\"|'[^']*'|`[^`]*`|[^\s,]+)"
)
MAX_QUERY = 500  # characters; a search is typed by a person


@dataclass(frozen=True)
class SearchResult:
    """The rows a query matched, and why there are none when there are none.

    Attributes:
        rows: The matching rows, in table order.
        message: For an empty result, one sentence on why (a column that does not exist, or no row matches).
    """

    rows: pd.DataFrame
    message: str | None = None


def rows_table(frame: pd.DataFrame, prediction: np.ndarray, units: str, actual: pd.Series | None) -> pd.DataFrame:
    """Row id, prediction, actual (when known), then the input columns."""
    table = pd.DataFrame({"row": np.arange(len(frame)), f"prediction ({units})": np.round(prediction, 4)})
    if actual is not None:
        table["actual"] = actual.to_numpy()
    return pd.concat([table, frame.reset_index(drop=True)], axis=1)


def filter_rows(table: pd.DataFrame, query: str) -> pd.DataFrame:
    """The rows of ``table`` that match ``query`` (see :func:`search_rows`)."""
    return search_rows(table, query).rows


def search_rows(table: pd.DataFrame, query: str) -> SearchResult:
    """Rows matching every term of the query (the module docstring gives the syntax)."""
    terms = [t for t in _split(query[:MAX_QUERY], ",") if t.strip()]
    mask = np.ones(len(table), dtype=bool)
    for term in terms:
        matched, problem = _term(table, term)
        if problem:
            return SearchResult(table.iloc[0:0], problem)
        mask &= matched
    rows = table[mask]
    if rows.empty and terms:
        return SearchResult(rows, f"No rows match {query.strip()!r}.")
    return SearchResult(rows)


def example_query(table: pd.DataFrame) -> str:
    """A placeholder for the search box built from this table's own columns."""
    parts = ["row:12"]
    for name in table.columns[1:]:
        column = table[name]
        if pd.api.types.is_numeric_dtype(column) and column.notna().any():
            shown = name.split(" (")[0] if str(name).startswith("prediction (") else name
            parts.append(f"{_quote(str(shown))}>{float(column.median()):.3g}")
            break
    text = [c for c in table.columns if not pd.api.types.is_numeric_dtype(table[c])]
    if text and table[text[0]].notna().any():
        parts.append(f"{_quote(str(text[0]))}={table[text[0]].dropna().iloc[0]}")
    return ", ".join(parts)


def page_of(table: pd.DataFrame, page: int, size: int = PAGE_SIZE) -> pd.DataFrame:
    """One page of the table (pages are numbered from 1)."""
    start = max(0, (page - 1) * size)
    return table.iloc[start : start + size]


def _quote(name: str) -> str:
    return f'"{name}"' if " " in name or any(op in name for op in _OPS) else name


def _split(text: str, separator: str) -> list[str]:
    """Split on ``separator`` outside quotes (``"…"``, ``'…'`` or backticks)."""
    current: list[str]
    parts, current, quote = [], [], None
    for char in text:
        if quote:
            quote = None if char == quote else quote
        elif char in "\"'`":
            quote = char
        elif char == separator or (separator == " " and char.isspace()):
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def _term(table: pd.DataFrame, term: str) -> tuple[np.ndarray, str | None]:
    """One comma-separated term: conditions (``name OP value``; names may hold spaces), then words."""
    mask = np.ones(len(table), dtype=bool)
    words: list[str] = []
    end = 0
    for found in _CONDITION.finditer(term):
        name = found["name"].strip()
        column, leading = _resolve(table, name)
        if column is None:
            return mask, f"No rows match: there is no column named {_unquote(name)!r}."
        words += leading
        matched, problem = _compare(table[column], found["op"], _unquote(found["value"]))
        if problem:
            return mask, problem
        mask &= matched
        end = found.end()
    words += [w for w in _split(term[end:], " ") if w]
    for word in words:
        mask &= _word(table, word)
    return mask, None


def _resolve(table: pd.DataFrame, name: str) -> tuple[str | None, list[str]]:
    """The column a condition names, and the words before it that are plain search words (``lyon age>60``)."""
    if name[:1] in "\"'`":
        return _column(table, _unquote(name)), []
    words = name.split()
    for i in range(len(words)):
        column = _column(table, " ".join(words[i:]))
        if column is not None:
            return column, words[:i]
    return None, []


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'`":
        return text[1:-1]
    return text


def _column(table: pd.DataFrame, name: str) -> str | None:
    columns = [str(c) for c in table.columns]
    if name in columns:
        return name
    folded = {c.casefold(): c for c in columns}
    if name.casefold() in folded:
        return folded[name.casefold()]
    if name.casefold() in ("prediction", "predicted"):
        return next((c for c in columns if c.startswith("prediction (")), None)
    return None


def _compare(column: pd.Series, op: str, value: str) -> tuple[np.ndarray, str | None]:
    numbers = pd.to_numeric(column, errors="coerce")
    try:
        number = float(value)
    except ValueError:
        number = None
    if number is not None and numbers.notna().any():
        result = {
            ">=": numbers >= number,
            "<=": numbers <= number,
            ">": numbers > number,
            "<": numbers < number,
            "=": numbers == number,
            "!=": numbers != number,
        }[op]
        return result.fillna(False).to_numpy(dtype=bool), None
    if op not in ("=", "!="):
        return np.zeros(len(column), dtype=bool), f"No rows match: {column.name!r} {op} needs a number, not {value!r}."
    equal = (column.astype(str).str.casefold() == value.casefold()).to_numpy(dtype=bool)
    return (equal if op == "=" else ~equal), None


def _word(table: pd.DataFrame, word: str) -> np.ndarray:
    word = _unquote(word)
    if word.lower().startswith("row:") and word[4:].isdigit():
        return cast(np.ndarray, (table["row"] == int(word[4:])).to_numpy())
    text = table.astype(str).apply(lambda c: c.str.contains(word, case=False, regex=False))
    return cast(np.ndarray, text.any(axis=1).to_numpy())
