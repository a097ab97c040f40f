"""Counterfactuals: the fewest raw-column changes to one row that make the model reach a goal.

Why a search of our own: DiCE (what the Responsible AI dashboard runs) proposes values that never occur in the
data, varies one-hot columns of one category independently, and its users report frozen features and permitted
ranges that are not honoured; the What-If Tool's "nearest counterfactual" is another row of the table, which
changes every column at once. This search needs only the model's batch predictions (so it works for any model
the loader accepts: pipelines with categorical inputs, AutoML ensembles) and edits raw columns directly.

What it guarantees, checked on every candidate it returns:

* the goal holds on the model's own prediction of the edited row (a class: that class has the highest score;
  a threshold: the explained class's probability, or a regressor's prediction, is past it);
* every new value occurs in the table (a numeric column's observed quantiles and the observed values between
  the original and a quantile; a categorical column's observed levels that the model knows, the 50 most frequent);
* frozen columns never change and numeric values stay within their bounds;
* candidates are ordered by how many columns change (1, then 2, up to ``max_changes``), then by distance in
  each column's own spread (|new - old| / IQR, else MAD, for numbers; 1 per changed category), and no
  candidate's columns include all of another candidate's columns;
* each candidate carries its exact what-if explanation (:func:`core.whatif.scenario.what_if`);
* the search is deterministic (no random draws) and bounded (:data:`MAX_ROWS` predicted rows, in batches).

What it does not: it is not globally minimal (a beam keeps the most promising partial edits from one level to
the next, and numbers move on a grid of observed values); it knows no causal links between columns (raising
"age" does not raise "years employed"); and it stops when its prediction budget runs out.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from core.classes import class_index
from core.engine.explain import Explainer
from core.errors import DataError, ExplanationError
from core.loading.models import LoadedModel
from core.whatif.scenario import WhatIf, allowed_values, what_if

__all__ = [
    "MAX_ROWS",
    "REFINE_VALUES",
    "Candidate",
    "Goal",
    "counterfactuals",
    "goal_reached",
    "parse_bound",
    "parse_bounds",
    "parse_goal",
]

log = logging.getLogger(__name__)

MAX_ROWS = 30_000  # predicted rows per search, all levels together
BATCH_ROWS = 4_096  # rows per call to the model's worker
QUANTILES = 21  # grid of observed values tried for a numeric column at the first level
LEVELS = 50  # a categorical column's most frequent observed levels tried
BEAM = 12  # partial edits extended at the next level
VALUES_PER_COLUMN = 4  # a column's most promising values used when extending a partial edit
REFINE_VALUES = 64  # observed values tried between the original and a candidate's value
_THRESHOLD = re.compile(r"^\s*(>=|<=|>|<)\s*([-+0-9.eE]+)\s*$")

Edits = tuple[tuple[str, Any], ...]  # ((column, new value), …) sorted by column


@dataclass(frozen=True)
class Goal:
    """What the edited row must reach: a class (``label``) or a threshold (``op`` ``threshold``).

    A threshold applies to the explained class's probability (a classifier with probabilities; its own score
    otherwise) or to a regressor's prediction.
    """

    label: Any = None
    op: str | None = None
    threshold: float | None = None

    @property
    def is_class(self) -> bool:
        """True for a class goal."""
        return self.op is None

    def describe(self) -> str:
        """The goal in words, e.g. ``class 'Yes'`` or ``a prediction > 0.7``."""
        return f"class {self.label!r}" if self.is_class else f"a prediction {self.op} {self.threshold:g}"


def parse_goal(text: str, classes: Iterable[Any] | None, task: str) -> Goal:
    """A goal from text: a class label (``"Yes"``, ``"1"``) or a threshold (``">0.7"``, ``"<=120"``).

    Raises:
        DataError: A regressor's goal is not a threshold, or the label is none of the model's classes.
    """
    match = _THRESHOLD.match(str(text))
    if match:
        try:
            return Goal(op=match.group(1), threshold=float(match.group(2)))
        except ValueError:
            raise DataError(f"{text!r} is not a threshold; write one like '>0.7' or '<=120'.") from None
    labels = list(classes or [])
    if task == "regression" or not labels:
        raise DataError(f"A regressor's goal is a threshold such as '>120' or '<=3.5', not {text!r}.")
    try:
        return Goal(label=labels[class_index(labels, str(text).strip())])
    except ExplanationError:
        raise DataError(f"{text!r} is none of the model's classes ({', '.join(map(str, labels))}).") from None


def parse_bound(part: str) -> tuple[str, tuple[float | None, float | None]]:
    """One bound ``COL=LOW:HIGH`` (either side may be empty) as (column, (low, high)).

    Raises:
        DataError: ``part`` is not ``COL=LOW:HIGH`` with numbers.
    """
    column, _, span = part.partition("=")
    low, sep, high = span.partition(":")
    try:
        if not column.strip() or not sep:
            raise ValueError(part)
        return column.strip(), (float(low) if low.strip() else None, float(high) if high.strip() else None)
    except ValueError:
        raise DataError(f"{part!r} is not COL=LOW:HIGH (e.g. income=20000:60000, age=:65).") from None


def parse_bounds(text: str) -> dict[str, tuple[float | None, float | None]]:
    """Bounds from text: ``"income=:60000, age=18:65"`` as {column: (low, high)} (see :func:`parse_bound`)."""
    return dict(parse_bound(part) for part in (p.strip() for p in str(text).split(",")) if part)


@dataclass(frozen=True)
class Candidate:
    """One counterfactual: the changes, the edited row's prediction and its exact explanation.

    Attributes:
        changes: Column -> (original value, new value).
        prediction: The edited row's prediction for the explained class, in the explainer's units
            (= ``what_if.edited`` base value + contributions).
        distance: Sum over changed columns of |new - old| / the column's spread (1 per changed category).
        what_if: The original and edited rows, explained exactly.
    """

    changes: dict[str, tuple[Any, Any]]
    prediction: float
    distance: float
    what_if: WhatIf

    def to_json(self) -> dict[str, Any]:
        """One entry of the ``modellens counterfactual`` document."""
        doc = self.what_if.to_json()
        return {
            "changes": {c: list(pair) for c, pair in doc["changed"].items()},
            "prediction": self.prediction,
            "base": doc["edited"]["base"],
            "contributions": doc["edited"]["contributions"],
        }


class _Search:
    """The row, its allowed values per column, and the budgeted batch predictions of edited copies."""

    def __init__(self, model: LoadedModel, frame: pd.DataFrame, row: int, goal: Goal, class_index_: int) -> None:
        self.model, self.frame, self.row, self.goal = model, frame, row, goal
        self.index = class_index_
        self.units = "probability" if "probability" in model.outputs else model.outputs[0]
        self.used = 0
        self.original = frame.iloc[row]
        self.values: dict[str, list[Any]] = {}
        self.refine: dict[str, np.ndarray] = {}
        self.scale: dict[str, float] = {}

    def slack(self, edits: list[Edits]) -> np.ndarray:
        """How far past the goal each edited row is (> 0, or >= 0 for >= and <=: reached); NaN past the budget."""
        out = np.full(len(edits), np.nan)
        n = max(0, min(len(edits), MAX_ROWS - self.used))
        for start in range(0, n, BATCH_ROWS):
            stop = min(n, start + BATCH_ROWS)
            out[start:stop] = self._slack(self.model.predict(self._rows(edits[start:stop]), self.units))
        self.used += n
        return out

    def _rows(self, edits: list[Edits]) -> pd.DataFrame:
        rows = self.frame.iloc[np.repeat(self.row, len(edits))].reset_index(drop=True)
        columns: dict[str, list[tuple[int, Any]]] = {}
        for i, edit in enumerate(edits):
            for column, value in edit:
                columns.setdefault(column, []).append((i, value))
        for column, pairs in columns.items():
            values = rows[column].to_numpy(dtype=object, copy=True)
            for i, value in pairs:
                values[i] = value
            rows[column] = pd.Series(values, dtype=self.frame[column].dtype)
        return rows

    def _slack(self, out: np.ndarray) -> np.ndarray:
        if out.shape[1] == 1:  # one margin column: the positive class's score, the negative's is its negation
            score = out[:, 0] if self.index == 1 or self.model.task == "regression" else -out[:, 0]
            other = np.zeros(len(out))
        else:
            score = out[:, self.index]
            other = np.delete(out, self.index, axis=1).max(axis=1)
        if self.goal.is_class:
            return np.asarray(score - other, dtype=np.float64)
        threshold = float(self.goal.threshold or 0.0)
        return np.asarray(score - threshold if self.goal.op in (">", ">=") else threshold - score, dtype=np.float64)

    def reached(self, slack: np.ndarray) -> np.ndarray:
        """Which slacks meet the goal (a tie counts only for >= and <=)."""
        with np.errstate(invalid="ignore"):
            return slack >= 0 if self.goal.op in (">=", "<=") else slack > 0

    def distance(self, edits: Edits) -> float:
        """Sum of each change's size in its column's spread (1 for a category or a missing original)."""
        total = 0.0
        for column, value in edits:
            old = self.original[column]
            if column not in self.scale or _missing(old):
                total += 1.0
            else:
                total += abs(float(value) - float(old)) / self.scale[column]
        return total


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _spread(observed: pd.Series) -> float:
    q1, q3 = np.quantile(observed, [0.25, 0.75])
    if q3 > q1:
        return float(q3 - q1)
    mad = float(np.median(np.abs(observed - np.median(observed)))) * 1.4826
    return mad if mad > 0 else float(observed.std()) or 1.0


def _prepare_values(
    search: _Search, columns: list[str], bounds: Mapping[str, tuple[float | None, float | None]]
) -> None:
    """Each free column's candidate values (observed, within bounds, not the original) and numeric spread."""
    for column in columns:
        old = search.original[column]
        levels = allowed_values(search.model, search.frame, column)
        if levels is not None:
            counts = search.frame[column].dropna().astype(str).value_counts(sort=True)  # most frequent first
            known = {str(v): v for v in levels}
            search.values[column] = [known[t] for t in counts.index if t in known and t != str(old)][:LEVELS]
            continue
        observed = pd.to_numeric(search.frame[column], errors="coerce").dropna().astype(np.float64)
        if observed.empty:
            search.values[column] = []
            continue
        search.scale[column] = _spread(observed)
        lo, hi = bounds.get(column, (None, None))
        kept = observed[(observed >= (-np.inf if lo is None else lo)) & (observed <= (np.inf if hi is None else hi))]
        search.refine[column] = np.unique(kept.to_numpy())
        grid = np.quantile(kept.to_numpy(), np.linspace(0, 1, QUANTILES), method="inverted_cdf") if len(kept) else []
        search.values[column] = [_scalar(v) for v in np.unique(grid) if _missing(old) or v != old]


