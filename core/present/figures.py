"""Plotly figure builders: an Explanation (or a row, or an importance) in, a ``go.Figure`` out.

Numbers are computed elsewhere (:mod:`core.engine.importance`, :mod:`core.explanation`); these only draw.

Every string that comes from a user's model or data (feature names, category values, class labels) goes
through :func:`esc` before plotly sees it: plotly renders text as pseudo-HTML, so a column named
``<img src=x onerror=...>`` must arrive as entities and is shown as text, never markup. Each clickable
point carries the row id in ``customdata[0]``.
"""

from __future__ import annotations

import html
import math
from typing import Any, cast

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from core.engine.importance import Importance, top_with_other
from core.errors import ExplanationError
from core.explanation import Explanation, RowExplanation

__all__ = [
    "beeswarm_figure",
    "dependence_figure",
    "esc",
    "force_figure",
    "format_value",
    "ice_figure",
    "importance_figure",
    "prediction_figure",
    "sensitivity_figure",
    "shift_figure",
    "waterfall_figure",
    "waterfall_pair",
]

POSITIVE, NEGATIVE = "#ff0051", "#008bfb"
LOW_HIGH = [[0.0, NEGATIVE], [1.0, POSITIVE]]
MISSING = "#bdbdbd"
TEMPLATE = "plotly_white"


def esc(text: Any) -> str:
    """Text safe for plotly's pseudo-HTML labels and hovers, escaped once for plotly itself.

    Plotly decodes numeric entities and a few named ones, but not ``&quot;``, which it would show as is; so a
    double quote becomes ``&#34;``.
    """
    return html.escape(str(text), quote=True).replace("&quot;", "&#34;")


