"""Azure AutoML models, explained exactly in the ensemble's own units, on the columns the user uploaded.

The pipeline lives in its runtime worker (:mod:`core.runtimes.automl_worker`, Python 3.10); :class:`AutoMLModel` is
its stand-in in the engine's process. :class:`AutoMLEnsemble` explains the soft-voting ensemble as the
weighted sum of its members, all against one shared background of raw rows:

* a tree member behind per-column scalers (LightGBM, XGBoost, random / extra trees) gets interventional
  TreeSHAP in the ensemble's units on its own (scaled, engineered) input, read from the member's exported
  trees, with rows and thresholds recoded so each row is routed as its library routes it
  (:mod:`core.methods.trees.split_codes`); engineered contributions are summed onto their raw column
  through AutoML's own engineered -> raw map;
* every other member (a row-wise ``SparseNormalizer`` in front, a logistic regression in probability units,
  anything without an exact fast method) is explained together with the others like it by the additive
  permutation explainer over raw columns; coalitions are evaluated in the runtime by mixing each raw
  column's engineered block from the row or the background, so nothing is re-featurized.

Shapley values are linear in the model, so the weighted sum is the ensemble's explanation; for every row,
``base + sum(values) == the pipeline's own predict_proba / predict`` (checked).
"""

from __future__ import annotations

import logging
import os
import uuid
import warnings
from typing import Any, cast

import numpy as np
import pandas as pd

from core.errors import ExplanationError
from core.methods.families import Method
from core.methods.permutation import PermutationMethod
from core.methods.trees.split_codes import SplitCodes

__all__ = ["AutoMLEnsemble", "AutoMLModel", "open_model"]

log = logging.getLogger(__name__)
PER_COLUMN_SCALERS = {"MaxAbsScaler", "StandardScalerWrapper", "StandardScaler", "MinMaxScaler", "RobustScaler"}
TREE_MODELS = {"LightGBMClassifier", "LightGBMRegressor", "XGBoostClassifier", "XGBoostRegressor",
               "RandomForestClassifier", "RandomForestRegressor", "ExtraTreesClassifier", "ExtraTreesRegressor",
               "DecisionTreeClassifier", "DecisionTreeRegressor"}  # fmt: skip
LINEAR_MODELS = {"ElasticNet", "Lasso", "Ridge", "LinearRegression", "LassoLars", "SGDRegressor"}


_WARM: dict[str, Any] = {}  # runtime interpreter -> its worker, started ahead with nothing loaded (see warm)


def _runtime_worker(python: str) -> Any:
    """A (not yet started) worker running the AutoML runtime's interpreter."""
    from core.isolation.workers import ModelWorker

    return ModelWorker(command=[python, "-m", "core.runtimes.automl_worker"], label="Azure AutoML runtime")


def warm(python: str) -> int:
    """Start the AutoML runtime's worker ahead (its libraries imported, no model), for :func:`open_model` to use.

    Run in a spare model worker: the runtime's start (Python 3.10 importing azureml, seconds of CPU) is then paid
    before the user uploads. Returns the runtime process's pid.

    Raises:
        WorkerError: The runtime did not start.
    """
    worker = _WARM.get(python)
    if worker is None or not worker.alive:
        worker = _runtime_worker(python)
        worker.start()
        _WARM[python] = worker
    assert worker.proc is not None  # started just above, or alive
    return int(worker.proc.pid)


def open_model(
    data: bytes, filename: str, *, python: str, trusted: bool = False, max_bytes: int = 1024**3
) -> AutoMLModel:
    """Start the AutoML runtime worker (``python -m core.runtimes.automl_worker``) and load the model in it.

    Args:
        data: The upload (``model.pkl`` or the AutoML output zip).
        filename: Its name.
        python: The runtime virtualenv's interpreter (:attr:`core.runtimes.registry.RuntimeRecord.python_executable`).
        trusted: Bypass the allowlisting unpickler (explicit local opt-in only).
        max_bytes: Cap on the decompressed model.

    Raises:
        UnsafeModelError: The file was refused by the AutoML allowlist (every refused global is named).
        ModelLoadError: The file is not a fitted AutoML pipeline.
        WorkerError: The runtime did not start or crashed.
    """
    worker = _WARM.pop(python, None)  # started ahead by this process's warm(), if it was a spare
    if worker is None or not worker.alive:
        worker = _runtime_worker(python)
    try:
        card = worker.call("load", data=data, filename=filename, trusted=trusted, max_bytes=max_bytes)
    except BaseException:
        worker.close()
        raise
    return AutoMLModel(worker, card)


