"""Exact explanation methods per model family, all with one shape of result.

Every method's :meth:`explain` returns ``(values, base, prediction)`` with shapes ``(n, F, K)``, ``(n, K)``
and ``(n, K)``: K outputs (classes, or 1), in the method's units, where ``prediction`` is the model's own
output in those units. ``binary_single`` marks a binary classifier explained through its positive class
only; :mod:`core.engine.explain` derives the negative class exactly from it.
"""

from __future__ import annotations

import json
import logging
import warnings
from typing import Any

import numpy as np

from core.errors import ExplanationError

__all__ = [
    "CatBoostNative",
    "CategoricalHGBKernel",
    "FastTree",
    "LightGBMKernel",
    "LightGBMNative",
    "LinearMethod",
    "Method",
    "ShapTree",
    "XGBoostKernel",
    "XGBoostNative",
    "family_of",
]

log = logging.getLogger(__name__)

FOREST = {
    "RandomForestClassifier",
    "RandomForestRegressor",
    "ExtraTreesClassifier",
    "ExtraTreesRegressor",
    "DecisionTreeClassifier",
    "DecisionTreeRegressor",
    "ExtraTreeClassifier",
    "ExtraTreeRegressor",
}
BOOSTED = {
    "GradientBoostingClassifier",
    "GradientBoostingRegressor",
    "HistGradientBoostingClassifier",
    "HistGradientBoostingRegressor",
}


def family_of(est: Any) -> str:
    """Model family: xgboost, lightgbm, catboost, sk-forest, sk-boosted, linear or agnostic."""
    module, name = type(est).__module__, type(est).__name__
    for lib in ("xgboost", "lightgbm", "catboost"):
        if module.startswith(lib):
            return lib
    if name in FOREST and module.startswith("sklearn."):
        return "sk-forest"
    if name in BOOSTED and module.startswith("sklearn."):
        return "sk-boosted"
    if module.startswith("sklearn.linear_model") and hasattr(est, "coef_") and hasattr(est, "intercept_"):
        return "linear"
    if module.startswith("sklearn.svm") and name in {"LinearSVC", "LinearSVR"}:
        return "linear"
    return "agnostic"


def _numeric(X: Any) -> np.ndarray:
    if hasattr(X, "toarray"):
        X = X.toarray()
    return np.asarray(X, dtype=np.float64)


def _col(pred: np.ndarray) -> np.ndarray:
    pred = np.asarray(pred, dtype=np.float64)
    return pred[:, None] if pred.ndim == 1 else pred


