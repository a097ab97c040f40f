"""Explaining a whole table of any size on Dask (an embedded LocalCluster by default, or a remote scheduler).

``modellens explain MODEL DATA --out DIR`` and :class:`BatchJob` split the table into tasks of about
``rows_per_task`` rows; each task reads its own rows on a Dask worker, explains them with the same engine
as the dashboard (in mini-batches, checking a cancel event between them) and writes one Parquet file
(row id, prediction, base value, one contribution column per raw column) plus a small statistics file
(``_part-NNNNN.json``), both atomically. Bookkeeping files start with ``_`` so that the folder reads as one
Parquet dataset (``dask.dataframe.read_parquet(out)``; pandas needs ``ignore_prefixes=["_", "summary"]``).
The client never collects rows: it follows progress and, at the end, writes ``summary.json`` (model sha256,
data fingerprint, method, units, rows done, per-feature mean |value| and mean value, timings) atomically.

The model travels as bytes inside every task (never ``scatter``: a lost worker must not lose the model) and
is loaded once per Dask worker process into a sandboxed model worker (the same safe loader and OS sandbox as
the dashboard's), cached by sha256; the engine there runs with one thread. Sampling explainers are seeded
per row id, so values do not depend on the partitioning. A ``_manifest.json`` records the model, the data
fingerprint, the settings and the task boundaries:
``resume=True`` computes only missing tasks and refuses another model, data file or settings.
"""

import hashlib
import json
import logging
import math
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from core.batch.sources import data_fingerprint, filesystem, open_table
from core.batch.task import MINI_BATCH_ROWS, explain_task
from core.errors import CancelledError, DataError, ModelLensError

if TYPE_CHECKING:
    from distributed import LocalCluster

__all__ = ["BatchJob", "BatchProgress", "BatchResult"]

log = logging.getLogger(__name__)

# Bookkeeping starts with "_" and the background is Arrow IPC, not Parquet: readers of the folder as a Parquet
# dataset skip "_" files (pyarrow) or take every *.parquet (Dask), and must see only the output rows.
MANIFEST, SUMMARY, BACKGROUND = "_manifest.json", "summary.json", "_background.arrow"
BACKGROUND_ROWS = 100
THREAD_ENV = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")}


@dataclass(frozen=True)
class BatchProgress:
    """Rows done / total, tasks done / total, throughput and ETA."""

    rows_done: int
    rows_total: int
    tasks_done: int
    tasks_total: int
    rows_per_second: float
    eta_seconds: float | None
    state: str

    def line(self) -> str:
        """``120,000 / 1,000,000 rows (12%) · 9,800 rows/s · ETA 1 min 30 s``."""
        share = self.rows_done / max(self.rows_total, 1)
        text = f"{self.rows_done:,} / {self.rows_total:,} rows ({share:.0%}) · {self.rows_per_second:,.0f} rows/s"
        if self.eta_seconds is not None:
            minutes, seconds = divmod(int(self.eta_seconds), 60)
            text += f" · ETA {minutes} min {seconds:02d} s" if minutes else f" · ETA {seconds} s"
        return text


@dataclass
class _Plan:
    tasks: list[tuple[int, int, int]] = field(default_factory=list)  # (partition, start, stop) per task
    offsets: list[int] = field(default_factory=list)


def _split(lengths: list[int], rows_per_task: int) -> _Plan:
    plan = _Plan()
    offset = 0
    for partition, length in enumerate(lengths):
        plan.offsets.append(offset)
        pieces = max(1, math.ceil(length / rows_per_task))
        bounds = np.linspace(0, length, pieces + 1).round().astype(int)
        for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
            if stop > start:
                plan.tasks.append((partition, int(start), int(stop)))
        offset += length
    plan.offsets.append(offset)
    return plan


