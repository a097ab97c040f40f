"""Figures of group views: cohorts side by side, shifts with intervals, the error tree, input drift.

Like :mod:`core.present.figures`, these only draw: the numbers come from :mod:`core.cohorts`. Every user string
goes through :func:`core.present.figures.esc`; each clickable mark carries its key (a node id, a feature) in
``customdata[0]``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from core.cohorts.compare import CohortComparison
from core.cohorts.errortree import ErrorAnalysis
from core.errors import ExplanationError
from core.explanation import Explanation
from core.present.figures import MISSING, NEGATIVE, POSITIVE, _layout, beeswarm_figure, esc

__all__ = [
    "cohort_beeswarm_figure",
    "cohort_importance_figure",
    "cohort_prediction_figure",
    "drift_figure",
    "error_tree_figure",
    "interval_figure",
]

COHORT_COLOURS = ["#636363", *qualitative.D3]  # everyone in grey, then one colour per cohort


def _colour(i: int) -> str:
    return str(COHORT_COLOURS[i % len(COHORT_COLOURS)])


def cohort_importance_figure(comparison: CohortComparison, *, top_n: int = 12) -> go.Figure:
    """Mean |SHAP| per feature for each cohort side by side, with bootstrap 95 % whiskers.

    Features are ordered by the first cohort's (everyone's) mean |SHAP|; each bar's hover gives its interval
    and the cohort's explained row count.
    """
    stats = list(comparison.cohorts.values())
    if not stats:
        raise ExplanationError("No cohorts to compare; add one.")
    first = np.nan_to_num(stats[0].mean_abs, nan=0.0)
    order = np.argsort(-first, kind="stable")[:top_n][::-1]
    labels = [esc(comparison.feature_names[j]) for j in order]
    fig = go.Figure()
    for i, s in enumerate(stats):
        mean, low, high = s.mean_abs[order], s.low[order], s.high[order]
        fig.add_trace(
            go.Bar(
                x=mean,
                y=labels,
                orientation="h",
                name=f"{esc(s.name)} ({s.rows:,} rows)",
                marker_color=_colour(i),
                error_x={
                    "type": "data",
                    "array": np.nan_to_num(high - mean),
                    "arrayminus": np.nan_to_num(mean - low),
                    "visible": True,
                },
                customdata=[[comparison.feature_names[j], lo, hi] for j, lo, hi in zip(order, low, high, strict=True)],
                hovertemplate=f"<b>%{{y}}</b> · {esc(s.name)}<br>mean |SHAP| %{{x:.4g}}"
                "<br>95% interval %{customdata[1]:.4g} to %{customdata[2]:.4g}<extra></extra>",
            )
        )
    height = max(360, 22 * len(labels) * len(stats) + 140)
    fig = _layout(fig, f"Mean |SHAP| per cohort ({esc(comparison.units)}), 95% bootstrap whiskers", height=height)
    fig.update_layout(barmode="group", legend={"orientation": "h", "y": -0.2}, margin={"b": 90})
    fig.update_xaxes(title=f"mean |SHAP| ({esc(comparison.units)})")
    return fig


def interval_figure(
    frame: pd.DataFrame, *, title: str, axis: str, top_n: int = 12, clickable: bool = False
) -> go.Figure:
    """Per feature a shift with its 95 % interval (columns feature, shift, low, high, separated), largest on top.

    Bars whose interval excludes 0 are coloured (red up, blue down); the others are grey: their shift is within
    what resampling alone would give. ``title`` and ``axis`` are plain text (they may name cohorts): escaped here.
    """
    if frame.empty:
        raise ExplanationError("No features to compare.")
    top = frame.head(top_n).iloc[::-1]
    shift = top["shift"].to_numpy(dtype=np.float64)
    low, high = top["low"].to_numpy(dtype=np.float64), top["high"].to_numpy(dtype=np.float64)
    separated = top["separated"].to_numpy(dtype=bool)
    colours = [(POSITIVE if v > 0 else NEGATIVE) if sep else MISSING for v, sep in zip(shift, separated, strict=True)]
    names = [str(f) for f in top["feature"]]
    fig = go.Figure(
        go.Bar(
            x=shift,
            y=[esc(n) + ("" if sep else " (within noise)") for n, sep in zip(names, separated, strict=True)],
            orientation="h",
            marker_color=colours,
            error_x={
                "type": "data",
                "array": np.nan_to_num(high - shift),
                "arrayminus": np.nan_to_num(shift - low),
                "visible": True,
            },
            customdata=[[n, lo, hi] for n, lo, hi in zip(names, low, high, strict=True)],
            hovertemplate="<b>%{y}</b><br>shift %{x:.4g}<br>95% interval %{customdata[1]:.4g} to "
            "%{customdata[2]:.4g}<extra></extra>",
        )
    )
    extra = {"clickmode": "event+select", "dragmode": False} if clickable else {}
    fig = _layout(fig, esc(title), height=max(300, 30 * len(top) + 130), **extra)
    fig.update_layout(margin={"l": 10, "r": 70, "t": 50, "b": 40})
    fig.update_xaxes(title=esc(axis), zeroline=True, zerolinecolor="#999")
    return fig


def cohort_prediction_figure(comparison: CohortComparison, units: str) -> go.Figure:
    """Each cohort's prediction distribution as a box (5 / 25 / 50 / 75 / 95 % quantiles and the mean)."""
    fig = go.Figure()
    for i, s in enumerate(comparison.cohorts.values()):
        p = s.prediction
        if "q50" not in p:
            continue
        rows = comparison.table_rows.get(s.name, s.rows)
        fig.add_trace(
            go.Box(
                name=f"{esc(s.name)} ({rows:,})",
                y=[f"{esc(s.name)} ({rows:,})"],
                q1=[p["q25"]],
                median=[p["q50"]],
                q3=[p["q75"]],
                lowerfence=[p["q05"]],
                upperfence=[p["q95"]],
                mean=[p["mean"]],
                marker_color=_colour(i),
                orientation="h",
                hoverinfo="x+name",
            )
        )
    if not fig.data:
        raise ExplanationError("Every cohort is empty: there are no predictions to draw.")
    fig = _layout(fig, f"Predictions per cohort ({esc(units)}): 5-95% whiskers", height=140 + 60 * len(fig.data))
    fig.update_layout(showlegend=False)
    fig.update_yaxes(autorange="reversed")  # everyone on top, then the cohorts in order
    fig.update_xaxes(title=esc(units))
    return fig