class Method:
    """Base: a named exact method in given units."""

    name = "method"
    binary_single = False

    def explain(self, X: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover - interface
        """Explain rows: (values (n, F, K), base (n, K), prediction (n, K))."""
        raise NotImplementedError


class ShapTree(Method):
    """scikit-learn trees through shap's TreeSHAP: path-dependent, or interventional against a background."""

    def __init__(self, est: Any, *, output: str, task: str, background: np.ndarray | None = None):
        import shap

        self.est, self.output, self.task = est, output, task
        if background is None:
            self.explainer = shap.TreeExplainer(est)
            self.name = "TreeSHAP (path-dependent)"
        else:
            model_output = "probability" if output == "probability" else "raw"
            self.explainer = shap.TreeExplainer(
                est, data=background, feature_perturbation="interventional", model_output=model_output
            )
            self.name = f"TreeSHAP (interventional, {len(background)} background rows)"
            if model_output == "probability":  # shap's transform: exact in log-odds, then rescaled (still adds up)
                self.name = (
                    f"TreeSHAP (interventional, {len(background)} background rows; log-odds values rescaled to "
                    "probability per background row)"
                )
        self.binary_single = task == "binary" and not (output == "probability" and background is None)

    def explain(self, X: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Explain rows with shap's C++ TreeSHAP."""
        values = np.asarray(self.explainer.shap_values(_numeric(X), check_additivity=False), dtype=np.float64)
        if values.ndim == 2:
            values = values[:, :, None]
        expected = np.atleast_1d(np.asarray(self.explainer.expected_value, dtype=np.float64))
        if self.binary_single and values.shape[2] == 2:
            values, expected = values[:, :, 1:], expected[1:]
        base = np.broadcast_to(expected[: values.shape[2]], (values.shape[0], values.shape[2])).copy()
        return values, base, self.predict(X)

    def predict(self, X: Any) -> np.ndarray:
        """The model's own output in this method's units (positive class only when binary_single)."""
        out = predict_units(self.est, X, self.output, self.task)
        return out[:, 1:] if self.binary_single and out.shape[1] == 2 else out


class FastTree(Method):
    """scikit-learn trees through ModelLens's own exact TreeSHAP kernel (:mod:`core.methods.trees.treeshap`).

    Path-dependent TreeSHAP with the same values as shap's (to 1e-9 of the output scale), about 20x faster
    on one core for deep forests, on all cores, and covering multiclass GradientBoosting too.

    Raises:
        UnsupportedModelError: A variant the kernel cannot explain (HistGradientBoosting categorical splits).
    """

    name = "TreeSHAP (path-dependent, ModelLens kernel)"

    def __init__(self, est: Any, *, output: str, task: str, n_threads: int | None = None):
        from core.methods.trees import treeshap

        self.treeshap, self.est, self.output, self.task, self.n_threads = treeshap, est, output, task, n_threads
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # sklearn's feature-name notes while reading the trees
            self.plan = treeshap.prepare(treeshap.ensemble_from_model(est))
        self.expected = np.asarray(treeshap.expected_value(self.plan), dtype=np.float64)
        self.binary_single = task == "binary" and len(self.expected) == 1

    def explain(self, X: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Explain rows with the numba kernel."""
        values = self.treeshap.shap_values(self.plan, _numeric(X), n_threads=self.n_threads)
        base = np.broadcast_to(self.expected, (values.shape[0], values.shape[2])).copy()
        prediction = predict_units(self.est, X, self.output, self.task)
        return values, base, prediction[:, 1:] if self.binary_single and prediction.shape[1] == 2 else prediction


class CategoricalHGBKernel(Method):
    """HistGradientBoosting with native categorical splits, through ModelLens's kernel (:mod:`core.methods.trees.hgb`).

    Raw-score units only (log-odds for classifiers, the target for an identity-link regressor); the base value is
    the model's baseline plus the trees' expectations, the prediction its own ``decision_function``/``predict``.

    Raises:
        UnsupportedModelError: Levels beyond the kernel's bitset, or a regressor whose ``predict`` is not its raw
            score (a log link).
    """

    name = "TreeSHAP (path-dependent, ModelLens kernel on HistGradientBoosting's categorical trees)"

    def __init__(self, est: Any, *, output: str, task: str, background: Any, n_threads: int | None = None):
        from core.methods.trees import hgb as hgb_trees
        from core.methods.trees import treeshap

        self.hgb_trees, self.treeshap, self.est, self.output, self.task = hgb_trees, treeshap, est, output, task
        self.n_threads = n_threads
        self.plan = treeshap.prepare(hgb_trees.from_model(est))
        self.expected = np.asarray(treeshap.expected_value(self.plan), dtype=np.float64)
        self.binary_single = task == "binary" and len(self.expected) == 1
        raw = np.asarray(est._raw_predict(background), dtype=np.float64)
        if not np.allclose(predict_units(est, background, output, task), raw, rtol=1e-12, atol=0):
            raise treeshap.UnsupportedModelError("its prediction is not its raw score (a link function)")

    def explain(self, X: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Explain raw rows with the kernel; the prediction is the model's own."""
        values = self.treeshap.shap_values(self.plan, self.hgb_trees.encode_rows(self.est, X), n_threads=self.n_threads)
        base = np.broadcast_to(self.expected, (values.shape[0], values.shape[2])).copy()
        return values, base, predict_units(self.est, X, self.output, self.task)


def predict_units(est: Any, X: Any, output: str, task: str) -> np.ndarray:
    """Model output (n, K) in the given units; binary log-odds/probability as the positive class only."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        if output == "probability":
            proba = np.asarray(est.predict_proba(X), dtype=np.float64)
            return proba
        if task == "regression":
            return _col(est.predict(X))
        return _col(est.decision_function(X))


class XGBoostNative(Method):
    """XGBoost's own TreeSHAP contributions (``pred_contribs``), in margin units, multi-threaded."""

    name = "TreeSHAP (XGBoost native)"

    def __init__(self, est: Any, *, task: str, n_threads: int | None = None):
        import xgboost as xgb

        self.xgb = xgb
        self.booster = est.get_booster() if hasattr(est, "get_booster") else est
        if n_threads:
            self.booster.set_param({"nthread": n_threads})
        best = getattr(est, "best_iteration", None) if hasattr(est, "get_booster") else None
        self.iteration_range = (0, int(best) + 1) if best is not None else (0, 0)
        self.binary_single = task == "binary"

    def _matrix(self, X: Any) -> Any:
        return self.xgb.DMatrix(X, enable_categorical=True, feature_names=self.booster.feature_names)

    def explain(self, X: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Explain rows with ``Booster.predict(pred_contribs=True)``."""
        dm = self._matrix(X)
        contrib = self.booster.predict(dm, pred_contribs=True, iteration_range=self.iteration_range, strict_shape=True)
        contrib = np.asarray(contrib, dtype=np.float64)  # (n, K, F+1)
        margin = self.booster.predict(dm, output_margin=True, iteration_range=self.iteration_range, strict_shape=True)
        values = np.moveaxis(contrib[:, :, :-1], 1, 2)
        return values, contrib[:, :, -1], np.asarray(margin, dtype=np.float64).reshape(len(values), -1)


class XGBoostKernel(Method):
    """XGBoost's trees read in float64 and explained by ModelLens's exact TreeSHAP kernel.

    XGBoost computes in float32, so its own contributions miss its margin by up to ~1e-6 relative on large
    ensembles; here the same trees (same routing) are evaluated exactly, and the prediction shown is their
    float64 output, equal to XGBoost's margin to float32 precision. Categorical splits on stored pandas
    categories are routed as XGBoost routes them (see :mod:`core.methods.trees.xgb`).
    """

    name = "TreeSHAP (path-dependent, ModelLens kernel on XGBoost's trees)"

    def __init__(self, est: Any, *, task: str, background: Any, n_threads: int | None = None):
        import xgboost as xgb

        from core.methods.trees import treeshap
        from core.methods.trees import xgb as xgb_trees

        self.xgb, self.treeshap, self.xgb_trees, self.n_threads = xgb, treeshap, xgb_trees, n_threads
        self.booster = est.get_booster() if hasattr(est, "get_booster") else est
        best = getattr(est, "best_iteration", None) if hasattr(est, "get_booster") else None
        n_trees = None
        if best is not None:  # the sklearn wrapper predicts with the trees up to its best iteration
            per_round = len(json.loads(self.booster.save_raw("json"))["learner"]["gradient_booster"]["model"]["trees"])
            n_trees = (int(best) + 1) * (per_round // max(1, self.booster.num_boosted_rounds()))
        self.ensemble = xgb_trees.from_booster(self.booster, n_trees)
        margin = _xgb_margin(est, self.booster, background, self._matrix(background))
        offset = margin - xgb_trees.leaf_sums(self.booster, self.ensemble, self._matrix(background))
        self.ensemble.base_offset = np.median(offset, axis=0)  # base score in margin units (float32 noise aside)
        self.plan = treeshap.prepare(self.ensemble)
        self.expected = np.asarray(treeshap.expected_value(self.plan), dtype=np.float64)
        self.binary_single = task == "binary"

    def _matrix(self, X: Any) -> Any:
        return self.xgb.DMatrix(X, feature_names=self.booster.feature_names, enable_categorical=True)

    def explain(self, X: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Explain rows with the kernel; the prediction is the trees' float64 output."""
        rows = self.xgb_trees.encode_rows(self.ensemble, X)
        values = self.treeshap.shap_values(self.plan, rows, n_threads=self.n_threads)
        prediction = self.ensemble.base_offset + self.xgb_trees.leaf_sums(self.booster, self.ensemble, self._matrix(X))
        base = np.broadcast_to(self.expected, (values.shape[0], values.shape[2])).copy()
        return values, base, prediction


def _xgb_margin(est: Any, booster: Any, X: Any, dmatrix: Any) -> np.ndarray:
    """XGBoost's own margin (n, K): the sklearn wrapper's (its best iteration), or the booster's."""
    if hasattr(est, "get_booster"):
        out = est.predict(X, output_margin=True)
    else:
        out = booster.predict(dmatrix, output_margin=True, strict_shape=True)
    out = np.asarray(out, dtype=np.float64)
    return out.reshape(len(out), -1)


class LightGBMKernel(Method):
    """LightGBM's trees read as arrays and explained by ModelLens's exact TreeSHAP kernel (on all cores)."""

    name = "TreeSHAP (path-dependent, ModelLens kernel on LightGBM's trees)"

    def __init__(self, est: Any, *, task: str, n_threads: int | None = None):
        from core.methods.trees import lgb as lgb_trees
        from core.methods.trees import treeshap

        self.treeshap, self.lgb_trees, self.n_threads = treeshap, lgb_trees, n_threads
        self.booster = est.booster_ if hasattr(est, "booster_") else est
        best = getattr(est, "best_iteration_", None) if hasattr(est, "booster_") else None
        self.num_iteration = best if best else None
        n_trees = best * self.booster.num_model_per_iteration() if best else None
        self.ensemble = lgb_trees.from_booster(self.booster, n_trees)
        self.plan = treeshap.prepare(self.ensemble)
        self.expected = np.asarray(treeshap.expected_value(self.plan), dtype=np.float64)
        self.binary_single = task == "binary"

    def explain(self, X: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Explain rows with the kernel; the prediction is LightGBM's own raw score (double precision)."""
        rows = self.lgb_trees.encode_rows(self.ensemble, X)
        values = self.treeshap.shap_values(self.plan, rows, n_threads=self.n_threads)
        margin = self.booster.predict(X, raw_score=True, num_iteration=self.num_iteration)
        base = np.broadcast_to(self.expected, (values.shape[0], values.shape[2])).copy()
        return values, base, np.asarray(margin, dtype=np.float64).reshape(len(values), -1)


class LightGBMNative(Method):
    """LightGBM's own TreeSHAP contributions (``pred_contrib``), in margin units, multi-threaded."""

    name = "TreeSHAP (LightGBM native)"

    def __init__(self, est: Any, *, task: str, n_threads: int | None = None):
        self.booster = est.booster_ if hasattr(est, "booster_") else est
        best = getattr(est, "best_iteration_", None) if hasattr(est, "booster_") else None
        self.num_iteration = best if best else None
        self.kwargs = {"num_threads": n_threads} if n_threads else {}
        self.binary_single = task == "binary"

    def explain(self, X: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Explain rows with ``Booster.predict(pred_contrib=True)``."""
        contrib = self.booster.predict(X, pred_contrib=True, num_iteration=self.num_iteration, **self.kwargs)
        if isinstance(contrib, list):
            contrib = np.stack([c.toarray() for c in contrib], axis=1)
        contrib = np.asarray(contrib.toarray() if hasattr(contrib, "toarray") else contrib, dtype=np.float64)
        n = contrib.shape[0]
        contrib = contrib.reshape(n, -1, self.booster.num_feature() + 1)  # (n, K, F+1)
        margin = self.booster.predict(X, raw_score=True, num_iteration=self.num_iteration, **self.kwargs)
        values = np.moveaxis(contrib[:, :, :-1], 1, 2)
        return values, contrib[:, :, -1], np.asarray(margin, dtype=np.float64).reshape(n, -1)


class CatBoostNative(Method):
    """CatBoost's own SHAP values, in margin units (``RawFormulaVal``)."""

    name = "TreeSHAP (CatBoost native)"

    def __init__(self, est: Any, *, task: str, n_threads: int | None = None):
        self.est = est
        self.thread_count = n_threads or -1
        self.binary_single = task == "binary"

    def explain(self, X: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Explain rows with ``get_feature_importance(type='ShapValues')``."""
        import catboost

        pool = catboost.Pool(X, cat_features=self.est.get_cat_feature_indices())
        shap_values = self.est.get_feature_importance(pool, type="ShapValues", thread_count=self.thread_count)
        contrib = np.asarray(shap_values, dtype=np.float64)
        if contrib.ndim == 2:
            contrib = contrib[:, None, :]
        margin = self.est.predict(pool, prediction_type="RawFormulaVal", thread_count=self.thread_count)
        values = np.moveaxis(contrib[:, :, :-1], 1, 2)
        return values, contrib[:, :, -1], np.asarray(margin, dtype=np.float64).reshape(len(values), -1)


class LinearMethod(Method):
    """Linear SHAP against a background mean: coef * (x - mean), exact in the model's margin units."""

    def __init__(self, est: Any, *, task: str, background: np.ndarray):
        self.est, self.task = est, task
        coef = np.atleast_2d(np.asarray(est.coef_, dtype=np.float64))
        self.coef = coef  # (K, F)
        self.intercept = np.atleast_1d(np.asarray(est.intercept_, dtype=np.float64))
        self.mean = _numeric(background).mean(axis=0)
        if self.mean.shape[0] != coef.shape[1]:
            raise ExplanationError("The linear model's coefficients do not match the data's columns.")
        self.binary_single = task == "binary"
        self.name = f"Linear SHAP (interventional, {len(background)} background rows)"

    def explain(self, X: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Explain rows in closed form."""
        Xn = _numeric(X)
        values = (Xn - self.mean)[:, :, None] * self.coef.T[None, :, :]
        base = np.broadcast_to(self.intercept + self.coef @ self.mean, (len(Xn), len(self.intercept))).copy()
        output = "raw" if self.task == "regression" else "log-odds"
        return values, base, predict_units(self.est, X, output, self.task)
