"""Every Streamlit cache of the app, defined once, keyed by content hashes that core computes.

Uploaded models are never unpickled here: the cached object is a :class:`~core.loading.models.LoadedModel` (plain
data plus a handle to its worker process). Failures are cached too (as an :class:`Outcome`), so a refused
file is not re-sent to a worker on every rerun; a crashed worker is not (:func:`_retry_crashes`): the crash
is shown once and the next run starts a fresh worker. Arguments starting with ``_`` are not hashed; the digest
arguments before them are the keys.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from typing import Any

import pandas as pd
import streamlit as st

from core.config import Settings
from core.data import demo as demos
from core.data.alignment import Aligned, align
from core.data.tables import load_table
from core.engine.explain import Explainer, make_explainer
from core.engine.jobs import ExplainJob
from core.errors import ModelLensError, SandboxError, WorkerError
from core.isolation.workers import WorkerPool
from core.loading.model_io import sha256_of
from core.loading.models import LoadedModel, load_model, spare_runtime
from core.store import ShareStore

TTL = 3 * 3600


@dataclass(frozen=True)
class Outcome:
    """A cached result or the typed error that prevented it."""

    value: Any = None
    error: ModelLensError | None = None

    def unwrap(self) -> Any:
        """The value, or raise the cached error."""
        if self.error is not None:
            raise self.error
        return self.value


def _attempt(fn: Any, *args: Any, **kwargs: Any) -> Outcome:
    try:
        return Outcome(fn(*args, **kwargs))
    except ModelLensError as exc:
        return Outcome(error=exc)


def _retry_crashes(cached: Any) -> Any:
    """Keep a crashed worker out of a cache (a worker killed while loading must not refuse the file forever)."""

    @functools.wraps(cached)
    def call(*args: Any, **kwargs: Any) -> Outcome:
        outcome: Outcome = cached(*args, **kwargs)
        if isinstance(outcome.error, WorkerError) and not isinstance(outcome.error, SandboxError):
            cached.clear(*args, **kwargs)
        return outcome

    call.clear = cached.clear  # type: ignore[attr-defined]
    return call


@st.cache_resource(show_spinner=False)
def settings() -> Settings:
    """Deployment settings, read once."""
    return Settings.from_env()


@st.cache_resource(show_spinner=False)
def worker_pool() -> WorkerPool:
    """The server's model workers (shared: keyed by model hash, reaped when idle), with the AutoML spare's runtime."""
    return WorkerPool(settings(), automl_python=spare_runtime(settings()) if settings().spare_automl else None)


@st.cache_resource(show_spinner=False)
def store() -> ShareStore:
    """The persistent share store (MODELLENS_STORE)."""
    return ShareStore(settings().store_dir, default_days=settings().share_days)


def share(share_id: str) -> Outcome:
    """A share's record and bytes.

    The record is checked on every run (a deleted or expired link stops at once); only the bytes of a live
    share are cached.
    """
    checked = _attempt(store().record, share_id)
    return checked if checked.error is not None else _open_share(share_id)


@st.cache_resource(show_spinner="Opening the shared view…", max_entries=64, ttl=600)
def _open_share(share_id: str) -> Outcome:
    return _attempt(store().open, share_id)


@st.cache_resource(show_spinner="Preparing the demo (first start only)…")
def demo_source(name: str) -> tuple[bytes, str, bytes, str]:
    """A built-in demo's model and data bytes (trained once, cached on disk)."""
    model_path, data_path = demos.demo_files(name, settings().home)
    return model_path.read_bytes(), f"{name}.pkl", data_path.read_bytes(), f"{name}.csv"


def digest(data: bytes) -> str:
    """Content hash of an upload (the key of every cache below)."""
    return sha256_of(data)


@_retry_crashes
@st.cache_resource(show_spinner="Loading the model safely in its own worker…", max_entries=32, ttl=TTL)
def model(model_digest: str, filename: str, trusted: bool, _data: bytes) -> Outcome:
    """The uploaded model, loaded in a worker process."""
    return _attempt(load_model, _data, filename, trusted=trusted, pool=worker_pool(), settings=settings())


@st.cache_resource(show_spinner="Reading the table…", max_entries=32, ttl=TTL)
def table(data_digest: str, filename: str, _data: bytes) -> Outcome:
    """The uploaded table."""
    return _attempt(load_table, _data, filename, max_rows=settings().max_rows)


@st.cache_resource(show_spinner=False, max_entries=32, ttl=TTL)
def aligned(
    model_digest: str, data_digest: str, target: str | None, _model: LoadedModel, _table: pd.DataFrame
) -> Outcome:
    """The table matched to the model."""
    return _attempt(align, _model, _table, target=target)


