"""Loading a model upload: :func:`load_model` returns a :class:`LoadedModel`, plain data plus a worker handle.

The model object itself stays in its worker process (:mod:`core.isolation.workers`); what comes back is its card:
library, class, task, classes, input columns, pipeline steps, notices, and the file's sha256.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd

from core.config import Settings
from core.errors import MissingDependencyError, ModelLoadError
from core.isolation.workers import ModelWorker, WorkerPool, default_pool
from core.loading import model_io
from core.runtimes import registry as runtimes

__all__ = ["LoadedModel", "ModelHandle", "load_model"]


class ModelHandle:
    """Client-side handle: the upload's bytes and its worker(s), reloading after a crash.

    Only this object talks to the workers of one model; it keeps the bytes so that a fresh worker (after
    a crash or an idle reap) can load the model again transparently.
    """

    def __init__(
        self,
        data: bytes,
        filename: str,
        *,
        trusted: bool,
        pool: WorkerPool,
        settings: Settings,
        automl: runtimes.RuntimeRecord | None = None,
    ):
        self.data, self.filename, self.trusted = data, filename, trusted
        self.automl = automl  # the Azure AutoML runtime the model runs in, if it is one
        self.automl_python = str(automl.python_executable) if automl else None
        self.sha256 = model_io.sha256_of(data)
        self.pool, self.settings = pool, settings
        self.key = (self.sha256, "trusted" if trusted else "safe", "main")
        self._lock = threading.Lock()
        self.card: dict[str, Any] = {}

    def worker(self, index: int = 0) -> ModelWorker:
        """The index-th worker of this model, started and loaded."""
        worker = self.pool.get(
            self.key, lambda: ModelWorker(self.settings, label="model", spawns=self.automl_python), index
        )
        with worker.lock:
            if not worker.alive or worker.info.get("loaded") != self.sha256:
                worker.start()
                worker.info["card"] = worker.call(
                    "load",
                    data=self.data,
                    filename=self.filename,
                    trusted=self.trusted,
                    max_bytes=self.settings.max_model_bytes,
                    automl_python=self.automl_python,
                )
                worker.info["loaded"] = self.sha256
                runtime = worker.info["card"].setdefault("runtime", {})
                runtime["sandbox"] = worker.sandbox
            self.card = worker.info["card"]
        return worker

    def worker_alive(self, index: int = 0) -> bool:
        """True when the index-th worker's process runs (it may have been stopped when idle or to make room)."""
        return any(w.alive for w in self.pool.workers(self.key)[index : index + 1])

    def call(self, op: str, *, index: int = 0, **payload: Any) -> Any:
        """One request on the index-th worker."""
        return self.worker(index).call(op, **payload)


