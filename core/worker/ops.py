"""Operations a model worker performs (each ``op_<name>`` answers one request with plain data).

Only :mod:`core.worker.main` calls these, inside the worker process that holds the model.
"""

from __future__ import annotations

import importlib.metadata as md
import logging
import platform
import time
import warnings
from typing import Any, cast

import numpy as np
import pandas as pd

from core.errors import EngineMissing, ModelLoadError
from core.loading import model_io
from core.methods import introspect
from core.safety import safe_pickle

log = logging.getLogger(__name__)

_LIBS = ("scikit-learn", "numpy", "pandas", "shap", "xgboost-cpu", "lightgbm", "catboost", "numba")


def warm_up() -> None:
    """Import the heavy libraries before the first request, so loading a model is fast."""
    import shap  # noqa: F401
    import sklearn.ensemble  # noqa: F401

    import core.engine.engine  # noqa: F401
    from core.methods.trees import treeshap

    timings = treeshap.warm_up()  # loads the compiled kernel from numba's disk cache (compiles it once)
    log.info("TreeSHAP kernel ready: %s", {k: round(v, 2) for k, v in timings.items()})
    for optional in ("xgboost", "lightgbm"):
        try:
            __import__(optional)
        except ImportError:
            log.info("%s not installed", optional)


def runtime_info() -> dict[str, Any]:
    """The worker's Python and library versions."""
    versions = {}
    for lib in _LIBS:
        try:
            versions[lib.replace("-cpu", "")] = md.version(lib)
        except md.PackageNotFoundError:
            continue
    return {"python": platform.python_version(), "versions": versions}


def _state_model(state: Any) -> Any:
    if state.model is None:
        raise ModelLoadError("No model is loaded in this worker; load one first.")
    return state.model


def op_ping(state: Any) -> str:
    """Liveness check."""
    return "pong"


def op_load(
    state: Any,
    data: bytes,
    filename: str,
    trusted: bool = False,
    max_bytes: int = 1024**3,
    automl_python: str | None = None,
) -> dict[str, Any]:
    """Load the upload (safe loader unless trusted) and describe it.

    ``automl_python``: the Azure AutoML runtime's interpreter; the model is then loaded in a runtime worker
    started from here, and this worker holds its stand-in (:class:`core.methods.automl.AutoMLModel`).
    """
    from core.engine.engine import available_outputs

    if automl_python:
        return _load_automl(state, data, filename, trusted, max_bytes, automl_python)
    policy = safe_pickle.default_policy(max_bytes)
    obj, facts = model_io.read_model(data, filename, trusted=trusted, policy=policy)
    if not callable(getattr(obj, "predict", None)):
        raise ModelLoadError(
            f"The file holds a {type(obj).__name__}, not a model: ModelLens needs an object with a predict method."
        )
    card = introspect.describe(obj)
    card.update(
        format=facts.format,
        container=facts.container,
        protocol=facts.protocol,
        notices=facts.notices + _skew_notices(facts.sklearn_versions),
        outputs=available_outputs(obj),
        sha256=model_io.sha256_of(data),
        filename=filename,
        trusted=trusted,
        runtime=runtime_info(),
    )
    state.model, state.card, state.engines = obj, card, {}
    return card


def op_warm_automl(state: Any, python: str) -> int:
    """Start the Azure AutoML runtime ahead in this (spare) worker; the runtime process's pid."""
    from core.methods import automl

    return automl.warm(python)


def _load_automl(state: Any, data: bytes, filename: str, trusted: bool, max_bytes: int, python: str) -> dict[str, Any]:
    from core.methods import automl

    info = model_io.inspect_upload(data, filename, max_bytes=max_bytes)
    model = automl.open_model(data, filename, python=python, trusted=trusted, max_bytes=max_bytes)
    card = dict(model.card)
    card.update(
        format=info.format,
        container=info.container,
        protocol=None,
        notices=[],
        outputs=["raw"] if card["task"] == "regression" else ["probability"],
        sha256=model_io.sha256_of(data),
        filename=filename,
        trusted=trusted,
        runtime={**model.worker.info, "engine": runtime_info(), "runtime_sandbox": model.worker.sandbox},
    )
    if state.model is not None and hasattr(state.model, "close"):
        state.model.close()
    state.model, state.card, state.engines = model, card, {}
    return card


def _skew_notices(versions: list[str]) -> list[str]:
    here = md.version("scikit-learn")
    return [
        f"Pickled with scikit-learn {v}; this server runs {here}. Predictions are checked, but re-export if you can."
        for v in versions
        if v.split(".")[:2] != here.split(".")[:2]
    ]


def op_predict(state: Any, frame: pd.DataFrame, output: str) -> np.ndarray:
    """The model's output (n, K) in the given units for aligned raw rows."""
    from core.engine.engine import InputAdapter, output_function

    model = _state_model(state)
    return output_function(model, output, state.card["task"])(InputAdapter(model)(frame))


def op_engine(
    state: Any, key: str, background: pd.DataFrame, output: str = "auto", n_threads: int | None = None, seed: int = 0
) -> dict[str, Any]:
    """Build (or reuse) an explainer and describe it."""
    from core.engine.engine import Engine

    if key not in state.engines:
        state.engines[key] = Engine(_state_model(state), background, output=output, n_threads=n_threads, seed=seed)
    engine = state.engines[key]
    return {
        "method": engine.method_name,
        "output": engine.output,
        "outputs": engine.outputs,
        "binary_single": engine.binary_single,
        "engineered_names": engine.engineered_names,
        "notes": engine.notes,
        "task": engine.task,
        "classes": engine.classes,
    }