@_retry_crashes
@st.cache_resource(show_spinner="Choosing the explainer…", max_entries=32, ttl=TTL)
def explainer(
    model_digest: str, data_digest: str, target: str | None, output: str, _model: LoadedModel, _aligned: Aligned
) -> Outcome:
    """The explainer of this model on this table in these units."""
    return _attempt(make_explainer, _model, _aligned.frame, output=output)


@st.cache_resource(show_spinner=False, max_entries=32, ttl=TTL)
def job(
    model_digest: str, data_digest: str, target: str | None, output: str, _explainer: Explainer, _model: LoadedModel
) -> ExplainJob:
    """The progressive explanation of the whole table (sample first, then every row in the background).

    The background refinement runs on the Dask scheduler named by MODELLENS_DASK_SCHEDULER when there is
    one, otherwise on extra workers of the model on this machine's cores.
    """
    refiner = None
    address = settings().dask_scheduler
    if address and _model.handle is not None:
        from core.batch.refiner import DaskRefiner

        refiner = DaskRefiner.for_model(address, _explainer, _model)
    return ExplainJob(_explainer, budget_seconds=settings().explain_budget_seconds, refiner=refiner)


@st.cache_resource(show_spinner="Reading the batch run's results…", max_entries=8, ttl=TTL)
def batch_result(model_digest: str, data_digest: str, _aligned: Aligned, task: str) -> Outcome:
    """A finished `modellens explain --out DIR` run for exactly this model and data file, as a result, if any."""
    from core.batch.index import find_batch
    from core.batch.job import BatchResult
    from core.batch.refiner import batch_explain_result

    folder = find_batch(model_digest, data_digest, settings())
    if folder is None:
        return Outcome(None)
    return _attempt(batch_explain_result, BatchResult(folder), _aligned.frame, task=task)


@st.cache_resource(show_spinner="Scoring every row…", max_entries=32, ttl=TTL)
def predictions(
    model_digest: str, data_digest: str, target: str | None, output: str, _model: LoadedModel, _aligned: Aligned
) -> Outcome:
    """The model's own output for every row, in ``output`` units (every class's column)."""
    return _attempt(_model.predict, _aligned.frame, output)


@st.cache_resource(show_spinner=False, max_entries=32, ttl=TTL)
def model_importances(
    model_digest: str, data_digest: str, target: str | None, output: str, _explainer: Explainer
) -> Outcome:
    """The model's own importances on raw columns (empty when it has none)."""
    return _attempt(_explainer.importances)


@st.cache_resource(show_spinner=False)
def _permutations() -> dict[tuple[str, str, str], Outcome]:
    """Finished permutation importances by (model, table, target), computed outside any cache to show progress."""
    return {}


def permutation(
    model_digest: str, data_digest: str, target: str, model: LoadedModel, aligned: Aligned, progress: Any = None
) -> Outcome:
    """Permutation importance on (a sample of) the table with its target, once per model, table and target.

    ``progress(columns_done, columns, seconds_left)`` is called while it runs (see
    :meth:`~core.loading.models.LoadedModel.permutation_importance`). A crashed worker is not remembered.
    """
    if aligned.target is None:
        return Outcome(error=ModelLensError("Permutation importance needs the target column."))
    done, key = _permutations(), (model_digest, data_digest, target)
    if key in done:
        return done[key]
    outcome = _attempt(model.permutation_importance, aligned.frame, aligned.target, progress=progress)
    if not (isinstance(outcome.error, WorkerError) and not isinstance(outcome.error, SandboxError)):
        while len(done) >= 32:
            done.pop(next(iter(done)))
        done[key] = outcome
    return outcome


@_retry_crashes
@st.cache_resource(show_spinner="Explaining the edited row…", max_entries=256, ttl=TTL)
def whatif(
    model_digest: str,
    data_digest: str,
    output: str,
    class_key: str,
    row: int,
    changes: tuple[tuple[str, Any], ...],
    _explainer: Explainer,
    _model: LoadedModel,
    _class_label: Any,
) -> Outcome:
    """Row ``row`` and its copy with ``changes``, both explained exactly (the what-if panel)."""
    from core.whatif.scenario import what_if

    return _attempt(what_if, _explainer, _model, row, dict(changes), class_label=_class_label)


@_retry_crashes
@st.cache_resource(show_spinner="Sweeping the feature across its values…", max_entries=128, ttl=TTL)
def sensitivity(
    model_digest: str,
    data_digest: str,
    output: str,
    class_key: str,
    row: int,
    feature: str,
    changes: tuple[tuple[str, Any], ...],
    _explainer: Explainer,
    _model: LoadedModel,
    _class_label: Any,
) -> Outcome:
    """One row's prediction and one feature's contribution across the feature's values (the what-if panel)."""
    from core.whatif.sensitivity import sensitivity as sweep

    return _attempt(sweep, _explainer, _model, row, feature, changes=dict(changes), class_label=_class_label)