def cohort_beeswarm_figure(
    expl: Explanation, masks: dict[str, Any], *, top_n: int = 8, max_rows: int = 600
) -> go.Figure:
    """A beeswarm per cohort, side by side on one SHAP axis and one feature order (everyone's mean |SHAP|).

    Each panel draws at most ``max_rows`` seeded rows of its cohort (the title says so when it samples).
    """
    if not masks:
        raise ExplanationError("No cohorts to draw.")
    order = list(expl.mean_abs().index[:top_n])
    names = list(masks)
    fig = make_subplots(rows=1, cols=len(names), shared_yaxes=True, horizontal_spacing=0.02)
    for i, name in enumerate(names):
        positions = np.flatnonzero(np.asarray(masks[name], dtype=bool))
        title = f"{esc(name)} ({len(positions):,} explained)"
        if len(positions) > max_rows:  # sample before copying the rows (a cohort can be 100k rows)
            positions = np.sort(np.random.default_rng(i).choice(positions, max_rows, replace=False))
        part = expl.take(positions)
        fig.layout.annotations = (
            *fig.layout.annotations,
            go.layout.Annotation(
                text=title,
                x=(i + 0.5) / len(names),
                y=1.0,
                xref="paper",
                yref="paper",
                showarrow=False,
                yanchor="bottom",
            ),
        )
        if len(part) == 0:
            continue
        single = beeswarm_figure(part, features=order, max_rows=max_rows)
        for trace in single.data:
            if i:
                trace.showlegend = False
                if getattr(trace.marker, "showscale", None):
                    trace.marker.showscale = False
            fig.add_trace(trace, row=1, col=i + 1)
    ticks = [esc(f) for f in order[::-1]]
    sampled = any(int(np.sum(np.asarray(m, dtype=bool))) > max_rows for m in masks.values())
    fig = _layout(
        fig,
        f"Beeswarm per cohort: SHAP values ({esc(expl.units)})"
        + (f", at most {max_rows:,} rows per cohort" if sampled else ""),
        height=max(360, 34 * len(order) + 160),
        hovermode="closest",
    )
    fig.update_yaxes(tickvals=list(range(len(order))), ticktext=ticks, range=[-0.7, len(order) - 0.3])
    fig.update_xaxes(matches="x", zeroline=True, zerolinecolor="#999")
    fig.update_layout(legend={"orientation": "h", "y": -0.12}, margin={"t": 80})
    return fig


