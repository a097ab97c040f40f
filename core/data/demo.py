"""Built-in demos: real models trained at first use on datasets that ship inside scikit-learn.

Each demo is written once to ``<home>/demo/<version>/<name>/`` (model.pkl + data.csv, atomically) and
reused on every later start. The dashboard loads them exactly like uploads: through the safe loader, in a
worker process.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.fileio import write_atomic

__all__ = ["DEMOS", "Demo", "demo_files"]

log = logging.getLogger(__name__)
VERSION = "v1"


@dataclass(frozen=True)
class Demo:
    """A demo: a title for the picker, a one-line story, and how to build it."""

    name: str
    title: str
    story: str
    build: Callable[[], tuple[Any, pd.DataFrame]]


def _breast_cancer() -> tuple[Any, pd.DataFrame]:
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier

    data = load_breast_cancer(as_frame=True)
    X = data.data
    y = pd.Series(np.asarray(data.target_names)[data.target], name="diagnosis")
    model = RandomForestClassifier(n_estimators=200, min_samples_leaf=2, random_state=0, n_jobs=1).fit(X, y)
    return model, X.assign(diagnosis=y)


def _diabetes() -> tuple[Any, pd.DataFrame]:
    from sklearn.compose import ColumnTransformer
    from sklearn.datasets import load_diabetes
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    data = load_diabetes(as_frame=True, scaled=False)
    X = data.frame.drop(columns="target").copy()
    X["sex"] = np.where(X["sex"] > 1.5, "male", "female")
    numeric = [c for c in X.columns if c != "sex"]
    prep = ColumnTransformer([("num", StandardScaler(), numeric), ("cat", OneHotEncoder(), ["sex"])])
    model = make_pipeline(prep, HistGradientBoostingRegressor(max_iter=200, learning_rate=0.05, random_state=0))
    model.fit(X, data.target)
    return model, X.assign(progression=data.target.round(1))


def _wine() -> tuple[Any, pd.DataFrame]:
    from sklearn.datasets import load_wine
    from sklearn.ensemble import GradientBoostingClassifier

    data = load_wine(as_frame=True)
    X = data.data
    y = pd.Series(np.asarray(["Barolo", "Grignolino", "Barbera"])[data.target], name="cultivar")
    model = GradientBoostingClassifier(n_estimators=100, max_depth=3, random_state=0).fit(X, y)
    return model, X.assign(cultivar=y)


DEMOS: dict[str, Demo] = {
    d.name: d
    for d in (
        Demo(
            "breast-cancer",
            "Breast cancer · random forest (binary)",
            "Which cell measurements make a biopsy look malignant? 569 biopsies, 30 measurements.",
            _breast_cancer,
        ),
        Demo(
            "diabetes",
            "Diabetes progression · pipeline (regression)",
            "Disease progression a year on, from age, sex, BMI, blood pressure and six blood tests.",
            _diabetes,
        ),
        Demo(
            "wine",
            "Wine cultivar · gradient boosting (3 classes)",
            "Which chemistry tells three Italian grape cultivars apart? 178 wines, 13 measurements.",
            _wine,
        ),
    )
}


def demo_files(name: str, home: Path) -> tuple[Path, Path]:
    """Paths of a demo's model and data, training and writing them on first use.

    Raises:
        KeyError: Unknown demo name.
    """
    demo = DEMOS[name]
    folder = home / "demo" / VERSION / name
    model_path, data_path = folder / "model.pkl", folder / "data.csv"
    if not (model_path.exists() and data_path.exists()):
        folder.mkdir(parents=True, exist_ok=True)
        log.info("training demo %s (first start)", name)
        model, frame = demo.build()
        write_atomic(data_path, frame.to_csv(index=False).encode())
        write_atomic(model_path, pickle.dumps(model, protocol=5))
    return model_path, data_path
