"""Sensitivity of one feature for one row: the prediction and that feature's own contribution across its values.

An individual conditional expectation (ICE) curve made of exact explanations: the row is copied once per grid
value (observed quantiles of a numeric column, or a categorical column's levels), any what-if edits kept, and
every copy is explained by the same explainer with the row's own id. So each point's prediction is the model's
own output for that copy, and the contribution beside it is that feature's exact share of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from core.engine.explain import Explainer
from core.errors import DataError
from core.explanation import Explanation
from core.loading.models import LoadedModel
from core.whatif.scenario import allowed_values, coerce_value, edit_row

__all__ = ["IceBundle", "Sensitivity", "ice_bundle", "sensitivity"]


@dataclass(frozen=True)
class Sensitivity:
    """One feature swept for one row.

    Attributes:
        feature: The swept column.
        grid: Its values, in order (numbers ascending, or the model's levels).
        prediction: The model's output at each value (the explained class, the explainer's units).
        contribution: The feature's own contribution at each value.
        current: The row's value of the feature (after any other edits, before sweeping it).
        explanation: Every copy's exact explanation (one row per grid value).
    """

    feature: str
    grid: list[Any]
    prediction: np.ndarray
    contribution: np.ndarray
    current: Any
    explanation: Explanation

    @property
    def categorical(self) -> bool:
        """True when the grid is a list of levels rather than numbers."""
        return not all(isinstance(v, (int, float)) for v in self.grid)


def _grid(model: LoadedModel, frame: pd.DataFrame, feature: str, points: int) -> list[Any]:
    levels = allowed_values(model, frame, feature)
    if levels is not None:
        return list(levels)
    observed = pd.to_numeric(frame[feature], errors="coerce").dropna().to_numpy(dtype=np.float64)
    if observed.size == 0:
        raise DataError(f"{feature!r} has no numeric values in this table to sweep.")
    values = np.unique(np.quantile(observed, np.linspace(0.0, 1.0, points)))
    if np.all(observed % 1 == 0):
        values = np.unique(np.round(values))
    return [float(v) for v in values]


def sensitivity(
    explainer: Explainer,
    model: LoadedModel,
    row: int,
    feature: str,
    *,
    changes: Mapping[str, Any] | None = None,
    class_label: Any = None,
    points: int = 25,
) -> Sensitivity:
    """Sweep ``feature`` of row ``row`` (with ``changes`` applied first) across its observed values."""
    frame = explainer.data
    if feature not in frame.columns:
        raise DataError(f"{feature!r} is not one of the model's input columns.")
    typed = {c: coerce_value(model, frame, c, v) for c, v in (changes or {}).items() if c != feature}
    base_row = edit_row(frame, row, typed)
    grid = _grid(model, frame, feature, points)
    copies = pd.concat([edit_row(base_row, 0, {feature: value}) for value in grid], ignore_index=True)
    explained = explainer.explain_frame(copies, np.full(len(grid), row, dtype=np.int64)).for_class(class_label)
    position = list(explained.feature_names).index(feature)
    current = (changes or {}).get(feature, frame[feature].iloc[row])
    return Sensitivity(
        feature=feature,
        grid=grid,
        prediction=np.asarray(explained.prediction, dtype=np.float64),
        contribution=np.asarray(explained.values[:, position], dtype=np.float64),
        current=current,
        explanation=explained,
    )


def _swept(sample: pd.DataFrame, feature: str, grid: list[Any]) -> pd.DataFrame:
    """Every row of ``sample`` once per grid value (row-major), the feature set to that value, dtypes kept."""
    copies = sample.loc[sample.index.repeat(len(grid))].reset_index(drop=True)
    values = grid * len(sample)
    dtype = sample[feature].dtype
    if isinstance(dtype, pd.CategoricalDtype):
        copies[feature] = pd.Categorical(values, categories=dtype.categories, ordered=dtype.ordered)
    elif not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
        copies[feature] = pd.Series(values, dtype=dtype)
    else:
        copies[feature] = pd.Series(values, dtype=np.float64)
    return copies


@dataclass(frozen=True)
class IceBundle:
    """One feature swept on a sample of rows: every row's curve (ICE) and their average (partial dependence).

    Attributes:
        feature: The swept column.
        grid: Its values (observed quantiles, or the model's levels).
        curves: (rows, values) the model's output for the explained class, in the explainer's units.
        rows: The sampled rows' positions in the table.
    """

    feature: str
    grid: list[Any]
    curves: np.ndarray
    rows: np.ndarray

    @property
    def centred(self) -> np.ndarray:
        """Each curve minus its value at the first grid point (c-ICE: shapes compare, levels do not)."""
        return np.asarray(self.curves - self.curves[:, :1], dtype=np.float64)

    @property
    def average(self) -> np.ndarray:
        """The partial dependence: the mean curve."""
        return np.asarray(self.curves.mean(axis=0), dtype=np.float64)


def ice_bundle(
    explainer: Explainer,
    model: LoadedModel,
    feature: str,
    *,
    class_label: Any = None,
    rows: int = 60,
    points: int = 20,
    seed: int = 0,
) -> IceBundle:
    """ICE curves of ``feature`` on a seeded sample of ``rows`` rows, predicted in one batch by the model's worker."""
    from core.data.metrics import prediction_column

    frame = explainer.data
    if feature not in frame.columns:
        raise DataError(f"{feature!r} is not one of the model's input columns.")
    grid = _grid(model, frame, feature, points)
    picked = np.sort(np.random.default_rng(seed).choice(len(frame), size=min(rows, len(frame)), replace=False))
    sample = frame.iloc[picked].reset_index(drop=True)
    copies = _swept(sample, feature, grid)
    predictions = model.predict(copies, explainer.output)
    column = prediction_column(predictions, explainer.classes, class_label)
    return IceBundle(feature=feature, grid=grid, curves=column.reshape(len(sample), len(grid)), rows=picked)