@dataclass(frozen=True)
class LoadedModel:
    """A model as plain data (its card), with the handle to the worker that holds it.

    Attributes:
        sha256: Hash of the uploaded file.
        filename: The upload's name.
        format: ``pickle``, ``joblib``, ``skops``, ``xgboost-json``, ...
        library: ``scikit-learn``, ``XGBoost``, ``LightGBM``, ``CatBoost``.
        class_name: Full class of the uploaded object.
        estimator: Class of the final estimator.
        task: ``binary``, ``multiclass`` or ``regression``.
        classes: Class labels in the model's order (classifiers).
        feature_names: Input columns, or None when fitted on bare arrays.
        n_features: Number of input columns.
        input_kinds: Column -> ``numeric`` / ``categorical``.
        categories: Known categories of categorical columns.
        steps: Pipeline steps (``name``, ``class``, ``detail``).
        outputs: Units it can be explained in, the default first.
        notices: Things the user should know (version skew, trusted load, ...).
        trusted: Loaded with the plain unpickler (``--trust``).
        container: ``file``, ``mlflow-zip`` or ``automl-zip``.
        runtime: The Python and library versions of the worker that holds the model.
        automl: For Azure AutoML models: ``members`` (name, algorithm, steps, weight), ``featurization``
            (AutoML's summary: detected type and transformations per raw column) and ``engineered_names``.
    """

    sha256: str
    filename: str
    format: str
    library: str
    class_name: str
    estimator: str
    task: str
    classes: tuple[Any, ...] | None
    feature_names: tuple[str, ...] | None
    n_features: int | None
    input_kinds: dict[str, str]
    categories: dict[str, list[Any]]
    steps: tuple[dict[str, str], ...]
    outputs: tuple[str, ...]
    notices: tuple[str, ...] = ()
    trusted: bool = False
    container: str = "file"
    runtime: dict[str, Any] = field(default_factory=dict)
    automl: dict[str, Any] | None = None
    handle: ModelHandle | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_card(cls, card: dict[str, Any], handle: ModelHandle | None = None) -> LoadedModel:
        """Build from a worker's card dict."""
        names = card.get("feature_names")
        return cls(
            sha256=card["sha256"],
            filename=card.get("filename", ""),
            format=card.get("format", ""),
            library=card.get("library", ""),
            class_name=card.get("class_name", ""),
            estimator=card.get("estimator", ""),
            task=card["task"],
            classes=tuple(card["classes"]) if card.get("classes") is not None else None,
            feature_names=tuple(names) if names is not None else None,
            n_features=card.get("n_features"),
            input_kinds=dict(card.get("input_kinds") or {}),
            categories=dict(card.get("categories") or {}),
            steps=tuple(card.get("steps") or ()),
            outputs=tuple(card.get("outputs") or ()),
            notices=tuple(card.get("notices") or ()),
            trusted=bool(card.get("trusted")),
            container=card.get("container", "file"),
            runtime=dict(card.get("runtime") or {}),
            automl=_automl_details(card),
            handle=handle,
        )

    def card(self) -> dict[str, Any]:
        """The model card as JSON-ready plain data."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "handle"}

    def automl_tables(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """For an Azure AutoML model, the card's two tables as rows: ensemble members, and AutoML's featurization.

        Both are empty for other models.
        """
        details = self.automl or {}
        members = [
            {
                "member": str(m["name"]),
                "model": str(m["algorithm"]),
                "preprocessing": " → ".join(m["steps"][:-1]) or "—",
                "weight": round(float(m["weight"]), 4),
            }
            for m in details.get("members") or []
        ]
        featurization = [
            {
                "column": str(row.get("RawFeatureName", "")),
                "detected type": str(row.get("TypeDetected", "")),
                "dropped": str(row.get("Dropped", "")),
                "engineered columns": int(row.get("EngineeredFeatureCount") or 0),
                "transformations": ", ".join(map(str, row.get("Transformations") or [])) or "—",
            }
            for row in details.get("featurization") or []
        ]
        return members, featurization

    @property
    def isolation(self) -> str:
        """One sentence on the OS sandbox the model runs in (for the model card)."""
        reports: list[Any] = [self.runtime.get("sandbox"), self.runtime.get("runtime_sandbox")]
        reports = [r for r in reports if r is not None]
        if not reports or not all(r.get("active") for r in reports):
            return "Not sandboxed: this server was told to open models without the OS sandbox."
        first = reports[0]
        layers = [f"Landlock ABI {first['landlock']}", "seccomp", "no capabilities"]
        if "net" in (first.get("namespaces") or []):
            layers.append("no network")
        where = "its worker and the AutoML runtime's" if len(reports) > 1 else "its worker"
        checked = min(len(r.get("verified") or []) for r in reports)
        return f"Sandboxed in {where} ({', '.join(layers)}): {checked} forbidden actions checked to fail."

    @property
    def is_classifier(self) -> bool:
        """True for binary and multiclass models."""
        return self.task in ("binary", "multiclass")

    def predict(self, frame: pd.DataFrame, output: str | None = None) -> np.ndarray:
        """The model's output (n, K) for aligned rows: probabilities, margins or predictions."""
        if self.handle is None:
            raise ModelLoadError("This model card has no worker attached; load the model again.")
        return np.asarray(self.handle.call("predict", frame=frame, output=output or self.outputs[0]))

    def permutation_importance(
        self,
        frame: pd.DataFrame,
        target: pd.Series,
        *,
        rows: int = 2000,
        seed: int = 0,
        progress: Callable[[int, int, float | None], None] | None = None,
    ) -> dict[str, Any]:
        """Drop in the model's score when each raw column is shuffled, on a seeded sample of ``rows`` rows.

        Columns are asked for in groups of about a second each (the first column alone, to measure), and
        ``progress(columns_done, columns, seconds_left)`` is called after each group with an estimate of the time
        left (None until a second group has measured the pace). The figures do not depend on the grouping.

        Returns ``{"mean", "std"}`` per raw column of ``frame`` and the ``scoring`` used (accuracy or R²).
        """
        if self.handle is None:
            raise ModelLoadError("This model card has no worker attached; load the model again.")
        sample = frame.sample(min(len(frame), rows), random_state=seed)
        values = target.loc[sample.index].to_numpy()
        sample = sample.reset_index(drop=True)
        width = sample.shape[1]
        means: list[float] = []
        stds: list[float] = []
        scoring, per_column, pace = "", None, [0.0, 0]
        if progress is not None:
            progress(0, width, None)
        while len(means) < width:
            size = 1 if per_column is None else max(1, int(1.0 / max(per_column, 1e-3)))
            columns = list(range(len(means), min(width, len(means) + size)))
            started = time.perf_counter()
            part = self.handle.call("permutation_importance", frame=sample, target=values, seed=seed, columns=columns)
            means.extend(np.asarray(part["mean"], dtype=float).tolist())
            stds.extend(np.asarray(part["std"], dtype=float).tolist())
            scoring = part["scoring"]
            elapsed = time.perf_counter() - started
            if per_column is None:  # the first group's time includes the sample's transfer and unshuffled score
                per_column, pace = elapsed / len(columns), [0.0, 0]
            else:  # the pace since then, over every later group: steadier than the last group alone
                pace = [pace[0] + elapsed, pace[1] + len(columns)]
                per_column = pace[0] / pace[1]
            if progress is not None:
                progress(len(means), width, per_column * (width - len(means)) if pace[1] else None)
        return {"mean": np.asarray(means), "std": np.asarray(stds), "scoring": scoring}


