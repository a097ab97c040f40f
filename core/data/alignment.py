"""Matching an uploaded table to a model: column order, target, extra columns, types.

Never surprising: everything :func:`align` changes or sets aside is reported as a notice, and anything it
cannot fix is a :class:`~core.errors.SchemaError` / :class:`~core.errors.DataError` naming the columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from core.errors import DataError, SchemaError

__all__ = ["TARGET_NAMES", "Aligned", "align"]

TARGET_NAMES = ("target", "label", "y", "class", "outcome", "actual", "ground_truth", "response")


@dataclass(frozen=True, eq=False)
class Aligned:
    """A table matched to a model.

    Attributes:
        frame: The model's input columns, in its order, with usable types.
        target: The target column when present (for metrics and permutation importance).
        target_name: Its name.
        ignored: Columns set aside (IDs, notes, ...).
        notices: One sentence per thing the user should know.
        by_position: True when a model fitted on bare arrays was matched by column position.
    """

    frame: pd.DataFrame
    target: pd.Series | None = None
    target_name: str | None = None
    ignored: tuple[str, ...] = ()
    notices: tuple[str, ...] = field(default=())
    by_position: bool = False


def _normalise(name: str) -> str:
    return " ".join(str(name).strip().lower().replace("_", " ").split())


def align(model: Any, frame: pd.DataFrame, *, target: str | None = None) -> Aligned:
    """Match a table to a model (a :class:`~core.loading.models.LoadedModel` or anything with the same card fields).

    Args:
        model: The model card: ``feature_names``, ``n_features``, ``input_kinds``, ``categories``, ``classes``.
        frame: The uploaded table.
        target: The target column chosen by the user (None: detect it by name or by its values).

    Raises:
        SchemaError: Required columns are missing (named), or a bare-array model's column count does not fit.
        DataError: A column the model needs as numbers holds text that is not numeric.
    """
    notices: list[str] = []
    expected = list(model.feature_names) if model.feature_names is not None else None
    if target is not None and target not in frame.columns:
        raise SchemaError(f"The target column {target!r} is not in the table.", [target])
    if expected is None:
        return _align_by_position(model, frame, target, notices)
    frame = _match_names(frame, expected, notices)
    missing = [c for c in expected if c not in frame.columns]
    if missing:
        shown = ", ".join(map(repr, missing[:12])) + (" …" if len(missing) > 12 else "")
        raise SchemaError(
            f"The table lacks {len(missing)} column{'s' if len(missing) > 1 else ''} the model needs: {shown}. "
            "Upload the table the model was trained on (same column names).",
            missing,
        )
    detected = None if target else _detect_target(model, frame, [c for c in frame.columns if c not in expected])
    target_name = target or (detected[0] if detected else None)
    if detected is not None:
        notices.append(
            f"Column {detected[0]!r} looks like the target ({detected[1]}); it is shown as the actual value, not used "
            "as input. Pick another target in the sidebar if it is not."
        )
    ignored = [c for c in frame.columns if c not in expected and c != target_name]
    if ignored:
        notices.append(f"Ignored {len(ignored)} column(s) the model does not use: {', '.join(map(repr, ignored[:8]))}.")
    out = _coerce(model, frame[expected].copy(), notices)
    tgt = frame[target_name].reset_index(drop=True) if target_name else None
    return Aligned(out.reset_index(drop=True), tgt, target_name, tuple(ignored), tuple(notices))


def _match_names(frame: pd.DataFrame, expected: list[str], notices: list[str]) -> pd.DataFrame:
    """Rename columns that differ from the model's only by case, spaces or underscores."""
    present = set(frame.columns)
    by_norm = {_normalise(c): c for c in frame.columns}
    renames = {}
    for name in expected:
        if name not in present and _normalise(name) in by_norm and by_norm[_normalise(name)] not in expected:
            renames[by_norm[_normalise(name)]] = name
    if renames:
        notices.append(
            "Matched columns by name ignoring case and spaces: " + ", ".join(f"{a!r}→{b!r}" for a, b in renames.items())
        )
        frame = frame.rename(columns=renames)
    return frame