def error_tree_figure(analysis: ErrorAnalysis, *, top: int = 10) -> go.Figure:
    """The error tree's nodes with most errors (error rate x share), as clickable bars: click one to keep it.

    Each bar is a node's error rate, labelled with its row count and its share of all errors; the dashed line is
    the table's own error rate.
    """
    nodes = [n for n in analysis.nodes if n.node != 0 and n.errors > 0][:top][::-1]
    if not nodes:
        raise ExplanationError("The model makes no errors on this table: there is nothing to analyse.")
    fig = go.Figure(
        go.Bar(
            x=[n.error_rate for n in nodes],
            y=[esc(_short(n.label)) for n in nodes],
            orientation="h",
            marker_color=[POSITIVE if n.error_rate > analysis.error_rate else MISSING for n in nodes],
            text=[f"{n.rows:,} rows · {n.share:.0%} of errors" for n in nodes],
            textposition="outside",
            cliponaxis=False,
            customdata=[[n.node, esc(n.label)] for n in nodes],
            hovertemplate="<b>%{customdata[1]}</b><br>error rate %{x:.1%}<br>%{text}<extra></extra>",
        )
    )
    fig.add_vline(x=analysis.error_rate, line_dash="dash", line_color="#555")
    title = f"Where the model is wrong (error: {esc(analysis.error_definition)}; overall {analysis.error_rate:.1%})"
    fig = _layout(fig, title, height=max(320, 34 * len(nodes) + 130), clickmode="event+select", dragmode=False)
    fig.update_layout(margin={"l": 10, "r": 150, "t": 50, "b": 40})
    fig.update_xaxes(title="error rate in the group", tickformat=".0%", range=[0, 1.05])
    return fig


def _short(text: str, limit: int = 70) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def drift_figure(features: pd.DataFrame, *, statistic: str, top_n: int = 12) -> go.Figure:
    """Each column's input drift (e.g. PSI) in the order of the explanation shift, with the usual 0.1 / 0.25 marks."""
    top = features.dropna(subset=["drift"]).head(top_n).iloc[::-1]
    if top.empty:
        raise ExplanationError("No drift to draw: both sides explain the same table.")
    drift = top["drift"].to_numpy(dtype=np.float64)
    fig = go.Figure(
        go.Bar(
            x=drift,
            y=[esc(f) for f in top["feature"]],
            orientation="h",
            marker_color=[POSITIVE if d > 0.25 else "#f0a500" if d > 0.1 else MISSING for d in drift],
            text=[f"{d:.3f}" for d in drift],
            textposition="outside",
            cliponaxis=False,
            hovertemplate=f"<b>%{{y}}</b><br>{esc(statistic)} %{{x:.3f}}<extra></extra>",
        )
    )
    for x, name in ((0.1, "moderate"), (0.25, "large")):
        fig.add_vline(x=x, line_dash="dot", line_color="#999", annotation_text=name, annotation_position="top")
    fig = _layout(fig, f"Input drift per column ({esc(statistic)})", height=max(300, 30 * len(top) + 130))
    fig.update_layout(margin={"l": 10, "r": 60, "t": 50, "b": 40})
    fig.update_xaxes(title=esc(statistic))
    return fig
