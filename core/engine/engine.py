"""The explain engine: picks the best exact method for a model and returns all classes at once.

Runs where the model lives (a worker process, a Dask task, or a test). Given a model and a background
sample of raw input rows it decides:

* the output units available (probability, log-odds, raw) and the default;
* whether a pipeline can be folded (:mod:`core.methods.pipeline`): explain the final estimator on the engineered
  columns with its fast method, then sum contributions back onto raw columns;
* the method: TreeSHAP (our kernel / shap / the boosters' native contributions), linear SHAP, or the
  additive model-agnostic explainer (:mod:`core.methods.permutation`) on raw columns.

Every result is checked for additivity before it leaves.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from core.errors import ExplanationError
from core.explanation import check_additivity
from core.methods import introspect
from core.methods.families import (
    CatBoostNative,
    CategoricalHGBKernel,
    FastTree,
    LightGBMKernel,
    LightGBMNative,
    LinearMethod,
    Method,
    ShapTree,
    XGBoostKernel,
    XGBoostNative,
    family_of,
)
from core.methods.permutation import PermutationMethod
from core.methods.pipeline import FoldPlan, NotFoldable, analyze

__all__ = ["Engine", "EngineResult", "available_outputs", "output_function"]

log = logging.getLogger(__name__)
PERMUTATION_BACKGROUND = 50


@dataclass(frozen=True)
class EngineResult:
    """All classes' contributions for some rows.

    Attributes:
        values: (n, F_raw, K) contributions on raw columns.
        base: (n, K) base values.
        prediction: (n, K) model output in the engine's units.
        engineered: (n, F_eng, K) contributions on engineered columns, when the pipeline was folded.
        engineered_data: (n, F_eng) the engineered rows themselves, when a method computed them anyway.
    """

    values: np.ndarray
    base: np.ndarray
    prediction: np.ndarray
    engineered: np.ndarray | None = None
    engineered_data: np.ndarray | None = None


def available_outputs(model: Any) -> list[str]:
    """Units this model can be explained in exactly, the default first."""
    task, _ = introspect.task_of(model)
    if task == "regression":
        return ["raw"]
    family = family_of(introspect.final_estimator(model))
    if family == "sk-forest":
        return ["probability"]
    if family in ("sk-boosted", "xgboost", "lightgbm", "catboost"):
        return ["log-odds", "probability"]
    has_proba = _has(model, "predict_proba")
    if family == "linear":
        return ["probability", "log-odds"] if has_proba else ["raw"]
    if has_proba:
        return ["probability"]
    if _has(model, "decision_function"):
        return ["raw"]
    raise ExplanationError(
        f"{type(model).__name__} gives neither probabilities nor scores, so there is nothing numeric to explain."
    )


def _has(model: Any, attr: str) -> bool:
    try:
        return callable(getattr(model, attr, None))
    except AttributeError:  # sklearn's available_if raises for unavailable methods
        return False


def output_function(model: Any, output: str, task: str) -> Callable[[Any], np.ndarray]:
    """``f(X) -> (n, K)``: the model's own output in the given units (native boosters included)."""
    est = introspect.final_estimator(model)
    name, module = type(est).__name__, type(est).__module__

    def run(X: Any) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            if module.startswith("xgboost") and name == "Booster":
                import xgboost as xgb

                out = est.predict(xgb.DMatrix(X, enable_categorical=True), output_margin=output != "probability")
            elif module.startswith("lightgbm") and name == "Booster":
                out = est.predict(X, raw_score=output != "probability")
            elif output == "probability":
                out = model.predict_proba(X)
            elif task == "regression":
                out = model.predict(X)
            else:
                out = _margin(model, est, X)
        out = np.asarray(out, dtype=np.float64)
        if out.ndim == 1:
            out = out[:, None]
        if output == "probability" and out.shape[1] == 1:
            out = np.hstack([1.0 - out, out])
        return out

    return run