def _detect_target(model: Any, frame: pd.DataFrame, candidates: list[str]) -> tuple[str, str] | None:
    """The column among ``candidates`` (those the model does not use) that holds the target, and why.

    By name first (``target``, ``label``, …); then, for a classifier, a column whose values are its class
    labels; for a regressor, the only numeric column that is not a row id (or the last column of the table,
    where most exports put the target, when several are).
    """
    for c in candidates:
        if _normalise(c) in TARGET_NAMES:
            return c, "by its name"
    classes = getattr(model, "classes", None)
    if classes:
        labels = {_text(c) for c in classes}
        fitting = [c for c in candidates if _holds_labels(frame[c], labels)]
        if fitting:
            return (fitting[-1] if candidates[-1] in fitting else fitting[0]), "its values are the model's classes"
        return None
    if getattr(model, "task", None) != "regression":
        return None
    numeric = [c for c in candidates if _mostly_numeric(frame[c]) and not _looks_like_row_id(c, frame[c])]
    if len(numeric) == 1:
        return numeric[0], "the only numeric column the model does not use"
    if numeric and numeric[-1] == frame.columns[-1]:
        return numeric[-1], "the last numeric column, which the model does not use"
    return None


def _holds_labels(series: pd.Series, labels: set[str]) -> bool:
    values = {_text(v) for v in series.dropna().unique()[:1000]}
    return bool(values) and values <= labels and len(values) >= min(2, len(labels))


def _looks_like_row_id(name: str, series: pd.Series) -> bool:
    norm = _normalise(name)
    if norm in ("id", "index", "row", "unnamed: 0") or norm.endswith(" id") or norm.startswith("id "):
        return True
    values = pd.to_numeric(series, errors="coerce").dropna().to_numpy()
    if len(values) < 3 or not np.all(np.mod(values, 1) == 0):
        return False
    step = np.diff(values)
    return bool(np.all(step == 1))  # 0, 1, 2, … or 1, 2, 3, …: a row number


def _align_by_position(model: Any, frame: pd.DataFrame, target: str | None, notices: list[str]) -> Aligned:
    n = model.n_features
    target_name, why = target, "chosen"
    if target_name is None and n is not None and frame.shape[1] == n + 1:
        detected = _detect_target(model, frame, list(frame.columns))
        if detected is not None:
            target_name, why = detected
    features = frame.drop(columns=[target_name]) if target_name else frame
    if n is not None and features.shape[1] != n:
        raise SchemaError(
            f"The model was fitted on {n} unnamed columns but the table has {features.shape[1]}"
            f"{' besides the target' if target_name else ''}; upload a table with exactly {n} feature columns in the "
            "training order."
        )
    more = " …" if features.shape[1] > 12 else ""
    shown = ", ".join(f"{c!r}→{i}" for i, c in enumerate(features.columns[:12])) + more
    notices.append(f"The model was fitted without column names: matched the table's columns by position ({shown}).")
    if target_name:
        notices.append(f"Column {target_name!r} is used as the target ({why}).")
    out = _coerce(model, features.copy(), notices)
    tgt = frame[target_name].reset_index(drop=True) if target_name else None
    return Aligned(out.reset_index(drop=True), tgt, target_name, (), tuple(notices), by_position=True)


def _coerce(model: Any, frame: pd.DataFrame, notices: list[str]) -> pd.DataFrame:
    kinds = getattr(model, "input_kinds", {}) or {}
    categories = getattr(model, "categories", {}) or {}
    steps = getattr(model, "steps", None) or ()
    encoders = any(isinstance(step, dict) and step.get("class") == "ColumnTransformer" for step in steps)
    catboost = getattr(model, "library", None) == "CatBoost" and not encoders  # CatBoost reads these columns itself
    for col in frame.columns:
        kind = kinds.get(col, "numeric" if kinds else None)
        series = frame[col]
        if kind in ("categorical", "category") and catboost:
            frame[col] = _as_catboost_text(col, series, notices)
        elif kind in ("categorical", "category"):
            frame[col] = _as_category(col, series, categories.get(col), notices, dtype=kind == "category")
        elif kind == "numeric" or (kind is None and _mostly_numeric(series)):
            frame[col] = _as_number(col, series, notices)
        elif not pd.api.types.is_numeric_dtype(series.dtype):
            frame[col] = series.astype(object).where(series.notna(), np.nan)
    return frame


def _mostly_numeric(series: pd.Series) -> bool:
    if pd.api.types.is_numeric_dtype(series.dtype):
        return True
    converted = pd.to_numeric(series, errors="coerce")
    return bool(converted.notna().sum() >= 0.9 * series.notna().sum() > 0)