def format_value(value: Any) -> str:
    """A feature value as a short human string (``72,000``, ``0.153``, ``yes``, ``missing``)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "missing"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return _integer(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if v.is_integer() and abs(v) < 1e15:
            return _integer(int(v))
        return f"{v:,.4g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.3e}"
    return str(value)


def _integer(value: int) -> str:
    """Thousands separators from five digits on: ``72,000`` but ``1960`` (years, codes)."""
    return f"{value:,}" if abs(value) >= 10_000 else str(value)


def format_number(value: float, *, signed: bool = False) -> str:
    """A model output or contribution as people write it, never in scientific notation in usual ranges.

    ``215,023`` · ``1808.4`` · ``12.3`` · ``0.153`` · ``0.000123``; only below 0.0001 ``1.2e-05``.
    """
    v = float(value)
    if not math.isfinite(v):
        return str(v)
    a = abs(v)
    if a >= 10_000:
        text = f"{v:,.0f}"
    elif a >= 100:
        text = f"{v:.1f}".removesuffix(".0")
    elif a >= 1e-4 or a == 0:
        text = f"{v:.3g}"
    else:
        text = f"{v:.2e}"
    return f"+{text}" if signed and v >= 0 else text


def _layout(fig: go.Figure, title: str, **kwargs: Any) -> go.Figure:
    fig.update_layout(
        title={"text": title, "x": 0.0, "xanchor": "left"},
        template=TEMPLATE,
        margin={"l": 10, "r": 10, "t": 50, "b": 40},
        **kwargs,
    )
    fig.update_yaxes(automargin=True)
    return fig


def importance_figure(importance: Importance, *, top_n: int = 15) -> go.Figure:
    """Horizontal bars of a global importance, largest on top, the rest summed as "other features"."""
    if len(importance.values) == 0:
        raise ExplanationError("No features to draw; the explanation is empty.")
    names, values, errors, other, n_other = top_with_other(importance, top_n)
    labels = [esc(n) for n in names]
    custom = list(names)
    if n_other:
        labels.append(f"{n_other} other features")
        values = np.append(values, other)
        custom.append("")
        errors = None if errors is None else np.append(errors, 0.0)
    fig = go.Figure(
        go.Bar(
            x=values[::-1],
            y=labels[::-1],
            orientation="h",
            marker_color=[POSITIVE if c else MISSING for c in custom[::-1]],
            customdata=[[c] for c in custom[::-1]],  # raw names: data for clicks, never rendered
            error_x=None if errors is None else {"type": "data", "array": errors[::-1], "visible": True},
            hovertemplate="<b>%{y}</b><br>%{x:,.4~r}<extra></extra>",
        )
    )
    title = f"Global importance: {esc(importance.label)}"
    fig = _layout(fig, title, height=max(320, 28 * len(labels) + 120), clickmode="event+select", dragmode=False)
    fig.update_xaxes(title=esc(importance.label) + (f" — {esc(importance.note)}" if importance.note else ""))
    return fig


def _swarm_offsets(x: np.ndarray, nbins: int = 100, height: float = 0.4) -> np.ndarray:
    """Vertical offsets stacking points that share an x bin, alternately above and below (shap's layout)."""
    if len(x) == 0:
        return x
    span = np.nanmax(x) - np.nanmin(x)
    quant = np.round(nbins * (x - np.nanmin(x)) / (span + 1e-12))
    order = np.argsort(quant, kind="stable")
    q_sorted = quant[order]
    starts = np.r_[0, np.flatnonzero(np.diff(q_sorted)) + 1]
    rank = np.arange(len(x)) - np.repeat(starts, np.diff(np.r_[starts, len(x)]))
    offsets = np.empty(len(x))
    offsets[order] = np.ceil(rank / 2) * np.where(rank % 2 == 1, 1.0, -1.0)
    return cast(np.ndarray, offsets * (height / max(1.0, np.abs(offsets).max() + 1)))


def _normalise(series: pd.Series) -> tuple[np.ndarray, bool]:
    """Feature values as 0..1 (5th-95th percentile) for numeric features, or category codes."""
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        v = series.to_numpy(dtype=np.float64, na_value=np.nan)
        finite = v[np.isfinite(v)]
        if len(finite) == 0:
            return v, False
        lo, hi = np.percentile(finite, [5, 95])
        if hi <= lo:
            lo, hi = finite.min(), finite.max()
        return np.clip((v - lo) / (hi - lo if hi > lo else 1.0), 0, 1), False
    codes = pd.Categorical(series.astype(object).where(series.notna(), None)).codes.astype(np.float64)
    codes[codes < 0] = np.nan
    return codes, True


def _drawn_rows(n: int, max_rows: int, seed: int) -> np.ndarray:
    """Positions of the rows a scatter draws: all of them, or a seeded sample of ``max_rows`` in order."""
    rows = np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(rows, max_rows, replace=False)) if n > max_rows else rows


