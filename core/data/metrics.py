"""Headline metrics, so users see the model works before they read its explanations."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from core.classes import class_index, default_class_index, output_column

__all__ = ["headline_metrics", "metric_output", "prediction_column", "table_summary"]


def headline_metrics(
    task: str, actual: pd.Series, proba_or_pred: np.ndarray, classes: tuple[Any, ...] | None
) -> dict[str, float]:
    """Accuracy and ROC AUC for classifiers (from probabilities), R², MAE and RMSE for regressors.

    Rows with a missing target are left out. Returns an empty dict when nothing can be computed.
    """
    from sklearn import metrics

    mask = actual.notna().to_numpy()
    if mask.sum() < 2:
        return {}
    y = actual[mask]
    scores = np.asarray(proba_or_pred, dtype=np.float64)[mask]
    if task == "regression":
        y_num = pd.to_numeric(y, errors="coerce").to_numpy(dtype=np.float64)
        pred = scores[:, 0] if scores.ndim == 2 else scores
        return {
            "R²": float(metrics.r2_score(y_num, pred)),
            "MAE": float(metrics.mean_absolute_error(y_num, pred)),
            "RMSE": float(np.sqrt(metrics.mean_squared_error(y_num, pred))),
        }
    labels = [str(c) for c in classes or ()]
    y_text = y.astype(str).to_numpy()
    known = np.isin(y_text, labels)
    if known.sum() < 2 or scores.ndim != 2 or scores.shape[1] != len(labels):
        return {}
    y_idx = np.array([labels.index(v) for v in y_text[known]])
    p = scores[known]
    out = {"accuracy": float((p.argmax(axis=1) == y_idx).mean())}
    if len(np.unique(y_idx)) == len(labels):
        if len(labels) == 2:
            out["ROC AUC"] = float(metrics.roc_auc_score(y_idx, p[:, 1]))
        else:
            out["ROC AUC (one-vs-rest)"] = float(
                metrics.roc_auc_score(y_idx, p, multi_class="ovr", labels=list(range(len(labels))))
            )
    return out


def metric_output(outputs: tuple[str, ...] | list[str]) -> str:
    """The units headline metrics are computed from: probabilities where the model has them."""
    return "probability" if "probability" in outputs else outputs[0]


def prediction_column(predictions: np.ndarray, classes: tuple[Any, ...] | None, label: Any) -> np.ndarray:
    """One column of the model's output in its units: the chosen class's, or the regression prediction.

    A binary model's single margin column is the positive class's log-odds; the other class's is its negative.
    """
    predictions = np.asarray(predictions, dtype=np.float64).reshape(len(predictions), -1)
    if not classes:
        return predictions[:, 0]
    labels = [str(c) for c in classes]
    index = class_index(classes, label) if label is not None and str(label) in labels else default_class_index(classes)
    column, negate = output_column(index, binary_single=predictions.shape[1] == 1)
    return -predictions[:, column] if negate else predictions[:, column]


def table_summary(frame: pd.DataFrame, target: pd.Series | None) -> dict[str, str]:
    """Rows, columns, missing cells and column kinds of an aligned table, as display strings."""
    numeric = sum(pd.api.types.is_numeric_dtype(t) for t in frame.dtypes)
    missing = float(frame.isna().to_numpy().mean()) if frame.size else 0.0
    out = {
        "rows": f"{len(frame):,}",
        "input columns": f"{frame.shape[1]} ({numeric} numeric, {frame.shape[1] - numeric} categorical)",
        "missing cells": f"{missing:.1%}",
    }
    if target is not None:
        out["target"] = f"{target.name} ({target.notna().sum():,} values)"
    return out
