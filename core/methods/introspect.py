"""What a loaded model is, as plain data: library, class, task, classes, input columns, steps.

Runs in the worker next to the model object; the result (a "model card" dict) is all the dashboard sees.
"""

from __future__ import annotations

import json
from typing import Any, cast

import numpy as np

__all__ = ["describe", "feature_names_of", "final_estimator", "input_kinds", "task_of", "to_plain"]

_LIBRARIES = {"sklearn": "scikit-learn", "xgboost": "XGBoost", "lightgbm": "LightGBM", "catboost": "CatBoost"}
CATEGORICAL_ENCODERS = {"OneHotEncoder", "OrdinalEncoder", "TargetEncoder"}


def to_plain(value: Any) -> Any:
    """Convert numpy scalars to Python scalars (labels travel as JSON)."""
    return value.item() if isinstance(value, np.generic) else value


def final_estimator(model: Any) -> Any:
    """The last step of a Pipeline (recursively), else the model itself."""
    while type(model).__name__ == "Pipeline" and hasattr(model, "steps"):
        model = model.steps[-1][1]
    return model


def _booster_objective(est: Any) -> str:
    module = type(est).__module__
    if module.startswith("xgboost") and type(est).__name__ == "Booster":
        config = json.loads(est.save_config())
        return str(config["learner"]["objective"]["name"])
    if module.startswith("lightgbm") and type(est).__name__ == "Booster":
        return str(est.dump_model(num_iteration=1).get("objective", "regression")).split(" ")[0]
    if module.startswith("catboost"):
        return str(est.get_all_params().get("loss_function", "RMSE"))
    return ""


def _booster_classes(est: Any, objective: str) -> list[Any] | None:
    if objective.startswith(("binary", "Logloss", "CrossEntropy")) or objective in ("cross_entropy", "xentropy"):
        return [0, 1]
    if objective.startswith(("multi", "MultiClass", "softmax", "multiclass")):
        if type(est).__module__.startswith("xgboost"):
            n = int(json.loads(est.save_config())["learner"]["learner_model_param"]["num_class"])
        elif type(est).__module__.startswith("lightgbm"):
            n = int(est.dump_model(num_iteration=1)["num_class"])
        else:
            n = len(getattr(est, "classes_", []) or [])
        return list(range(n))
    return None


def task_of(model: Any) -> tuple[str, list[Any] | None]:
    """``(task, classes)``: task is binary, multiclass or regression; classes in the model's order."""
    est = final_estimator(model)
    classes = getattr(model, "classes_", None)
    if classes is None:
        classes = getattr(est, "classes_", None)
    if classes is None and type(est).__name__ in ("Booster", "CatBoost"):
        classes = _booster_classes(est, _booster_objective(est))
    if classes is not None and len(classes) >= 2:
        labels = [to_plain(c) for c in np.asarray(classes).tolist()]
        return ("binary" if len(labels) == 2 else "multiclass"), labels
    return "regression", None


def feature_names_of(model: Any) -> list[str] | None:
    """Input columns the model was fitted on, or None for models fitted on bare arrays."""
    names = getattr(model, "feature_names_in_", None)
    if names is None and type(model).__name__ == "Pipeline":
        names = getattr(model.steps[0][1], "feature_names_in_", None)
    if names is None:
        names = _booster_feature_names(model)
    return [str(n) for n in names] if names is not None else None


def _booster_feature_names(model: Any) -> list[str] | None:
    module, name = type(model).__module__, type(model).__name__
    if module.startswith("xgboost"):
        booster = model.get_booster() if hasattr(model, "get_booster") else model
        return cast("list[str] | None", booster.feature_names)
    if module.startswith("lightgbm"):
        booster = model.booster_ if hasattr(model, "booster_") else model
        names = booster.feature_name()
        return None if all(n == f"Column_{i}" for i, n in enumerate(names)) else names
    if module.startswith("catboost") or name.startswith("CatBoost"):
        names = getattr(model, "feature_names_", None)
        return None if not names or all(n == str(i) for i, n in enumerate(names)) else list(names)
    return None


def n_features_of(model: Any) -> int | None:
    """Number of input columns the model expects."""
    n = getattr(model, "n_features_in_", None)
    if n is None and type(model).__name__ == "Pipeline":
        n = getattr(model.steps[0][1], "n_features_in_", None)
    if n is None:
        est = final_estimator(model)
        module = type(est).__module__
        if module.startswith("xgboost"):
            n = (est.get_booster() if hasattr(est, "get_booster") else est).num_features()
        elif module.startswith("lightgbm"):
            n = (est.booster_ if hasattr(est, "booster_") else est).num_feature()
        elif module.startswith("catboost"):
            n = len(est.feature_names_ or [])
    return int(n) if n is not None else None


