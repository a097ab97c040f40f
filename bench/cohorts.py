"""Issue 18: cohort comparison, error analysis and explanation diff at the sizes the issue names.

- Cohorts: 2 cohorts on 100k explained rows (an Explanation of 30 features built from arrays, as a finished
  batch run gives them): the bootstrap (200 replicates, :func:`compare_named`) and the redraw (every figure of the
  Cohorts view from a computed comparison). Targets: redraw ≤ 1 s, intervals ≤ 2 s.
- Error analysis over 1 M rows (10 raw columns, one categorical; attributions of every row): the tree and the
  wrong-vs-right gap. Target ≤ 10 s on 2 cores.
- Diff of two 100k-row tables on a 70-column pipeline (RF 100) in its sandboxed worker, as the dashboard does it:
  the first table's sample, a sample of the second explained by the same explainer, then the diff. Target: the
  first labelled view ≤ 5 s.
"""

from __future__ import annotations

import pickle
import statistics
import time

import numpy as np
import pandas as pd

from bench.common import load, table, timed
from core.cohorts.compare import Cohort, cohort_table, compare_named
from core.cohorts.diff import explain_other_table, tables_diff
from core.cohorts.errortree import error_analysis
from core.config import Settings
from core.data.alignment import align
from core.engine.explain import make_explainer
from core.explanation import Explanation
from core.isolation.workers import WorkerPool
from core.loading.models import load_model
from core.present import cohort_figures as cf


def _explanation(n: int, width: int, seed: int = 0) -> tuple[Explanation, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({f"x{j}": rng.normal(size=n).round(3) for j in range(width)})
    frame["city"] = rng.choice(["Lyon", "Nice", "Paris", "Lille"], n)
    values = rng.normal(size=(n, width + 1)) * np.linspace(1, 0.1, width + 1)
    base = np.full(n, 0.3)
    expl = Explanation(
        values=values,
        base_values=base,
        prediction=base + values.sum(axis=1),
        data=frame,
        feature_names=tuple(frame.columns),
        output="raw",
        class_label=None,
        method="synthetic",
        row_ids=np.arange(n),
        sample=(n, n),
    )
    return expl, frame


def _cohorts(repeats: int) -> list[str]:
    expl, frame = _explanation(100_000, 29)
    target = pd.Series(expl.prediction + np.random.default_rng(1).normal(0, 0.5, len(frame)))
    grid = cohort_table(frame, expl.prediction, "raw", target)
    cohorts = [Cohort("high x0", "x0>0.5"), Cohort("Lyon", "city=Lyon")]
    boot = []
    for _ in range(repeats):
        started = time.perf_counter()
        found = compare_named(expl, grid, cohorts, target=target, scores=expl.prediction, n_boot=200)
        boot.append(time.perf_counter() - started)

    def redraw() -> None:
        cf.cohort_importance_figure(found, top_n=10)
        cf.interval_figure(found.difference("high x0", "Lyon"), title="t", axis="a")
        cf.cohort_prediction_figure(found, "raw")
        cf.cohort_beeswarm_figure(expl, {k: s.mask for k, s in found.cohorts.items()}, top_n=8)

    draw = statistics.median(timed(redraw) for _ in range(repeats))
    return ["2 cohorts, 100k rows x 30 features", f"{draw:.2f} s", f"{statistics.median(boot):.2f} s", load()]


def _errors(n: int) -> list[str]:
    expl, frame = _explanation(n, 9)
    rng = np.random.default_rng(2)
    truth = (frame["x0"] + (frame["city"] == "Lyon") * frame["x1"] > 0).astype(int)
    flipped = (frame["x2"] > 1.2) & (frame["city"] == "Nice")
    target = pd.Series(np.where(flipped | (rng.random(n) < 0.05), 1 - truth, truth))
    started = time.perf_counter()
    found = error_analysis(frame, target, truth.to_numpy(), "binary", expl, n_boot=200)
    took = time.perf_counter() - started
    top = found.nodes[0]
    return [f"error tree + gap, {n:,} rows x 10 columns", f"{took:.2f} s", top.label, load()]


def _wide_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    numbers = {f"n{i}": rng.normal(size=n).round(3) for i in range(60)}
    categories = {f"c{i}": rng.choice(list("abcde"), n) for i in range(10)}
    return pd.DataFrame({**numbers, **categories})


def _diff() -> list[str]:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    train = _wide_frame(5_000, 0)
    y = (train["n0"] + train["n1"] - train["n2"] + (train["c0"] == "a") * 1.5) > 0.5
    numbers, categories = [c for c in train if c.startswith("n")], [c for c in train if c.startswith("c")]
    prep = ColumnTransformer(
        [("num", StandardScaler(), numbers), ("cat", OneHotEncoder(handle_unknown="ignore"), categories)]
    )
    forest = RandomForestClassifier(n_estimators=100, max_depth=10, random_state=0, n_jobs=1)
    model = make_pipeline(prep, forest).fit(train, y.astype(int))
    first, second = _wide_frame(100_000, 1), _wide_frame(100_000, 2)
    second["n1"] += 0.8  # next month: one column moved
    settings = Settings.from_env()
    pool = WorkerPool(settings)
    try:
        loaded = load_model(pickle.dumps(model), "model.pkl", pool=pool)
        explainer = make_explainer(loaded, align(loaded, first), output="probability")
        explainer.estimate_seconds_per_row()  # the dashboard has done this for the first table's own view
        started = time.perf_counter()
        sample = explainer.explain_sample(settings.explain_budget_seconds).for_class(1)
        first_view = time.perf_counter() - started
        other = explain_other_table(explainer, align(loaded, second).frame, rows=len(sample))
        diff = tables_diff(sample, first, other.for_class(1), second)
        took = time.perf_counter() - started
        top = diff.features.iloc[0]["feature"]
        return [
            f"2 tables x 100k rows, 70-col pipeline ({len(sample):,} rows each)",
            f"{took:.2f} s (first table alone {first_view:.2f} s)",
            f"top shift: {top}",
            load(),
        ]
    finally:
        pool.close()


def run(*, quick: bool = False) -> None:
    """Print the cohort, error-analysis and diff timings."""
    print("## Cohorts, error analysis and explanation diff (issue 18)\n")
    cohorts = _cohorts(2 if quick else 5)
    print(table(["cohorts", "redraw (median)", "bootstrap 200 (median)", "load"], [cohorts]))
    print()
    errors = _errors(200_000 if quick else 1_000_000)
    print(table(["error analysis", "time", "top group", "load"], [errors]))
    print()
    print(table(["explanation diff", "first labelled view", "result", "load"], [_diff()]))