def beeswarm_figure(
    expl: Explanation,
    *,
    max_display: int = 15,
    max_rows: int = 2000,
    seed: int = 0,
    features: list[str] | None = None,
) -> go.Figure:
    """One row per feature, one point per explained row: x = SHAP value, colour = feature value.

    ``features`` fixes which features are drawn, top first (default: the ``max_display`` largest mean |SHAP|).

    Numeric features are coloured low (blue) to high (red); categorical ones by category; missing in grey.
    WebGL traces keep tens of thousands of points smooth; beyond ``max_rows`` a seeded sample is drawn.
    """
    if len(expl) == 0:
        raise ExplanationError("The beeswarm needs at least one explained row.")
    rows = _drawn_rows(len(expl), max_rows, seed)
    if features is None:
        order = np.argsort(-np.abs(expl.values).mean(axis=0), kind="stable")[:max_display]
    else:
        order = np.array([expl.feature_names.index(f) for f in features], dtype=np.int64)
    traces: dict[str, dict[str, list[Any]]] = {k: {"x": [], "y": [], "c": [], "d": []} for k in ("num", "cat", "nan")}
    for pos, j in enumerate(order[::-1]):
        x = expl.values[rows, j]
        y = pos + _swarm_offsets(x)
        color, categorical = _normalise(expl.data.iloc[rows, j])
        name = esc(expl.feature_names[j])
        shown = [esc(format_value(v)) for v in expl.data.iloc[rows, j].tolist()]
        for i, row in enumerate(rows):
            kind = "nan" if np.isnan(color[i]) else ("cat" if categorical else "num")
            t = traces[kind]
            t["x"].append(x[i])
            t["y"].append(y[i])
            t["c"].append(qualitative.D3[int(color[i]) % 10] if kind == "cat" else color[i])
            t["d"].append([int(expl.row_ids[row]), name, shown[i]])
    fig = go.Figure()
    hover = "<b>%{customdata[1]}</b> = %{customdata[2]}<br>SHAP %{x:,.4~r}<br>row %{customdata[0]}<extra></extra>"
    for kind, t in traces.items():
        if not t["x"]:
            continue
        marker: dict[str, Any] = {"size": 5, "opacity": 0.8}
        if kind == "num":
            marker.update(
                color=t["c"],
                colorscale=LOW_HIGH,
                cmin=0,
                cmax=1,
                showscale=True,
                colorbar={"title": "feature value", "tickvals": [0, 1], "ticktext": ["low", "high"]},
            )
        else:
            marker.update(color=t["c"] if kind == "cat" else MISSING)
        label = {"num": "numeric value", "cat": "category", "nan": "missing"}[kind]
        fig.add_trace(
            go.Scattergl(
                x=t["x"],
                y=t["y"],
                mode="markers",
                marker=marker,
                customdata=t["d"],
                hovertemplate=hover,
                name=label,
                showlegend=kind != "num",
            )
        )
    ticks = [esc(expl.feature_names[j]) for j in order[::-1]]
    title = f"Beeswarm: SHAP values ({esc(expl.units)}) — {esc(expl.coverage_label)}"
    if len(rows) < len(expl):
        title += f", showing {len(rows):,} points per feature"
    fig = _layout(fig, title, height=max(360, 34 * len(order) + 140), clickmode="event+select", hovermode="closest")
    fig.update_yaxes(tickvals=list(range(len(order))), ticktext=ticks, range=[-0.7, len(order) - 0.3])
    fig.update_xaxes(title=f"SHAP value ({esc(expl.units)})", zeroline=True, zerolinecolor="#999")
    fig.update_layout(legend={"orientation": "h", "y": -0.12})
    return fig


def _row_label(name: str, value: Any) -> str:
    return f"{esc(name)} = {esc(format_value(value))}"


def waterfall_figure(
    row: RowExplanation,
    *,
    max_display: int = 10,
    title: str | None = None,
    x_range: tuple[float, float] | None = None,
    compact: bool = False,
) -> go.Figure:
    """Base value → each feature's push (largest nearest the prediction) → prediction.

    The bars stack from the model's average output (dotted line, bottom) to this row's prediction (solid
    line, top); red pushes up, blue pulls down; small features are folded into one "other" bar. ``x_range``
    fixes the axis (two waterfalls compared side by side share one); ``compact`` suits half a page (more room
    for the value labels: inside the bars that fit them; a shorter axis title).
    """
    if not isinstance(row, RowExplanation):
        raise ExplanationError("waterfall_figure needs one row; try expl.row(0).")
    labels, amounts = _waterfall_bars(row, max_display)
    fig = go.Figure(
        go.Waterfall(
            orientation="h",
            y=labels,
            x=amounts,
            base=row.base_value,
            measure=["relative"] * len(amounts),
            increasing={"marker": {"color": POSITIVE}},
            decreasing={"marker": {"color": NEGATIVE}},
            text=[format_number(a, signed=True) for a in amounts],
            textposition="inside" if compact else "outside",  # half a page has no room beside the bars
            cliponaxis=False,
            connector={"line": {"color": "#bbb"}},
            hovertemplate="%{y}<br>%{text}<extra></extra>",
        )
    )
    _mark_base_and_prediction(fig, row, base_label="average", yref="paper", y=1)
    lo, hi = x_range if x_range is not None else _waterfall_span(row, amounts)
    pad = 0.12 * (hi - lo) or 0.05 * (abs(hi) or 1.0)  # room for the value labels outside the bars
    fig.update_xaxes(range=[lo - pad, hi + pad])
    if compact:
        fig.update_layout(uniformtext={"minsize": 9, "mode": "hide"})  # a label that does not fit: on hover only
    fig = _layout(fig, esc(title or f"Waterfall for row {row.row_id}"), height=max(320, 30 * len(labels) + 140))
    fig.update_layout(margin={"t": 70, "b": 60, "r": 110})  # the prediction label grows rightwards
    axis = esc(_units(row)) if compact else f"{esc(_units(row))} — from the average to this row's prediction"
    fig.update_xaxes(title=axis)
    return fig