def _scalar(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _check_constraints(
    frame: pd.DataFrame, row: int, freeze: Iterable[str], bounds: Mapping[str, tuple[float | None, float | None]]
) -> None:
    if not 0 <= row < len(frame):
        raise DataError(f"Row {row} is not in the table (it has {len(frame):,} rows, numbered from 0).")
    names = {str(c) for c in frame.columns}
    for column in [*freeze, *bounds]:
        if column not in names:
            raise DataError(f"{column!r} is not one of the model's input columns ({', '.join(sorted(names))}).")
    for column, (lo, hi) in bounds.items():
        if not pd.api.types.is_numeric_dtype(frame[column]):
            raise DataError(f"{column!r} is not a number, so it cannot be bounded; freeze it or leave it free.")
        if lo is not None and hi is not None and lo > hi:
            raise DataError(f"The bound of {column!r} is empty ({lo:g} > {hi:g}); give LOW:HIGH with LOW <= HIGH.")


def _key(edits: Edits) -> tuple[tuple[str, str], ...]:
    return tuple((c, str(v)) for c, v in edits)


def _with(edits: Edits, column: str, value: Any) -> Edits:
    """``edits`` with ``column`` set to ``value`` (None: the column back at its original value)."""
    kept = [(c, v) for c, v in edits if c != column]
    return tuple(sorted([*kept, (column, value)] if value is not None else kept, key=lambda cv: cv[0]))


def _promising(edits: list[Edits], slack: np.ndarray, reached: np.ndarray) -> dict[str, list[Any]]:
    """Per column, its single changes that came closest to the goal without reaching it."""
    best: dict[str, list[tuple[float, Any]]] = {}
    for edit, s, ok in zip(edits, slack, reached, strict=True):
        if not ok and not math.isnan(s):
            best.setdefault(edit[0][0], []).append((-float(s), edit[0][1]))
    return {c: [v for _, v in sorted(pairs, key=lambda p: p[0])[:VALUES_PER_COLUMN]] for c, pairs in best.items()}


def _extend(states: list[Edits], promising: Mapping[str, list[Any]]) -> list[Edits]:
    """Every state with one more column changed to one of that column's promising values (no repeats)."""
    out: list[Edits] = []
    seen: set[tuple[tuple[str, str], ...]] = set()
    for state in states:
        used = {c for c, _ in state}
        for column, values in promising.items():
            for value in values if column not in used else []:
                edits = _with(state, column, value)
                if _key(edits) not in seen:
                    seen.add(_key(edits))
                    out.append(edits)
    return out


def _beam(edits: list[Edits], slack: np.ndarray, reached: np.ndarray) -> list[Edits]:
    """The most promising edits that did not reach the goal (highest slack first; ties in order)."""
    open_ = [i for i in range(len(edits)) if not reached[i] and not math.isnan(slack[i])]
    return [edits[i] for i in sorted(open_, key=lambda i: -slack[i])[:BEAM]]


def _between(search: _Search, column: str, new: Any) -> list[Any]:
    """Observed values from the original toward ``new`` (nearest the original first; None: the original)."""
    old = search.original[column]
    if _missing(old):
        return []
    values = search.refine[column]
    low, high = sorted((float(old), float(new)))
    inner = [v for v in values if low < v < high]
    inner.sort(key=lambda v: abs(float(v) - float(old)))
    if len(inner) > REFINE_VALUES:
        inner = [inner[int(i)] for i in np.linspace(0, len(inner) - 1, REFINE_VALUES)]
    return [None, *(_scalar(v) for v in inner)]


def _refine(search: _Search, solutions: list[Edits]) -> list[Edits]:
    """Move each changed number back toward its original value (largest change first) while the goal holds."""
    current = list(solutions)
    orders = [  # each solution's numeric columns, largest change first
        [c for _, c in sorted((-search.distance(((c, v),)), c) for c, v in edits if c in search.scale)]
        for edits in current
    ]
    for step in range(max((len(o) for o in orders), default=0)):
        variants: list[Edits] = []
        owners: list[int] = []
        for i, edits in enumerate(current):
            if step < len(orders[i]):
                column = orders[i][step]
                new = dict(edits)[column]
                for value in _between(search, column, new):
                    variants.append(_with(edits, column, value))
                    owners.append(i)
        if not variants:
            break
        reached = search.reached(search.slack(variants))
        done: set[int] = set()
        for owner, edits, ok in zip(owners, variants, reached, strict=True):
            if ok and owner not in done:  # nearest the original first: the first that holds wins
                current[owner] = edits
                done.add(owner)
    return [edits for edits in current if edits]


def _shortlist(search: _Search, solutions: list[Edits], limit: int) -> list[Edits]:
    """Up to ``limit`` solutions worth refining: the closest of each set of columns first, then the others."""
    ordered = sorted(solutions, key=lambda e: (search.distance(e), _key(e)))
    firsts: dict[frozenset[str], Edits] = {}
    for edits in ordered:
        firsts.setdefault(frozenset(c for c, _ in edits), edits)
    rest = [e for e in ordered if firsts[frozenset(c for c, _ in e)] is not e]
    return [*firsts.values(), *rest][:limit]


def _clearly_different(search: _Search, a: Edits, b: Edits) -> bool:
    """Same columns, and at least one has another level or a number at least half a spread away."""
    for (column, x), (_, y) in zip(a, b, strict=True):
        if column not in search.scale:
            if str(x) != str(y):
                return True
        elif abs(float(x) - float(y)) >= 0.5 * search.scale[column]:
            return True
    return False


def _select(search: _Search, found: list[Edits], k: int) -> list[Edits]:
    """Up to ``k`` diverse solutions by (columns changed, distance); none includes another's columns."""
    unique = {_key(e): e for e in found}
    chosen: list[Edits] = []
    for edits in sorted(unique.values(), key=lambda e: (len(e), search.distance(e), _key(e))):
        columns = {c for c, _ in edits}
        clash = False
        for other in chosen:
            other_columns = {c for c, _ in other}
            if columns > other_columns or (columns == other_columns and not _clearly_different(search, edits, other)):
                clash = True
                break
        if not clash:
            chosen.append(edits)
        if len(chosen) == k:
            break
    return chosen


def goal_reached(model: LoadedModel, explainer: Explainer, row: int, goal: Goal, *, class_label: Any = None) -> bool:
    """Whether row ``row`` already meets ``goal`` (one prediction).

    Raises:
        DataError: The row is not in the table.
    """
    _check_constraints(explainer.data, row, (), {})
    search = _search(model, explainer, row, goal, class_label)
    return bool(search.reached(search.slack([()]))[0])


def _search(model: LoadedModel, explainer: Explainer, row: int, goal: Goal, class_label: Any) -> _Search:
    target = goal.label if goal.is_class else class_label
    index = 0 if model.task == "regression" else class_index(model.classes, target)
    return _Search(model, explainer.data, row, goal, index)


def counterfactuals(
    model: LoadedModel,
    explainer: Explainer,
    row: int,
    goal: Goal,
    *,
    freeze: Iterable[str] = (),
    bounds: Mapping[str, tuple[float | None, float | None]] | None = None,
    k: int = 3,
    class_label: Any = None,
    max_changes: int = 3,
) -> list[Candidate]:
    """Up to ``k`` diverse edits of row ``row`` that reach ``goal``, fewest changed columns first.

    Args:
        model: The loaded model (its worker predicts the edited rows in batches).
        explainer: The explainer of the aligned table (its rows give the observed values).
        row: The row's position in the table.
        goal: From :func:`parse_goal`.
        freeze: Columns that must not change.
        bounds: Column -> (low, high) for the new value of a numeric column (None: open on that side).
        k: How many candidates at most.
        class_label: The class explained (default: a class goal's class, else the model's default class).
        max_changes: The most columns one candidate may change.

    Returns:
        The candidates (empty when the row already meets the goal or none was found within the budget).

    Raises:
        DataError: The row is not in the table, a frozen or bounded column is not an input, a bound is on a
            category or empty.
    """
    frozen, limits = {str(c) for c in freeze}, dict(bounds or {})
    _check_constraints(explainer.data, row, frozen, limits)
    search = _search(model, explainer, row, goal, class_label)
    if search.reached(search.slack([()]))[0]:
        return []
    _prepare_values(search, [str(c) for c in explainer.data.columns if str(c) not in frozen], limits)
    edits: list[Edits] = [((c, v),) for c, values in search.values.items() for v in values]
    slack = search.slack(edits)
    reached = search.reached(slack)
    promising = _promising(edits, slack, reached)
    found: list[Edits] = []
    chosen: list[Edits] = []
    for level in range(1, max_changes + 1):
        if level > 1:
            edits = _extend(_beam(edits, slack, reached), promising)
            slack = search.slack(edits)
            reached = search.reached(slack)
        solutions = [e for e, ok in zip(edits, reached, strict=True) if ok]
        found += _refine(search, _shortlist(search, solutions, 4 * k))
        chosen = _select(search, found, k)
        if len(chosen) >= k or search.used >= MAX_ROWS:
            break
    log.info("counterfactual search on row %d: %d rows predicted, %d candidates", row, search.used, len(chosen))
    label = goal.label if class_label is None and goal.is_class else class_label
    return [_candidate(search, explainer, edits, label) for edits in chosen]


def _candidate(search: _Search, explainer: Explainer, edits: Edits, label: Any) -> Candidate:
    scenario = what_if(explainer, search.model, search.row, dict(edits), class_label=label)
    prediction = float(scenario.edited.prediction[0])
    return Candidate(changes=scenario.changed, prediction=prediction, distance=search.distance(edits), what_if=scenario)