@_retry_crashes
@st.cache_resource(show_spinner="Searching for the smallest changes…", max_entries=64, ttl=TTL)
def counterfactuals(
    model_digest: str,
    data_digest: str,
    output: str,
    class_key: str,
    row: int,
    goal: str,
    freeze: tuple[str, ...],
    bounds: str,
    k: int,
    _explainer: Explainer,
    _model: LoadedModel,
    _class_label: Any,
) -> Outcome:
    """Up to ``k`` smallest edits of row ``row`` that reach ``goal`` (the what-if panel's search)."""
    from core.whatif.counterfactual import counterfactuals as search
    from core.whatif.counterfactual import parse_bounds, parse_goal

    def run() -> Any:
        target = parse_goal(goal, _model.classes, _model.task)
        limits = parse_bounds(bounds)
        return search(_model, _explainer, row, target, freeze=freeze, bounds=limits, k=k, class_label=_class_label)

    return _attempt(run)


@_retry_crashes
@st.cache_resource(show_spinner="Sweeping the feature on sampled rows…", max_entries=64, ttl=TTL)
def ice(
    model_digest: str,
    data_digest: str,
    output: str,
    class_key: str,
    feature: str,
    _explainer: Explainer,
    _model: LoadedModel,
    _class_label: Any,
) -> Outcome:
    """ICE curves of one feature on a seeded sample of rows (the dependence view)."""
    from core.whatif.sensitivity import ice_bundle

    return _attempt(ice_bundle, _explainer, _model, feature, class_label=_class_label)


class Lazy:
    """A cached computation run on first use, with progress (like a job's sample): one run per cache entry.

    A crashed worker's error is not kept: the next call tries again.
    """

    def __init__(self, fn: Any):
        self._fn = fn
        self._lock = threading.Lock()
        self._outcome: Outcome | None = None

    def get(self, progress: Any = None) -> Outcome:
        """The outcome, computing it now (reporting to ``progress(done, total)``) if it is not there yet."""
        with self._lock:
            if self._outcome is None:
                outcome = _attempt(self._fn, progress)
                crashed = isinstance(outcome.error, WorkerError) and not isinstance(outcome.error, SandboxError)
                if crashed:
                    return outcome
                self._outcome = outcome
            return self._outcome


@st.cache_resource(show_spinner="Comparing the cohorts…", max_entries=32, ttl=TTL)
def cohort_comparison(
    view: tuple[object, ...],
    cohorts: tuple[tuple[str, str], ...],
    _expl: Any,
    _table: pd.DataFrame,
    _target: pd.Series | None,
    _scores: Any,
    _model: LoadedModel,
) -> Outcome:
    """Named cohorts compared on the explained rows (counts, predictions and metrics on every row).

    ``view`` is the key of what the explanation shows (:func:`ui.cohorts.view_key`).
    """
    from core.cohorts.compare import Cohort, compare_named

    named = [Cohort(name, query) for name, query in cohorts]
    return _attempt(
        compare_named, _expl, _table, named, target=_target, scores=_scores, classes=_model.classes, task=_model.task
    )


@st.cache_resource(show_spinner="Finding where the model is wrong (every row)…", max_entries=16, ttl=TTL)
def error_analysis(
    view: tuple[object, ...],
    _frame: pd.DataFrame,
    _target: pd.Series,
    _scores: Any,
    _model: LoadedModel,
    _expl: Any,
) -> Outcome:
    """The error tree over every row of the table and the wrong-vs-right gap on the explained rows.

    ``view`` is the key of what the explanation shows (:func:`ui.cohorts.view_key`).
    """
    from core.cohorts.errortree import error_analysis as analyse
    from core.cohorts.errortree import predicted_values

    predicted = predicted_values(_scores, _model.classes, _model.task)
    return _attempt(analyse, _frame, _target, predicted, _model.task, _expl)


@st.cache_resource(show_spinner=False, max_entries=8, ttl=TTL)
def other_table(
    model_digest: str, data_digest: str, other_digest: str, output: str, rows: int, _explainer: Explainer, _frame: Any
) -> Lazy:
    """A seeded sample of a second table explained with the first table's explainer (the explanation diff)."""
    from core.cohorts.diff import explain_other_table

    return Lazy(lambda progress: explain_other_table(_explainer, _frame, rows=rows, progress=progress))