def _waterfall_bars(row: RowExplanation, max_display: int) -> tuple[list[str], list[float]]:
    """Bar labels and amounts, bottom to top: the folded "other" bar first, the largest push last."""
    names, values, shown, other = row.ordered(max_display)
    n_other = len(row.values) - len(names)
    labels = [_row_label(n, v) for n, v in zip(names, shown, strict=True)][::-1]
    amounts = [float(a) for a in values[::-1]]
    if n_other:
        labels.insert(0, f"{n_other} other features")
        amounts.insert(0, other)
    return labels, amounts


def _waterfall_span(row: RowExplanation, amounts: list[float]) -> tuple[float, float]:
    ends = row.base_value + np.cumsum([0.0, *amounts])
    return float(min(ends.min(), row.prediction)), float(max(ends.max(), row.prediction))


def waterfall_pair(
    original: RowExplanation, edited: RowExplanation, *, titles: tuple[str, str], max_display: int = 8
) -> tuple[go.Figure, go.Figure]:
    """Two rows' waterfalls on one axis (a row and its edited copy), each compact enough for half a page."""
    (a_lo, a_hi), (b_lo, b_hi) = (_waterfall_span(r, _waterfall_bars(r, max_display)[1]) for r in (original, edited))
    shared = (min(a_lo, b_lo), max(a_hi, b_hi))
    return (
        waterfall_figure(original, max_display=max_display, title=titles[0], x_range=shared, compact=True),
        waterfall_figure(edited, max_display=max_display, title=titles[1], x_range=shared, compact=True),
    )


def _mark_base_and_prediction(fig: go.Figure, row: RowExplanation, *, base_label: str, yref: str, y: float) -> None:
    """The base value (dotted) and the prediction (solid) as vertical lines, each labelled with its number.

    The two labels sit at the same height and grow away from each other (the lower value's to the left), so
    they never overlap, however close the two values are.
    """
    fig.add_vline(x=row.base_value, line={"dash": "dot", "color": "#666"})
    fig.add_vline(x=row.prediction, line={"color": "#111", "width": 2})
    base_first = row.base_value <= row.prediction
    for x, text, anchor in (
        (row.base_value, f"{base_label} {format_number(row.base_value)}", "right" if base_first else "left"),
        (row.prediction, f"<b>prediction {format_number(row.prediction)}</b>", "left" if base_first else "right"),
    ):
        fig.add_annotation(x=x, y=y, yref=yref, yanchor="bottom", xanchor=anchor, showarrow=False, text=text)


def _units(row: RowExplanation) -> str:
    from core.explanation import OUTPUT_LABELS

    label = OUTPUT_LABELS[row.output]
    return f"{label} of {row.class_label!r}" if row.class_label is not None else label


