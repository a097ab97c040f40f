"""Which class is shown: the default class, a label's position, and a binary model's other class.

One home for three rules every view and export must agree on:

* **default class**: a binary classifier shows its positive class (the last of two, as scikit-learn orders
  them); a multiclass model its first class; a regressor has none;
* **matching a label**: by value, then by its text (a class ``1`` matches ``"1"`` from a link or a selectbox);
  an unknown label is an :class:`~core.errors.ExplanationError` naming the model's classes;
* **complement**: a binary model explained through one output column (its positive class) gives the negative
  class exactly: contributions negated; base value and prediction ``1 - p`` in probability units, negated in
  margin units (log-odds).

Must stay importable by Python 3.9 (plain numpy; no 3.10+ syntax at runtime).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from core.errors import ExplanationError

__all__ = ["class_index", "complement", "default_class", "default_class_index", "output_column"]


def default_class_index(classes: Sequence[Any] | None) -> int:
    """Position of the class shown when the user has chosen none: the positive of two, else the first."""
    return 1 if classes is not None and len(classes) == 2 else 0


def default_class(classes: Sequence[Any] | None) -> Any:
    """The class shown when the user has chosen none (None for a regressor)."""
    return None if classes is None or len(classes) == 0 else classes[default_class_index(classes)]


def class_index(classes: Sequence[Any] | None, label: Any) -> int:
    """Position of ``label`` among ``classes`` (the default class when ``label`` is None).

    Raises:
        ExplanationError: ``label`` is none of the model's classes.
    """
    if classes is None or len(classes) == 0:
        return 0
    if label is None:
        return default_class_index(classes)
    for i, c in enumerate(classes):
        if c == label or str(c) == str(label):
            return i
    raise ExplanationError(f"Unknown class {label!r}; this model's classes are {list(classes)}.")


def output_column(index: int, *, binary_single: bool) -> tuple[int, bool]:
    """(column, negate): where class ``index`` lives in a model's outputs, and whether it is the complement."""
    if binary_single:
        return 0, index == 0
    return index, False


def complement(array: np.ndarray, *, output: str, kind: str) -> np.ndarray:
    """The negative class from the positive class's ``kind`` ("values", "base" or "prediction") in ``output``.

    Contributions always negate (they sum to the change of the output); a base value or prediction is
    ``1 - p`` in probability units and ``-m`` in margin units.
    """
    if kind != "values" and output == "probability":
        return 1.0 - array
    return -array