def _engine(state: Any, key: str) -> Any:
    engine = state.engines.get(key)
    if engine is None:
        raise EngineMissing("no explainer under this key; build it first")
    return engine


def op_explain(state: Any, key: str, frame: pd.DataFrame, row_ids: np.ndarray) -> dict[str, Any]:
    """Contributions for aligned raw rows, all classes."""
    engine = _engine(state, key)
    result = engine.explain(frame, row_ids)
    engineered_data = result.engineered_data
    if result.engineered is not None and engineered_data is None:
        X = engine._engineer(frame)
        engineered_data = np.asarray(X.toarray() if hasattr(X, "toarray") else X, dtype=np.float64)
    return {
        "values": result.values,
        "base": result.base,
        "prediction": result.prediction,
        "engineered": result.engineered,
        "engineered_data": engineered_data,
    }


def op_estimate(state: Any, key: str, frame: pd.DataFrame, row_ids: np.ndarray) -> dict[str, Any]:
    """Seconds per row of explaining, timed on the probe rows after the first (a warm-up), with their explanations.

    The probe rows are the first rows of the first sample: the caller keeps their explanations instead of paying
    for them twice (seconds per row for a model explained model-agnostically).
    """
    ids = np.asarray(row_ids, dtype=np.int64)
    started = time.perf_counter()
    parts = [op_explain(state, key, frame.head(1), ids[:1])]
    seconds_per_row = time.perf_counter() - started
    if len(ids) > 1:
        started = time.perf_counter()
        parts.append(op_explain(state, key, frame.iloc[1:].reset_index(drop=True), ids[1:]))
        seconds_per_row = (time.perf_counter() - started) / (len(ids) - 1)
    return {"seconds_per_row": seconds_per_row, "parts": parts}


def op_importances(state: Any, key: str, background: pd.DataFrame) -> dict[str, Any]:
    """The model's own importances (impurity / gain, or |coef| x feature spread), folded onto raw columns."""
    engine = _engine(state, key)
    plan = engine.plan
    est = introspect.final_estimator(state.model) if plan is None else plan.final
    out: dict[str, Any] = {}
    raw = getattr(est, "feature_importances_", None)
    if raw is not None:
        out["model"] = {"label": "Model's own importance (impurity / gain)", "values": np.asarray(raw, float)}
    elif getattr(est, "coef_", None) is not None and (plan is not None or est is state.model):
        # coefficients live on engineered columns: without the engine's fold plan (a pipeline explained by the
        # model-agnostic method) they cannot be put on raw columns, so there is no "model's own" view then
        spread = np.asarray(_engineered_std(engine, background), dtype=float)
        coef = np.abs(np.atleast_2d(np.asarray(est.coef_, dtype=float))).mean(axis=0)
        if coef.shape == spread.shape:
            out["model"] = {"label": "Coefficient x feature spread (|coef| * std)", "values": coef * spread}
    if "model" in out:
        values = out["model"]["values"]
        if plan is not None and not plan.is_identity and len(values) == len(plan.source):
            out["model"]["values"] = plan.fold(values[None, :])[0]
        elif len(values) != len(engine.raw_names):
            del out["model"]
    return out


def _engineered_std(engine: Any, background: pd.DataFrame) -> np.ndarray:
    X = engine._engineer(background)
    X = X.toarray() if hasattr(X, "toarray") else np.asarray(X, dtype=float)
    return cast(np.ndarray, np.nanstd(X, axis=0))


def op_permutation_importance(
    state: Any,
    frame: pd.DataFrame,
    target: np.ndarray,
    n_repeats: int = 5,
    seed: int = 0,
    columns: list[int] | None = None,
) -> dict[str, Any]:
    """Drop in the model's score when each raw column is shuffled (needs the target).

    scikit-learn's measure (``sklearn.inspection.permutation_importance``) for the given column positions (default:
    all), each shuffle seeded by ``(seed, column, repeat)``: a column's figure does not depend on which other
    columns share its request, so the caller can ask in groups and report progress between them.
    """
    from sklearn.metrics import accuracy_score, r2_score

    from core.engine.engine import InputAdapter

    model = _state_model(state)
    X = InputAdapter(model)(frame)
    scoring = "r2" if state.card["task"] == "regression" else "accuracy"
    score = r2_score if scoring == "r2" else accuracy_score
    y = np.asarray(target)
    width = X.shape[1]
    picked = list(range(width)) if columns is None else [int(c) for c in columns]
    means, stds = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base = score(y, model.predict(X))
        for column in picked:
            if not 0 <= column < width:
                raise ValueError(f"column position {column} out of range")
            drops = []
            for repeat in range(n_repeats):
                order = np.random.default_rng([seed, column, repeat]).permutation(len(y))
                drops.append(base - score(y, model.predict(_shuffled(X, column, order))))
            means.append(float(np.mean(drops)))
            stds.append(float(np.std(drops)))
    return {"mean": np.asarray(means), "std": np.asarray(stds), "scoring": scoring, "columns": picked}


def _shuffled(X: Any, column: int, order: np.ndarray) -> Any:
    """A copy of X with one column's values reordered (its dtype, categories included, kept)."""
    out = X.copy()
    if isinstance(X, pd.DataFrame):
        name = X.columns[column]
        out[name] = X[name].iloc[order].set_axis(X.index)
    else:
        out[:, column] = X[order, column]
    return out
