"""What changed in *why* a model predicts: two tables on one model, or two models on one table.

Per raw column: the shift (second minus first) in mean contribution and in mean |contribution|, each with a
bootstrap 95 % interval, next to the input's own drift as the population stability index (PSI: numbers in ten
quantile bins of the first table, categoricals over their levels, missing values as a bin of their own), and the
change in mean prediction. Two explanations of the same rows (two models on one table) are resampled together
(a paired bootstrap); two tables independently. :func:`disagreements` lists the rows two models disagree on most.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from core.cohorts.compare import bootstrap_means, interval
from core.errors import DataError
from core.explanation import Explanation

if TYPE_CHECKING:
    from core.engine.explain import Explainer, ExplainResult

__all__ = [
    "DRIFT_STATISTIC",
    "ExplanationDiff",
    "common_rows",
    "disagreements",
    "explain_other_table",
    "explanation_diff",
    "models_diff",
    "psi",
    "tables_diff",
]

DRIFT_STATISTIC = "PSI"
_BINS = 10
_EPS = 1e-4  # floor of a bin's share, so an empty bin does not make PSI infinite


@dataclass(frozen=True, eq=False)
class ExplanationDiff:
    """The diff of two explanations.

    Attributes:
        features: One row per raw column, largest |shift| first: feature, first, second, shift, low, high (mean
            contribution), abs_first, abs_second, abs_shift, abs_low, abs_high (mean |contribution|), drift (PSI;
            NaN when both explanations describe the same table) and separated (the shift's interval excludes 0).
        prediction: Mean prediction of each side, the shift and its interval.
        rows: Rows explained on each side.
        paired: True when both sides explain the same rows (two models on one table).
        drift_statistic: The name of the drift statistic (``PSI``).
    """

    features: pd.DataFrame
    prediction: dict[str, float]
    rows: dict[str, int]
    paired: bool
    drift_statistic: str = DRIFT_STATISTIC

    def readable(self, first: str = "first", second: str = "second") -> pd.DataFrame:
        """:attr:`features` with column names for people (the sides named ``first`` and ``second``)."""
        names = {
            "first": f"mean contribution: {first}",
            "second": f"mean contribution: {second}",
            "shift": "shift",
            "low": "shift 95% low",
            "high": "shift 95% high",
            "abs_shift": "shift in mean |contribution|",
            "drift": f"input drift ({self.drift_statistic})",
            "separated": "beyond noise",
        }
        out = self.features[["feature", *names]].rename(columns=names)
        return out.drop(columns=[names["drift"]]) if self.paired else out


def psi(first: pd.Series, second: pd.Series) -> float:
    """Population stability index of ``second`` against ``first`` (0: same distribution; above 0.25: a big shift)."""
    numeric = pd.api.types.is_numeric_dtype(first) and pd.api.types.is_numeric_dtype(second)
    numeric = numeric and not pd.api.types.is_bool_dtype(first)
    if numeric:
        a, b = first.to_numpy(dtype=np.float64), second.to_numpy(dtype=np.float64)
        edges: Any = np.unique(np.nanquantile(a, np.linspace(0, 1, _BINS + 1)[1:-1])) if np.isfinite(a).any() else []
        bins_a = np.where(np.isnan(a), -1, np.searchsorted(edges, a, side="right"))
        bins_b = np.where(np.isnan(b), -1, np.searchsorted(edges, b, side="right"))
    else:
        levels = pd.Index(pd.concat([first, second]).dropna().astype(str).unique())
        bins_a = np.where(first.isna(), -1, levels.get_indexer(first.astype(str)))
        bins_b = np.where(second.isna(), -1, levels.get_indexer(second.astype(str)))
    size = int(max(bins_a.max(initial=-1), bins_b.max(initial=-1))) + 2  # bin -1 (missing) counted at 0
    count_a = np.bincount(np.asarray(bins_a, dtype=np.int64) + 1, minlength=size) / max(len(bins_a), 1)
    count_b = np.bincount(np.asarray(bins_b, dtype=np.int64) + 1, minlength=size) / max(len(bins_b), 1)
    used = (count_a > 0) | (count_b > 0)
    share_a, share_b = np.maximum(count_a[used], _EPS), np.maximum(count_b[used], _EPS)
    return float(np.sum((share_b - share_a) * np.log(share_b / share_a)))


def explanation_diff(
    first: Explanation,
    second: Explanation,
    *,
    first_frame: pd.DataFrame,
    second_frame: pd.DataFrame,
    n_boot: int = 200,
    seed: int = 0,
) -> ExplanationDiff:
    """Compare two explanations column by column (see the module docstring).

    Args:
        first: The reference explanation.
        second: The explanation compared with it (shift = second - first), in the same units; to compare two
            tables on one model, explain both with one explainer (one background) so contributions are comparable.
        first_frame: The raw table ``first`` explains (the drift reference).
        second_frame: The raw table ``second`` explains.
        n_boot: Bootstrap replicates.
        seed: Seed of the resampling.

    Raises:
        DataError: The two explanations do not have the same columns, or are in different units.
    """
    if first.feature_names != second.feature_names:
        raise DataError("The two explanations need the same columns in the same order; align both tables first.")
    if first.output != second.output:
        raise DataError(f"One side is in {first.output} and the other in {second.output}; explain both in one unit.")
    paired = len(first) == len(second) and np.array_equal(first.row_ids, second.row_ids)
    paired = paired and first_frame.shape == second_frame.shape and first_frame.equals(second_frame)
    reps_a, means_a = _boot(first, n_boot, seed)
    reps_b, means_b = _boot(second, n_boot, seed if paired else seed + 1)
    width = len(first.feature_names)
    low, high = interval(reps_b - reps_a)
    shift = means_b - means_a
    out = pd.DataFrame({"feature": list(first.feature_names)})
    for prefix, part in (("", slice(0, width)), ("abs_", slice(width, 2 * width))):
        out[prefix + "first"], out[prefix + "second"] = means_a[part], means_b[part]
        out[prefix + "shift"], out[prefix + "low"], out[prefix + "high"] = shift[part], low[part], high[part]
    drift = [psi(first_frame[c], second_frame[c]) if c in second_frame else np.nan for c in out.feature]
    out["drift"] = np.nan if paired else drift
    out["separated"] = (out["low"] > 0) | (out["high"] < 0)
    out = out.iloc[np.argsort(-np.abs(out["shift"].to_numpy()), kind="stable")].reset_index(drop=True)
    prediction = {
        "first": float(means_a[-1]),
        "second": float(means_b[-1]),
        "shift": float(shift[-1]),
        "low": float(low[-1]),
        "high": float(high[-1]),
    }
    return ExplanationDiff(out, prediction, {"first": len(first), "second": len(second)}, paired)


def _boot(expl: Explanation, n_boot: int, seed: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Replicates and means of [contributions, |contributions|, prediction]."""
    values = np.asarray(expl.values, dtype=np.float64)
    matrix = np.hstack([values, np.abs(values), np.asarray(expl.prediction, dtype=np.float64)[:, None]])
    if len(matrix) == 0:
        raise DataError("One side of the diff has no explained rows; explain some rows of both tables.")
    return bootstrap_means(matrix, n_boot, seed), matrix.mean(axis=0)


def disagreements(expl_a: Explanation, expl_b: Explanation, k: int = 10) -> pd.DataFrame:
    """The ``k`` rows where two models' predictions differ most: row, first, second, difference (second - first).

    Raises:
        DataError: The two explanations are not of the same rows.
    """
    if not np.array_equal(expl_a.row_ids, expl_b.row_ids):
        raise DataError("Disagreements need both models explained on the same rows of one table.")
    gap = np.asarray(expl_b.prediction) - np.asarray(expl_a.prediction)
    order = np.argsort(-np.abs(gap), kind="stable")[: max(k, 0)]
    rows: dict[str, Any] = {
        "row": expl_a.row_ids[order],
        "first": expl_a.prediction[order],
        "second": expl_b.prediction[order],
        "difference": gap[order],
    }
    return pd.DataFrame(rows)


def explain_other_table(
    explainer: Explainer,
    frame: pd.DataFrame,
    *,
    rows: int = 2_000,
    seed: int = 0,
    chunk: int = 250,
    progress: Callable[[int, int], None] | None = None,
) -> ExplainResult:
    """A seeded sample of at most ``rows`` rows of a second table, explained by the first table's explainer.

    One explainer (one background) for both tables keeps their contributions comparable. ``frame`` must be
    aligned to the same model (same columns in the same order); the result's row ids are positions in
    ``frame`` and its coverage counts ``frame``'s rows.

    Raises:
        DataError: The second table does not have the first table's columns.
    """
    from core.engine.explain import sample_order

    if list(frame.columns) != list(explainer.feature_names):
        raise DataError("The second table needs the model's columns in the same order; align it to the model first.")
    if len(frame) == 0:
        raise DataError("The second table has no rows to explain.")
    ids = np.sort(sample_order(len(frame), seed)[: max(1, rows)])
    result = None
    for start in range(0, len(ids), chunk):
        part = ids[start : start + chunk]
        done = explainer.explain_frame(frame.iloc[part].reset_index(drop=True), part)
        result = done if result is None else result.concat(done)
        if progress is not None:
            progress(min(start + chunk, len(ids)), len(ids))
    assert result is not None
    return replace(result, total_rows=len(frame))


def tables_diff(
    first: Explanation,
    first_table: pd.DataFrame,
    second: Explanation,
    second_table: pd.DataFrame,
    *,
    n_boot: int = 200,
    seed: int = 0,
) -> ExplanationDiff:
    """Two tables on one model: each explanation's rows (``row_ids``) are positions in its own whole table."""
    frame_a = first_table.iloc[np.asarray(first.row_ids, dtype=np.int64)].reset_index(drop=True)
    frame_b = second_table.iloc[np.asarray(second.row_ids, dtype=np.int64)].reset_index(drop=True)
    return explanation_diff(first, second, first_frame=frame_a, second_frame=frame_b, n_boot=n_boot, seed=seed)


def common_rows(first: Explanation, second: Explanation) -> tuple[Explanation, Explanation]:
    """Both explanations restricted to the rows both have explained, in the same order."""
    common = np.intersect1d(first.row_ids, second.row_ids)
    if len(common) == 0:
        raise DataError("The two models have no explained row in common yet; wait for more rows to be explained.")
    pos_a = np.searchsorted(first.row_ids, common, sorter=np.argsort(first.row_ids))
    pos_b = np.searchsorted(second.row_ids, common, sorter=np.argsort(second.row_ids))
    return first.take(np.argsort(first.row_ids)[pos_a]), second.take(np.argsort(second.row_ids)[pos_b])


def models_diff(
    first: Explanation, second: Explanation, table: pd.DataFrame, *, n_boot: int = 200, seed: int = 0
) -> tuple[ExplanationDiff, pd.DataFrame, tuple[Explanation, Explanation]]:
    """Two models on one table, on the rows both explained.

    Returns the diff, the rows they disagree on most, and both explanations of those common rows
    (:func:`common_rows`; e.g. for the two waterfalls of a row).
    """
    a, b = common_rows(first, second)
    frame = table.iloc[np.asarray(a.row_ids, dtype=np.int64)].reset_index(drop=True)
    diff = explanation_diff(a, b, first_frame=frame, second_frame=frame, n_boot=n_boot, seed=seed)
    return diff, disagreements(a, b, k=20), (a, b)