class AutoMLModel:
    """The engine's handle on an AutoML pipeline that lives in its runtime worker (plain data only).

    It quacks like a fitted scikit-learn model (``predict``, ``predict_proba``, ``classes_``,
    ``feature_names_in_``), so model-agnostic code (permutation importance, the agnostic explainer) works.
    """

    is_automl = True
    _estimator_type = "regressor"

    def __init__(self, worker: Any, card: dict[str, Any]):
        self.worker, self.card = worker, card
        if card["task"] != "regression":
            self._estimator_type = "classifier"
        self.feature_names_in_ = np.asarray(card["feature_names"], dtype=object)
        self.n_features_in_ = len(card["feature_names"])
        if card["task"] != "regression":
            self.classes_ = np.asarray(card["classes"], dtype=object)

    def fit(self, *args: Any, **kwargs: Any) -> AutoMLModel:
        """AutoML models are explained, not refitted."""
        raise NotImplementedError("ModelLens does not refit Azure AutoML models.")

    def close(self) -> None:
        """Stop the runtime worker."""
        self.worker.close()

    def _output(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.worker.call("predict", frame=frame), dtype=np.float64)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """The pipeline's own class probabilities (columns in ``classes_`` order)."""
        if self.card["task"] == "regression":
            raise AttributeError("a regressor has no predict_proba")
        return self._output(frame)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """The pipeline's own predictions (labels for classifiers)."""
        out = self._output(frame)
        return out[:, 0] if self.card["task"] == "regression" else self.classes_[out.argmax(axis=1)]


def _dense(matrix: dict[str, Any], *, missing_absent: bool = False) -> np.ndarray:
    """A worker matrix as a dense array; XGBoost reads absent CSR entries as missing, so they become NaN."""
    if matrix["format"] == "dense":
        return np.asarray(matrix["array"], dtype=np.float64)
    import scipy.sparse as sp

    csr = sp.csr_matrix((matrix["data"], matrix["indices"], matrix["indptr"]), shape=tuple(matrix["shape"]))
    if not missing_absent:
        return cast(np.ndarray, csr.toarray())
    out = np.full(csr.shape, np.nan)
    coo = csr.tocoo()
    out[coo.row, coo.col] = coo.data
    return out


