"""Issue 19: the first view, stage by stage, beside the time pandas takes to read the same file.

Through the dashboard's own calls, in its order (``ui/loaders.py``): the table read, the model loaded in its
sandboxed worker, alignment, the explainer's choice and the model's output on every row (what the Overview draws),
then the first explained sample (what Global importance and the Beeswarm draw). The model is loaded twice, side by
side in one run: into a worker started for it (a cold start) and into the pool's spare worker started ahead (for
the Azure AutoML cases, real pipelines built in the installed runtime, the AutoML spare with its runtime). The
goal: the Overview's chart within 3 s of the file being read by pandas. Browser transfer and rendering are not in
these figures (``python -m bench browser`` and ``load`` measure the page).
"""

from __future__ import annotations

import atexit
import dataclasses
import io
import os
import pickle
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.common import load, table
from core.config import Settings
from core.data.alignment import align
from core.data.demo import demo_files
from core.data.tables import load_table
from core.engine.explain import make_explainer
from core.engine.jobs import ExplainJob
from core.isolation.workers import WorkerPool
from core.loading.models import load_model, spare_runtime
from core.runtimes import registry as runtimes

AUTOML_BUILDER = Path(__file__).resolve().parents[1] / "tests" / "automl" / "build_models.py"

Case = tuple[str, Callable[[], tuple[bytes, bytes]]]


def _demo() -> tuple[bytes, bytes]:
    model_path, data_path = demo_files("breast-cancer", Settings.from_env().home)
    return model_path.read_bytes(), data_path.read_bytes()


def _frame_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def _housing(n: int = 2_930, seed: int = 0) -> tuple[bytes, bytes]:
    """An Ames-shaped regression pipeline: 73 columns (43 numbers, 30 categories), one-hot + gradient boosting."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {}
    for i in range(73):
        name = f"c{i}" if i % 5 == 2 or i >= 60 else f"n{i}"  # categories spread through the table
        columns[name] = rng.choice(list("ABCDEFG"), n) if name.startswith("c") else rng.normal(size=n).round(2)
    frame = pd.DataFrame(columns)
    price = 180_000 + 30_000 * frame["n0"] + 20_000 * (frame["c2"] == "A") + rng.normal(0, 8_000, n)
    cats = [c for c in frame if c.startswith("c")]
    prep = ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), cats)], remainder="passthrough")
    model = make_pipeline(prep, GradientBoostingRegressor(n_estimators=150, random_state=0)).fit(frame, price)
    return pickle.dumps(model), _frame_bytes(frame.assign(Sale_Price=price.round(0)))


def _flights(n: int = 327_346, seed: int = 0) -> tuple[bytes, bytes]:
    """A flights-shaped LightGBM classifier on 327k rows, a pandas category in the middle of 12 columns."""
    import lightgbm as lgb

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "month": rng.integers(1, 13, n),
            "day": rng.integers(1, 32, n),
            "dep_hour": rng.integers(5, 23, n),
            "carrier": pd.Categorical(rng.choice(["UA", "AA", "B6", "DL", "EV", "MQ", "US", "WN"], n)),
            "distance": rng.integers(80, 4_000, n),
            "air_time": rng.normal(150, 60, n).round(0),
            "dep_delay": rng.exponential(12, n).round(0),
            "temp": rng.normal(55, 17, n).round(1),
            "wind": rng.exponential(10, n).round(1),
            "visib": rng.uniform(0, 10, n).round(1),
            "seats": rng.integers(50, 400, n),
            "year_built": rng.integers(1980, 2014, n),
        }
    )
    late = (frame["dep_delay"] + rng.normal(0, 10, n) + (frame["carrier"] == "EV") * 8 > 20).astype(int)
    model = lgb.LGBMClassifier(n_estimators=200, num_leaves=31, verbose=-1, random_state=0).fit(frame, late)
    return pickle.dumps(model), _frame_bytes(frame.assign(late=late))


def _svc(n: int = 1_500, seed: int = 0) -> tuple[bytes, bytes]:
    """An RBF SVC with probabilities behind a scaler: only the model-agnostic explainer reads it."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, 10)).round(3), columns=[f"x{i}" for i in range(10)])
    y = ((frame["x0"] * frame["x1"] + frame["x2"]) > 0).astype(int)
    model = make_pipeline(StandardScaler(), SVC(probability=True, random_state=0)).fit(frame, y)
    return pickle.dumps(model), _frame_bytes(frame.assign(y=y))


_AUTOML_BUILT: list[Path] = []


class NoRuntime(Exception):
    """No Azure AutoML runtime is installed (``make automl-runtime``)."""


def _automl(name: str) -> Callable[[], tuple[bytes, bytes]]:
    """A real AutoML pipeline built in the installed runtime by the tests' builder (once), and its CSV."""

    def build() -> tuple[bytes, bytes]:
        if not _AUTOML_BUILT:
            record = runtimes.get_runtime(runtimes.runtimes_root(Settings.from_env()))
            if record is None:
                raise NoRuntime
            out = Path(tempfile.mkdtemp(prefix="modellens-bench-automl-"))
            atexit.register(shutil.rmtree, out, ignore_errors=True)
            env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
            subprocess.run(  # noqa: S603 - the project's own builder in the project's own runtime
                [str(record.python_executable), str(AUTOML_BUILDER), str(out)], check=True, env=env, timeout=600
            )
            _AUTOML_BUILT.append(out)
        folder = _AUTOML_BUILT[0] / name
        return (folder / "model.pkl").read_bytes(), (folder / "data.csv").read_bytes()

    return build


