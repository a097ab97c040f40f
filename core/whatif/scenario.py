"""A what-if scenario: one row of the table with some raw columns changed, explained exactly beside the original.

Values are typed as the model reads its columns (from the model card): a number for a numeric column, one of
the model's own levels for a categorical one (the table's observed values when the model records none), and
missing only where the table already has missing values in that column. Both rows are explained by the same
explainer, in the same units, with the same row id (so a sampling method draws the same permutations), and
each explanation is exact: base value + contributions = the prediction shown.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from core.engine.explain import Explainer
from core.errors import DataError
from core.explanation import Explanation
from core.loading.models import LoadedModel

__all__ = ["MISSING_WORDS", "Field", "WhatIf", "allowed_values", "coerce_value", "edit_row", "form_fields", "what_if"]

MISSING_WORDS = frozenset({"", "nan", "na", "n/a", "none", "null", "missing"})


def _plain(value: Any) -> Any:
    """A JSON-ready scalar (numpy scalars unwrapped, NaN as None)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def _is_categorical(model: LoadedModel, frame: pd.DataFrame, column: str) -> bool:
    kind = model.input_kinds.get(column)
    if kind in ("categorical", "category"):
        return True
    if kind == "numeric":
        return False
    return not pd.api.types.is_numeric_dtype(frame[column])


def allowed_values(model: LoadedModel, frame: pd.DataFrame, column: str) -> list[Any] | None:
    """The levels a categorical column may take (the model's own, else the table's), or None for a number."""
    if not _is_categorical(model, frame, column):
        return None
    levels = model.categories.get(column)
    if levels:
        return [_plain(v) for v in levels if _plain(v) is not None]
    observed = frame[column].dropna().unique().tolist()
    return sorted((_plain(v) for v in observed), key=str)


@dataclass(frozen=True)
class Field:
    """One raw column of a what-if form, typed from the model card.

    Attributes:
        name: The column.
        value: The row's current value (None when missing).
        options: A categorical column's levels (None for a number).
        low, high: A numeric column's observed range in the table.
        integer: Every observed value is a whole number (the form steps by 1).
        allows_missing: The table has missing values in this column (the form may leave it empty).
    """

    name: str
    value: Any
    options: list[Any] | None
    low: float | None
    high: float | None
    integer: bool
    allows_missing: bool


def form_fields(model: LoadedModel, frame: pd.DataFrame, row: int, columns: list[str] | None = None) -> list[Field]:
    """The what-if form of row ``row``: one :class:`Field` per column (``columns`` order, default the table's)."""
    fields = []
    for name in columns or [str(c) for c in frame.columns]:
        series = frame[name]
        options = allowed_values(model, frame, name)
        observed = None if options is not None else pd.to_numeric(series, errors="coerce").dropna()
        fields.append(
            Field(
                name=name,
                value=_plain(frame[name].iloc[row]),
                options=options,
                low=None if observed is None or observed.empty else float(observed.min()),
                high=None if observed is None or observed.empty else float(observed.max()),
                integer=bool(observed is not None and not observed.empty and (observed % 1 == 0).all()),
                allows_missing=bool(series.isna().any()),
            )
        )
    return fields


def coerce_value(model: LoadedModel, frame: pd.DataFrame, column: str, value: Any) -> Any:
    """``value`` (often text from a form or a command line) typed as the model reads ``column``.

    Raises:
        DataError: The column is not one of the model's inputs, the value is not a number for a numeric
            column or not one of a categorical column's levels, or it is missing where the table has no
            missing values in that column.
    """
    if column not in frame.columns:
        raise DataError(f"{column!r} is not one of the model's input columns ({', '.join(map(str, frame.columns))}).")
    text = str(value).strip() if value is not None else ""
    is_missing = value is None or (isinstance(value, float) and math.isnan(value)) or text.lower() in MISSING_WORDS
    if is_missing:
        if not frame[column].isna().any():
            raise DataError(f"{column!r} has no missing values in this table; give it a value.")
        return np.nan if not _is_categorical(model, frame, column) else None
    levels = allowed_values(model, frame, column)
    if levels is not None:
        for level in levels:
            if level == value or str(level) == text:
                return level
        shown = ", ".join(map(str, levels[:20])) + (" …" if len(levels) > 20 else "")
        raise DataError(f"{text!r} is not a level of {column!r}; the model knows: {shown}.")
    try:
        number = float(text)
    except ValueError:
        raise DataError(f"{column!r} is a number; {text!r} is not one.") from None
    if pd.api.types.is_integer_dtype(frame[column]) and number.is_integer():
        return int(number)
    return number


