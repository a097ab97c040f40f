"""A report that travels: one self-contained, interactive HTML file (plotly.js embedded, no network needed).

It holds the model card, global importance, the beeswarm, the waterfall, force strip and plain-language
summary of each pinned row, each pinned what-if scenario (the edited row beside its original), and the pinned
group views: the cohort comparison, the error analysis and the explanation diff (:class:`GroupSection`). Every
user-supplied string is escaped (feature names, values, class labels, titles); figures escape their own
labels (:mod:`core.present.figures`).
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import pandas as pd
import plotly.io as pio
from plotly.offline import get_plotlyjs

from core.cohorts.compare import CohortComparison
from core.cohorts.diff import ExplanationDiff
from core.cohorts.errortree import ErrorAnalysis
from core.engine.importance import shap_importance
from core.explanation import Explanation, RowExplanation
from core.present import cohort_figures, figures
from core.present.narrative import summarize

__all__ = ["GroupSection", "ScenarioView", "build_report", "cohort_section", "diff_section", "error_section"]

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1100px;
       color: #222; padding: 0 1rem; }
h1 { margin-bottom: .2rem; } .muted { color: #666; font-size: .9rem; }
table.card { border-collapse: collapse; margin: .5rem 0 1rem; } .card td { padding: .2rem .8rem .2rem 0; }
.card td:first-child { color: #666; } section { margin: 2rem 0; } .summary { font-size: 1.05rem; }
.pair { display: flex; gap: 1rem; } .pair > div { flex: 1; min-width: 0; }
"""


@dataclass(frozen=True)
class ScenarioView:
    """A pinned what-if scenario as the report shows it: a row, its edited copy and what was changed."""

    original: RowExplanation
    edited: RowExplanation
    changed: dict[str, tuple[Any, Any]]


@dataclass(frozen=True)
class GroupSection:
    """A pinned group view as the report shows it: a heading, plain sentences, figures and a table."""

    title: str
    lines: tuple[str, ...]
    figures: tuple[Any, ...]
    table: pd.DataFrame | None = None


def cohort_section(comparison: CohortComparison, first: str, second: str) -> GroupSection:
    """The cohort comparison: who is in each cohort, its metrics, and the second-minus-first shift."""
    rows = []
    for name, stats in comparison.cohorts.items():
        metrics = ", ".join(f"{k} {v:.3f}" for k, v in stats.metrics.items())
        total = comparison.table_rows.get(name, stats.rows)
        rows.append({"cohort": name, "rows": total, "explained": stats.rows, "metrics": metrics or "-"})
    difference = comparison.difference(first, second)
    separated = difference[difference["separated"]]["feature"].tolist()
    lines = (
        f"Mean |SHAP| of {second} minus {first}, with bootstrap 95% intervals ({comparison.n_boot} replicates).",
        "Features whose interval excludes zero: " + (", ".join(map(str, separated[:8])) or "none") + ".",
    )
    figs = (
        cohort_figures.cohort_importance_figure(comparison),
        cohort_figures.interval_figure(
            difference, title=f"{second} minus {first}: mean |SHAP|", axis=f"shift ({comparison.units})"
        ),
    )
    return GroupSection("Cohorts", lines, figs, pd.DataFrame(rows))


def error_section(analysis: ErrorAnalysis) -> GroupSection:
    """Where the model is wrong: the error tree's top nodes and the wrong-vs-right attribution gap."""
    top = [n for n in analysis.nodes if n.node != 0][:8]
    table = pd.DataFrame(
        [
            {
                "group": n.label,
                "rows": n.rows,
                "error rate": round(n.error_rate, 3),
                "share of errors": round(n.share, 3),
            }
            for n in top
        ]
    )
    lines = (f"An error here is: {analysis.error_definition}. Overall error rate {analysis.error_rate:.1%}.",)
    figs: list[Any] = [cohort_figures.error_tree_figure(analysis)] if analysis.errors.any() else []
    if analysis.attribution_gap is not None:
        figs.append(
            cohort_figures.interval_figure(
                analysis.attribution_gap, title="Wrong minus right rows: mean |SHAP|", axis="shift in mean |SHAP|"
            )
        )
    return GroupSection("Where the model is wrong", lines, tuple(figs), table)


def diff_section(diff: ExplanationDiff, *, first: str, second: str, units: str) -> GroupSection:
    """The explanation diff: per column shift in mean contribution with intervals, and the input drift."""
    p = diff.prediction
    lines = (
        f"{second} compared with {first} ({diff.rows['second']:,} and {diff.rows['first']:,} rows explained).",
        f"Mean prediction moves from {figures.format_number(p['first'])} to {figures.format_number(p['second'])} "
        f"(95% interval of the shift {figures.format_number(p['low'])} to {figures.format_number(p['high'])}).",
    )
    figs: list[Any] = [
        cohort_figures.interval_figure(
            diff.features, title=f"{second} minus {first}: mean contribution", axis=f"shift ({units})"
        )
    ]
    if not diff.paired:
        figs.append(cohort_figures.drift_figure(diff.features, statistic=diff.drift_statistic))
    return GroupSection("Explanation diff", lines, tuple(figs))