class BatchJob:
    """Explain every row of a table on Dask; see the module docstring.

    Args:
        model: Path (local or fsspec URL) of the model file, or its bytes (then give ``model_name``).
        data: CSV / Parquet file, folder or glob, local or behind an fsspec URL.
        out: Output folder (local or fsspec URL); workers must be able to write to it.
        workers: Worker processes of the embedded LocalCluster (default: the number of cores).
        cluster: Address of an existing scheduler (``tcp://host:8786``) instead of a LocalCluster.
        client: An existing ``distributed.Client`` (tests, notebooks).
        rows_per_task: About this many rows per task (and per output file).
        resume: Compute only the tasks whose output is missing (refuses another model, data or settings).
        sample: Explain a seeded random sample of this many rows instead of every row.
        class_label: Class to explain (classifiers; default: the positive class, or the first).
        output: ``auto``, ``probability``, ``log-odds`` or ``raw``.
        target: Name of the target column, to set aside (detected by name otherwise).
        trusted: Load pickles with the plain unpickler (local, single-user only).
        storage_options: fsspec options for the data and the output (credentials, endpoints).
        seed: Seeds the sample, the background and the model-agnostic explainer.
        mini_batch: Rows explained between two checks of the cancel event.
        start: Submit the tasks now (default) or on :meth:`start`.
    """

    def __init__(
        self,
        model: str | bytes,
        data: str,
        out: str,
        *,
        model_name: str | None = None,
        workers: int | None = None,
        cluster: str | None = None,
        client: Any = None,
        rows_per_task: int = 50_000,
        resume: bool = False,
        sample: int | None = None,
        class_label: Any = None,
        output: str = "auto",
        target: str | None = None,
        trusted: bool = False,
        storage_options: dict[str, Any] | None = None,
        seed: int = 0,
        mini_batch: int = MINI_BATCH_ROWS,
        start: bool = True,
    ):
        self.data, self.out, self.storage_options = data, out, storage_options
        self.model_bytes, self.model_name = self._model_bytes(model, model_name)
        self.settings: dict[str, Any] = {
            "output": output,
            "class_label": None if class_label is None else str(class_label),
            "sample": sample,
            "seed": seed,
            "rows_per_task": rows_per_task,
            "target": target,
        }
        self.trusted, self.resume, self.mini_batch = trusted, resume, mini_batch
        self._own_cluster: LocalCluster | None
        self._client, self._own_cluster = client, None
        self._workers, self._cluster_address = workers, cluster
        self._futures: list[Any] = []
        self._stats: dict[int, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._cancel_name = f"modellens-cancel-{uuid.uuid4().hex}"
        self._started = self._finished = 0.0
        self._state = "pending"
        self._error: BaseException | None = None
        self._waiter: threading.Thread | None = None
        self._prepare()
        if start:
            self.start()

    # -- preparation ----------------------------------------------------------------------------------
    def _model_bytes(self, model: str | bytes, name: str | None) -> tuple[bytes, str]:
        if isinstance(model, bytes):
            return model, name or "model.pkl"
        fs, path = filesystem(model, self.storage_options)
        try:
            with fs.open(path, "rb") as fh:
                return fh.read(), name or os.path.basename(path)
        except FileNotFoundError as exc:
            raise DataError(f"No model file at {model!r}.") from exc

    def _prepare(self) -> None:
        from core.loading.models import load_model

        self.model_sha = hashlib.sha256(self.model_bytes).hexdigest()
        card = load_model(self.model_bytes, self.model_name, trusted=self.trusted)  # safe loader, in a worker
        automl = card.handle.automl if card.handle is not None else None
        self.automl = automl.version if automl is not None else None
        self.card = {
            k: v
            for k, v in card.card().items()
            if k in ("feature_names", "n_features", "input_kinds", "categories", "classes")
        }
        self.fingerprint = data_fingerprint(self.data, self.storage_options)
        self.table = open_table(self.data, self.storage_options)
        lengths = [int(n) for n in self.table.map_partitions(len).compute()]
        self.plan = _split(lengths, int(self.settings["rows_per_task"]))
        self.rows_total = self.plan.offsets[-1]
        sample = self.settings["sample"]
        self.sample_ids = None
        if sample is not None and sample < self.rows_total:
            self.sample_ids = np.sort(
                np.random.default_rng(self.settings["seed"]).choice(self.rows_total, sample, replace=False)
            )
        self._check_or_write_manifest()
        self.background = self._background()
        self.names = [str(c) for c in self.background.columns]

    def _manifest(self) -> dict[str, Any]:
        return {
            "model_sha256": self.model_sha,
            "data": self.data,
            "data_fingerprint": self.fingerprint,
            "settings": self.settings,
            "tasks": self.plan.tasks,
            "rows_total": self.rows_total,
        }

    def _check_or_write_manifest(self) -> None:
        fs, root = filesystem(self.out, self.storage_options)
        fs.makedirs(root, exist_ok=True)
        path = f"{root.rstrip('/')}/{MANIFEST}"
        wanted = json.loads(json.dumps(self._manifest()))
        if fs.exists(path):
            with fs.open(path, "rb") as fh:
                found = json.loads(fh.read())
            if not self.resume:
                raise ModelLensError(
                    f"{self.out!r} already holds a batch run; pass --resume to complete it, or choose another --out."
                )
            for key, what in (
                ("model_sha256", "model"),
                ("data_fingerprint", "data"),
                ("settings", "settings"),
                ("tasks", "task layout"),
            ):
                if found.get(key) != wanted.get(key):
                    raise ModelLensError(
                        f"{self.out!r} holds results of another {what}; resume only with the same model, data and "
                        "settings, or choose another --out."
                    )
        else:
            _write_json(fs, path, wanted)

    def _background(self) -> pd.DataFrame:
        """A seeded sample of up to 100 rows from a few partitions spread over the table (saved next to the output)."""
        from core.data.alignment import align

        fs, root = filesystem(self.out, self.storage_options)
        path = f"{root.rstrip('/')}/{BACKGROUND}"
        if self.resume and fs.exists(path):
            with fs.open(path, "rb") as fh:
                return pd.read_feather(fh)
        n = self.table.npartitions
        picks = sorted({0, n // 3, (2 * n) // 3, n - 1})
        rows = pd.concat([self.table.get_partition(i).compute() for i in picks], ignore_index=True)
        rng = np.random.default_rng(self.settings["seed"])
        rows = rows.iloc[np.sort(rng.choice(len(rows), min(BACKGROUND_ROWS, len(rows)), replace=False))]
        background = align(
            SimpleNamespace(**self.card), rows.reset_index(drop=True), target=self.settings["target"]
        ).frame
        with fs.open(path, "wb") as fh:
            background.to_feather(fh)
        return background

    # -- running --------------------------------------------------------------------------------------
    def _client_for_run(self) -> Any:
        from distributed import Client, LocalCluster

        if self._client is not None:
            return self._client
        if self._cluster_address:
            self._client = Client(self._cluster_address)
        else:
            self._own_cluster = LocalCluster(
                n_workers=self._workers or os.cpu_count() or 1,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",
                env=THREAD_ENV,
                silence_logs=logging.ERROR,
            )
            self._client = Client(self._own_cluster)
        return self._client

    def _done_tasks(self) -> set[int]:
        fs, root = filesystem(self.out, self.storage_options)
        done = set()
        for index in range(len(self.plan.tasks)):
            marker = f"{root.rstrip('/')}/_part-{index:05d}.json"
            if self.resume and fs.exists(marker):
                with fs.open(marker, "rb") as fh:
                    self._stats[index] = {**json.loads(fh.read()), "fresh": False}
                done.add(index)
        return done

    def start(self) -> None:
        """Submit the pending tasks and follow them in a background thread."""
        import dask
        from distributed import Event

        client = self._client_for_run()
        Event(self._cancel_name, client=client)  # created before any task checks it
        done = self._done_tasks()
        spec = {
            "model": self.model_bytes,
            "model_name": self.model_name,
            "trusted": self.trusted,
            "automl": self.automl,
            "card": self.card,
            "background": self.background,
            "output": self.settings["output"],
            "seed": self.settings["seed"],
            "class_label": self.settings["class_label"],
            "target": self.settings["target"],
            "mini_batch": self.mini_batch,
            "names": self.names,
            "out": self.out,
            "storage_options": self.storage_options,
            "cancel": self._cancel_name,
        }
        parts = self.table.to_delayed()
        tasks = []
        for index, (partition, lo, hi) in enumerate(self.plan.tasks):
            if index in done:
                continue
            first = self.plan.offsets[partition] + lo
            sample = None
            if self.sample_ids is not None:
                sample = self.sample_ids[(self.sample_ids >= first) & (self.sample_ids < first + hi - lo)]
                if len(sample) == 0 and not self.resume:
                    sample = np.zeros(0, dtype=np.int64)
            rows = (
                parts[partition]
                if (lo, hi) == (0, self.plan.offsets[partition + 1] - self.plan.offsets[partition])
                else dask.delayed(_slice)(parts[partition], lo, hi)
            )
            tasks.append(
                dask.delayed(explain_task, pure=False)(rows, **spec, index=index, first_row=first, sample=sample)
            )
        self._started, self._state = time.monotonic(), "running"
        self._futures = client.compute(tasks, retries=2)
        self._waiter = threading.Thread(target=self._follow, daemon=True, name="batch-follow")
        self._waiter.start()

    def _follow(self) -> None:
        from distributed import as_completed

        try:
            for future in as_completed(self._futures):
                stats = future.result()
                with self._lock:
                    self._stats[stats["task"]] = stats
            self._write_summary()
            with self._lock:
                self._state, self._finished = "done", time.monotonic()
        except BaseException as exc:  # noqa: BLE001 - reported by result()
            with self._lock:
                cancelled = isinstance(exc, CancelledError) or "cancelled" in str(exc)
                self._state, self._error = ("cancelled" if cancelled else "failed"), exc

    def progress(self) -> BatchProgress:
        """Rows and tasks done, throughput and ETA."""
        with self._lock:
            rows = sum(s["rows"] for s in self._stats.values())
            total = len(self.sample_ids) if self.sample_ids is not None else self.rows_total
            elapsed = (self._finished or time.monotonic()) - self._started if self._started else 0.0
            fresh = sum(s["rows"] for i, s in self._stats.items() if s.get("fresh", True))
            rate = fresh / elapsed if elapsed > 0 else 0.0
            eta = (total - rows) / rate if rate > 0 and rows < total else None
            return BatchProgress(rows, total, len(self._stats), len(self.plan.tasks), rate, eta, self._state)

    def cancel(self) -> None:
        """Stop every task within one mini-batch; finished tasks keep their files (resume picks up the rest)."""
        from distributed import Event

        if self._client is not None:
            Event(self._cancel_name, client=self._client).set()

    def result(self, timeout: float | None = None) -> dict[str, Any]:
        """Wait for the run and return the summary.

        Raises:
            CancelledError: The run was cancelled.
            ModelLensError: A task failed (the message says why).
        """
        if self._waiter is not None:
            self._waiter.join(timeout)
            if self._waiter.is_alive():
                raise TimeoutError("the batch is still running")
        if self._state == "cancelled":
            raise CancelledError("The batch run was cancelled; run again with --resume to finish it.")
        if self._error is not None:
            if isinstance(self._error, ModelLensError):
                raise self._error
            raise ModelLensError(f"The batch run failed: {self._error}") from self._error
        return self.summary()

    def summary(self) -> dict[str, Any]:
        """The summary of every finished task (what summary.json holds)."""
        with self._lock:
            stats = dict(self._stats)
        rows = sum(s["rows"] for s in stats.values())
        abs_sum = np.sum([s["abs_sum"] for s in stats.values()], axis=0) if stats else np.zeros(len(self.names))
        total = np.sum([s["sum"] for s in stats.values()], axis=0) if stats else np.zeros(len(self.names))
        first = next(iter(stats.values()), {})
        seconds = (self._finished or time.monotonic()) - self._started if self._started else 0.0
        return {
            "model_sha256": self.model_sha,
            "model_name": self.model_name,
            "data": self.data,
            "data_fingerprint": self.fingerprint,
            "method": first.get("method"),
            "output": first.get("output"),
            "class_label": first.get("class_label"),
            "rows_done": rows,
            "rows_total": self.rows_total,
            "features": self.names,
            "mean_abs": dict(zip(self.names, (abs_sum / max(rows, 1)).tolist(), strict=True)),
            "mean": dict(zip(self.names, (total / max(rows, 1)).tolist(), strict=True)),
            "tasks": len(self.plan.tasks),
            "timings": {
                "seconds": seconds,
                "rows_per_second": rows / seconds if seconds else None,
                "task_seconds": float(sum(s["seconds"] for s in stats.values())),
            },
        }

    def _write_summary(self) -> None:
        """summary.json, then a line in the index the dashboard reads to reuse this run for the same files."""
        from core.batch.index import record_batch

        fs, root = filesystem(self.out, self.storage_options)
        summary = self.summary()
        _write_json(fs, f"{root.rstrip('/')}/{SUMMARY}", summary)
        try:
            record_batch(summary, self.out)
        except OSError as exc:  # a read-only home must not fail a finished run
            log.warning("could not record the batch run for the dashboard: %s", exc)

    def close(self) -> None:
        """Release the client and the embedded cluster."""
        if self._own_cluster is not None:
            self._client.close()
            self._own_cluster.close()
            self._own_cluster = self._client = None


def _slice(frame: pd.DataFrame, lo: int, hi: int) -> pd.DataFrame:
    return frame.iloc[lo:hi]


def _write_json(fs: Any, path: str, doc: dict[str, Any]) -> None:
    temp = f"{path}.tmp-{uuid.uuid4().hex}"
    with fs.open(temp, "wb") as fh:
        fh.write(json.dumps(doc, indent=2, default=str).encode())
    fs.mv(temp, path)


class BatchResult:
    """A finished batch output folder, read lazily: summary, one row, a sample of rows."""

    def __init__(self, out: str, storage_options: dict[str, Any] | None = None):
        self.out, self.storage_options = out, storage_options
        self.fs, self.root = filesystem(out, storage_options)
        with self.fs.open(f"{self.root.rstrip('/')}/{SUMMARY}", "rb") as fh:
            self.summary: dict[str, Any] = json.loads(fh.read())
        with self.fs.open(f"{self.root.rstrip('/')}/{MANIFEST}", "rb") as fh:
            self.manifest: dict[str, Any] = json.loads(fh.read())

    def _read(self, index: int) -> pd.DataFrame:
        with self.fs.open(f"{self.root.rstrip('/')}/part-{index:05d}.parquet", "rb") as fh:
            return pd.read_parquet(fh)

    def rows(self, row_ids: list[int]) -> pd.DataFrame:
        """The output rows with these ids, reading only the files that hold them."""
        wanted = sorted(set(int(r) for r in row_ids))
        starts = np.cumsum([0] + [hi - lo for _, lo, hi in self.manifest["tasks"]])
        parts = sorted({int(np.searchsorted(starts, r, side="right") - 1) for r in wanted})
        frames = [self._read(i) for i in parts if 0 <= i < len(self.manifest["tasks"])]
        table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        return table[table["row_id"].isin(wanted)].reset_index(drop=True) if len(table) else table

    def sample(self, n: int, seed: int = 0) -> pd.DataFrame:
        """About n rows drawn from a seeded choice of output files (for beeswarms over huge tables)."""
        tasks = len(self.manifest["tasks"])
        order = np.random.default_rng(seed).permutation(tasks)
        frames, count = [], 0
        for index in order:
            frame = self._read(int(index))
            frames.append(frame)
            count += len(frame)
            if count >= n:
                break
        table = pd.concat(frames, ignore_index=True)
        return table.sample(min(n, len(table)), random_state=seed).sort_values("row_id").reset_index(drop=True)
