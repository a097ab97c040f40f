"""The Azure AutoML worker: ``<runtime python> -m core.runtimes.automl_worker``, inside the AutoML runtime's venv.

It runs Python 3.9/3.10 with Microsoft's runtime (numpy 1.23, pandas 1.5, scikit-learn 1.5), so it imports
only ModelLens modules that stay compatible there (wire, safe_pickle, allowlist, errors, isolation.serve). The
model is loaded with the allowlisting unpickler under :func:`core.safety.safe_pickle.automl_policy`; only plain data
leaves: the model card, engineered matrices, member exports (LightGBM text, XGBoost JSON, tree arrays,
coefficients) and model outputs. The SHAP arithmetic runs in the dashboard's own engine (:mod:`core.methods.automl`).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import tempfile
from typing import Any, cast

import numpy as np

log = logging.getLogger("modellens.automl")


class Model:
    """The loaded AutoML pipeline, its parts, and the rows it was last asked about."""

    sources: list[int]  # each engineered column's raw column, set by op_load

    def __init__(self, obj: Any):
        self.obj = obj
        self.inner = getattr(obj, "pipeline", obj)
        self.label_encoder = getattr(obj, "y_transformer", None)
        self.dt = self.inner.steps[0][1]
        self.final = self.inner.steps[-1][1]
        core = getattr(self.final, "_wrappedEnsemble", self.final)
        if hasattr(core, "estimators_") and type(self.final).__name__.startswith("PreFittedSoftVoting"):
            self.members = list(core.estimators_)
            self.member_names = [str(name) for name, _ in core.estimators]
            weights = core.weights if core.weights is not None else [1.0] * len(self.members)
        else:  # a single model after the featurizer (or a stack ensemble, explained as a whole)
            from sklearn.pipeline import Pipeline

            self.members = [Pipeline(self.inner.steps[1:]) if len(self.inner.steps) > 2 else self.final]
            self.member_names = ["model"]
            weights = [1.0]
        total = float(np.sum(weights))
        self.weights = [float(w) / total for w in weights]
        self.task = "regression" if not hasattr(self.final, "predict_proba") else "classification"
        self.classes = None if self.task == "regression" else [_plain(c) for c in np.asarray(obj.classes_).tolist()]
        self.ensemble_classes = None if self.task == "regression" else list(np.asarray(self.final.classes_).tolist())
        self.kept: dict[str, Any] = {}  # engineered matrices by name (each explainer's background, its rows)

    # -- model outputs ---------------------------------------------------------------------------------
    def member_output(self, index: int, Xt: Any, threads: int = 0) -> np.ndarray:
        """Member ``index`` on engineered rows: probabilities in the ensemble's class order, or predictions.

        ``threads`` > 1 lets a LightGBM member predict on that many threads (its wrapper's output is its
        model's, row by row, so the numbers do not change; AutoML trains them with one thread).
        """
        member = self.members[index]
        method = "predict" if self.task == "regression" else "predict_proba"
        if self.task == "regression":
            return np.asarray(_call(member, Xt, method, threads), dtype=np.float64).reshape(-1, 1)
        proba = np.asarray(_call(member, Xt, method, threads), dtype=np.float64)
        assert self.ensemble_classes is not None  # set for every classifier
        member_classes = list(getattr(member, "classes_", self.ensemble_classes))
        if member_classes == self.ensemble_classes:
            return proba
        out = np.zeros((proba.shape[0], len(self.ensemble_classes)))
        for j, c in enumerate(member_classes):
            out[:, self.ensemble_classes.index(c)] = proba[:, j]
        return out

    def ensemble_output(self, Xt: Any) -> np.ndarray:
        """The weighted members on engineered rows (equals the pipeline's own output)."""
        return cast(np.ndarray, sum(w * self.member_output(i, Xt) for i, w in enumerate(self.weights)))

    def output(self, frame: Any) -> np.ndarray:
        """The whole pipeline's own output on raw rows: predict_proba (n, K) or predict (n, 1)."""
        if self.task == "regression":
            return np.asarray(self.obj.predict(frame), dtype=np.float64).reshape(-1, 1)
        proba = self.obj.predict_proba(frame)
        return np.asarray(getattr(proba, "values", proba), dtype=np.float64)


def _call(member: Any, Xt: Any, method: str, threads: int) -> Any:
    steps = getattr(member, "steps", None)
    final = steps[-1][1] if steps else member
    inner = getattr(final, "model", None)
    if threads > 1 and inner is not None and type(inner).__module__.startswith("lightgbm"):
        Xs = member[:-1].transform(Xt) if steps and len(steps) > 1 else Xt
        return getattr(inner, method)(Xs, num_threads=threads)
    return getattr(member, method)(Xt)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _plain_value(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    value = _plain(value)
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)


def _matrix(X: Any) -> dict[str, Any]:
    if hasattr(X, "tocsr"):
        X = X.tocsr()
        return {"format": "csr", "data": X.data, "indices": X.indices, "indptr": X.indptr, "shape": list(X.shape)}
    return {"format": "dense", "array": np.asarray(X, dtype=np.float64)}


def _frame(model: Model, frame: Any) -> Any:
    return frame[list(model.dt._raw_feature_names)]


# -- operations --------------------------------------------------------------------------------------------
def op_ping(state: Any) -> str:
    """Liveness check."""
    return "pong"


def op_load(state: Any, data: bytes, filename: str, trusted: bool = False, max_bytes: int = 1024**3) -> dict[str, Any]:
    """Load the AutoML model (allowlisting unpickler unless trusted) and describe it."""
    import pickle
    import warnings

    from core.errors import ModelLoadError
    from core.safety import safe_pickle

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if trusted:
            obj = pickle.loads(data)  # noqa: S301 - explicit local opt-in (--trust)
        else:
            obj = safe_pickle.safe_load(_model_bytes(data), safe_pickle.automl_policy(max_bytes)).obj
    if not hasattr(obj, "steps") and not hasattr(obj, "pipeline"):
        raise ModelLoadError(f"This AutoML file holds a {type(obj).__name__}, not a fitted AutoML pipeline.")
    state.model = Model(obj)
    state.model.sources = _sources(state.model.dt)
    return _card(state.model)


def _model_bytes(data: bytes) -> bytes:
    """The model.pkl inside an uploaded zip, or the bytes themselves."""
    if data[:4] != b"PK\x03\x04":
        return data
    import io
    import zipfile

    archive = zipfile.ZipFile(io.BytesIO(data))
    names = [n for n in archive.namelist() if n.rsplit("/", 1)[-1] == "model.pkl"]
    return archive.read(sorted(names, key=lambda n: n.count("/"))[0])


def _card(model: Model) -> dict[str, Any]:
    dt = model.dt
    summary = dt.get_featurization_summary()
    members = []
    for name, weight, member in zip(model.member_names, model.weights, model.members):
        steps = [type(s).__name__ for _, s in getattr(member, "steps", [("model", member)])]
        members.append({"name": name, "weight": weight, "steps": steps, "algorithm": steps[-1]})
    types = {str(row["RawFeatureName"]): str(row["TypeDetected"]) for row in summary}
    return {
        "library": "Azure AutoML",
        "class_name": f"{type(model.obj).__module__}.{type(model.obj).__name__}",
        "estimator": type(model.final).__name__,
        "task": model.task if model.task == "regression" else ("binary" if len(model.classes) == 2 else "multiclass"),  # type: ignore[arg-type]  # classifier: classes set
        "classes": model.classes,
        "feature_names": [str(c) for c in dt._raw_feature_names],
        "n_features": len(dt._raw_feature_names),
        "input_kinds": {
            c: ("numeric" if types.get(c) == "Numeric" else "categorical") for c in map(str, dt._raw_feature_names)
        },
        "categories": {},
        "detected_types": types,
        "featurization": [{str(k): _plain_value(v) for k, v in row.items()} for row in summary],
        "members": members,
        "engineered_names": [str(n) for n in dt.get_engineered_feature_names()],
        "engineered_sources": model.sources,
        "steps": [{"name": str(n), "class": type(s).__name__, "detail": ""} for n, s in model.inner.steps],
    }


def _sources(dt: Any) -> list[int]:
    """For each engineered column, the index of the raw column it comes from (AutoML's own map)."""
    raw = [str(c) for c in dt._raw_feature_names]
    out = []
    for text in dt.get_json_strs_for_engineered_feature_names():
        doc = json.loads(text)
        inputs = doc.get("Transformations", {}).get("Transformer1", {}).get("Input", [])
        first = inputs[0] if inputs else None
        out.append(raw.index(str(first)) if str(first) in raw else -1)
    return out


MAX_KEPT = 16


def op_transform(state: Any, frame: Any, keep: str = "") -> dict[str, Any]:
    """Engineered matrix of raw rows (CSR or dense, as the featurizer makes it); ``keep`` caches it by name."""
    Xt = state.model.dt.transform(_frame(state.model, frame))
    if keep:
        kept = state.model.kept
        kept.pop(keep, None)
        kept[keep] = Xt
        while len(kept) > MAX_KEPT:  # oldest first: explainers long gone
            del kept[next(iter(kept))]
    return _matrix(Xt)


def _kept(state: Any, name: str) -> Any:
    try:
        return state.model.kept[name]
    except KeyError:
        raise LookupError(f"no engineered rows kept under {name!r}; transform them first") from None


def op_member_inputs(state: Any, which: str, members: list[int]) -> list[dict[str, Any]]:
    """Each member's own input (after its scalers) for the cached rows or background, bit-exact."""
    Xt = _kept(state, which)
    out = []
    for i in members:
        member = state.model.members[i]
        steps = getattr(member, "steps", None)
        out.append(_matrix(member[:-1].transform(Xt) if steps and len(steps) > 1 else Xt))
    return out


def op_member_outputs(state: Any, which: str, members: list[int]) -> list[np.ndarray]:
    """Each member's output on the cached rows or background."""
    Xt = _kept(state, which)
    return [state.model.member_output(i, Xt) for i in members]


def op_predict(state: Any, frame: Any) -> np.ndarray:
    """The pipeline's own output on raw rows."""
    return cast(np.ndarray, state.model.output(_frame(state.model, frame)))


def op_coalitions(
    state: Any,
    rows: str,
    background: str,
    positions: list[int],
    masks: list[np.ndarray],
    members: list[int],
    weights: list[float],
    threads: int = 0,
) -> list[np.ndarray]:
    """Coalition values v(S) of kept rows for the weighted members, against a kept background.

    v(S) is the members' mean output over the background when the raw columns in S come from the row and the
    others from each background row; engineered columns follow their raw column, so no featurization runs.
    """
    import scipy.sparse as sp

    model = state.model
    rows, background = _kept(state, rows), _kept(state, background)  # names rebound to matrices
    sparse = hasattr(rows, "tocsr")
    source = np.asarray(model.sources, dtype=np.int64)
    dense_bg = background.toarray() if sparse else np.asarray(background, dtype=np.float64)  # type: ignore[attr-defined]  # rebound
    b = dense_bg.shape[0]
    out = []
    for position, mask in zip(positions, masks):
        x = rows[position].toarray()[0] if sparse else np.asarray(rows[position], dtype=np.float64)  # type: ignore[attr-defined]  # rebound
        use_x = np.asarray(mask, dtype=bool)[:, np.clip(source, 0, None)] & (source >= 0)[None, :]  # (C, E)
        stacked = np.where(np.repeat(use_x, b, axis=0), x[None, :], np.tile(dense_bg, (len(mask), 1)))
        matrix = sp.csr_matrix(stacked) if sparse else stacked
        value = sum(w * model.member_output(i, matrix, threads) for i, w in zip(members, weights))
        out.append(value.reshape(len(mask), b, -1).mean(axis=1))
    return out


def op_export(state: Any, members: list[int]) -> list[dict[str, Any]]:
    """Portable descriptions of tree members: LightGBM model text, XGBoost JSON, or tree arrays.

    A tree export names the dtype its library casts a row to before comparing it with the thresholds
    (``input_dtype``): the explanation must compare exactly the same numbers.
    """
    return [_export(state.model.members[i]) for i in members]


def _export(member: Any) -> dict[str, Any]:
    final = member.steps[-1][1] if hasattr(member, "steps") else member
    inner = getattr(final, "model", final)
    module = type(inner).__module__
    if module.startswith("lightgbm"):
        booster = getattr(inner, "booster_", inner)
        return {"kind": "lightgbm", "text": booster.model_to_string(), "input_dtype": "float64"}
    if module.startswith("xgboost"):
        booster = inner.get_booster() if hasattr(inner, "get_booster") else inner
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "model.json")
            booster.save_model(path)
            with open(path, encoding="utf-8") as fh:
                return {"kind": "xgboost", "json": fh.read(), "input_dtype": "float32"}
    if hasattr(inner, "estimators_") or hasattr(inner, "tree_"):
        from sklearn.tree._tree import DTYPE  # what scikit-learn casts rows to before walking its trees

        trees = list(getattr(inner, "estimators_", [inner]))
        return {
            "kind": "sklearn-trees",
            "input_dtype": np.dtype(DTYPE).name,
            "classifier": hasattr(inner, "classes_"),
            "trees": [
                {
                    "children_left": t.tree_.children_left,
                    "children_right": t.tree_.children_right,
                    "feature": t.tree_.feature,
                    "threshold": t.tree_.threshold,
                    "value": t.tree_.value.reshape(t.tree_.node_count, -1),
                    "weight": t.tree_.weighted_n_node_samples,
                }
                for t in trees
            ],
        }
    if hasattr(inner, "coef_"):
        return {"kind": "linear", "coef": np.atleast_2d(inner.coef_), "intercept": np.atleast_1d(inner.intercept_)}
    return {"kind": "other"}


def warm_up() -> None:
    """Import the runtime before the first request (about 1.5 s) and work in a throwaway directory."""
    import warnings

    os.chdir(tempfile.mkdtemp(prefix="modellens-automl-"))  # the featurizer may write next to its working dir
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import azureml.automl.runtime.featurization.data_transformer  # noqa: F401
        import azureml.training.tabular.models.voting_ensemble  # noqa: F401


def runtime_info() -> dict[str, Any]:
    """Python and library versions of the runtime."""
    from importlib import metadata

    versions = {}
    for name in ("azureml-automl-runtime", "scikit-learn", "numpy", "pandas", "lightgbm", "xgboost"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {"python": platform.python_version(), "versions": versions}


def _handle(state: Any, request: dict[str, Any]) -> Any:
    op = request.pop("op", "")
    handler = globals().get(f"op_{op}")
    if handler is None:
        raise ValueError(f"unknown AutoML worker operation {op!r}")
    return handler(state, **request)


def main() -> None:
    """Serve requests until stdin closes."""
    from core.isolation.serve import serve

    serve(_handle, warm_up, runtime_info)


if __name__ == "__main__":
    main()
