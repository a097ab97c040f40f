"""The one result type that flows through ModelLens: :class:`Explanation`, and one row of it.

Plain numpy / pandas only. Construction validates shapes and additivity: ``base_values + values.sum(1)``
must equal ``prediction`` (the model's own output in ``output`` units) to 1e-6 relative, or an
:class:`~core.errors.ExplanationError` is raised. Pages and reports draw only from these objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from core.errors import ExplanationError

__all__ = ["OUTPUT_LABELS", "Explanation", "RowExplanation", "check_additivity", "units_name"]

OUTPUT_LABELS = {"probability": "probability", "log-odds": "log-odds", "raw": "model output"}


def units_name(output: str, class_label: Any = None) -> str:
    """Human name of output units for a class, e.g. ``probability of 'yes'``."""
    label = OUTPUT_LABELS[output]
    return f"{label} of {class_label!r}" if class_label is not None else label


ADDITIVITY_RTOL = 1e-6


def check_additivity(base: np.ndarray, values: np.ndarray, prediction: np.ndarray) -> float:
    """Worst relative error of ``base + values.sum(1)`` against ``prediction``.

    The error is relative to ``max(1, |prediction|)`` so tiny probabilities are judged absolutely.
    """
    if len(prediction) == 0:
        return 0.0
    total = base + values.sum(axis=1)
    scale = np.maximum(1.0, np.abs(prediction))
    return float(np.max(np.abs(total - prediction) / scale))


@dataclass(frozen=True, eq=False, slots=True)
class RowExplanation:
    """One row's explanation: what a waterfall, force strip or summary sentence draws."""

    row_id: int
    values: np.ndarray
    base_value: float
    prediction: float
    data: pd.Series
    feature_names: tuple[str, ...]
    output: str
    class_label: Any
    method: str

    def ordered(self, max_display: int | None = None) -> tuple[list[str], np.ndarray, list[Any], float]:
        """Features by |contribution|, largest first; the rest folded into one "other" amount.

        Returns:
            (names, contributions, displayed values, other) where ``other`` is the sum of the rest.
        """
        order = np.argsort(-np.abs(self.values), kind="stable")
        keep = order if max_display is None else order[:max_display]
        rest = order[len(keep) :]
        names = [self.feature_names[i] for i in keep]
        values = [self.data.iloc[i] for i in keep]
        return names, self.values[keep], values, float(self.values[rest].sum())


@dataclass(frozen=True, eq=False, slots=True)
class Explanation:
    """SHAP values for some rows, on the columns the user knows, in named units.

    Attributes:
        values: (n_rows, n_features) contributions.
        base_values: (n_rows,) expected model output the contributions start from.
        prediction: (n_rows,) the model's own output in ``output`` units for ``class_label``.
        data: (n_rows, n_features) the feature values shown (same order as ``values``).
        feature_names: Column names, same order as ``values``' columns.
        output: ``probability``, ``log-odds`` or ``raw``.
        class_label: The class explained (classifiers) or None.
        method: The algorithm used, e.g. ``TreeSHAP (path-dependent)``.
        row_ids: (n_rows,) positions of the rows in the uploaded table.
        sample: (rows explained, rows in the table).
        view: ``raw`` (input columns) or ``engineered`` (the model's transformed features).
    """

    values: np.ndarray
    base_values: np.ndarray
    prediction: np.ndarray
    data: pd.DataFrame
    feature_names: tuple[str, ...]
    output: str
    class_label: Any
    method: str
    row_ids: np.ndarray
    sample: tuple[int, int]
    view: str = "raw"
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        n, f = np.shape(self.values) if np.ndim(self.values) == 2 else (-1, -1)
        if n < 0:
            raise ExplanationError(f"values must be 2-D (rows x features), got shape {np.shape(self.values)}.")
        for name in ("base_values", "prediction", "row_ids"):
            if np.shape(getattr(self, name)) != (n,):
                raise ExplanationError(
                    f"{name} must have one entry per row ({n}), got {np.shape(getattr(self, name))}."
                )
        if len(self.feature_names) != f or self.data.shape != (n, f):
            raise ExplanationError(
                f"{f} contribution columns need {f} feature names and a {n}x{f} data frame; "
                f"got {len(self.feature_names)} names and {self.data.shape}."
            )
        if self.output not in OUTPUT_LABELS:
            raise ExplanationError(f"output must be one of {sorted(OUTPUT_LABELS)}, not {self.output!r}.")
        error = check_additivity(self.base_values, self.values, self.prediction)
        if not error <= ADDITIVITY_RTOL:
            raise ExplanationError(
                f"The explanation does not add up: base value + contributions differ from the model's output by "
                f"{error:.2e} (relative) with {self.method}. Please report this model to the ModelLens team."
            )

    def __len__(self) -> int:
        return int(self.values.shape[0])

    @property
    def is_sample(self) -> bool:
        """True when only part of the table is explained."""
        return self.sample[0] < self.sample[1]

    @property
    def coverage_label(self) -> str:
        """``computed on N of M rows`` or ``all M rows``."""
        done, total = self.sample
        return f"all {total:,} rows" if done >= total else f"computed on {done:,} of {total:,} rows"

    @property
    def units(self) -> str:
        """Human name of the output units, e.g. ``probability of 'yes'``."""
        return units_name(self.output, self.class_label)

    def position_of(self, row_id: int) -> int | None:
        """Position in this explanation of a row id of the uploaded table, or None if not explained."""
        hits = np.flatnonzero(self.row_ids == row_id)
        return int(hits[0]) if len(hits) else None

    def row(self, i: int) -> RowExplanation:
        """The i-th explained row (a position, not a row id; see :meth:`position_of`)."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"row position {i} out of range for {len(self)} explained rows")
        return RowExplanation(
            row_id=int(self.row_ids[i]),
            values=np.asarray(self.values[i], dtype=np.float64),
            base_value=float(self.base_values[i]),
            prediction=float(self.prediction[i]),
            data=self.data.iloc[i],
            feature_names=self.feature_names,
            output=self.output,
            class_label=self.class_label,
            method=self.method,
        )

    def mean_abs(self) -> pd.Series:
        """Mean |contribution| per feature, largest first."""
        series = pd.Series(np.abs(self.values).mean(axis=0), index=list(self.feature_names))
        return series.sort_values(ascending=False, kind="stable")

    def take(self, positions: np.ndarray | list[int]) -> Explanation:
        """A new explanation holding only the given positions (sample counts unchanged)."""
        idx = np.asarray(positions, dtype=np.int64)
        return Explanation(
            values=self.values[idx],
            base_values=self.base_values[idx],
            prediction=self.prediction[idx],
            data=self.data.iloc[idx].reset_index(drop=True),
            feature_names=self.feature_names,
            output=self.output,
            class_label=self.class_label,
            method=self.method,
            row_ids=self.row_ids[idx],
            sample=self.sample,
            view=self.view,
            notes=self.notes,
        )

    def to_frame(self) -> pd.DataFrame:
        """One row per explained row: row id, feature values, contributions, base value, prediction."""
        out = pd.DataFrame({"row_id": self.row_ids})
        for j, name in enumerate(self.feature_names):
            out[f"value:{name}"] = self.data.iloc[:, j].to_numpy()
        for j, name in enumerate(self.feature_names):
            out[f"shap:{name}"] = self.values[:, j]
        out["base_value"] = self.base_values
        out["prediction"] = self.prediction
        return out
