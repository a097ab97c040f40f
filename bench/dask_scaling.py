"""Issue 9: batch explanations of a ~1M-row table: one worker process against a 2-worker LocalCluster.

A generated table of 1,000,000 rows x 20 numeric columns written as a Parquet dataset (10 files), LightGBM
and XGBoost with 300 trees trained on 20,000 rows. The same ``BatchJob`` runs with 1 worker and with 2
workers (one thread each) on the same data and model; scaling = rate(2) / (2 x rate(1)), target >= 0.85.
Also rows/s per core per family and the core-hours 100 M rows would take.
"""

from __future__ import annotations

import logging
import pickle
import re
import tempfile
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier

from bench.common import load, table


def _data(folder: Path, rows: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    columns = [f"f{i}" for i in range(20)]
    weights = rng.normal(size=20)
    files = 10
    for i in range(files):
        block = pd.DataFrame(rng.normal(size=(rows // files, 20)), columns=columns)
        block.to_parquet(folder / f"part-{i:02d}.parquet", index=False)
    train = pd.DataFrame(rng.normal(size=(20_000, 20)), columns=columns)
    y = (train.to_numpy() @ weights + rng.normal(size=20_000) > 0).astype(int)
    return train, y


def _rate(model_path: Path, data: Path, out: Path, workers: int) -> tuple[float, str]:
    from distributed import Client, LocalCluster

    from core.batch.job import THREAD_ENV, BatchJob

    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            env=THREAD_ENV,
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        client.run(lambda: __import__("core.methods.trees.treeshap").methods.trees.treeshap.warm_up())
        job = BatchJob(str(model_path), str(data), str(out), client=client, rows_per_task=25_000, start=False)
        started = time.perf_counter()
        job.start()
        summary = job.result()
        seconds = time.perf_counter() - started
    return summary["rows_done"] / seconds, re.sub(r" on \d+ engineered columns.*", "", summary["method"])


def run(*, quick: bool = False) -> None:
    """Print the scaling table and the per-core table."""
    print("## Batch on Dask: 1 worker vs a 2-worker LocalCluster (issue 9)\n")
    rows = 200_000 if quick else 1_000_000
    families = {
        "LightGBM (300 trees)": lgb.LGBMClassifier(n_estimators=300, verbose=-1, n_jobs=1),
        "XGBoost (300 trees, depth 6)": xgb.XGBClassifier(n_estimators=300, max_depth=6, n_jobs=1),
    }
    per_core_families = {
        "HistGradientBoosting (100 iterations)": HistGradientBoostingClassifier(max_iter=100, early_stopping=False),
        "RandomForest (100 trees, depth 10)": RandomForestClassifier(100, max_depth=10, n_jobs=2, random_state=0),
    }
    scaling, per_core = [], []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        (base / "table").mkdir()
        train, y = _data(base / "table", rows)
        for name, model in {**families, **({} if quick else per_core_families)}.items():
            model.fit(train, y)
            path = base / f"{name[:8]}.pkl"
            path.write_bytes(pickle.dumps(model))
            one, method = _rate(path, base / "table", base / f"out1-{name[:8]}", 1)
            if name in families:
                two, _ = _rate(path, base / "table", base / f"out2-{name[:8]}", 2)
                scaling.append([name, f"{rows:,}", f"{one:,.0f}", f"{two:,.0f}", f"**{two / (2 * one):.2f}**", load()])
            per_core.append([name, method, f"{one:,.0f}", f"{1e8 / one / 3600:.1f}"])
    print(table(["model", "rows", "1 worker rows/s", "2 workers rows/s", "scaling (1.0 = perfect)", "load"], scaling))
    print()
    print(table(["model", "method", "rows/s per core", "core-hours for 100 M rows"], per_core))