def force_figure(row: RowExplanation, *, max_labels: int = 4) -> go.Figure:
    """The additive push/pull strip: red features push the prediction up from the base, blue pull it down.

    Segments meet at the prediction (solid line); the largest ``max_labels`` on each side are named below
    the strip, the rest on hover.
    """
    if not isinstance(row, RowExplanation):
        raise ExplanationError("force_figure needs one row; try expl.row(0).")
    items = list(zip(row.values, row.feature_names, row.data.tolist(), strict=True))
    pos = sorted((t for t in items if t[0] > 0), key=lambda t: -t[0])
    neg = sorted((t for t in items if t[0] < 0), key=lambda t: t[0])
    fig = go.Figure()
    span = float(np.abs(row.values).sum()) or 1.0
    for group, color, sign in ((pos, POSITIVE, -1), (neg, NEGATIVE, 1)):
        edge = row.prediction
        for rank, (v, n, d) in enumerate(group):
            start = edge - abs(v) if sign < 0 else edge
            fig.add_trace(
                go.Bar(
                    x=[abs(v)],
                    y=[0],
                    base=[start],
                    orientation="h",
                    width=0.5,
                    showlegend=False,
                    marker={"color": color, "line": {"color": "white", "width": 1}},
                    hovertemplate=f"{_row_label(n, d)}<br>{format_number(v, signed=True)}<extra></extra>",
                )
            )
            if rank < max_labels and abs(v) >= 0.05 * span:
                # one row per rank, each label growing away from the prediction: pushes to the left, pulls to
                # the right, so no two labels share a row and a side
                fig.add_annotation(
                    x=start + abs(v) / 2,
                    y=-0.25,
                    ax=0,
                    ay=18 + 17 * rank,
                    yref="y",
                    xanchor="right" if sign < 0 else "left",
                    text=_row_label(n, d),
                    font={"color": color, "size": 11},
                    arrowcolor=color,
                )
            edge = start if sign < 0 else start + abs(v)
    _mark_base_and_prediction(fig, row, base_label="base value", yref="y", y=0.3)
    fig = _layout(fig, f"Force view for row {row.row_id}", height=300, barmode="overlay")
    fig.update_xaxes(title=f"{esc(_units(row))}")
    fig.update_yaxes(visible=False, range=[-1.6, 0.6])
    return fig


def dependence_figure(
    expl: Explanation, feature: str, *, color_by: str | None = None, max_rows: int = 5000, seed: int = 0
) -> go.Figure:
    """SHAP value of one feature against its value, coloured by another (its strongest interaction).

    Beyond ``max_rows`` explained rows a seeded sample is drawn, and the title says so: every row of a 327k-row
    table cost 2.9 s to build and 20 MB of JSON, on the server's script thread at every rerun of the page.
    """
    names = list(expl.feature_names)
    if feature not in names:
        raise ExplanationError(f"Unknown feature {feature!r}; pick one of the explained columns.")
    j = names.index(feature)
    rows = _drawn_rows(len(expl), max_rows, seed)
    frame = expl.data.iloc[rows]
    values = frame.iloc[:, j]
    y = expl.values[rows, j]
    categorical = not pd.api.types.is_numeric_dtype(values.dtype)
    if categorical:
        cats = pd.Categorical(values.astype(object).where(values.notna(), "missing"))
        rng = np.random.default_rng(0)
        x = cats.codes + rng.uniform(-0.25, 0.25, len(cats))
    else:
        x = values.to_numpy(dtype=np.float64, na_value=np.nan)
    marker: dict[str, Any] = {"size": 6, "opacity": 0.8, "color": POSITIVE}
    shown = [esc(format_value(v)) for v in values.tolist()]
    hover = f"{esc(feature)} = %{{customdata[1]}}<br>SHAP %{{y:,.4~r}}<br>row %{{customdata[0]}}"
    colouring = [""] * len(shown)
    if color_by is not None and color_by in names and color_by != feature:
        marker.update(_colour_by(frame[color_by], color_by))
        colouring = [esc(format_value(v)) for v in frame[color_by].tolist()]
        hover += f"<br>{esc(color_by)} = %{{customdata[2]}}"
    fig = go.Figure(
        go.Scattergl(
            x=x,
            y=y,
            mode="markers",
            marker=marker,
            customdata=[[int(r), s, c] for r, s, c in zip(expl.row_ids[rows], shown, colouring, strict=True)],
            hovertemplate=hover + "<extra></extra>",
        )
    )
    title = f"Dependence: {esc(feature)}" + (f", coloured by {esc(color_by)}" if color_by else "")
    if len(rows) < len(expl):
        title += f" — {len(rows):,} of {len(expl):,} rows drawn"
    fig = _layout(fig, title, height=420, clickmode="event+select")
    fig.update_yaxes(title=f"SHAP value of {esc(feature)} ({esc(expl.units)})", zeroline=True)
    if categorical:
        fig.update_xaxes(tickvals=list(range(len(cats.categories))), ticktext=[esc(c) for c in cats.categories])
    fig.update_xaxes(title=esc(feature))
    return fig