CASES: list[Case] = [
    ("demo: breast cancer, random forest", _demo),
    ("housing pipeline, 2,930 x 73, GBR", _housing),
    ("flights LightGBM, 327k x 12", _flights),
    ("SVC pipeline, 1,500 x 10 (agnostic)", _svc),
    ("Azure AutoML binary (ints)", _automl("binary_int")),
    ("Azure AutoML multiclass (strings)", _automl("multiclass_str")),
]


def _stages(model_bytes: bytes, data_bytes: bytes, pool: WorkerPool, settings: Settings) -> dict[str, float]:
    """Seconds of each stage of the dashboard's first view, in its order."""
    out: dict[str, float] = {}

    def step(name: str, fn: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        value = fn()
        out[name] = time.perf_counter() - started
        return value

    step("pandas read", lambda: pd.read_csv(io.BytesIO(data_bytes)))
    frame = step("table", lambda: load_table(data_bytes, "data.csv", max_rows=settings.max_rows))
    model = step("model", lambda: load_model(model_bytes, "model.pkl", pool=pool, settings=settings))
    aligned = step("align", lambda: align(model, frame))
    explainer = step("explainer", lambda: make_explainer(model, aligned.frame, output="auto"))
    step("predict all", lambda: model.predict(aligned.frame, explainer.output))
    job = ExplainJob(explainer, budget_seconds=settings.explain_budget_seconds)
    step("sample", job.run_sample)
    return out


def run(*, quick: bool = False) -> None:
    """Print each case's stages with a cold worker and with the spare."""
    print("## First view, stage by stage (issue 19)\n")
    repeats = 1 if quick else 3
    cases = CASES[:2] if quick else CASES
    base = Settings.from_env()
    rows = []
    for name, build in cases:
        try:
            model_bytes, data_bytes = build()
        except NoRuntime:
            print(f"{name}: skipped, no Azure AutoML runtime installed (make automl-runtime)\n")
            continue
        automl = name.startswith("Azure AutoML")
        runs: dict[str, list[dict[str, float]]] = {"cold worker": [], "spare worker": []}
        for _ in range(repeats):
            for kind in runs:  # side by side in one run
                spare = int(kind == "spare worker")
                settings = dataclasses.replace(base, spare_workers=spare, spare_automl=spare * int(automl))
                pool = WorkerPool(settings, automl_python=spare_runtime(settings) if settings.spare_automl else None)
                try:
                    if settings.spare_workers:
                        pool.refill_spare()
                        pool._spare_ready.wait(120)  # a server's spare is started long before a user's upload
                    if pool.automl_python() is not None:  # the AutoML spare: its runtime started in it
                        pool._ready(pool.automl_python()).wait(180)
                    runs[kind].append(_stages(model_bytes, data_bytes, pool, settings))
                finally:
                    pool.close()
        for kind, measured in runs.items():
            med = {stage: statistics.median(m[stage] for m in measured) for stage in measured[0]}
            overview = sum(v for k, v in med.items() if k not in ("pandas read", "sample"))
            rows.append(
                [
                    name,
                    kind,
                    f"{len(data_bytes) / 1e6:.1f} MB",
                    *(f"{med[s]:.2f}" for s in med),
                    f"**{overview - med['pandas read']:.2f}**",
                    f"{overview + med['sample'] - med['pandas read']:.2f}",
                ]
            )
    headers = ["case", "worker", "CSV", "pandas read", "table", "model", "align", "explainer", "predict all", "sample"]
    print(table([*headers, "Overview - read", "first SHAP view - read"], rows))
    print(f"\nSeconds, median of {repeats}; load {load()}. 'Overview - read': table + model + align + explainer +")
    print("predict all, minus pandas' own read (the issue's 3 s goal); the first SHAP view adds the sample.\n")
    _permutation(repeats)


def _permutation(repeats: int) -> None:
    """Permutation importance (2,000 rows, 5 shuffles per column) on the 73-column pipeline, through its worker."""
    model_bytes, data_bytes = _housing()
    frame = pd.read_csv(io.BytesIO(data_bytes))
    target = frame.pop("Sale_Price")
    pool = WorkerPool(dataclasses.replace(Settings.from_env(), spare_workers=0))
    rows = []
    try:
        model = load_model(model_bytes, "model.pkl", pool=pool)
        aligned = align(model, frame)
        for _ in range(repeats):
            updates: list[tuple[float, int, float | None]] = []
            started = time.perf_counter()
            model.permutation_importance(
                aligned.frame,
                target,
                progress=lambda done, total, left: updates.append((time.perf_counter() - started, done, left)),
            )
            total = time.perf_counter() - started
            first = next((u for u in updates if u[2] is not None), None)
            gaps = np.diff([u[0] for u in updates])
            rows.append(
                [
                    f"{total:.1f}",
                    len(updates) - 1,
                    f"{gaps.max():.1f}",
                    "-" if first is None else f"{first[0] + (first[2] or 0):.1f} (after {first[0]:.1f} s)",
                ]
            )
    finally:
        pool.close()
    print("### Permutation importance, 2,000 rows x 73 columns, 5 shuffles each, in the model's worker\n")
    print(table(["seconds", "progress updates", "longest gap (s)", "first estimate of the end (s)"], rows))
    print(f"\nLoad {load()}.\n")