def _as_number(col: str, series: pd.Series, notices: list[str]) -> pd.Series:
    if pd.api.types.is_bool_dtype(series.dtype):
        return series.astype(np.float64)
    if pd.api.types.is_numeric_dtype(series.dtype):
        return series
    converted = _parse_numbers(col, series.astype("string").str.strip(), notices)
    failed = series.notna() & converted.isna()
    if failed.all() and series.notna().any():
        example = str(series[failed].iloc[0])[:30]
        raise DataError(f"Column {col!r} must hold numbers for this model, but holds text such as {example!r}.")
    if failed.any():
        notices.append(f"Column {col!r}: {int(failed.sum())} value(s) are not numbers and were treated as missing.")
    return converted.astype(np.float64)


_THOUSANDS = r"[+-]?\d{1,3}(,\d{3})+(\.\d*)?"  # 72,000 or 1,234.5
_DECIMAL_COMMA = r"[+-]?(\d{1,3}(\.\d{3})+|\d*)(,\d+)?"  # 3,5 or 1.234,5


def _parse_numbers(col: str, text: pd.Series, notices: list[str]) -> pd.Series:
    """Numbers written as text, with the column's comma convention decided once and named in a notice.

    ``72,000`` alone is ambiguous: it is read with a thousands separator unless a value of the column can
    only be a decimal comma (``3,5``, ``1.234,5``), in which case every comma of the column is decimal.
    """
    plain = pd.to_numeric(text, errors="coerce").astype(np.float64)
    commas = text[plain.isna() & text.str.contains(",", regex=False).fillna(False).astype(bool)]
    if commas.empty:
        return plain
    if commas.str.fullmatch(_THOUSANDS).all():
        parsed, how = pd.to_numeric(commas.str.replace(",", "", regex=False), errors="coerce"), "a thousands separator"
    elif commas.str.fullmatch(_DECIMAL_COMMA).all():
        decimal = commas.str.replace(".", "", regex=False).str.replace(",", ".", regex=False)
        parsed, how = pd.to_numeric(decimal, errors="coerce"), "a decimal comma"
    else:
        return plain
    parsed = parsed.astype(np.float64)
    notices.append(f"Column {col!r}: ',' was read as {how} ({commas.iloc[0]!r} is {parsed.iloc[0]:g}).")
    return plain.fillna(parsed)


def _as_category(col: str, series: pd.Series, known: list[Any] | None, notices: list[str], *, dtype: bool) -> pd.Series:
    """Categorical input: plain values (object) for encoders, or a pandas category dtype for native boosters.

    Values are matched to the known levels in the levels' own type: a file read ``3`` as a number where the
    model knows the text ``'3'`` (or the reverse) still finds its level, instead of every value being unseen.
    """
    values = series.astype(object).where(series.notna(), np.nan)
    numeric = pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype)
    if known and all(isinstance(k, (int, float)) and not isinstance(k, bool) for k in known) and not numeric:
        values = pd.to_numeric(series, errors="coerce")
    elif known and all(isinstance(k, str) for k in known) and numeric:
        values = series.astype(object).map(_text, na_action="ignore")
    elif numeric:
        values = series
    if known:
        unknown = series.notna() & ~values.isin(known)
        if unknown.any():
            example = str(series[unknown].iloc[0])[:30]
            handled = "they are read as missing values" if dtype else "the model treats them as unknown categories"
            notices.append(
                f"Column {col!r}: {int(unknown.sum())} value(s) were not seen in training (such as {example!r}); "
                f"{handled}."
            )
    if dtype:
        cats = known if known else sorted(values.dropna().unique().tolist(), key=str)
        return pd.Series(pd.Categorical(values, categories=cats), index=series.index)
    return values


def _text(value: Any) -> str:
    """A category as text; integral numbers without a decimal part (3.0 -> '3')."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _as_catboost_text(col: str, series: pd.Series, notices: list[str]) -> pd.Series:
    """CatBoost's categorical input: text (it reads the integer 3 and the text '3' as one category).

    CatBoost refuses real numbers and missing values in categorical columns, so integral numbers are written
    as integers and a missing value is passed as the text ``'nan'`` (what ``astype(str)`` writes), with a notice.
    """
    missing = series.isna()
    values = series.astype(object).map(_text, na_action="ignore")
    if missing.any():
        notices.append(
            f"Column {col!r}: {int(missing.sum())} missing value(s) are passed to CatBoost as the category 'nan' "
            "(CatBoost cannot read a missing category)."
        )
    return values.where(~missing, "nan").astype(object)
