"""One Dask task of a batch run, on a Dask worker: align, explain in mini-batches, write Parquet.

The model travels as bytes inside every task and is loaded once per Dask worker process into a sandboxed
model worker (the same safe loader and OS sandbox as the dashboard's), cached by its sha256 and settings.
"""

import hashlib
import json
import time
import uuid
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from core.batch.sources import filesystem
from core.classes import class_index, complement, output_column
from core.errors import CancelledError

__all__ = ["explain_rows_task", "explain_task"]

MINI_BATCH_ROWS = 2_000


_ENGINES: dict[str, Any] = {}  # per Dask worker process: one sandboxed model worker per model and settings


class _SandboxedEngine:
    """The engine of a Dask task, in a sandboxed model worker that this Dask worker process starts.

    The Dask worker itself never unpickles an upload: it holds only the bytes and talks plain data to a model
    worker (:mod:`core.isolation.workers`, inside :mod:`core.safety.sandbox`), started once per model and
    reused by every task it runs (an Azure AutoML model gets its runtime worker from there, as in the dashboard).
    """

    def __init__(self, spec: dict[str, Any]):
        from core.engine.explain import _RemoteBackend
        from core.loading.models import load_model

        model = load_model(spec["model"], spec["model_name"], trusted=spec["trusted"])
        self.backend = _RemoteBackend(model, spec["background"], spec["output"], 1, spec["seed"])
        info = self.backend.info
        self.method_name: str = info["method"]
        self.output: str = info["output"]
        self.classes: list[Any] | None = info["classes"]
        self.binary_single: bool = bool(info["binary_single"])

    def explain(self, frame: pd.DataFrame, row_ids: np.ndarray) -> Any:
        from core.engine.engine import EngineResult

        out = self.backend.explain(frame, row_ids)
        return EngineResult(out["values"], out["base"], out["prediction"], out.get("engineered"))


def _engine(spec: dict[str, Any]) -> Any:
    model, background, output, seed = spec["model"], spec["background"], spec["output"], spec["seed"]
    key = hashlib.sha256(model).hexdigest() + f"|{output}|{seed}|" + str(pd.util.hash_pandas_object(background).sum())
    engine = _ENGINES.get(key)
    if engine is None:
        engine = _ENGINES[key] = _SandboxedEngine(spec)
    return engine


def _class_column(engine: Any, class_label: Any) -> tuple[int, bool]:
    """(column, negate) of the requested class in the engine's outputs."""
    return output_column(class_index(engine.classes, class_label), binary_single=engine.binary_single)


def explain_task(part: pd.DataFrame, **spec: Any) -> dict[str, Any]:
    """One task: align, explain in mini-batches (cancellable), write the Parquet file and its statistics.

    ``part`` holds the task's raw rows; ``spec`` carries the model bytes, card, background, settings, the
    task's index and first row id, the output folder and the cancel event's name.
    """
    from core.data.alignment import align

    start_time = time.perf_counter()
    engine = _engine(spec)
    frame = align(SimpleNamespace(**spec["card"]), part.reset_index(drop=True), target=spec["target"]).frame
    row_ids = spec["first_row"] + np.arange(len(frame), dtype=np.int64)
    if spec["sample"] is not None:
        keep = np.isin(row_ids, spec["sample"])
        frame, row_ids = frame[keep].reset_index(drop=True), row_ids[keep]
    column, negate = _class_column(engine, spec["class_label"])
    cancel = _cancel_event(spec["cancel"])
    chunks = []
    for lo in range(0, len(frame), spec["mini_batch"]):
        if cancel is not None and cancel.is_set():
            raise CancelledError("cancelled")
        result = engine.explain(frame.iloc[lo : lo + spec["mini_batch"]], row_ids[lo : lo + spec["mini_batch"]])
        chunks.append(
            _table(result, column, negate, engine.output, row_ids[lo : lo + spec["mini_batch"]], spec["names"])
        )
    table = pd.concat(chunks, ignore_index=True) if chunks else _empty(spec["names"])
    values = table[[f"shap:{n}" for n in spec["names"]]].to_numpy()
    stats = {
        "task": spec["index"],
        "rows": len(table),
        "abs_sum": np.abs(values).sum(axis=0).tolist(),
        "sum": values.sum(axis=0).tolist(),
        "seconds": time.perf_counter() - start_time,
        "method": engine.method_name,
        "output": engine.output,
        "class_label": _label(engine, column, negate),
    }
    _write_task(spec["out"], spec["storage_options"], spec["index"], table, stats)
    return stats


def _label(engine: Any, column: int, negate: bool) -> Any:
    if engine.classes is None:
        return None
    return engine.classes[0] if negate else engine.classes[-1 if engine.binary_single else column]


def _table(result: Any, column: int, negate: bool, output: str, row_ids: np.ndarray, names: list[str]) -> pd.DataFrame:
    values, base, prediction = result.values[:, :, column], result.base[:, column], result.prediction[:, column]
    if negate:
        values = complement(values, output=output, kind="values")
        base = complement(base, output=output, kind="base")
        prediction = complement(prediction, output=output, kind="prediction")
    table = pd.DataFrame({"row_id": row_ids, "prediction": prediction, "base_value": base})
    return pd.concat([table, pd.DataFrame(values, columns=[f"shap:{n}" for n in names])], axis=1)


def _empty(names: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {c: pd.Series(dtype="float64") for c in ["row_id", "prediction", "base_value", *[f"shap:{n}" for n in names]]}
    )


def _cancel_event(name: str | None) -> Any:
    if not name:
        return None
    try:
        from distributed import Event, get_worker

        get_worker()
        return Event(name)
    except (ImportError, ValueError):
        return None


def _write_task(
    out: str, storage_options: dict[str, Any] | None, index: int, table: pd.DataFrame, stats: dict[str, Any]
) -> None:
    """The Parquet file, then its statistics (the completion marker), each written to a temp name and renamed."""
    fs, root = filesystem(out, storage_options)
    write: Callable[[Any], object]
    for name, write in (
        (f"part-{index:05d}.parquet", lambda fh: table.to_parquet(fh, index=False)),
        (f"_part-{index:05d}.json", lambda fh: fh.write(json.dumps(stats).encode())),
    ):
        final = f"{root.rstrip('/')}/{name}"
        temp = f"{root.rstrip('/')}/_tmp-{uuid.uuid4().hex}-{name}"
        with fs.open(temp, "wb") as fh:
            write(fh)
        fs.mv(temp, final)


def explain_rows_task(frame: pd.DataFrame, row_ids: np.ndarray, **spec: Any) -> dict[str, Any]:
    """Explain rows for the dashboard on a Dask worker: every class's arrays (the same engine as its own workers)."""
    engine = _engine(spec)
    cancel = _cancel_event(spec.get("cancel"))
    if cancel is not None and cancel.is_set():
        raise CancelledError("cancelled")
    result = engine.explain(frame, row_ids)
    return {
        "values": result.values,
        "base": result.base,
        "prediction": result.prediction,
        "engineered": result.engineered,
    }
