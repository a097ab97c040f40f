"""Issue 10: ModelLens's exact TreeSHAP kernel against shap.TreeExplainer, side by side, 1 and 2 threads.

Generated table of 15,000 rows x 20 numeric columns (12,000 to train, the rest held out), 100 trees.
Targets: >= 5x shap on 2 cores and >= 2.5x on one for both forests; not slower than shap on shallow boosting;
values equal to 1e-9 of the output scale.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import shap
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)

from bench.common import interleaved, load, table
from core.methods.trees import treeshap

COLD = (
    "import time, json; t0 = time.perf_counter(); from core.methods.trees import treeshap as f; t1 = time.perf_counter(); "
    "r = f.warm_up(); print(json.dumps({'import_s': t1 - t0, **r}))"
)


def _models(quick: bool) -> dict:
    n, train, trees = (6_000, 4_800, 40) if quick else (15_000, 12_000, 100)
    Xr, yr = make_regression(n, 20, n_informative=12, noise=20.0, random_state=0)
    Xc, yc = make_classification(n, 20, n_informative=10, flip_y=0.2, random_state=0)
    specs = {
        "RandomForestRegressor(max_depth=12)": (RandomForestRegressor(trees, max_depth=12, random_state=0), Xr, yr),
        "RandomForestClassifier() (unlimited depth)": (RandomForestClassifier(trees, random_state=0), Xc, yc),
        "GradientBoostingClassifier(max_depth=3)": (
            GradientBoostingClassifier(n_estimators=trees, random_state=0),
            Xc,
            yc,
        ),
        "HistGradientBoostingClassifier()": (
            HistGradientBoostingClassifier(max_iter=trees, early_stopping=False, random_state=0),
            Xc,
            yc,
        ),
    }
    return {name: (model.fit(X[:train], y[:train]), X[train:]) for name, (model, X, y) in specs.items()}


def _compile_times() -> tuple[float, float]:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache, "PYTHONPATH": root}
        runs = [
            json.loads(
                subprocess.run(
                    [sys.executable, "-c", COLD], env=env, capture_output=True, text=True, check=True, cwd=root
                )
                .stdout.strip()
                .splitlines()[-1]
            )
            for _ in range(2)
        ]
    return tuple(r["prepare_s"] + r["shap_values_s"] for r in runs)  # type: ignore[return-value]


def run(*, quick: bool = False) -> None:
    """Print the comparison table."""
    print("## Exact TreeSHAP kernel vs shap.TreeExplainer (issue 10)\n")
    cold, cached = _compile_times()
    print(f"Kernel compile: {cold:.1f} s the first time on a machine (then cached on disk), {cached:.2f} s to load.\n")
    treeshap.warm_up()
    rows_out = []
    for name, (model, X) in _models(quick).items():
        n = (60 if quick else 240) if name.startswith("Random") else (600 if quick else 3000)
        X = X[:n]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            explainer = shap.TreeExplainer(model)
        plan = treeshap.prepare(explainer.model)
        reference = np.asarray(explainer.shap_values(X, check_additivity=False))
        reference = reference[:, :, None] if reference.ndim == 2 else reference
        ours = treeshap.shap_values(plan, X, n_threads=2)
        scale = max(1.0, float(np.abs(explainer.model.predict(X)).max()))
        t = interleaved(
            {
                "shap": lambda: explainer.shap_values(X, check_additivity=False),
                "1t": lambda: treeshap.shap_values(plan, X, n_threads=1),
                "2t": lambda: treeshap.shap_values(plan, X, n_threads=2),
            },
            repeats=2 if quick else 3,
        )
        rows_out.append(
            [
                name,
                n,
                f"{n / t['shap']:,.1f}",
                f"{n / t['1t']:,.0f}",
                f"{n / t['2t']:,.0f}",
                f"**{t['shap'] / t['1t']:.1f}x**",
                f"**{t['shap'] / t['2t']:.1f}x**",
                f"{np.abs(ours - reference).max() / scale:.0e}",
                f"{plan.nbytes / 1e6:.1f} MB",
                load(),
            ]
        )
    print(
        table(
            [
                "model (100 trees)",
                "rows",
                "shap rows/s",
                "ours 1 thread",
                "ours 2 threads",
                "x shap, 1 thread",
                "x shap, 2 threads",
                "max diff / scale",
                "plan",
                "load",
            ],
            rows_out,
        )
    )
