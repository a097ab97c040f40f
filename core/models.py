"""Loading a model upload: :func:`load_model` returns a :class:`LoadedModel`, plain data plus a worker handle.

The model object itself stays in its worker process (:mod:`core.worker`); what comes back is its card:
library, class, task, classes, input columns, pipeline steps, notices, and the file's sha256.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd

from core import model_io
from core.config import Settings
from core.errors import MissingDependencyError, ModelLoadError
from core.worker import ModelWorker, WorkerPool, default_pool

__all__ = ["LoadedModel", "ModelHandle", "load_model"]


class ModelHandle:
    """Client-side handle: the upload's bytes and its worker(s), reloading after a crash.

    Only this object talks to the workers of one model; it keeps the bytes so that a fresh worker (after
    a crash or an idle reap) can load the model again transparently.
    """

    def __init__(self, data: bytes, filename: str, *, trusted: bool, pool: WorkerPool, settings: Settings):
        self.data, self.filename, self.trusted = data, filename, trusted
        self.sha256 = model_io.sha256_of(data)
        self.pool, self.settings = pool, settings
        self.key = (self.sha256, "trusted" if trusted else "safe", "main")
        self._lock = threading.Lock()
        self.card: dict[str, Any] = {}

    def worker(self, index: int = 0) -> ModelWorker:
        """The index-th worker of this model, started and loaded."""
        worker = self.pool.get(self.key, lambda: ModelWorker(self.settings, label="model"), index)
        with worker.lock:
            if not worker.alive or worker.info.get("loaded") != self.sha256:
                worker.start()
                worker.info["card"] = worker.call(
                    "load",
                    data=self.data,
                    filename=self.filename,
                    trusted=self.trusted,
                    max_bytes=self.settings.max_model_bytes,
                )
                worker.info["loaded"] = self.sha256
            self.card = worker.info["card"]
        return worker

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
            handle=handle,
        )

    def card(self) -> dict[str, Any]:
        """The model card as JSON-ready plain data."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "handle"}

    @property
    def is_classifier(self) -> bool:
        """True for binary and multiclass models."""
        return self.task in ("binary", "multiclass")

    def predict(self, frame: pd.DataFrame, output: str | None = None) -> np.ndarray:
        """The model's output (n, K) for aligned rows: probabilities, margins or predictions."""
        if self.handle is None:
            raise ModelLoadError("This model card has no worker attached; load the model again.")
        return np.asarray(self.handle.call("predict", frame=frame, output=output or self.outputs[0]))


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
    info = model_io.inspect_upload(data, filename, max_bytes=settings.max_model_bytes)
    if info.automl:
        raise _automl_unavailable(info)
    handle = ModelHandle(data, filename, trusted=trusted, pool=pool or default_pool(), settings=settings)
    handle.worker(0)
    return LoadedModel.from_card(handle.card, handle)


def _automl_unavailable(info: model_io.UploadInfo) -> MissingDependencyError:
    version = info.automl_runtime
    return MissingDependencyError(
        "This is an Azure AutoML model; it needs the AutoML runtime, which is not installed: run "
        f"`modellens runtime install azureml-automl{' --version ' + version if version else ''}`.",
        package="azureml-automl-runtime",
        trained_version=version,
    )
