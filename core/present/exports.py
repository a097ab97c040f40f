"""Tables that leave ModelLens (CSV / Parquet downloads): safe to open in a spreadsheet."""

from __future__ import annotations

from typing import cast

import pandas as pd

__all__ = ["neutralise_formula", "safe_table", "shap_csv", "shap_parquet"]

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formula(value: object) -> object:
    """Prefix text that a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``) with a quote."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def safe_table(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose text cells and column names cannot be spreadsheet formulas (numbers are untouched)."""
    out = frame.copy()
    out.columns = [neutralise_formula(str(c)) for c in out.columns]
    for col in out.columns:
        if not pd.api.types.is_numeric_dtype(out[col].dtype):
            out[col] = out[col].map(neutralise_formula)
    return out


def shap_csv(frame: pd.DataFrame) -> bytes:
    """A SHAP table (``Explanation.to_frame()``) as spreadsheet-safe CSV bytes."""
    return cast(bytes, safe_table(frame).to_csv(index=False).encode("utf-8"))


def shap_parquet(frame: pd.DataFrame) -> bytes:
    """A SHAP table as spreadsheet-safe Parquet bytes."""
    import io

    buf = io.BytesIO()
    safe_table(frame).to_parquet(buf, index=False)
    return buf.getvalue()
