"""Global importance: every kind a model offers, each with its name, units and uncertainty.

* ``shap``: mean |SHAP| per feature, with a 95 % band when computed on a sample of the table;
* ``model``: the model's own importances (impurity / gain, or |coef| x feature spread);
* ``permutation``: drop in the model's score when a column is shuffled (needs the target).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pandas as pd

from core.explanation import Explanation

__all__ = ["Importance", "global_importances", "shap_importance", "strongest_interaction", "top_with_other"]


@dataclass(frozen=True, eq=False)
class Importance:
    """One kind of global importance.

    Attributes:
        kind: ``shap``, ``shap-all-classes``, ``model`` or ``permutation``.
        label: What the numbers are, for titles and legends.
        values: Feature -> importance, largest first.
        error: Feature -> half-width of a 95 % band (sampled SHAP, permutation repeats), or None.
        note: Coverage or caveat, e.g. ``computed on 500 of 10,000 rows``.
    """

    kind: str
    label: str
    values: pd.Series
    error: pd.Series | None = None
    note: str = ""


def shap_importance(expl: Explanation) -> Importance:
    """Mean |SHAP| per feature; a 95 % band (normal approximation) when the rows are a sample."""
    absolute = np.abs(expl.values)
    values = pd.Series(absolute.mean(axis=0), index=list(expl.feature_names))
    error = None
    if expl.is_sample and len(expl) > 1:
        sem = absolute.std(axis=0, ddof=1) / np.sqrt(len(expl))
        error = pd.Series(1.96 * sem, index=values.index)
    order = values.sort_values(ascending=False, kind="stable").index
    return Importance(
        kind="shap",
        label=f"mean |SHAP value| ({expl.units})",
        values=values[order],
        error=None if error is None else error[order],
        note=expl.coverage_label,
    )


def _from_array(kind: str, label: str, names: list[str], values: Any, error: Any = None, note: str = "") -> Importance:
    series = pd.Series(np.asarray(values, dtype=np.float64), index=names)
    order = series.sort_values(ascending=False, kind="stable").index
    err = None if error is None else pd.Series(np.asarray(error, dtype=np.float64), index=names)[order]
    return Importance(kind=kind, label=label, values=series[order], error=err, note=note)


def global_importances(
    expl: Explanation,
    *,
    all_classes: pd.Series | None = None,
    model_importance: dict[str, Any] | None = None,
    permutation: dict[str, Any] | None = None,
) -> list[Importance]:
    """Every importance kind available, SHAP first.

    Args:
        expl: The explanation of the selected class (raw or engineered view).
        all_classes: Mean |SHAP| summed over classes (multiclass models).
        model_importance: ``{"label", "values"}`` from the model itself, on the same columns.
        permutation: ``{"mean", "std", "scoring"}`` from permutation importance, on the same columns.
    """
    names = list(expl.feature_names)
    out = [shap_importance(expl)]
    if all_classes is not None:
        out.append(
            Importance(
                "shap-all-classes",
                f"mean |SHAP value| summed over classes ({expl.output})",
                all_classes,
                note=expl.coverage_label,
            )
        )
    if model_importance and len(model_importance["values"]) == len(names):
        out.append(_from_array("model", model_importance["label"], names, model_importance["values"]))
    if permutation and len(permutation["mean"]) == len(names):
        label = f"drop in {permutation['scoring']} when the column is shuffled"
        out.append(_from_array("permutation", label, names, permutation["mean"], 1.96 * np.asarray(permutation["std"])))
    return out


def top_with_other(importance: Importance, top_n: int) -> tuple[list[str], np.ndarray, np.ndarray | None, float, int]:
    """The top features, and the rest summed as one "other features" amount.

    Returns:
        (names, values, errors, other_sum, n_other)
    """
    values = importance.values
    top = values.iloc[:top_n]
    rest = values.iloc[top_n:]
    errors = None if importance.error is None else importance.error.iloc[:top_n].to_numpy()
    return list(top.index), top.to_numpy(), errors, float(rest.sum()), len(rest)


def _codes(series: pd.Series) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(series.dtype):
        return cast(np.ndarray, series.to_numpy(dtype=np.float64, na_value=np.nan))
    return cast(np.ndarray, pd.Series(pd.Categorical(series.astype(str))).cat.codes.to_numpy(dtype=np.float64))


def strongest_interaction(expl: Explanation, feature: str, *, bins: int = 10) -> str | None:
    """The feature that best explains the spread of ``feature``'s SHAP values at equal feature value.

    Like shap's ``approximate_interactions``: rows are sorted by the feature's value and cut into bins;
    within each bin, the |correlation| between the feature's SHAP values and each other feature is summed.
    """
    names = list(expl.feature_names)
    if feature not in names or len(names) < 2 or len(expl) < 10:
        return None
    i = names.index(feature)
    order = np.argsort(_codes(expl.data.iloc[:, i]), kind="stable")
    shap_i = expl.values[order, i]
    scores = np.zeros(len(names))
    for j in range(len(names)):
        if j == i:
            continue
        other = _codes(expl.data.iloc[:, j])[order]
        for chunk in np.array_split(np.arange(len(order)), min(bins, len(order) // 5 or 1)):
            a, b = shap_i[chunk], other[chunk]
            ok = ~np.isnan(b)
            if ok.sum() > 2 and a[ok].std() > 0 and b[ok].std() > 0:
                scores[j] += abs(np.corrcoef(a[ok], b[ok])[0, 1])
    best = int(np.argmax(scores))
    return names[best] if scores[best] > 0 else None