class _Exact:
    """One member explained exactly on its own (scaled, engineered) input, in the ensemble's units.

    Tree members get shap's interventional TreeSHAP on trees rebuilt from their export; a linear regressor
    gets ``coef * (x - mean(background))``. Either is checked against the member's own output on background
    rows before it is trusted.
    """

    def __init__(self, export: dict[str, Any], background: dict[str, Any], output: str, n_classes: int):
        self.kind, self.n_classes = export["kind"], n_classes
        bg = self.input(background)
        if self.kind == "linear":
            coef = np.asarray(export["coef"], dtype=np.float64)
            if coef.shape[0] != 1 or output != "raw":
                raise ValueError("a linear classifier is not linear in probability units")
            self.coef, self.mean = coef[0], bg.mean(axis=0)
            self.expected = np.atleast_1d(float(np.asarray(export["intercept"]).ravel()[0]) + self.coef @ self.mean)
            return
        import shap

        model, self.codes = _coded_trees(export, bg.shape[1])
        model_output = "probability" if output == "probability" and self.kind != "sklearn-trees" else "raw"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.explainer = shap.TreeExplainer(
                model, data=self.codes.code_inputs(bg), feature_perturbation="interventional", model_output=model_output
            )

    def input(self, matrix: dict[str, Any]) -> np.ndarray:
        """The member's input as the library reads it (see :func:`_dense`), in float64."""
        return _dense(matrix, missing_absent=self.kind == "xgboost")

    def explain(self, matrix: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """Values (n, E, K) and expected value (K,) of the member on its input rows."""
        X = self.input(matrix)
        if self.kind == "linear":
            return (self.coef[None, :] * (X - self.mean[None, :]))[:, :, None], self.expected
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            values = self.explainer.shap_values(self.codes.code_inputs(X), check_additivity=False)
        return _two_columns(values, self.explainer.expected_value, self.n_classes)


def _tree_model(export: dict[str, Any]) -> Any:
    """A model shap's TreeExplainer reads, rebuilt from an exported member (never from a pickle)."""
    if export["kind"] == "lightgbm":
        import lightgbm as lgb

        model: Any = lgb.Booster(model_str=export["text"])
        objective = next((line[10:] for line in export["text"].splitlines() if line.startswith("objective=")), "")
        model.params["objective"] = objective.split(" ")[0]  # shap reads the link from params, empty after model_str
        return model
    if export["kind"] == "xgboost":
        import xgboost as xgb

        model = xgb.Booster()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # xgboost 3 warns about JSON written by 1.x; it reads it exactly
            model.load_model(bytearray(export["json"].encode()))
        return model
    if export["kind"] == "sklearn-trees":
        return _sklearn_trees(export)
    raise ValueError(f"no exact method for a {export['kind']} member")


def _coded_trees(export: dict[str, Any], n_features: int) -> tuple[dict[str, Any], SplitCodes]:
    """The member's trees in shap's dict form with thresholds recoded (see :mod:`core.methods.trees.split_codes`).

    shap's interventional kernel keeps thresholds in float32; on codes it routes each row as the library does.
    """
    model = _tree_model(export)
    if not isinstance(model, dict):  # a booster: read by shap's own loader (objective, link, base score)
        import shap

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ensemble = shap.TreeExplainer(model).model
        trees = [{"children_left": ensemble.children_left[t], "children_right": ensemble.children_right[t],
                  "children_default": ensemble.children_default[t], "features": ensemble.features[t],
                  "thresholds": ensemble.thresholds[t], "threshold_types": ensemble.threshold_types[t],
                  "values": ensemble.values[t], "node_sample_weight": ensemble.node_sample_weight[t]}
                 for t in range(ensemble.values.shape[0])]  # fmt: skip
        model = {"trees": trees, "base_offset": ensemble.base_offset, "tree_output": ensemble.tree_output,
                 "objective": ensemble.objective}  # fmt: skip
    codes = SplitCodes.from_trees(model["trees"], n_features, input_dtype=export.get("input_dtype", "float64"))
    for tree in model["trees"]:
        tree["thresholds"] = codes.code_thresholds(tree["features"], tree["thresholds"], tree["children_left"])
        tree.pop("threshold_types", None)
    return {**model, "input_dtype": np.float64}, codes


def _sklearn_trees(export: dict[str, Any]) -> dict[str, Any]:
    """The dict form of a scikit-learn forest shap reads: leaf class fractions (or values) averaged over trees."""
    trees = []
    for tree in export["trees"]:
        value = np.asarray(tree["value"], dtype=np.float64)
        if export["classifier"]:
            value = value / np.maximum(value.sum(axis=1, keepdims=True), 1e-300)
        value = value / len(export["trees"])
        left = np.asarray(tree["children_left"], dtype=np.int64)
        trees.append({"children_left": left, "children_right": np.asarray(tree["children_right"], dtype=np.int64),
                      "children_default": left.copy(), "features": np.asarray(tree["feature"], dtype=np.int64),
                      "thresholds": np.asarray(tree["threshold"], dtype=np.float64), "values": value,
                      "node_sample_weight": np.asarray(tree["weight"], dtype=np.float64)})  # fmt: skip
    return {"trees": trees, "base_offset": 0.0, "tree_output": "raw_value"}


def _two_columns(values: Any, expected: Any, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The outputs of shap as (n, F, K) and (K,); a binary model's single probability column gets its complement."""
    values = np.asarray(values, dtype=np.float64)
    expected = np.atleast_1d(np.asarray(expected, dtype=np.float64))
    if values.ndim == 2:
        values = values[:, :, None]
    if values.shape[2] == 1 and n_classes == 2:
        values = np.concatenate([-values, values], axis=2)
        expected = np.array([1.0 - expected[0], expected[0]])
    return values, expected


class _GroupPermutation(PermutationMethod):
    """The permutation explainer over raw columns for the members without an exact method.

    Coalitions are evaluated in the runtime worker on kept engineered rows (``op_coalitions``), against the
    ensemble explainer's background.
    """

    def __init__(self, owner: AutoMLEnsemble, members: list[int], weights: list[float], base: np.ndarray, seed: int):
        self.owner, self.members, self.weights = owner, members, weights
        n_raw = owner.n_raw
        self.n_features, self.seed, self.binary_single = n_raw, seed, False
        self.n_background = 1  # the worker averages over the background
        self.n_permutations = max(2, int(np.ceil(250 / max(n_raw - 1, 1))))
        self.exact = n_raw <= 10 and 2**n_raw - 2 <= 4 * self.n_permutations * max(n_raw - 1, 1)
        self.base = base
        self.name = (
            f"exact Shapley (all {2**n_raw} coalitions of raw columns)"
            if self.exact
            else f"permutation SHAP over raw columns ({self.n_permutations} antithetic permutations)"
        )

    def explain_rows(self, rows: str, row_ids: np.ndarray, prediction: np.ndarray) -> np.ndarray:
        """Values (n, R, K) of the kept ``rows``, given the agnostic members' weighted output on them."""
        n = len(row_ids)
        values = np.zeros((n, self.n_features, prediction.shape[1]))
        masks = [self._masks(int(r)) for r in row_ids]
        step = max(1, 4_000 // max(len(masks[0]) if masks else 1, 1))
        for start in range(0, n, step):
            idx = list(range(start, min(n, start + step)))
            v = self.owner.worker.call(
                "coalitions", rows=rows, background=self.owner._name("background"), positions=idx,
                masks=[masks[i] for i in idx], members=self.members, weights=self.weights, threads=self.owner.threads,
            )  # fmt: skip
            for local, i in enumerate(idx):
                values[i] = self._combine(masks[i], np.asarray(v[local]), prediction[i])
        return values


class AutoMLEnsemble(Method):
    """The ensemble as the weighted sum of its members' exact (or additive) explanations.

    Args:
        model: The stand-in of the pipeline in its runtime worker.
        background: Aligned raw rows, the one background every member is explained against.
        output: ``probability`` (classifiers) or ``raw`` (regressors).
        seed: Seed of the permutation explainer (each row also uses its row id).
        n_threads: Threads for the members' predictions in the runtime (None: all cores).
    """

    binary_single = False

    def __init__(
        self, model: AutoMLModel, *, background: pd.DataFrame, output: str, seed: int = 0, n_threads: int | None = None
    ):
        self.model, self.worker, self.output = model, model.worker, output
        self.threads = int(n_threads or os.cpu_count() or 1)  # for the members' predictions in the runtime
        card = model.card
        self.token = uuid.uuid4().hex[:12]  # names this explainer's matrices in the runtime worker
        self.sources = np.asarray(card["engineered_sources"], dtype=np.int64)
        self.n_raw, self.n_classes = len(card["feature_names"]), len(card["classes"] or [None])
        self.weights = [float(m["weight"]) for m in card["members"]]
        self.worker.call("transform", frame=background, keep=self._name("background"))
        self.exact = self._exact_members([i for i, m in enumerate(card["members"]) if _exact_candidate(m)])
        agnostic = [i for i in range(len(self.weights)) if i not in self.exact]
        self.agnostic: _GroupPermutation | None = None
        if agnostic:
            outputs = self.worker.call("member_outputs", which=self._name("background"), members=agnostic)
            base = sum(self.weights[i] * np.asarray(o).mean(axis=0) for i, o in zip(agnostic, outputs, strict=True))
            weights = [self.weights[i] for i in agnostic]
            self.agnostic = _GroupPermutation(self, agnostic, weights, np.asarray(base, dtype=np.float64), seed)
        self.last_engineered: np.ndarray | None = None
        self.name = self._describe(card)

    def _name(self, what: str) -> str:
        return f"{what}:{self.token}"

    def _exact_members(self, indices: list[int]) -> dict[int, _Exact]:
        """Exact explainers of members, each checked against the member's own output on background rows."""
        if not indices:
            return {}
        which = self._name("background")
        exports = self.worker.call("export", members=indices)
        inputs = self.worker.call("member_inputs", which=which, members=indices)
        outputs = self.worker.call("member_outputs", which=which, members=indices)
        kept = {}
        for i, export, matrix, output in zip(indices, exports, inputs, outputs, strict=True):
            try:
                member = _Exact(export, matrix, self.output, self.n_classes)
                values, expected = member.explain(_head(matrix, 8))
            except Exception as exc:  # noqa: BLE001 - a member without an exact method is explained agnostically
                log.info("member %s: no exact method (%s)", i, exc)
                continue
            own = np.asarray(output, dtype=np.float64)[: len(values)]
            error = np.max(np.abs(values.sum(axis=1) + expected - own) / np.maximum(1.0, np.abs(own)), initial=0.0)
            if error <= _tolerance(export["kind"]):
                kept[i] = member
            else:
                log.info("member %s: exact method off by %.1e; explained model-agnostically", i, error)
        return kept

    def _describe(self, card: dict[str, Any]) -> str:
        """The method per member, grouped: "interventional TreeSHAP: LightGBMClassifier (0.33), ...; ..."."""
        groups: dict[str, list[str]] = {}
        for i, member in enumerate(card["members"]):
            if i in self.exact:
                how = "linear SHAP" if self.exact[i].kind == "linear" else "interventional TreeSHAP"
            else:
                how = self.agnostic.name if self.agnostic else ""
            behind = " after SparseNormalizer" if "SparseNormalizer" in member["steps"] else ""
            groups.setdefault(how, []).append(f"{member['algorithm']}{behind} ({member['weight']:.2f})")
        parts = [f"{how} for {', '.join(names)}" for how, names in groups.items()]
        return "Azure AutoML ensemble, the weighted sum of its members' SHAP values: " + "; ".join(parts)

    @property
    def engineered_available(self) -> bool:
        """True when every member was explained on engineered columns (no raw-only member)."""
        return self.agnostic is None

    def explain(self, X: Any, row_ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Raw values (n, R, K), base (n, K), prediction (n, K) of aligned raw rows.

        The prediction is the pipeline's own output with each exactly explained member counted as its
        explanation evaluates it (XGBoost sums in float32, shap's kernel keeps leaf values in float32, LightGBM's
        link runs on its own margin): the two agree to about 1e-6 of the output (checked, at most 2e-5), and
        base + contributions equals it to rounding. Every row follows the branches the member's library takes
        (:mod:`core.methods.trees.split_codes`), so no row lands in another leaf.
        ``last_engineered`` keeps the engineered contributions when every member was explained exactly.

        Raises:
            ExplanationError: The explanation does not add up to the model's output (a bug; never silenced).
        """
        n = len(X)
        row_ids = np.arange(n) if row_ids is None else np.asarray(row_ids)
        rows = self._name("rows")
        self.last_engineered_data = _dense(self.worker.call("transform", frame=X, keep=rows))
        own = np.asarray(self.worker.call("predict", frame=X), dtype=np.float64)
        prediction = own.copy()
        k = own.shape[1]
        engineered = np.zeros((n, len(self.sources), k))
        base = np.zeros(k)
        if self.exact:
            indices = list(self.exact)
            inputs = self.worker.call("member_inputs", which=rows, members=indices)
            member_own = self.worker.call("member_outputs", which=rows, members=indices)
            for i, matrix, out in zip(indices, inputs, member_own, strict=True):
                values, expected = self.exact[i].explain(matrix)
                engineered += self.weights[i] * values
                base += self.weights[i] * expected
                # the member as its explanation evaluates it (float64 trees) in place of its own arithmetic
                prediction += self.weights[i] * (expected + values.sum(axis=1) - np.asarray(out, dtype=np.float64))
        raw = _fold(engineered, self.sources, self.n_raw)
        if self.agnostic is not None:
            outputs = self.worker.call("member_outputs", which=rows, members=self.agnostic.members)
            part = sum(w * np.asarray(o, dtype=np.float64) for w, o in zip(self.agnostic.weights, outputs, strict=True))
            raw = raw + self.agnostic.explain_rows(rows, row_ids, np.asarray(part))
            base = base + self.agnostic.base
        self.last_engineered = engineered if self.engineered_available else None
        base_rows = np.broadcast_to(base, (n, k)).copy()
        drift = np.max(np.abs(prediction - own) / np.maximum(1.0, np.abs(own)), initial=0.0)
        if drift > _tolerance("xgboost"):
            raise ExplanationError(f"The members' own output is {drift:.1e} off their trees; please report this model.")
        return raw, base_rows, prediction


def _tolerance(kind: str) -> float:
    """Largest relative gap between an exact member's explanation and its own output (XGBoost sums in float32)."""
    return 2e-5 if kind == "xgboost" else 1e-6


def _head(matrix: dict[str, Any], n: int) -> dict[str, Any]:
    if matrix["format"] == "dense":
        return {"format": "dense", "array": np.asarray(matrix["array"])[:n]}
    end = min(n, int(matrix["shape"][0]))
    stop = int(matrix["indptr"][end])
    return {"format": "csr", "data": matrix["data"][:stop], "indices": matrix["indices"][:stop],
            "indptr": matrix["indptr"][: end + 1], "shape": [end, matrix["shape"][1]]}  # fmt: skip


def _exact_candidate(member: dict[str, Any]) -> bool:
    """Trees or a linear model behind per-column scalers (a row-wise normaliser mixes columns)."""
    steps = member["steps"]
    return (steps[-1] in TREE_MODELS or steps[-1] in LINEAR_MODELS) and all(s in PER_COLUMN_SCALERS for s in steps[:-1])


def _fold(engineered: np.ndarray, sources: np.ndarray, n_raw: int) -> np.ndarray:
    out = np.zeros((engineered.shape[0], n_raw, engineered.shape[2]))
    for j in range(n_raw):
        out[:, j] = engineered[:, sources == j].sum(axis=1)
    return out
