"""Plain-language summaries of one row's explanation, for people who will never open a notebook."""

from __future__ import annotations

from core.explanation import OUTPUT_LABELS, RowExplanation
from core.present.figures import format_number, format_value

__all__ = ["summarize"]


def _amount(value: float, output: str) -> str:
    if output == "probability" and (abs(value) >= 0.01 or value == 0):
        return f"{value:.2f}"
    return format_number(value)


def _noticeable(values: list[float], output: str) -> float:
    """The smallest contribution worth naming: 1 % of the largest, and at least 0.0005 in probability."""
    largest = max((abs(v) for v in values), default=0.0)
    return max(0.01 * largest, 5e-4 if output == "probability" else 1e-12)


def _phrase(name: str, value: object, amount: float, output: str) -> str:
    return f"{name} = {format_value(value)} ({'+' if amount >= 0 else '−'}{_amount(abs(amount), output)})"


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def summarize(row: RowExplanation, *, top: int = 2) -> str:
    """One paragraph: the prediction against the average, then what pushed it up and what pulled it down.

    Example: ``Predicted 0.82 probability of 'yes' (average 0.31). Pushed up most by income = 72,000 (+0.21)
    and tenure = 2 (+0.12); pulled down most by age = 61 (−0.05).``
    """
    units = OUTPUT_LABELS[row.output]
    what = f"{units} of {row.class_label!r}" if row.class_label is not None else units
    text = f"Predicted {_amount(row.prediction, row.output)} {what} (average {_amount(row.base_value, row.output)})."
    pairs = list(zip(row.feature_names, row.data.tolist(), row.values.tolist(), strict=True))
    floor = _noticeable(row.values.tolist(), row.output)
    pairs = [p for p in pairs if abs(p[2]) >= floor]
    ups = sorted((p for p in pairs if p[2] > 0), key=lambda p: -p[2])[:top]
    downs = sorted((p for p in pairs if p[2] < 0), key=lambda p: p[2])[:top]
    parts = []
    if ups:
        parts.append("Pushed up most by " + _join([_phrase(n, v, a, row.output) for n, v, a in ups]))
    if downs:
        parts.append("pulled down most by " + _join([_phrase(n, v, a, row.output) for n, v, a in downs]))
    if not parts:
        return text + " No feature moved it noticeably away from the average."
    sentence = "; ".join(parts)
    return f"{text} {sentence[0].upper()}{sentence[1:]}."
