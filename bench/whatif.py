"""Issue 17: one what-if edit to a new exact explanation, and counterfactual search, on the demo and a wide pipeline.

Through the real path (the model in its sandboxed worker, as in the dashboard): an edit is ``what_if`` on a
fresh value each time (no cache), a sweep is ``sensitivity`` over 25 values, a search is ``counterfactuals`` with
k = 1 and k = 5 from rows predicted as the other class. Targets: an edit ≤ 50 ms median; the first candidate
≤ 3 s and five ≤ 15 s on a 70-column pipeline.
"""

from __future__ import annotations

import pickle
import statistics
import time

import numpy as np
import pandas as pd

from bench.common import load, table
from core.config import Settings
from core.data.alignment import align
from core.data.demo import demo_files
from core.engine.explain import make_explainer
from core.isolation.workers import WorkerPool
from core.loading.models import load_model
from core.whatif.counterfactual import counterfactuals, parse_goal
from core.whatif.scenario import what_if
from core.whatif.sensitivity import sensitivity


def _wide(n: int = 2_000, seed: int = 0) -> tuple[object, pd.DataFrame]:
    """A 70-column pipeline (60 numbers, 10 categories one-hot encoded) around a 100-tree random forest."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(seed)
    numbers = {f"n{i}": rng.normal(size=n).round(3) for i in range(60)}
    categories = {f"c{i}": rng.choice(list("abcde"), n) for i in range(10)}
    frame = pd.DataFrame({**numbers, **categories})
    y = (frame["n0"] + frame["n1"] - frame["n2"] + (frame["c0"] == "a") * 1.5 + rng.normal(0, 0.5, n)) > 0.5
    prep = ColumnTransformer(
        [("num", StandardScaler(), list(numbers)), ("cat", OneHotEncoder(handle_unknown="ignore"), list(categories))]
    )
    forest = RandomForestClassifier(n_estimators=100, max_depth=10, random_state=0, n_jobs=1)
    return make_pipeline(prep, forest).fit(frame, y.astype(int)), frame


def _demo() -> tuple[object, pd.DataFrame]:
    model_path, data_path = demo_files("breast-cancer", Settings.from_env().home)
    return pickle.loads(model_path.read_bytes()), pd.read_csv(data_path).drop(columns=["diagnosis"])  # noqa: S301


def run(*, quick: bool = False) -> None:
    """Print edit, sweep and search timings."""
    print("## What-if and counterfactuals (issue 17)\n")
    edits, searches = (10, 4) if quick else (30, 10)
    pool = WorkerPool(Settings.from_env())
    rows_out = []
    try:
        for name, build in (("demo: breast cancer, random forest", _demo), ("pipeline, 70 columns, RF 100", _wide)):
            model, frame = build()
            loaded = load_model(pickle.dumps(model), "model.pkl", pool=pool)
            explainer = make_explainer(loaded, align(loaded, frame), output="probability")
            column = str(frame.select_dtypes("number").columns[0])
            values = np.quantile(frame[column], np.linspace(0.05, 0.95, edits))
            what_if(explainer, loaded, 0, {column: float(values[0])})  # the worker's engine is built once
            edit = []
            for i, value in enumerate(values):
                started = time.perf_counter()
                what_if(explainer, loaded, i % len(frame), {column: float(value)})
                edit.append(time.perf_counter() - started)
            started = time.perf_counter()
            sensitivity(explainer, loaded, 0, column)
            sweep = time.perf_counter() - started
            predicted = model.predict(frame)  # type: ignore[attr-defined]
            other = loaded.classes[0] if loaded.classes else None
            goal = parse_goal(str(loaded.classes[-1] if loaded.classes else ">0"), loaded.classes, loaded.task)
            rows = np.flatnonzero(predicted == other)[:searches]
            first, five = [], []
            for row in rows:
                started = time.perf_counter()
                counterfactuals(loaded, explainer, int(row), goal, k=1)
                first.append(time.perf_counter() - started)
                started = time.perf_counter()
                counterfactuals(loaded, explainer, int(row), goal, k=5)
                five.append(time.perf_counter() - started)
            rows_out.append(
                [
                    name,
                    f"{statistics.median(edit) * 1e3:.0f} ms",
                    f"{sweep * 1e3:.0f} ms",
                    f"{statistics.median(first):.2f} s",
                    f"{statistics.median(five):.2f} s (max {max(five):.2f})",
                    load(),
                ]
            )
    finally:
        pool.close()
    headers = ["model", "edit → explanation (median)", "sensitivity, 25 values", "1st candidate", "5 candidates"]
    print(table([*headers, "load"], rows_out))