def _colour_by(series: pd.Series, name: str) -> dict[str, Any]:
    """Marker colours in the colouring feature's own values.

    Numbers keep their real range (5th-95th percentile) on the colour bar; categories get one colour each,
    named on the bar.
    """
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        v = series.to_numpy(dtype=np.float64, na_value=np.nan)
        finite = v[np.isfinite(v)]
        lo, hi = np.percentile(finite, [5, 95]) if len(finite) else (0.0, 1.0)
        if hi <= lo and len(finite):
            lo, hi = finite.min(), finite.max() + (finite.max() == finite.min())
        return {
            "color": np.where(np.isfinite(v), v, lo),
            "cmin": float(lo),
            "cmax": float(hi),
            "colorscale": LOW_HIGH,
            "showscale": True,
            "colorbar": {"title": esc(name)},
        }
    cats = pd.Categorical(series.astype(object).where(series.notna(), "missing"))
    return {
        "color": cats.codes.astype(np.float64),
        "cmin": -0.5,
        "cmax": len(cats.categories) - 0.5,
        "colorscale": "Viridis",
        "showscale": True,
        "colorbar": {
            "title": esc(name),
            "tickvals": list(range(len(cats.categories))),
            "ticktext": [esc(c) for c in cats.categories],
        },
    }


def prediction_figure(prediction: np.ndarray, units: str, *, actual: pd.Series | None = None) -> go.Figure:
    """Distribution of the model's predictions, split by the actual class when the target is known.

    Counted here, in 40 bins shared by every split: the figure carries 40 counts per trace whatever the table's
    size, where a plotly histogram would carry every row's prediction (4.4 MB of JSON for 327k rows, sent on
    every rerun and binned again in the browser). Rows with no finite prediction are left out.
    """
    values = np.asarray(prediction, dtype=np.float64)
    finite = np.isfinite(values)
    edges = np.histogram_bin_edges(values[finite], bins=40) if finite.any() else np.array([0.0, 1.0])
    fig = go.Figure()

    def bars(mask: np.ndarray, name: str, **style: Any) -> go.Bar:
        counts, _ = np.histogram(values[mask & finite], bins=edges)
        return go.Bar(
            x=(edges[:-1] + edges[1:]) / 2,
            y=counts,
            width=np.diff(edges),
            name=name,
            customdata=np.column_stack([edges[:-1], edges[1:]]),
            hovertemplate="%{customdata[0]:.4g} to %{customdata[1]:.4g}: %{y:,} rows<extra>%{fullData.name}</extra>",
            **style,
        )

    if actual is not None and actual.nunique() <= 12:
        for label in sorted(actual.dropna().unique().tolist(), key=str):
            fig.add_trace(bars((actual == label).to_numpy(), f"actual {esc(label)}", opacity=0.7))
    else:
        fig.add_trace(bars(np.ones(len(values), dtype=bool), "prediction", marker_color=NEGATIVE))
    fig = _layout(fig, f"Predictions ({esc(units)})", height=320)
    fig.update_layout(barmode="overlay", bargap=0)
    fig.update_xaxes(title=esc(units))
    fig.update_yaxes(title="rows")
    return fig