def _margin(model: Any, est: Any, X: Any) -> Any:
    module = type(est).__module__
    if module.startswith("xgboost"):
        return model.predict(X, output_margin=True)
    if module.startswith("lightgbm"):
        return model.predict(X, raw_score=True)
    if module.startswith("catboost"):
        return model.predict(X, prediction_type="RawFormulaVal")
    return model.decision_function(X)


class InputAdapter:
    """Turns an aligned raw frame into what the model takes: a DataFrame, or an array for array-fitted models."""

    def __init__(self, model: Any):
        self.use_frame = introspect.feature_names_of(model) is not None

    def __call__(self, frame: pd.DataFrame) -> Any:
        if self.use_frame:
            return frame
        if all(pd.api.types.is_numeric_dtype(t) for t in frame.dtypes):
            return frame.to_numpy(dtype=np.float64, na_value=np.nan)
        return frame.to_numpy(dtype=object)


class Engine:
    """Explains rows of one model in one unit system, all classes at once.

    Args:
        model: The loaded model object.
        background: Aligned raw rows (a seeded sample of the user's table) used as the background.
        output: ``auto`` (the model's natural units) or one of :func:`available_outputs`.
        n_threads: Threads for native libraries and kernels (None: all cores).
        seed: Seed of the model-agnostic explainer (each row also uses its row id).
        agnostic: Use the model-agnostic explainer even when an exact fast method exists (comparisons).

    Raises:
        ExplanationError: The requested units are not available for this model.
    """

    def __init__(
        self,
        model: Any,
        background: pd.DataFrame,
        *,
        output: str = "auto",
        n_threads: int | None = None,
        seed: int = 0,
        agnostic: bool = False,
    ):
        self.model = model
        self.task, self.classes = introspect.task_of(model)
        self.outputs = available_outputs(model)
        if output not in ("auto", *self.outputs):
            raise ExplanationError(
                f"{type(introspect.final_estimator(model)).__name__} cannot be explained exactly in {output!r}; "
                f"choose {' or '.join(self.outputs)}."
            )
        self.output = self.outputs[0] if output == "auto" else output
        self.raw_names = [str(c) for c in background.columns]
        self.to_input = InputAdapter(model)
        self.n_threads, self.seed = n_threads, seed
        self.notes: list[str] = []
        if getattr(model, "is_automl", False) and not agnostic:
            self.plan, self.method = None, self._automl(background)
            self.folded = False
            return
        self.plan = self._plan(background)
        self.method = self._agnostic(background) if agnostic else self._choose(background)
        # only the permutation method runs without a plan
        self.folded = (
            not isinstance(self.method, PermutationMethod) and self.plan is not None and not self.plan.is_identity
        )

    # -- planning -------------------------------------------------------------------------------------
    def _plan(self, background: pd.DataFrame) -> FoldPlan | None:
        try:
            return analyze(self.model, self.raw_names, self.to_input(background.head(16)))
        except NotFoldable as exc:
            self.notes.append(f"Explained on raw columns model-agnostically: {exc}.")
            return None

    def _choose(self, background: pd.DataFrame) -> Method:
        if self.plan is not None:
            try:
                method = self._fast_method(background)
            except Exception as exc:  # noqa: BLE001 - an unsupported variant falls back, with a note
                log.info("fast method unavailable: %s", exc, exc_info=True)
                self.notes.append(f"The fast exact method does not support this model ({exc}); used the agnostic one.")
                method = None
            if method is not None:
                return method
            if not self.notes:
                self.notes.append(
                    f"{type(self.plan.final).__name__} has no exact fast method in {self.output} units "
                    "for this task: explained model-agnostically on raw columns."
                )
        return self._agnostic(background)

    def _fast_method(self, background: pd.DataFrame) -> Method | None:
        plan, task, out = self.plan, self.task, self.output
        assert plan is not None
        est, family = plan.final, family_of(plan.final)
        engineered_bg = self._engineer(background)
        if family == "sk-boosted" and _categorical_hgb(est):
            return self._hgb_categorical_kernel(est, engineered_bg)
        if family == "sk-forest" or (family == "sk-boosted" and out != "probability"):
            return self._tree_kernel(est)
        if family == "sk-boosted":
            ok = task == "binary"
            return ShapTree(est, output=out, task=task, background=_numeric(engineered_bg)) if ok else None
        if family in ("xgboost", "lightgbm", "catboost"):
            if out == "probability":
                numeric = _numeric_or_none(engineered_bg)
                ok = task == "binary" and family != "catboost" and numeric is not None
                return ShapTree(est, output=out, task=task, background=numeric) if ok else None
            if family == "xgboost":
                return self._xgboost(est, background)
            if family == "lightgbm":
                return self._lightgbm(est)
            return CatBoostNative(est, task=task, n_threads=self.n_threads)
        if family == "linear" and out != "probability":
            return LinearMethod(est, task=task, background=engineered_bg)
        return None

    def _xgboost(self, est: Any, background: pd.DataFrame) -> Method:
        """XGBoost's trees in float64 through our kernel; its native float32 contributions when unreadable."""
        from core.methods.trees.treeshap import UnsupportedModelError
        from core.methods.trees.xgb import UnsupportedBooster

        try:
            return XGBoostKernel(est, task=self.task, background=self._engineer(background), n_threads=self.n_threads)
        except (UnsupportedBooster, UnsupportedModelError) as exc:
            self.notes.append(
                f"XGBoost's own TreeSHAP contributions were used: ModelLens's reader does not read {exc}."
            )
            return XGBoostNative(est, task=self.task, n_threads=self.n_threads)

    def _lightgbm(self, est: Any) -> Method:
        """LightGBM's trees through our kernel; its native contributions for what the reader does not handle."""
        from core.methods.trees.treeshap import UnsupportedModelError
        from core.methods.trees.xgb import UnsupportedBooster

        try:
            return LightGBMKernel(est, task=self.task, n_threads=self.n_threads)
        except (UnsupportedBooster, UnsupportedModelError) as exc:
            self.notes.append(
                f"LightGBM's own TreeSHAP contributions were used: ModelLens's reader does not read {exc}."
            )
            return LightGBMNative(est, task=self.task, n_threads=self.n_threads)

    def _hgb_categorical_kernel(self, est: Any, background: Any) -> Method | None:
        """HistGradientBoosting's categorical splits through the kernel; None (agnostic) where it cannot follow."""
        from core.methods.trees.treeshap import UnsupportedModelError

        if self.output != "probability":
            try:
                return CategoricalHGBKernel(
                    est, output=self.output, task=self.task, background=background, n_threads=self.n_threads
                )
            except UnsupportedModelError as exc:
                why = str(exc)
        else:
            why = "its exact tree path is in log-odds, not probability"
        self.notes.append(
            f"{type(est).__name__} splits natively on categorical columns and {why}: explained model-agnostically "
            "on raw columns."
        )
        return None

    def _tree_kernel(self, est: Any) -> Method | None:
        """ModelLens's TreeSHAP kernel on shap's reading of the trees; None for variants it cannot read."""
        from core.methods.trees.treeshap import UnsupportedModelError

        try:
            return FastTree(est, output=self.output, task=self.task, n_threads=self.n_threads)
        except UnsupportedModelError as exc:
            self.notes.append(f"{type(est).__name__}: {exc}")
            return None

    def _automl(self, background: pd.DataFrame) -> Method:
        """An Azure AutoML ensemble: members explained exactly where they can be, in its runtime worker."""
        from core.methods.automl import AutoMLEnsemble

        bg = background.head(PERMUTATION_BACKGROUND).reset_index(drop=True)
        method = AutoMLEnsemble(self.model, background=bg, output=self.output, seed=self.seed, n_threads=self.n_threads)
        if method.agnostic is not None:
            self.notes.append(
                "Some ensemble members read several columns at once (a row normaliser) or have no exact method "
                "in these units: their part is explained on raw columns by " + method.agnostic.name + "."
            )
        return method

    def _agnostic(self, background: pd.DataFrame) -> PermutationMethod:
        self.plan = None
        predict = output_function(self.model, self.output, self.task)
        bg = background.head(PERMUTATION_BACKGROUND).reset_index(drop=True)
        # a binary classifier's margin is one column (its positive class): the negative class is derived from it
        single = self.task == "binary" and predict(self.to_input(bg.head(1))).shape[1] == 1
        return PermutationMethod(lambda frame: predict(self.to_input(frame)), bg, seed=self.seed, binary_single=single)

    def _engineer(self, frame: pd.DataFrame) -> Any:
        X = self.to_input(frame)
        if self.plan is None or self.plan.is_identity:
            return X
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return self.plan.preprocess.transform(X)

    # -- explaining -----------------------------------------------------------------------------------
    @property
    def method_name(self) -> str:
        """Name of the algorithm, with the fold when there was one."""
        name = self.method.name
        if self.folded and self.plan is not None:
            name += f" on {len(self.plan.engineered_names)} engineered columns, summed onto raw columns"
        return name

    @property
    def engineered_names(self) -> list[str] | None:
        """Engineered column names when the pipeline was folded (or every AutoML member was explained on them)."""
        if getattr(self.method, "engineered_available", False):
            return list(self.model.card["engineered_names"])
        return list(self.plan.engineered_names) if self.folded and self.plan is not None else None

    @property
    def binary_single(self) -> bool:
        """True when a binary classifier is explained through its positive class only."""
        return bool(self.method.binary_single)

    def explain(self, frame: pd.DataFrame, row_ids: np.ndarray | None = None) -> EngineResult:
        """Explain aligned raw rows; ``row_ids`` are their positions in the uploaded table.

        Raises:
            ExplanationError: The result does not add up to the model's output (a bug; never silenced).
        """
        if isinstance(self.method, PermutationMethod):
            values, base, pred = self.method.explain(frame.reset_index(drop=True), row_ids)
            result = EngineResult(values, base, pred)
        elif getattr(self.model, "is_automl", False):
            from core.methods.automl import AutoMLEnsemble  # already imported by _automl

            assert isinstance(self.method, AutoMLEnsemble)
            values, base, pred = self.method.explain(frame.reset_index(drop=True), row_ids)
            engineered = self.method.last_engineered
            data = self.method.last_engineered_data if engineered is not None else None
            result = EngineResult(values, base, pred, engineered, data)
        else:
            values, base, pred = self.method.explain(self._engineer(frame))
            folded = self.plan.fold(values) if self.folded and self.plan is not None else values
            result = EngineResult(folded, base, pred, values if self.folded else None)
        for k in range(result.values.shape[2]):
            error = check_additivity(result.base[:, k], result.values[:, :, k], result.prediction[:, k])
            if not error <= 1e-6:
                raise ExplanationError(
                    f"{self.method_name} did not add up to the model's output (error {error:.1e}); "
                    "please report this model to the ModelLens team."
                )
        return result


def _numeric(X: Any) -> np.ndarray:
    if hasattr(X, "toarray"):
        X = X.toarray()
    return np.asarray(X, dtype=np.float64)


def _numeric_or_none(X: Any) -> np.ndarray | None:
    try:
        return _numeric(X)
    except (TypeError, ValueError):
        return None


def _categorical_hgb(est: Any) -> bool:
    """HistGradientBoosting with native categorical splits (shap would read them as numeric thresholds)."""
    flags = getattr(est, "is_categorical_", None)
    return flags is not None and bool(np.any(flags))
