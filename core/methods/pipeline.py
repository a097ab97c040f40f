"""Pipeline analysis: which engineered column comes from which raw input column.

When every preprocessing step maps input columns to output columns one-to-one or one-to-many (scalers,
imputers, encoders, selectors, column transformers of those), the final estimator can be explained with
its fast exact method on the transformed data and each engineered contribution summed back onto the raw
column it came from: exact, and additivity is kept. Steps that mix columns (PCA, polynomial features,
row normalisers, KNN / iterative imputers, anything unknown) make the pipeline *not foldable*; the engine
then explains the whole pipeline model-agnostically on raw columns.

The analysis is structural (a list of known column-wise transformers), never inferred from names alone:
a row-wise ``Normalizer`` has one-to-one names but mixes every column.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["FoldPlan", "NotFoldable", "analyze"]

COLUMNWISE = {
    "StandardScaler",
    "MinMaxScaler",
    "MaxAbsScaler",
    "RobustScaler",
    "PowerTransformer",
    "QuantileTransformer",
    "Binarizer",
    "OneHotEncoder",
    "OrdinalEncoder",
    "TargetEncoder",
    "SimpleImputer",
    "MissingIndicator",
    "KBinsDiscretizer",
    "SplineTransformer",
    "VarianceThreshold",
    "SelectKBest",
    "SelectPercentile",
    "SelectFromModel",
    "SelectFpr",
    "SelectFdr",
    "SelectFwe",
    "GenericUnivariateSelect",
    "RFE",
    "RFECV",
    "SequentialFeatureSelector",
}
_TOKEN = re.compile(r"mlx(\d+)tok")


class NotFoldable(Exception):
    """A step mixes columns (or is unknown): contributions cannot be folded back exactly."""


@dataclass(frozen=True)
class FoldPlan:
    """How a model splits into preprocessing and a final estimator, and the engineered -> raw map.

    Attributes:
        final: The final estimator (the whole model when there is no pipeline).
        preprocess: The preprocessing part (``model[:-1]``), or None.
        raw_names: Raw input column names.
        engineered_names: Names of the final estimator's input columns.
        source: For each engineered column, the index of the raw column it comes from (-1: a constant).
    """

    final: Any
    preprocess: Any
    raw_names: tuple[str, ...]
    engineered_names: tuple[str, ...]
    source: np.ndarray

    def fold(self, values: np.ndarray) -> np.ndarray:
        """Sum engineered contributions (n, F_eng, ...) onto raw columns (n, F_raw, ...)."""
        matrix = np.zeros((len(self.source), len(self.raw_names)), dtype=np.float64)
        keep = np.flatnonzero(self.source >= 0)
        matrix[keep, self.source[keep]] = 1.0
        return np.moveaxis(np.moveaxis(values, 1, -1) @ matrix, -1, 1)

    @property
    def is_identity(self) -> bool:
        """True when there is no preprocessing (engineered columns are the raw columns)."""
        return self.preprocess is None


def _is_pipeline(obj: Any) -> bool:
    return type(obj).__name__ == "Pipeline" and hasattr(obj, "steps")


def analyze(model: Any, raw_names: list[str], sample: Any) -> FoldPlan:
    """Split a model into preprocessing + final estimator and map engineered columns to raw ones.

    Args:
        model: The loaded model (a Pipeline or a bare estimator).
        raw_names: The raw input columns, in the order the model takes them.
        sample: A few aligned raw rows, used to check the map against the real transform width.

    Raises:
        NotFoldable: The preprocessing mixes columns; the message names the step.
    """
    if not _is_pipeline(model) or len(model.steps) < 2:
        n = len(raw_names)
        return FoldPlan(model, None, tuple(raw_names), tuple(raw_names), np.arange(n))
    preprocess, final = model[:-1], model.steps[-1][1]
    sources = _map_steps([s for _, s in preprocess.steps], [[i] for i in range(len(raw_names))])
    width = _width(preprocess.transform(sample))
    if width != len(sources):
        raise NotFoldable(f"the preprocessing produced {width} columns, the column map expected {len(sources)}")
    names = _engineered_names(preprocess, len(sources))
    source = np.array([s[0] if s else -1 for s in sources], dtype=np.int64)
    return FoldPlan(final, preprocess, tuple(raw_names), tuple(names), source)


def _width(matrix: Any) -> int:
    return int(matrix.shape[1])


def _engineered_names(preprocess: Any, width: int) -> list[str]:
    try:
        names = [str(n) for n in preprocess.get_feature_names_out()]
    except Exception:  # noqa: BLE001 - some transformers cannot name their outputs
        names = []
    return names if len(names) == width else [f"feature {i}" for i in range(width)]


def _map_steps(steps: list[Any], inputs: list[list[int]]) -> list[list[int]]:
    """Compose the column maps of consecutive steps; ``inputs[k]`` lists raw sources of column k."""
    for step in steps:
        local = _map_one(step, len(inputs))
        inputs = [sorted({r for i in srcs for r in inputs[i]}) for srcs in local]
        if any(len(s) > 1 for s in inputs):
            raise NotFoldable(f"{type(step).__name__} combines several input columns into one")
    return inputs


def _map_one(step: Any, n_in: int) -> list[list[int]]:
    """For each output column of a fitted step, the input column indices it depends on."""
    if step is None or step == "passthrough":
        return [[i] for i in range(n_in)]
    name = type(step).__name__
    if _is_pipeline(step):
        return _map_steps([s for _, s in step.steps], [[i] for i in range(n_in)])
    if name == "ColumnTransformer":
        return _map_column_transformer(step, n_in)
    if name == "FeatureUnion":
        out: list[list[int]] = []
        for _, part in step.transformer_list:
            if part not in ("drop", None):
                out.extend(_map_one(part, n_in))
        return out
    if name == "FunctionTransformer":
        return _map_function_transformer(step, n_in)
    if name in COLUMNWISE and type(step).__module__.startswith("sklearn."):
        return _map_by_names(step, n_in)
    raise NotFoldable(f"{name} is not a column-wise transformer")


def _map_column_transformer(ct: Any, n_in: int) -> list[list[int]]:
    inputs = getattr(ct, "_transformer_to_input_indices", None)
    slices = getattr(ct, "output_indices_", None)
    if inputs is None or slices is None:
        raise NotFoldable("this ColumnTransformer version does not expose its column indices")
    width = max((s.stop for s in slices.values()), default=0)
    out: list[list[int]] = [[] for _ in range(width)]
    for name, trans, _cols in ct.transformers_:
        cols, sl = list(inputs.get(name, [])), slices.get(name, slice(0, 0))
        if trans == "drop" or sl.stop == sl.start:
            continue
        local = [[i] for i in range(len(cols))] if trans == "passthrough" else _map_one(trans, len(cols))
        if len(local) != sl.stop - sl.start:
            raise NotFoldable(f"ColumnTransformer part {name!r} has an unexpected width")
        for k, srcs in enumerate(local):
            out[sl.start + k] = [cols[i] for i in srcs]
    return out


def _map_function_transformer(step: Any, n_in: int) -> list[list[int]]:
    func = getattr(step, "func", None)
    if func is None or isinstance(func, np.ufunc):
        return [[i] for i in range(n_in)]
    raise NotFoldable(f"FunctionTransformer({getattr(func, '__name__', func)!r}) may mix columns")


def _map_by_names(step: Any, n_in: int) -> list[list[int]]:
    """Use the transformer's own output names on placeholder input names to read its column map."""
    tokens = [f"mlx{i}tok" for i in range(n_in)]
    probe = copy.copy(step)
    if hasattr(probe, "feature_names_in_"):
        probe.feature_names_in_ = np.asarray(tokens, dtype=object)
    try:
        names = probe.get_feature_names_out(tokens)
    except Exception as exc:  # noqa: BLE001
        raise NotFoldable(f"{type(step).__name__} cannot name its output columns ({exc})") from exc
    out = []
    for name in names:
        found = {int(m) for m in _TOKEN.findall(str(name))}
        if len(found) != 1:
            raise NotFoldable(f"{type(step).__name__} output {name!r} does not come from exactly one column")
        out.append([found.pop()])
    return out
