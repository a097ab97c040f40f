"""The public explain API: :func:`make_explainer` and :class:`Explainer`.

An explainer belongs to one model, one table and one unit system. It explains rows in chunks (progress,
cancel), sizes a first sample to a time budget so global views never wait for every row, and returns an
:class:`ExplainResult` holding every class, from which :class:`~core.explanation.Explanation` objects for
one class are sliced at no cost. The model runs in its worker (a :class:`~core.loading.models.LoadedModel`) or,
for tests and benchmarks, in-process (a plain estimator).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, cast

import numpy as np
import pandas as pd

from core.classes import class_index, complement, output_column
from core.data.alignment import Aligned
from core.errors import CancelledError, EngineMissing, ExplanationError
from core.explanation import Explanation, units_name

__all__ = ["ExplainResult", "Explainer", "explainer_background", "make_explainer", "sample_order"]

Progress = Callable[[int, int], None]
BACKGROUND_ROWS = 100
MIN_SAMPLE_ROWS = 20  # the first global view never rests on fewer rows (unless the table is smaller)


def sample_order(n_rows: int, seed: int = 0) -> np.ndarray:
    """A seeded random order of all row ids: a prefix of it is the sample shown first."""
    return np.random.default_rng(seed).permutation(n_rows)


@dataclass(frozen=True, eq=False)
class ExplainResult:
    """Every class's contributions for some rows of a table.

    Attributes:
        values: (n, F, K) on raw columns. base, prediction: (n, K).
        engineered: (n, E, K) on engineered columns when the pipeline was folded, else None.
        engineered_data: (n, E) engineered feature values, when available.
        data: (n, F) raw rows shown; row_ids: their positions in the table; total_rows: table size.
    """

    values: np.ndarray
    base: np.ndarray
    prediction: np.ndarray
    data: pd.DataFrame
    row_ids: np.ndarray
    total_rows: int
    feature_names: tuple[str, ...]
    output: str
    method: str
    task: str
    classes: tuple[Any, ...] | None
    binary_single: bool
    engineered: np.ndarray | None = None
    engineered_data: np.ndarray | None = None
    engineered_names: tuple[str, ...] | None = None
    notes: tuple[str, ...] = field(default=())

    def __len__(self) -> int:
        return len(self.row_ids)

    def class_index(self, label: Any) -> int:
        """Position of a class label (matched by value, then by its text; the default class for None)."""
        return class_index(self.classes, label)

    def _column(self, array: np.ndarray, index: int, *, kind: str) -> np.ndarray:
        """One class's slice; the negative class of a single-output binary model is its exact complement."""
        column, negate = output_column(index, binary_single=self.binary_single)
        selected = array[..., column]
        return complement(selected, output=self.output, kind=kind) if negate else selected

    def for_class(self, label: Any = None, *, view: str = "raw") -> Explanation:
        """The explanation of one class (default: the positive class, or the first of many)."""
        index = self.class_index(label)
        class_label = None if self.classes is None else self.classes[index]
        if view == "engineered":
            if self.engineered is None or self.engineered_names is None:
                raise ExplanationError("This model was not explained through engineered columns; use the raw view.")
            values, names = self.engineered, self.engineered_names
            data = pd.DataFrame(self.engineered_data, columns=list(names))
        else:
            values, names, data = self.values, self.feature_names, self.data
        return Explanation(
            values=self._column(values, index, kind="values"),
            base_values=self._column(self.base, index, kind="base"),
            prediction=self._column(self.prediction, index, kind="prediction"),
            data=data.reset_index(drop=True),
            feature_names=tuple(names),
            output=self.output,
            class_label=class_label,
            method=self.method,
            row_ids=self.row_ids,
            sample=(len(self), self.total_rows),
            view=view,
            notes=self.notes,
        )

    def mean_abs_all_classes(self, *, view: str = "raw") -> pd.Series:
        """Mean |contribution| per feature summed over all classes, largest first."""
        values = self.values if view == "raw" or self.engineered is None else self.engineered
        names = self.feature_names if values is self.values else self.engineered_names
        total = np.abs(values).mean(axis=0).sum(axis=-1)
        return pd.Series(total, index=list(names or [])).sort_values(ascending=False, kind="stable")

    def concat(self, other: ExplainResult) -> ExplainResult:
        """Rows of both results (other's rows appended)."""

        def join(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
            return None if a is None or b is None else np.concatenate([a, b])

        return replace(
            self,
            values=np.concatenate([self.values, other.values]),
            base=np.concatenate([self.base, other.base]),
            prediction=np.concatenate([self.prediction, other.prediction]),
            data=pd.concat([self.data, other.data], ignore_index=True),
            row_ids=np.concatenate([self.row_ids, other.row_ids]),
            engineered=join(self.engineered, other.engineered),
            engineered_data=join(self.engineered_data, other.engineered_data),
        )

    def to_bytes(self) -> bytes:
        """Arrays and metadata as one ``.npz`` (the raw rows are not included: they come from the table)."""
        from core.store import pack_arrays

        arrays = {
            "values": self.values,
            "base": self.base,
            "prediction": self.prediction,
            "row_ids": self.row_ids,
            "engineered": self.engineered,
            "engineered_data": self.engineered_data,
        }
        meta = {
            "total_rows": self.total_rows,
            "feature_names": list(self.feature_names),
            "output": self.output,
            "method": self.method,
            "task": self.task,
            "classes": None if self.classes is None else list(self.classes),
            "binary_single": self.binary_single,
            "notes": list(self.notes),
            "engineered_names": None if self.engineered_names is None else list(self.engineered_names),
        }
        return pack_arrays(arrays, meta)

    @classmethod
    def from_bytes(cls, data: bytes, frame: pd.DataFrame) -> ExplainResult:
        """Rebuild a result saved by :meth:`to_bytes`; ``frame`` is the aligned table it was computed on."""
        from core.store import unpack_arrays

        arrays, meta = unpack_arrays(data)
        row_ids = arrays["row_ids"].astype(np.int64)
        if len(frame) != meta["total_rows"] or list(map(str, frame.columns)) != meta["feature_names"]:
            raise ExplanationError("The saved explanation does not match this table; it was computed on another one.")
        names = meta.get("engineered_names")
        return cls(
            values=arrays["values"],
            base=arrays["base"],
            prediction=arrays["prediction"],
            data=frame.iloc[row_ids].reset_index(drop=True),
            row_ids=row_ids,
            total_rows=meta["total_rows"],
            feature_names=tuple(meta["feature_names"]),
            output=meta["output"],
            method=meta["method"],
            task=meta["task"],
            classes=None if meta["classes"] is None else tuple(meta["classes"]),
            binary_single=meta["binary_single"],
            engineered=arrays.get("engineered"),
            engineered_data=arrays.get("engineered_data"),
            engineered_names=tuple(names) if names else None,
            notes=tuple(meta.get("notes", ())),
        )

    def sorted_by_row(self) -> ExplainResult:
        """The same rows ordered by row id."""
        order = np.argsort(self.row_ids, kind="stable")
        return self.take(order)

    def take(self, positions: np.ndarray) -> ExplainResult:
        """A subset of rows by position."""
        p = np.asarray(positions, dtype=np.int64)

        def pick(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[p]

        return replace(
            self,
            values=self.values[p],
            base=self.base[p],
            prediction=self.prediction[p],
            data=self.data.iloc[p].reset_index(drop=True),
            row_ids=self.row_ids[p],
            engineered=pick(self.engineered),
            engineered_data=pick(self.engineered_data),
        )


class _LocalBackend:
    """The engine in this process (tests, benchmarks, Dask tasks)."""

    def __init__(self, model: Any, background: pd.DataFrame, output: str, n_threads: int | None, seed: int):
        from core.engine.engine import Engine

        self.engine = Engine(model, background, output=output, n_threads=n_threads, seed=seed)
        self.info = {
            "method": self.engine.method_name,
            "output": self.engine.output,
            "outputs": self.engine.outputs,
            "binary_single": self.engine.binary_single,
            "engineered_names": self.engine.engineered_names,
            "notes": self.engine.notes,
            "task": self.engine.task,
            "classes": self.engine.classes,
        }

    def explain(self, frame: pd.DataFrame, row_ids: np.ndarray, worker: int = 0) -> dict[str, Any]:
        result = self.engine.explain(frame, row_ids)
        data = None
        if result.engineered is not None:
            data = _dense(self.engine._engineer(frame))
        return {
            "values": result.values,
            "base": result.base,
            "prediction": result.prediction,
            "engineered": result.engineered,
            "engineered_data": data,
        }

    def estimate(self, frame: pd.DataFrame, row_ids: np.ndarray) -> dict[str, Any]:
        started = time.perf_counter()
        parts = [self.explain(frame.head(1), row_ids[:1])]
        seconds_per_row = time.perf_counter() - started
        if len(row_ids) > 1:
            started = time.perf_counter()
            parts.append(self.explain(frame.iloc[1:].reset_index(drop=True), row_ids[1:]))
            seconds_per_row = (time.perf_counter() - started) / (len(row_ids) - 1)
        return {"seconds_per_row": seconds_per_row, "parts": parts}

    def parallelism(self) -> int:
        return 1


def _dense(X: Any) -> np.ndarray:
    if hasattr(X, "toarray"):
        X = X.toarray()
    return np.asarray(X, dtype=np.float64)


class _RemoteBackend:
    """The engine in the model's worker process(es); extra workers of the same model share long jobs."""

    def __init__(self, model: Any, background: pd.DataFrame, output: str, n_threads: int | None, seed: int):
        self.handle = model.handle
        self.spec = {"background": background, "output": output, "n_threads": n_threads, "seed": seed}
        digest = hashlib.sha256(pd.util.hash_pandas_object(background, index=False).to_numpy().tobytes())
        self.key = f"{output}:{n_threads}:{seed}:{digest.hexdigest()[:16]}"
        self.info = self._build(0)

    def _build(self, worker: int, n_threads: int | None = None) -> dict[str, Any]:
        spec = dict(self.spec, n_threads=n_threads or self.spec["n_threads"])
        return cast("dict[str, Any]", self.handle.call("engine", index=worker, key=self.key, **spec))

    def explain(self, frame: pd.DataFrame, row_ids: np.ndarray, worker: int = 0) -> dict[str, Any]:
        return cast("dict[str, Any]", self._call("explain", worker, frame=frame, row_ids=row_ids))

    def _call(self, op: str, worker: int = 0, **payload: Any) -> Any:
        """A request on the engine; a fresh worker (after a crash or reap) gets the engine rebuilt first."""
        try:
            return self.handle.call(op, index=worker, key=self.key, **payload)
        except EngineMissing:
            self._build(worker, 1 if worker else None)
            return self.handle.call(op, index=worker, key=self.key, **payload)

    def estimate(self, frame: pd.DataFrame, row_ids: np.ndarray) -> dict[str, Any]:
        return cast("dict[str, Any]", self._call("estimate", frame=frame, row_ids=row_ids))

    def importances(self, background: pd.DataFrame) -> dict[str, Any]:
        return cast("dict[str, Any]", self._call("importances", background=background))

    def parallelism(self) -> int:
        import os

        return max(1, (os.cpu_count() or 1))


class Explainer:
    """Explains rows of one table for one model, in one unit system.

    Use :func:`make_explainer` to build one. ``explain`` returns one class's
    :class:`~core.explanation.Explanation`; ``explain_all`` every class at once. ``target``, ``target_name``
    and ``notices`` are those of the :class:`~core.data.alignment.Aligned` table it was built on (None / empty
    when it was given a bare frame).
    """

    def __init__(
        self,
        backend: Any,
        data: pd.DataFrame,
        *,
        seed: int = 0,
        background: pd.DataFrame | None = None,
        aligned: Aligned | None = None,
    ):
        self._backend = backend
        self.data = data.reset_index(drop=True)
        self.target: pd.Series | None = aligned.target if aligned is not None else None
        self.target_name: str | None = aligned.target_name if aligned is not None else None
        self.notices: tuple[str, ...] = aligned.notices if aligned is not None else ()
        self.background = background if background is not None else explainer_background(self.data, seed)
        info = backend.info
        self.method: str = info["method"]
        self.output: str = info["output"]
        self.outputs: list[str] = list(info["outputs"])
        self.task: str = info["task"]
        self.classes: tuple[Any, ...] | None = tuple(info["classes"]) if info.get("classes") else None
        self.binary_single: bool = bool(info["binary_single"])
        names = info.get("engineered_names")
        self.engineered_names: tuple[str, ...] | None = tuple(names) if names else None
        self.notes: tuple[str, ...] = tuple(info.get("notes") or ())
        self.feature_names: tuple[str, ...] = tuple(str(c) for c in self.data.columns)
        self.seed = seed
        self._seconds_per_row: float | None = None
        self._probe: ExplainResult | None = None  # the rows timed by estimate_seconds_per_row, explained

    @property
    def n_rows(self) -> int:
        """Rows in the table."""
        return len(self.data)

    def explain(
        self,
        rows: Any = None,
        *,
        class_label: Any = None,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
        view: str = "raw",
    ) -> Explanation:
        """Explain rows (positions in the table; None: all) for one class."""
        return self.explain_all(rows, progress=progress, cancel=cancel).for_class(class_label, view=view)

    def explain_all(
        self,
        rows: Any = None,
        *,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
        chunk_rows: int | None = None,
        parallel: int = 1,
        on_chunk: Callable[[ExplainResult], None] | None = None,
    ) -> ExplainResult:
        """Explain rows for every class, in chunks, reporting ``progress(done, total)``.

        Args:
            rows: Row positions (None: the whole table).
            progress: Called after each chunk.
            cancel: When set, stops after the current chunk with :class:`~core.errors.CancelledError`.
            chunk_rows: Rows per request (default: about half a second of work).
            parallel: Worker processes of the model to spread chunks over (remote models): with more than one,
                helper workers run one thread each and the main worker stays free for single rows.
            on_chunk: Called with each finished chunk's result (in completion order), so a caller keeps the rows
                explained before a cancel or a failure.
        """
        ids = np.arange(self.n_rows) if rows is None else np.asarray(list(rows), dtype=np.int64)
        if len(ids) and (ids.min() < 0 or ids.max() >= self.n_rows):
            raise ExplanationError(f"Row ids must be between 0 and {self.n_rows - 1}.")
        size = chunk_rows or self._chunk_size()
        chunks = [ids[i : i + size] for i in range(0, len(ids), size)] or [ids]
        results: list[ExplainResult | None] = [None] * len(chunks)
        done = [0]
        lock = threading.Lock()

        def run(index: int, worker: int) -> None:
            if cancel is not None and cancel.is_set():
                raise CancelledError("Stopped: the explanation was cancelled.")
            results[index] = part = self._explain_chunk(chunks[index], worker)
            with lock:
                if on_chunk is not None:
                    on_chunk(part)
                done[0] += len(chunks[index])
                if progress is not None:
                    progress(done[0], len(ids))

        workers = max(1, min(parallel, self._backend.parallelism(), len(chunks)))
        if workers == 1:
            _run_chunks(run, len(chunks), 1)
        else:  # helper workers 1..N, one thread each; worker 0 stays free to answer clicks
            _run_chunks(lambda index, worker: run(index, worker + 1), len(chunks), workers)
        out = results[0]
        assert out is not None
        for part in results[1:]:
            assert part is not None
            out = out.concat(part)
        return out

    def _chunk_size(self) -> int:
        per_row = self._seconds_per_row or 0.001
        return int(np.clip(0.5 / max(per_row, 1e-6), 16, 20_000))

    def _explain_chunk(self, ids: np.ndarray, worker: int = 0) -> ExplainResult:
        frame = self.data.iloc[ids].reset_index(drop=True)
        return self.result_from(self._backend.explain(frame, ids, worker), ids)

    def explain_frame(self, frame: pd.DataFrame, row_ids: np.ndarray) -> ExplainResult:
        """Every class's explanation of rows given as a frame (e.g. edited copies of the table's rows).

        ``row_ids`` name the table rows they stand for: a sampling method seeds its permutations by row id, so
        an edited copy is explained with the same draws as its original.
        """
        rows = frame.reset_index(drop=True)
        ids = np.asarray(row_ids, dtype=np.int64)
        return replace(self.result_from(self._backend.explain(rows, ids), ids), data=rows)

    def result_from(self, out: dict[str, Any], ids: np.ndarray) -> ExplainResult:
        """An :class:`ExplainResult` from an engine's arrays for these row ids (workers, Dask tasks)."""
        frame = self.data.iloc[ids].reset_index(drop=True)
        return ExplainResult(
            values=np.asarray(out["values"], dtype=np.float64),
            base=np.asarray(out["base"], dtype=np.float64),
            prediction=np.asarray(out["prediction"], dtype=np.float64),
            data=frame,
            row_ids=ids,
            total_rows=self.n_rows,
            feature_names=self.feature_names,
            output=self.output,
            method=self.method,
            task=self.task,
            classes=self.classes,
            binary_single=self.binary_single,
            engineered=None if out.get("engineered") is None else np.asarray(out["engineered"], dtype=np.float64),
            engineered_data=out.get("engineered_data"),
            engineered_names=self.engineered_names,
            notes=self.notes,
        )

    def estimate_seconds_per_row(self, probe_rows: int = 5) -> float:
        """Measure the cost of one row on the first rows of the first sample (cached; their explanations are kept)."""
        if self._seconds_per_row is None:
            ids = sample_order(self.n_rows, self.seed)[: max(1, min(probe_rows, self.n_rows))]
            out = self._backend.estimate(self.data.iloc[ids].reset_index(drop=True), ids)
            chunks = (ids[:1], ids[1:])[: len(out["parts"])]
            parts = [self.result_from(part, chunk) for part, chunk in zip(out["parts"], chunks, strict=True)]
            self._probe = parts[0] if len(parts) == 1 else parts[0].concat(parts[1])
            self._seconds_per_row = float(out["seconds_per_row"])
        return self._seconds_per_row

    def sample_size(self, budget_seconds: float) -> int:
        """How many rows fit in the time budget (at least ``MIN_SAMPLE_ROWS``, at most the table).

        Slow models (an AutoML ensemble, an SVM explained model-agnostically) get a small first sample so the
        first view comes in seconds, labelled, with its uncertainty bands; the background refinement follows.
        """
        per_row = self.estimate_seconds_per_row()
        return int(min(self.n_rows, max(min(MIN_SAMPLE_ROWS, self.n_rows), budget_seconds / max(per_row, 1e-7))))

    def explain_sample(self, budget_seconds: float = 2.0, *, progress: Progress | None = None) -> ExplainResult:
        """A seeded random sample sized to the budget: the first global view (labelled N of M rows)."""
        n = self.sample_size(budget_seconds)
        ids = sample_order(self.n_rows, self.seed)[:n]
        probe = self._probe
        if probe is None or len(probe) > n or not np.array_equal(probe.row_ids, ids[: len(probe)]):
            return self.explain_all(ids, progress=progress)
        if len(probe) == n:
            return probe
        rest = self.explain_all(
            ids[len(probe) :], progress=None if progress is None else lambda done, total: progress(done + len(probe), n)
        )
        return probe.concat(rest)  # the probe rows were the sample's first rows: explained once

    def units(self, label: Any = None) -> str:
        """The units one class's explanations will name (e.g. ``log-odds of 'yes'``), before any row is explained."""
        return units_name(self.output, None if self.classes is None else self.classes[class_index(self.classes, label)])

    def remaining_after(self, result: ExplainResult) -> np.ndarray:
        """Row ids not yet in result, in sample order (what a background refinement explains next)."""
        order = sample_order(self.n_rows, self.seed)
        return order[~np.isin(order, result.row_ids)]

    def importances(self) -> dict[str, Any]:
        """The model's own importances (raw columns), when it has them."""
        if not hasattr(self._backend, "importances"):
            return {}
        return cast(
            "dict[str, Any]",
            self._backend.importances(self.data.iloc[sample_order(self.n_rows, self.seed)[:BACKGROUND_ROWS]]),
        )


def _run_chunks(run: Callable[[int, int], None], n_chunks: int, parallel: int) -> None:
    """Run chunk jobs on ``parallel`` workers; the first error (or cancel) stops the rest."""
    if parallel <= 1:
        for i in range(n_chunks):
            run(i, 0)
        return
    failure: list[BaseException]
    next_index, failure = [0], []
    lock = threading.Lock()

    def loop(worker: int) -> None:
        while True:
            with lock:
                if failure or next_index[0] >= n_chunks:
                    return
                index = next_index[0]
                next_index[0] += 1
            try:
                run(index, worker)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                with lock:
                    failure.append(exc)
                return

    threads = [threading.Thread(target=loop, args=(w,), daemon=True) for w in range(parallel)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failure:
        raise failure[0]


def explainer_background(data: pd.DataFrame, seed: int = 0, rows: int = BACKGROUND_ROWS) -> pd.DataFrame:
    """The seeded background sample every explainer of this table uses (shared with Dask tasks)."""
    return data.iloc[sample_order(len(data), seed)[:rows]].reset_index(drop=True)


def make_explainer(
    model: Any,
    data: pd.DataFrame | Aligned,
    *,
    output: str = "auto",
    background_rows: int = BACKGROUND_ROWS,
    seed: int = 0,
    n_threads: int | None = None,
) -> Explainer:
    """Build the best exact explainer for a model on a table.

    Args:
        model: A :class:`~core.loading.models.LoadedModel` (explained in its worker) or an in-process estimator.
        data: What :func:`core.data.alignment.align` returns (its target and notices are kept on the explainer),
            or an aligned table.
        output: ``auto``, ``probability``, ``log-odds`` or ``raw``.
        background_rows: Size of the seeded background sample.
        seed: Seeds the sample order, the background and the model-agnostic explainer.
        n_threads: Threads for native libraries and kernels (None: all cores).

    Raises:
        ExplanationError: The units are not available for this model, or the table is empty.
    """
    aligned = data if isinstance(data, Aligned) else Aligned(data)
    if len(aligned.frame) == 0:
        raise ExplanationError("The table has no rows to explain.")
    frame = aligned.frame.reset_index(drop=True)
    background = explainer_background(frame, seed, background_rows)
    backend_type = _RemoteBackend if getattr(model, "handle", None) is not None else _LocalBackend
    backend = backend_type(model, background, output, n_threads, seed)
    return Explainer(backend, frame, seed=seed, background=background, aligned=aligned)