def edit_row(frame: pd.DataFrame, row: int, changes: Mapping[str, Any]) -> pd.DataFrame:
    """Row ``row`` of ``frame`` as a one-row frame with ``changes`` applied, every column keeping its dtype."""
    if not 0 <= row < len(frame):
        raise DataError(f"Row {row} is not in the table (it has {len(frame):,} rows, numbered from 0).")
    edited = frame.iloc[[row]].copy().reset_index(drop=True)
    for column, value in changes.items():
        series = edited[column]
        if not pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype):
            edited[column] = pd.Series([value], dtype=series.dtype)
        elif value is None or (isinstance(value, float) and math.isnan(value)):
            edited[column] = edited[column].astype(np.float64)
            edited.loc[0, column] = np.nan
        else:
            target = series.dtype if pd.api.types.is_float_dtype(series.dtype) or isinstance(value, int) else np.float64
            edited[column] = pd.Series([value]).astype(target)
    return edited


@dataclass(frozen=True)
class WhatIf:
    """A row and its edited copy, each explained for one class in the explainer's units.

    Attributes:
        row: The row's position in the table.
        changed: Column -> (original value, new value), only for values that differ.
        original, edited: One-row explanations (exact: base + sum of contributions = prediction).
    """

    row: int
    changed: dict[str, tuple[Any, Any]]
    original: Explanation
    edited: Explanation

    @property
    def shift(self) -> pd.Series:
        """Per raw column, the edited contribution minus the original one."""
        names = list(self.original.feature_names)
        return pd.Series(self.edited.values[0] - self.original.values[0], index=names)

    def to_json(self) -> dict[str, Any]:
        """The ``modellens whatif`` document: both explanations, and what changed."""

        def side(expl: Explanation) -> dict[str, Any]:
            return {
                "prediction": float(expl.prediction[0]),
                "base": float(expl.base_values[0]),
                "contributions": {n: float(v) for n, v in zip(expl.feature_names, expl.values[0], strict=True)},
            }

        return {
            "row": self.row,
            "output": self.original.output,
            "class": _plain(self.original.class_label),
            "original": side(self.original),
            "edited": side(self.edited),
            "changed": {c: [_plain(a), _plain(b)] for c, (a, b) in self.changed.items()},
        }


def _same(a: Any, b: Any) -> bool:
    a, b = _plain(a), _plain(b)
    return a == b or str(a) == str(b)


def what_if(
    explainer: Explainer, model: LoadedModel, row: int, changes: Mapping[str, Any], *, class_label: Any = None
) -> WhatIf:
    """Explain row ``row`` and its copy with ``changes`` (raw column -> value, typed by :func:`coerce_value`)."""
    frame = explainer.data
    typed = {column: coerce_value(model, frame, column, value) for column, value in changes.items()}
    edited = edit_row(frame, row, typed)
    original_values = frame.iloc[row]
    changed = {c: (original_values[c], v) for c, v in typed.items() if not _same(original_values[c], v)}
    ids = np.array([row], dtype=np.int64)
    both = explainer.explain_frame(pd.concat([frame.iloc[[row]], edited], ignore_index=True), np.repeat(ids, 2))
    explained = both.for_class(class_label)
    return WhatIf(row=row, changed=changed, original=explained.take([0]), edited=explained.take([1]))
