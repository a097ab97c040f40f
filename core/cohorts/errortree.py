"""Where the model is wrong: a shallow decision tree over the raw columns, fitted to the per-row error.

Error per row: misclassified (classifiers), or an absolute residual in the top 20 % (regressors; the result says
which in ``error_definition``). On more than :data:`FIT_ROWS` rows the tree learns its splits on a seeded sample
of that size; every node's rows, errors, rate and share are counted on every row. The tree sees categoricals as
ordinal codes, but every node's rule is written on the raw columns and levels (``city in {Lyon, Nice}``,
``age > 60.5``, ``(… or missing)`` on the side missing values take; a later split on the same category narrows
the earlier one) and, where the row explorer's search syntax can express it exactly (it cannot say "or
missing", nor exclude missing levels), as a cohort ``query``; every node keeps its row mask.
``attribution_gap`` compares mean |SHAP| of wrong and right rows with :func:`core.cohorts.compare.compare_cohorts`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from core.cohorts.compare import compare_cohorts
from core.errors import DataError
from core.explanation import Explanation

__all__ = ["ErrorAnalysis", "ErrorNode", "error_analysis", "predicted_values", "row_errors"]

RESIDUAL_QUANTILE = 0.8
FIT_ROWS = 200_000  # the tree learns its splits on at most this many rows (seeded); node counts use every row


@dataclass(frozen=True, eq=False)
class ErrorNode:
    """One node of the error tree.

    Attributes:
        node: The tree's node id (0 is every row).
        rules: The conditions from the root, on raw columns (``age > 60.5``, ``city in {Lyon}``).
        rows: Rows in the node; ``errors`` how many of them are wrong.
        error_rate: errors / rows.
        share: This node's share of all errors.
        mask: The node's rows (positions in the table).
        query: The node as a cohort in the search syntax, or None when the syntax cannot express it.
    """

    node: int
    rules: tuple[str, ...]
    rows: int
    errors: int
    error_rate: float
    share: float
    mask: NDArray[np.bool_] = field(repr=False)
    query: str | None

    @property
    def score(self) -> float:
        """Error rate times share of errors: high where errors are both dense and many."""
        return self.error_rate * self.share

    @property
    def name(self) -> str:
        """A short cohort name for this node (``node 5``)."""
        return f"node {self.node}"

    @property
    def label(self) -> str:
        """The rule path as one line (``every row`` for the root)."""
        return " and ".join(self.rules) or "every row"


@dataclass(frozen=True, eq=False)
class ErrorAnalysis:
    """The error tree's nodes (highest error rate x share first) and the wrong-vs-right attribution gap.

    Attributes:
        error_definition: What counts as an error here.
        errors: The per-row error flags.
        nodes: Every node, sorted by :attr:`ErrorNode.score`, largest first.
        attribution_gap: Per feature, mean |SHAP| of wrong rows minus right rows with a bootstrap 95 % interval
            (see :meth:`core.cohorts.compare.CohortComparison.difference`), largest |shift| first; None without
            an explanation or without both kinds of rows.
    """

    error_definition: str
    errors: NDArray[np.bool_]
    nodes: tuple[ErrorNode, ...]
    attribution_gap: pd.DataFrame | None

    @property
    def error_rate(self) -> float:
        """Share of wrong rows in the whole table."""
        return float(self.errors.mean()) if len(self.errors) else 0.0


def row_errors(target: pd.Series, prediction: Any, task: str) -> tuple[NDArray[np.bool_], str]:
    """Per-row error flags and what they mean; rows with a missing target count as right.

    For classifiers ``prediction`` holds predicted labels (compared with the target as text); for regressors the
    predicted numbers.
    """
    actual = pd.Series(target).reset_index(drop=True)
    known = actual.notna().to_numpy()
    if task == "regression":
        residual = np.abs(pd.to_numeric(actual, errors="coerce").to_numpy(dtype=np.float64) - np.asarray(prediction))
        cut = float(np.nanquantile(residual, RESIDUAL_QUANTILE)) if known.any() else 0.0
        flags = np.nan_to_num(residual, nan=0.0) > cut
        return flags & known, f"absolute residual above its 80th percentile ({cut:.4g})"
    predicted = pd.Series(np.asarray(prediction)).astype(str).to_numpy()
    return (actual.astype(str).to_numpy() != predicted) & known, "misclassified (predicted label differs)"


def predicted_values(scores: Any, classes: tuple[Any, ...] | None, task: str) -> Any:
    """What :func:`row_errors` compares with the target: predicted labels (classifiers) or numbers (regressors).

    ``scores`` are the model's outputs for every row: class probabilities or margins ``(n, k)``, a binary
    model's single margin column (positive above 0), or a regressor's predictions.
    """
    matrix = np.asarray(scores, dtype=np.float64).reshape(len(scores), -1)
    if task == "regression" or not classes:
        return matrix[:, 0]
    labels = np.asarray([str(c) for c in classes], dtype=object)
    if matrix.shape[1] == 1:
        return labels[(matrix[:, 0] > 0).astype(np.int64)]
    return labels[matrix.argmax(axis=1)]


def error_analysis(
    frame: pd.DataFrame,
    target: pd.Series,
    prediction: Any,
    task: str,
    expl: Explanation | None = None,
    *,
    max_depth: int = 3,
    min_rows: int | None = None,
    n_boot: int = 200,
    seed: int = 0,
) -> ErrorAnalysis:
    """Fit the error tree over the raw columns of ``frame`` and compare attributions of wrong and right rows.

    Args:
        frame: The raw input table (the rows ``target`` and ``prediction`` describe).
        target: The actual values.
        prediction: Predicted labels (classifiers) or numbers (regressors), one per row.
        task: ``regression`` or a classification task.
        expl: An explanation of (some of) these rows (its ``row_ids`` are positions in ``frame``).
        max_depth: Depth of the tree.
        min_rows: Fewest rows in a leaf (default: 1 % of the table, at least 20).
        n_boot: Bootstrap replicates of the attribution gap.
        seed: Seeds the tree and the bootstrap.

    Raises:
        DataError: The target's length does not match the table, or the table is empty.
    """
    from sklearn.tree import DecisionTreeClassifier

    if len(frame) == 0 or len(target) != len(frame) or np.size(prediction) != len(frame):
        raise DataError("Error analysis needs the table, its target and the predictions for the same rows.")
    if expl is not None and len(expl) and not 0 <= int(np.min(expl.row_ids)) <= int(np.max(expl.row_ids)) < len(frame):
        raise DataError("The explanation has rows this table does not have; explain rows of this table.")
    errors, definition = row_errors(target, prediction, task)
    codes, levels = _encode(frame)
    leaf = min_rows if min_rows is not None else max(20, len(frame) // 100)
    fit = np.arange(len(frame))
    if len(fit) > FIT_ROWS:  # the splits from a seeded sample; every number below from every row
        fit = np.sort(np.random.default_rng(seed).choice(len(frame), FIT_ROWS, replace=False))
        leaf = max(1, round(leaf * FIT_ROWS / len(frame)))
    tree = DecisionTreeClassifier(max_depth=max_depth, min_samples_leaf=leaf, random_state=seed)
    tree.fit(codes[fit], errors[fit])
    paths = tree.decision_path(codes).tocsc()
    total = max(int(errors.sum()), 1)
    nodes = []
    for node, (rules, query) in _rules(tree.tree_, frame, levels).items():
        mask = np.zeros(len(frame), dtype=bool)
        mask[paths.indices[paths.indptr[node] : paths.indptr[node + 1]]] = True
        rows, wrong = int(mask.sum()), int(errors[mask].sum())
        nodes.append(ErrorNode(node, rules, rows, wrong, wrong / max(rows, 1), wrong / total, mask, query))
    nodes.sort(key=lambda n: (-n.score, n.node))
    return ErrorAnalysis(definition, errors, tuple(nodes), _gap(expl, errors, n_boot, seed))


def _gap(expl: Explanation | None, errors: NDArray[np.bool_], n_boot: int, seed: int) -> pd.DataFrame | None:
    if expl is None:
        return None
    wrong = errors[np.asarray(expl.row_ids, dtype=np.int64)]
    if wrong.all() or not wrong.any():
        return None
    comparison = compare_cohorts(expl, {"right": ~wrong, "wrong": wrong}, n_boot=n_boot, seed=seed, everyone=False)
    return comparison.difference("right", "wrong")


def _encode(frame: pd.DataFrame) -> tuple[NDArray[np.float64], dict[str, list[Any]]]:
    """Numbers as they are (NaN kept: the tree routes it), other columns as codes of their sorted levels."""
    columns, levels = [], {}
    for name in frame.columns:
        column = frame[name]
        if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
            columns.append(column.to_numpy(dtype=np.float64))
            continue
        known = sorted(column.dropna().astype(str).unique())
        levels[str(name)] = known
        codes = pd.Categorical(column.astype(str).where(column.notna()), categories=known).codes
        columns.append(np.where(codes < 0, np.nan, codes).astype(np.float64))
    return np.column_stack(columns), levels


_Rules = dict[int, tuple[tuple[str, ...], str | None]]


def _rules(tree: Any, frame: pd.DataFrame, levels: dict[str, list[Any]]) -> _Rules:
    """Each node's rule path on raw columns, and its query when the search syntax can express it."""
    names = [str(c) for c in frame.columns]
    missing = {str(c) for c in frame.columns[frame.isna().any().to_numpy()]}
    out: _Rules = {0: ((), "")}
    # node, rules, query terms (None once the syntax cannot express the path), levels each category may still take
    Entry = tuple[int, tuple[str, ...], list[str] | None, dict[str, list[Any]]]
    stack: list[Entry] = [(0, (), [], {})]
    while stack:
        node, rules, terms, allowed = stack.pop()
        left, right = int(tree.children_left[node]), int(tree.children_right[node])
        if left < 0:
            continue
        name, cut = names[tree.feature[node]], float(tree.threshold[node])
        missing_left = bool(tree.missing_go_to_left[node])
        for child, side in ((left, True), (right, False)):
            rule, term = _condition(name, cut, side, levels.get(name))
            gets_missing = name in missing and side == missing_left
            kept, narrowed = rules, allowed
            if name in levels:  # a later split on the same category narrows the earlier one: say it once
                chosen = [lv for i, lv in enumerate(levels[name]) if (i <= cut) == side]
                chosen = [lv for lv in chosen if lv in allowed.get(name, chosen)]
                narrowed = {**allowed, name: chosen}
                kept = tuple(r for r in rules if not r.lstrip("(").startswith(f"{name} in {{"))
                rule = f"{name} in {{{', '.join(map(str, chosen))}}}"
            rule = f"({rule} or missing)" if gets_missing else rule
            # a search comparison never matches a missing number; "!=" on text always matches a missing level
            exact = not gets_missing and (name not in missing or name not in levels)
            child_terms = [*terms, term] if terms is not None and exact else None
            out[child] = ((*kept, rule), None if child_terms is None else ", ".join(child_terms))
            stack.append((child, (*kept, rule), child_terms, narrowed))
    return out


def _condition(name: str, cut: float, left: bool, levels: list[Any] | None) -> tuple[str, str]:
    """(readable rule, search term) for one side of a split; the tree sends ``code <= cut`` left."""
    column = f'"{name}"' if any(ch in name for ch in " ,<>=!\"'`") else name
    if levels is None:
        op = "<=" if left else ">"
        return f"{name} {op} {cut:.6g}", f"{column}{op}{cut!r}"
    chosen = [lv for i, lv in enumerate(levels) if (i <= cut) == left]
    others = [lv for lv in levels if lv not in chosen]
    term = ", ".join(f"{column}!={_value(lv)}" for lv in others)
    return f"{name} in {{{', '.join(map(str, chosen))}}}", term


def _value(level: Any) -> str:
    text = str(level)
    return f'"{text}"' if any(ch in text for ch in " ,<>=!'`") else text