def _automl_details(card: dict[str, Any]) -> dict[str, Any] | None:
    if card.get("library") != "Azure AutoML":
        return None
    return {key: card.get(key) for key in ("members", "featurization", "engineered_names", "detected_types")}


def load_model(
    data: bytes,
    filename: str,
    *,
    trusted: bool = False,
    pool: WorkerPool | None = None,
    settings: Settings | None = None,
) -> LoadedModel:
    """Load an uploaded model in a worker process and describe it.

    Args:
        data: The uploaded bytes (pickle, joblib, skops, booster file, or MLflow / AutoML zip).
        filename: The upload's name.
        trusted: Bypass the safe loader (only for a local, single-user ``--trust`` opt-in).
        pool: Worker pool (default: a process-wide one).
        settings: Limits and paths (default: from the environment).

    Raises:
        UnsafeModelError: The file was refused; every refused global is listed and nothing of it ran.
        MissingDependencyError: The model needs a package or runtime that is not installed.
        ModelLoadError: Any other reason (empty, truncated, not a model, wrong format).
        WorkerError: The worker crashed while loading (e.g. a corrupted native booster).
    """
    settings = settings or Settings.from_env()
    info = model_io.inspect_upload(data, filename, max_bytes=settings.max_model_bytes, peek=True)
    runtime = _automl_runtime(info, settings) if info.automl else None
    handle = ModelHandle(
        data,
        filename,
        trusted=trusted,
        pool=pool or default_pool(),
        settings=settings,
        automl=runtime,
    )
    handle.worker(0)
    card = handle.card
    if runtime is not None:
        card = {**card, "notices": [*_automl_notices(info, runtime), *card.get("notices", [])]}
    return LoadedModel.from_card(card, handle)


def spare_runtime(settings: Settings) -> str | None:
    """The interpreter of the newest installed AutoML runtime, for a pool's AutoML spare; None without one."""
    record = runtimes.get_runtime(runtimes.runtimes_root(settings))
    return str(record.python_executable) if record is not None else None


def _automl_runtime(info: model_io.UploadInfo, settings: Settings) -> runtimes.RuntimeRecord:
    """The installed AutoML runtime for this upload (its trained version, else the nearest installed)."""
    record = runtimes.get_runtime(runtimes.runtimes_root(settings), info.automl_runtime)
    if record is None:
        raise _automl_unavailable(info)
    return record


def _automl_notices(info: model_io.UploadInfo, runtime: runtimes.RuntimeRecord) -> list[str]:
    notices = [
        f"Azure AutoML model (runtime {runtime.version}, Python {runtime.python_version}) — explained in the AutoML "
        "runtime, in its own worker; only plain data reaches the dashboard."
    ]
    trained = info.automl_runtime
    if not trained:
        notices.append(
            "The upload does not say which AutoML version trained it (upload the output zip with its conda file "
            f"to be sure); runtime {runtime.version} was used."
        )
        return notices
    known = runtimes.nearest_known(trained)
    if trained.split(".")[:2] != known.split(".")[:2]:
        notices.append(
            f"AutoML {trained} is not a version ModelLens knows ({', '.join(runtimes.KNOWN_VERSIONS)}); the nearest "
            f"installed runtime, {runtime.version}, was used. Its predictions are checked against the model."
        )
    elif known != runtime.version:
        notices.append(
            f"Trained with AutoML {trained}; the nearest installed runtime is {runtime.version}. Predictions are "
            f"checked against the model, but `modellens runtime install azureml-automl --version {known}` "
            "matches it exactly."
        )
    return notices


def _automl_unavailable(info: model_io.UploadInfo) -> MissingDependencyError:
    version = info.automl_runtime
    trained = f" (trained with AutoML {version}" + (
        f", Python {info.pins['python']})" if "python" in info.pins else ")"
    )
    return MissingDependencyError(
        f"This is an Azure AutoML model{trained if version else ''}; it needs the AutoML runtime, which is not "
        f"installed: run `modellens runtime install azureml-automl --version {runtimes.nearest_known(version)}` "
        "(once, 1–4 minutes), then upload it again.",
        package="azureml-automl-runtime",
        trained_version=version,
    )
