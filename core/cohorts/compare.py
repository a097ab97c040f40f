"""Cohorts (named row filters in the row explorer's search syntax) and their comparison, with bootstrap intervals.

A cohort is a query of :func:`core.data.rows.search_rows` evaluated on :func:`core.data.rows.rows_table`, so the
same words select the same rows in the row explorer, in a share link and on the command line. A comparison holds,
per cohort, the mean |SHAP| and the mean SHAP of every feature with percentile bootstrap 95 % intervals. The
bootstrap draws each cohort's resampled row counts (a ``(B, n)`` matrix, in chunks) and multiplies them with the
values, so 100k rows and 200 replicates cost a few matrix products. Two cohorts are resampled independently;
:meth:`CohortComparison.difference` subtracts their replicates (for overlapping cohorts, such as everyone and a
cohort, that ignores the overlap and errs on the wide side).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from core.data.metrics import headline_metrics
from core.data.rows import rows_table, search_rows
from core.errors import DataError
from core.explanation import Explanation

__all__ = [
    "EVERYONE",
    "Cohort",
    "CohortComparison",
    "CohortStats",
    "bootstrap_means",
    "cohort_mask",
    "cohort_table",
    "compare_cohorts",
    "compare_named",
    "interval",
]

EVERYONE = "everyone"
BLOCK_ROWS, BLOCKS = 50_000, 2_000  # above BLOCK_ROWS rows, resample BLOCKS random blocks instead of rows
_CHUNK_CELLS = 4_000_000  # resampled row counts held at once (B-chunk x n)
_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


@dataclass(frozen=True)
class Cohort:
    """A named group of rows, written in the row explorer's search syntax (e.g. ``age>60, city=Lyon``)."""

    name: str
    query: str


def cohort_table(
    frame: pd.DataFrame, prediction: NDArray[np.float64], units: str, target: pd.Series | None = None
) -> pd.DataFrame:
    """The table cohort queries are evaluated on: the row explorer's (row, prediction, actual, input columns)."""
    return rows_table(frame, prediction, units, target)


def cohort_mask(table: pd.DataFrame, query: str) -> NDArray[np.bool_]:
    """The rows of ``table`` (a :func:`cohort_table`) that ``query`` selects, as a boolean mask.

    Raises:
        DataError: The query names a column that does not exist or compares text with ``<``/``>``.
    """
    result = search_rows(table, query)
    if result.message and result.message.startswith("No rows match:"):
        why = result.message[len("No rows match: ") :].rstrip(".")
        raise DataError(f"The cohort {query!r} cannot be used: {why}. Write it with the table's own column names.")
    return np.asarray(table.index.isin(result.rows.index), dtype=bool)