def input_kinds(model: Any, names: list[str] | None) -> tuple[dict[str, str], dict[str, list[Any]]]:
    """Which input columns the model treats as categorical, with their levels, read from the library's record.

    Encoders of a Pipeline's ColumnTransformer (``OneHotEncoder``, ``OrdinalEncoder``, ``TargetEncoder``)
    give their ``categories_`` to the columns routed to them; boosters give their own record: LightGBM its
    ``pandas_categorical`` lists placed on its categorical feature indices, XGBoost its feature types and
    stored categories, CatBoost its ``cat_features``, HistGradientBoosting its ``is_categorical_`` and the
    categories of its internal ordinal encoder.

    Returns:
        (kinds, categories): kinds maps column -> ``numeric``, ``categorical`` (plain values: encoders,
        CatBoost, integer-coded categories) or ``category`` (the model expects a pandas category dtype with
        exactly these levels, in this order); categories maps a categorical column to its known levels.
    """
    kinds = dict.fromkeys(names or [], "numeric")
    categories: dict[str, list[Any]] = {}
    first = model.steps[0][1] if type(model).__name__ == "Pipeline" else model
    if type(first).__name__ == "ColumnTransformer" and names:
        for _, trans, cols in getattr(first, "transformers_", []):
            encoder = _first_encoder(trans) if not isinstance(trans, str) else None
            if encoder is None:
                continue
            cats = getattr(encoder, "categories_", None)
            for i, col in enumerate(_routed_columns(cols, names)):
                kinds[col] = "categorical"
                if cats is not None and i < len(cats):
                    categories[col] = [to_plain(c) for c in np.asarray(cats[i]).tolist() if c == c and c is not None]
    est = final_estimator(model)
    if est is model or type(first).__name__ != "ColumnTransformer":
        for col, (kind, cats) in _native_categoricals(est, names).items():
            kinds[col] = kind
            categories[col] = cats
    return kinds, categories


def _routed_columns(cols: Any, names: list[str]) -> list[str]:
    """The input columns a ColumnTransformer sends to one transformer (names, positions or a boolean mask)."""
    if isinstance(cols, slice):
        return names[cols]
    items = list(np.atleast_1d(cols)) if not isinstance(cols, list) else cols
    if items and all(isinstance(c, (bool, np.bool_)) for c in items):
        return [n for n, flag in zip(names, items, strict=False) if flag]
    out = []
    for c in items:
        if isinstance(c, (int, np.integer)) and not isinstance(c, bool):
            out.append(names[int(c)])
        elif str(c) in names:
            out.append(str(c))
    return out


def _first_encoder(trans: Any) -> Any:
    steps = [s for _, s in trans.steps] if type(trans).__name__ == "Pipeline" else [trans]
    for step in steps:
        if type(step).__name__ in CATEGORICAL_ENCODERS:
            return step
    return None


def _native_categoricals(est: Any, names: list[str] | None) -> dict[str, tuple[str, list[Any]]]:
    """Column -> (kind, levels) for a booster's native categorical inputs."""
    module = type(est).__module__
    if not names:
        return {}
    if module.startswith("lightgbm"):
        from core.methods.trees.lgb import categorical_inputs

        booster = est.booster_ if hasattr(est, "booster_") else est
        return {names[i]: v for i, v in categorical_inputs(booster).items() if i < len(names)}
    if module.startswith("catboost"):
        return {names[i]: ("categorical", []) for i in est.get_cat_feature_indices()}
    if module.startswith("sklearn.ensemble") and getattr(est, "is_categorical_", None) is not None:
        return _hgb_categoricals(est, names)
    if module.startswith("xgboost"):
        from core.methods.trees.xgb import stored_categories

        booster = est.get_booster() if hasattr(est, "get_booster") else est
        stored = stored_categories(booster)
        out: dict[str, tuple[str, list[Any]]] = {}
        for i, t in enumerate(booster.feature_types or []):
            if t == "c" and i < len(names):
                out[names[i]] = ("category", stored[i]) if stored.get(i) else ("categorical", [])
        return out
    return {}


def _hgb_categoricals(est: Any, names: list[str]) -> dict[str, tuple[str, list[Any]]]:
    """HistGradientBoosting: levels from its internal OrdinalEncoder (the raw values, in code order)."""
    flags = np.asarray(est.is_categorical_, dtype=bool)
    positions = [i for i, flag in enumerate(flags) if flag]
    levels: list[list[Any]] = [[] for _ in positions]
    prep = getattr(est, "_preprocessor", None)
    encoder = getattr(prep, "named_transformers_", {}).get("encoder") if prep is not None else None
    cats = getattr(encoder, "categories_", None)
    if cats is not None and len(cats) == len(positions):
        levels = [[to_plain(c) for c in np.asarray(c_).tolist() if c == c and c is not None] for c_ in cats]
    return {names[i]: ("categorical", lv) for i, lv in zip(positions, levels, strict=True) if i < len(names)}


def steps_of(model: Any) -> list[dict[str, str]]:
    """The pipeline's steps as ``{"name", "class", "detail"}`` (one entry for a bare estimator)."""
    if type(model).__name__ != "Pipeline":
        return [{"name": type(model).__name__.lower(), "class": type(model).__name__, "detail": ""}]
    out = []
    for name, step in model.steps:
        detail = ""
        if type(step).__name__ == "ColumnTransformer":
            parts = []
            for part, trans, cols in getattr(step, "transformers_", []):
                if trans == "drop":
                    continue
                label = trans if isinstance(trans, str) else type(final_estimator(trans)).__name__
                count = len(cols) if hasattr(cols, "__len__") else "?"
                parts.append(f"{part}: {label} ({count} columns)")
            detail = "; ".join(parts)
        out.append({"name": str(name), "class": type(step).__name__, "detail": detail})
    return out


def library_of(model: Any) -> str:
    """Human name of the library behind the final estimator."""
    top = type(final_estimator(model)).__module__.split(".")[0]
    return _LIBRARIES.get(top, top)


def describe(model: Any) -> dict[str, Any]:
    """The model card as plain data (see :class:`core.loading.models.LoadedModel`)."""
    task, classes = task_of(model)
    names = feature_names_of(model)
    kinds, categories = input_kinds(model, names)
    est = final_estimator(model)
    return {
        "library": library_of(model),
        "class_name": f"{type(model).__module__}.{type(model).__name__}",
        "estimator": type(est).__name__,
        "task": task,
        "classes": classes,
        "feature_names": names,
        "n_features": n_features_of(model),
        "input_kinds": kinds,
        "categories": categories,
        "steps": steps_of(model),
    }