def shift_figure(
    shift: pd.Series, *, units: str, changed: dict[str, tuple[Any, Any]] | None = None, top_n: int = 10
) -> go.Figure:
    """How far each feature's contribution moved when a row was edited (edited minus original), largest on top.

    An edited column is labelled with its old and new values; a column that was not edited moved only through
    its interactions with the edited ones.
    """
    moved = shift[shift.abs() > 0].sort_values(key=lambda s: s.abs(), ascending=False).head(top_n)
    if moved.empty:
        raise ExplanationError("Nothing moved: the edited row explains exactly as the original.")
    changed = changed or {}
    labels = [
        f"{esc(n)}: {esc(format_value(changed[n][0]))} → {esc(format_value(changed[n][1]))}" if n in changed else esc(n)
        for n in moved.index
    ][::-1]
    values = moved.to_numpy(dtype=np.float64)[::-1]
    fig = go.Figure(
        go.Bar(
            x=values,
            y=labels,
            orientation="h",
            marker_color=[POSITIVE if v > 0 else NEGATIVE for v in values],
            text=[format_number(float(v), signed=True) for v in values],
            textposition="outside",
            cliponaxis=False,
            hovertemplate="%{y}<br>contribution moved by %{x:.4g}<extra></extra>",
        )
    )
    fig = _layout(fig, f"Change in contribution ({esc(units)})", height=max(260, 30 * len(labels) + 120))
    fig.update_layout(margin={"l": 10, "r": 60, "t": 50, "b": 40})
    return fig


def sensitivity_figure(
    feature: str,
    grid: list[Any],
    prediction: np.ndarray,
    contribution: np.ndarray,
    *,
    units: str,
    current: Any = None,
    edited: Any = None,
) -> go.Figure:
    """One row's prediction and the feature's own contribution across the feature's values (an ICE curve).

    The row's value is marked with a dotted line, an edited value with a solid one.
    """
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in grid)
    x = list(grid) if numeric else [esc(format_value(v)) for v in grid]
    mode = "lines+markers" if numeric else "markers"
    fig = go.Figure(
        [
            go.Scatter(x=x, y=prediction, mode=mode, name="prediction", line={"color": "#111"}),
            go.Scatter(
                x=x,
                y=contribution,
                mode=mode,
                name=f"contribution of {esc(feature)}",
                line={"color": POSITIVE, "dash": "dot"},
            ),
        ]
    )
    for value, dash, label in ((current, "dot", "this row"), (edited, "solid", "edited")):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        where = value if numeric else esc(format_value(value))
        if numeric and not isinstance(where, (int, float)):
            continue
        fig.add_vline(x=where, line={"dash": dash, "color": "#666"}, annotation_text=label)
    fig = _layout(fig, f"Sensitivity to {esc(feature)} ({esc(units)})", height=340, hovermode="x unified")
    fig.update_xaxes(title=esc(feature))
    fig.update_layout(legend={"orientation": "h", "y": -0.25})
    return fig


def ice_figure(feature: str, grid: list[Any], curves: np.ndarray, *, units: str, centred: bool = True) -> go.Figure:
    """Individual conditional expectation: one thin line per sampled row, their average (partial dependence) bold.

    ``curves`` is (rows, values) in the model's units; centred, each starts at 0 at the first value, so the
    lines compare by shape (does the feature act the same way on every row?) rather than by level.
    """
    if curves.size == 0:
        raise ExplanationError("No rows to draw the dependence curves on.")
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in grid)
    x = list(grid) if numeric else [esc(format_value(v)) for v in grid]
    lines = curves - curves[:, :1] if centred else curves
    fig = go.Figure()
    for curve in lines:
        fig.add_trace(
            go.Scatter(
                x=x,
                y=curve,
                mode="lines",
                line={"color": "rgba(0,139,251,0.25)", "width": 1},
                hoverinfo="skip",
                showlegend=False,
            )
        )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=lines.mean(axis=0),
            mode="lines+markers",
            name="average (partial dependence)",
            line={"color": "#111", "width": 3},
        )
    )
    what = "change from its first value" if centred else "prediction"
    title = f"{esc(feature)}: each row's {what} ({len(lines)} rows, {esc(units)})"
    fig = _layout(fig, title, height=380, hovermode="x")
    fig.update_xaxes(title=esc(feature))
    fig.update_layout(legend={"orientation": "h", "y": -0.22})
    return fig