def bootstrap_means(matrix: NDArray[np.float64], n_boot: int, seed: int) -> NDArray[np.float64]:
    """``n_boot`` bootstrap replicates of the column means of ``matrix`` (rows resampled with replacement).

    The same ``seed`` and row count give the same resamples, so two matrices over the same rows are paired.
    Above :data:`BLOCK_ROWS` rows the rows are dealt at random into :data:`BLOCKS` equal blocks and the blocks are
    resampled: for independent rows that has the same variance as resampling rows (each block sum carries
    ``n / BLOCKS`` rows' variance) at a cost independent of ``n`` per replicate (1 M rows: 2.7 s -> 0.2 s).
    """
    n, width = matrix.shape
    out = np.full((n_boot, width), np.nan)
    if n == 0:
        return out
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # a dependency of scikit-learn

    rng = np.random.default_rng(seed)
    weights, units = np.ones(n), matrix
    if n > BLOCK_ROWS:  # random equal blocks: sums per block, then resample the blocks
        block = rng.permutation(n) % BLOCKS
        units = np.stack([np.bincount(block, weights=matrix[:, j], minlength=BLOCKS) for j in range(width)], axis=1)
        weights = np.bincount(block, minlength=BLOCKS).astype(np.float64)
    size_units = len(units)
    step = max(1, _CHUNK_CELLS // size_units)
    # One BLAS thread: these products are small, and on shared, busy cores threaded BLAS ran them 10-20x slower.
    with threadpool_limits(1, user_api="blas"):
        for start in range(0, n_boot, step):
            size = min(step, n_boot - start)
            idx = rng.integers(0, size_units, size=(size, size_units))
            counts = np.empty((size, size_units))
            for r in range(size):  # one replicate at a time: its counts stay in cache (one flat bincount is slower)
                counts[r] = np.bincount(idx[r], minlength=size_units)
            out[start : start + size] = (counts @ units) / (counts @ weights)[:, None]
    return out


def interval(replicates: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Percentile 95 % interval per column of bootstrap replicates (NaN where there are none)."""
    if np.isnan(replicates).all():
        nan = np.full(replicates.shape[1], np.nan)
        return nan, nan.copy()
    low, high = np.percentile(replicates, [2.5, 97.5], axis=0)
    return np.asarray(low), np.asarray(high)


@dataclass(frozen=True, eq=False)
class CohortStats:
    """One cohort's numbers.

    Attributes:
        name: The cohort's name.
        mask: Which explained rows belong to it (positions in the explanation).
        rows: How many rows.
        mean_abs: Mean |SHAP| per feature; ``low``/``high`` its bootstrap 95 % interval.
        mean: Mean SHAP per feature (signed).
        prediction: Summary of the cohort's predictions: mean, std and the 5/25/50/75/95 % quantiles.
        metrics: Accuracy / ROC AUC (classifiers) or R² / MAE / RMSE (regressors) where the target is known.
        boot_abs: (B, F) bootstrap replicates of ``mean_abs``; ``boot_mean`` those of ``mean``.
    """

    name: str
    mask: NDArray[np.bool_]
    rows: int
    mean_abs: NDArray[np.float64]
    low: NDArray[np.float64]
    high: NDArray[np.float64]
    mean: NDArray[np.float64]
    prediction: dict[str, float]
    metrics: dict[str, float]
    boot_abs: NDArray[np.float64]
    boot_mean: NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class CohortComparison:
    """Every cohort's numbers (``everyone`` first), on one explanation's features and units."""

    feature_names: tuple[str, ...]
    units: str
    cohorts: dict[str, CohortStats]
    n_boot: int
    seed: int
    table_rows: dict[str, int] = field(default_factory=dict)  # rows of the whole table in each cohort (if known)

    def table(self) -> pd.DataFrame:
        """Long table: cohort, feature, rows, mean |SHAP| with its interval, mean SHAP."""
        parts = [
            pd.DataFrame(
                {
                    "cohort": s.name,
                    "feature": list(self.feature_names),
                    "rows": s.rows,
                    "mean_abs": s.mean_abs,
                    "low": s.low,
                    "high": s.high,
                    "mean": s.mean,
                }
            )
            for s in self.cohorts.values()
        ]
        return pd.concat(parts, ignore_index=True)

    def summary(self) -> pd.DataFrame:
        """One row per cohort: its rows in the table, rows explained, mean prediction and each metric."""
        rows = []
        for name, s in self.cohorts.items():
            row: dict[str, Any] = {"cohort": name, "rows": self.table_rows.get(name, s.rows), "explained": s.rows}
            row["mean prediction"] = s.prediction.get("mean", float("nan"))
            row.update(s.metrics)
            rows.append(row)
        return pd.DataFrame(rows)

    def difference(self, first: str, second: str, *, signed: bool = False) -> pd.DataFrame:
        """Per feature, second minus first in mean |SHAP| (``signed``: in mean SHAP), largest |shift| first.

        Columns: feature, first, second, shift, low, high (bootstrap 95 % interval of the shift) and
        ``separated`` (the interval excludes 0).
        """
        missing = [n for n in (first, second) if n not in self.cohorts]
        if missing:
            raise DataError(f"There is no cohort named {missing[0]!r}; the cohorts are {sorted(self.cohorts)}.")
        a, b = self.cohorts[first], self.cohorts[second]
        va, vb = (a.mean, b.mean) if signed else (a.mean_abs, b.mean_abs)
        reps = (b.boot_mean - a.boot_mean) if signed else (b.boot_abs - a.boot_abs)
        low, high = interval(reps)
        out = pd.DataFrame(
            {"feature": list(self.feature_names), "first": va, "second": vb, "shift": vb - va, "low": low, "high": high}
        )
        out["separated"] = (out["low"] > 0) | (out["high"] < 0)
        order = np.argsort(-np.abs(out["shift"].to_numpy()), kind="stable")
        return out.iloc[order].reset_index(drop=True)


def compare_cohorts(
    expl: Explanation,
    cohorts: dict[str, NDArray[np.bool_]],
    *,
    n_boot: int = 200,
    seed: int = 0,
    target: pd.Series | None = None,
    prediction: NDArray[np.float64] | None = None,
    classes: tuple[Any, ...] | None = None,
    task: str = "regression",
    everyone: bool = True,
) -> CohortComparison:
    """Mean |SHAP| and mean SHAP per feature for each cohort and for everyone, with bootstrap 95 % intervals.

    Args:
        expl: The explanation (its rows are the rows the masks index).
        cohorts: Name -> boolean mask over the explanation's rows.
        n_boot: Bootstrap replicates.
        seed: Seed of the resampling (the i-th cohort computed, everyone first, uses ``seed + i``).
        target: The actual values, one per explained row, for metrics per cohort.
        prediction: What :func:`core.data.metrics.headline_metrics` scores: class probabilities (n, k) for
            classifiers, predictions for regressors (default: the explanation's own prediction for regressors).
        classes: The model's classes (classifiers).
        task: ``regression`` or ``classification``.
        everyone: Also compute every row as a cohort named ``everyone`` (first).
    """
    n = len(expl)
    for name, mask in cohorts.items():
        if np.shape(mask) != (n,):
            raise DataError(f"Cohort {name!r} has {np.size(mask)} flags for {n} explained rows; rebuild it.")
    if prediction is None and task == "regression":
        prediction = expl.prediction
    values = np.asarray(expl.values, dtype=np.float64)
    both = np.hstack([np.abs(values), values])
    width = values.shape[1]
    stats: dict[str, CohortStats] = {}
    named = {EVERYONE: np.ones(n, dtype=bool)} if everyone else {}
    named.update({k: np.asarray(v, dtype=bool) for k, v in cohorts.items()})
    for i, (name, mask) in enumerate(named.items()):
        part = both[mask]
        reps = bootstrap_means(part, n_boot, seed + i)
        low, high = interval(reps[:, :width])
        means = part.mean(axis=0) if len(part) else np.full(2 * width, np.nan)
        metrics: dict[str, float] = {}
        if target is not None and prediction is not None and mask.sum() >= 2:
            actual = pd.Series(np.asarray(target)[mask])
            metrics = headline_metrics(task, actual, np.asarray(prediction)[mask], classes)
        stats[name] = CohortStats(
            name=name,
            mask=mask,
            rows=int(mask.sum()),
            mean_abs=means[:width],
            low=low,
            high=high,
            mean=means[width:],
            prediction=_summary(expl.prediction[mask]),
            metrics=metrics,
            boot_abs=reps[:, :width],
            boot_mean=reps[:, width:],
        )
    return CohortComparison(expl.feature_names, expl.units, stats, n_boot, seed)


def _summary(values: NDArray[np.float64]) -> dict[str, float]:
    if len(values) == 0:
        return {"mean": float("nan"), "std": float("nan")}
    out = {"mean": float(values.mean()), "std": float(values.std())}
    for q, v in zip(_QUANTILES, np.quantile(values, _QUANTILES), strict=True):
        out[f"q{round(q * 100):02d}"] = float(v)
    return out


def compare_named(
    expl: Explanation,
    table: pd.DataFrame,
    cohorts: Sequence[Cohort],
    *,
    target: pd.Series | None = None,
    scores: Any = None,
    classes: tuple[Any, ...] | None = None,
    task: str = "regression",
    n_boot: int = 200,
    seed: int = 0,
) -> CohortComparison:
    """Named cohorts of a whole table compared on the rows explained so far (the dashboard's view).

    Attributions and their intervals come from the explained rows (``expl.row_ids`` index ``table``); the row
    counts in :attr:`CohortComparison.table_rows`, the prediction distributions and the metrics use every row of
    the table, since predictions are known for all of them.

    Args:
        expl: The explanation of some or all rows of ``table``.
        table: A :func:`cohort_table` of the whole table (its ``prediction (…)`` column is summarised).
        cohorts: The cohorts, in order (names must differ from each other and from ``everyone``).
        target: The actual value of every row of the table, for metrics.
        scores: What :func:`core.data.metrics.headline_metrics` scores, one per row of the table.
        classes: The model's classes (classifiers).
        task: ``regression`` or a classification task.
        n_boot: Bootstrap replicates.
        seed: Seed of the resampling.

    Raises:
        DataError: A query names no column of the table, or two cohorts share a name.
    """
    names = [c.name for c in cohorts]
    if len(set(names)) != len(names) or EVERYONE in names:
        raise DataError(f"Cohort names must differ from each other and from {EVERYONE!r}; rename one.")
    full = {EVERYONE: np.ones(len(table), dtype=bool)}
    full.update({c.name: cohort_mask(table, c.query) for c in cohorts})
    ids = np.asarray(expl.row_ids, dtype=np.int64)
    comparison = compare_cohorts(
        expl, {k: v[ids] for k, v in full.items() if k != EVERYONE}, n_boot=n_boot, seed=seed, task=task
    )
    column = next((c for c in table.columns if str(c).startswith("prediction")), None)
    prediction = None if column is None else table[column].to_numpy(dtype=np.float64)
    stats = {}
    for name, s in comparison.cohorts.items():
        mask = full[name]
        metrics: dict[str, float] = {}
        if target is not None and scores is not None and mask.sum() >= 2:
            actual = pd.Series(np.asarray(target)[mask])
            metrics = headline_metrics(task, actual, np.asarray(scores)[mask], classes)
        summary = s.prediction if prediction is None else _summary(prediction[mask])
        stats[name] = replace(s, metrics=metrics, prediction=summary)
    rows = {name: int(mask.sum()) for name, mask in full.items()}
    return replace(comparison, cohorts=stats, table_rows=rows)