def _group_section(group: GroupSection) -> str:
    table = "" if group.table is None else group.table.to_html(index=False, border=0, classes="card")
    return (
        f"<section><h2>{_e(group.title)}</h2>"
        + "".join(f"<p>{_e(line)}</p>" for line in group.lines)
        + table
        + "".join(_figure(f) for f in group.figures)
        + "</section>"
    )


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _figure(fig: Any) -> str:
    return cast(
        str,
        pio.to_html(fig, full_html=False, include_plotlyjs=False, config={"displaylogo": False, "responsive": True}),
    )


def _card_rows(card: dict[str, Any]) -> str:
    keys = [
        ("Model", "estimator"),
        ("Library", "library"),
        ("Task", "task"),
        ("Classes", "classes"),
        ("Input columns", "n_features"),
        ("File", "filename"),
        ("sha256", "sha256"),
    ]
    rows = []
    for label, key in keys:
        value = card.get(key)
        if value is None or value == "":
            continue
        if isinstance(value, (list, tuple)):
            value = ", ".join(map(str, value))
        rows.append(f"<tr><td>{_e(label)}</td><td>{_e(value)}</td></tr>")
    automl = card.get("automl") or {}
    for member in automl.get("members") or ():  # an Azure AutoML ensemble: its members instead of two steps
        steps = " → ".join(map(str, member.get("steps") or ()))
        rows.append(
            f"<tr><td>member {_e(member.get('name'))}</td><td>{_e(steps)}, weight {member['weight']:.3f}</td></tr>"
        )
    for step in () if automl else card.get("steps") or ():
        detail = f"{step.get('class')} {step.get('detail', '')}".strip()
        rows.append(f"<tr><td>step {_e(step.get('name'))}</td><td>{_e(detail)}</td></tr>")
    return "\n".join(rows)


def _row_section(row: RowExplanation) -> str:
    return (
        f"<section><h3>Row {row.row_id}</h3><p class='summary'>{_e(summarize(row))}</p>"
        f"{_figure(figures.waterfall_figure(row))}{_figure(figures.force_figure(row))}</section>"
    )


def build_report(
    expl: Explanation,
    card: dict[str, Any],
    *,
    rows: list[RowExplanation] | None = None,
    scenarios: Sequence[ScenarioView] = (),
    groups: Sequence[GroupSection] = (),
    title: str = "",
    notes: list[str] | tuple[str, ...] = (),
) -> str:
    """The report as an HTML string.

    Args:
        expl: The explanation shown globally (the selected class, raw columns).
        card: The model card (:meth:`core.loading.models.LoadedModel.card`).
        rows: The pinned rows' explanations.
        scenarios: Pinned what-if scenarios (each edited row beside its original).
        groups: Pinned group views (:func:`cohort_section`, :func:`error_section`, :func:`diff_section`).
        title: The report's title (escaped).
        notes: Extra lines for the header (notices, the method).
    """
    when = dt.datetime.now().strftime("%d %b %Y %H:%M")
    title = title or f"Why {card.get('estimator', 'the model')} predicts what it predicts"
    header = [f"Explained with {expl.method}; values in {expl.units}; {expl.coverage_label}.", *notes]
    sections = [
        f"<section><h2>Model</h2><table class='card'>{_card_rows(card)}</table></section>",
        f"<section><h2>Global importance</h2>{_figure(figures.importance_figure(shap_importance(expl)))}</section>",
        f"<section><h2>Beeswarm</h2>{_figure(figures.beeswarm_figure(expl))}</section>",
    ]
    if rows:
        sections.append("<h2>Pinned rows</h2>" + "".join(_row_section(r) for r in rows))
    if scenarios:
        sections.append("<h2>What-if scenarios</h2>" + "".join(_scenario_section(s) for s in scenarios))
    sections.extend(_group_section(g) for g in groups)
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{_e(title)}</title><style>{STYLE}</style><script type='text/javascript'>{get_plotlyjs()}</script>"
        f"</head><body><h1>{_e(title)}</h1><p class='muted'>ModelLens report · {_e(when)}</p>"
        + "".join(f"<p class='muted'>{_e(n)}</p>" for n in header)
        + "".join(sections)
        + "</body></html>"
    )


def _scenario_section(scenario: ScenarioView) -> str:
    before, after = scenario.original, scenario.edited
    value = figures.format_value
    edits = "; ".join(f"{name}: {value(old)} → {value(new)}" for name, (old, new) in scenario.changed.items())
    moved = (
        f"The prediction moves from {figures.format_number(before.prediction)} to "
        f"{figures.format_number(after.prediction)} ({after.output})."
    )
    left, right = figures.waterfall_pair(
        before, after, titles=(f"Row {before.row_id} as it is", f"Row {before.row_id} edited")
    )
    return (
        f"<section><h3>Row {before.row_id}, edited</h3><p class='summary'>{_e(edits)}. {_e(moved)}</p>"
        f"<p>{_e(summarize(after))}</p><div class='pair'><div>{_figure(left)}</div><div>{_figure(right)}</div></div>"
        "</section>"
    )
