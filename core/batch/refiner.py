"""The dashboard's rows explained on a Dask scheduler, and finished batch runs read back as dashboard results."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import numpy as np
import pandas as pd

from core.batch.job import BatchResult
from core.batch.task import explain_rows_task
from core.errors import CancelledError, ModelLoadError
from core.loading.models import LoadedModel

__all__ = ["DaskRefiner", "batch_explain_result"]


class DaskRefiner:
    """Explain the dashboard's remaining rows on a Dask scheduler (``MODELLENS_DASK_SCHEDULER``).

    Called by :class:`core.engine.jobs.ExplainJob` with the row ids left after the first sample; chunks of rows
    and the model bytes travel inside the tasks; the arrays come back (the dashboard holds its table anyway).
    """

    def __init__(
        self,
        address: str,
        explainer: Any,
        *,
        model: bytes,
        model_name: str,
        trusted: bool,
        automl: str | None = None,
        chunk_rows: int = 2_000,
    ):
        self.address, self.explainer, self.chunk_rows = address, explainer, chunk_rows
        self.spec = {
            "model": model,
            "model_name": model_name,
            "trusted": trusted,
            "automl": automl,
            "background": explainer.background,
            "output": explainer.output,
            "seed": explainer.seed,
        }

    @classmethod
    def for_model(cls, address: str, explainer: Any, model: LoadedModel) -> DaskRefiner:
        """The refiner of a loaded model's explainer (the tasks carry the model's bytes, as its workers do)."""
        handle = model.handle
        if handle is None:
            raise ModelLoadError("This model card has no worker attached; load the model again.")
        return cls(
            address,
            explainer,
            model=handle.data,
            model_name=handle.filename,
            trusted=handle.trusted,
            automl=handle.automl.version if handle.automl else None,
        )

    def __call__(self, rows: np.ndarray, progress: Any, cancel: threading.Event) -> Any:
        """Explain ``rows``, reporting ``progress(done, total)``; ``cancel`` stops the remaining tasks."""
        from distributed import Client, Event, as_completed

        name = f"modellens-refine-{uuid.uuid4().hex}"
        with Client(self.address, timeout="20s") as client:
            event = Event(name, client=client)
            chunks = [rows[i : i + self.chunk_rows] for i in range(0, len(rows), self.chunk_rows)]
            futures = {
                client.submit(
                    explain_rows_task,
                    self.explainer.data.iloc[ids].reset_index(drop=True),
                    ids,
                    **self.spec,
                    cancel=name,
                    pure=False,
                ): i
                for i, ids in enumerate(chunks)
            }
            results: list[Any] = [None] * len(chunks)
            done = 0
            for future in as_completed(futures):
                if cancel.is_set():
                    event.set()
                    client.cancel(list(futures))
                    raise CancelledError("Stopped: the explanation was cancelled.")
                index = futures[future]
                results[index] = self.explainer.result_from(future.result(), chunks[index])
                done += len(chunks[index])
                progress(done, len(rows))
        out = results[0]
        for part in results[1:]:
            out = out.concat(part)
        return out


def batch_explain_result(result: BatchResult, frame: pd.DataFrame, *, task: str, max_rows: int = 200_000) -> Any:
    """A finished batch run's rows as an :class:`~core.engine.explain.ExplainResult` (one class, as the run chose).

    Every row when the run has at most ``max_rows``, otherwise a seeded sample of about 50,000 rows (the
    pages then say "computed on N of M rows"; the full values stay in the run's folder).
    """
    from core.engine.explain import ExplainResult

    summary = result.summary
    total = int(summary["rows_total"])
    table = result.rows(list(range(total))) if total <= max_rows else result.sample(min(50_000, max_rows))
    names = list(summary["features"])
    row_ids = table["row_id"].to_numpy(dtype=np.int64)
    label = summary.get("class_label")
    return ExplainResult(
        values=table[[f"shap:{n}" for n in names]].to_numpy(dtype=np.float64)[:, :, None],
        base=table[["base_value"]].to_numpy(dtype=np.float64),
        prediction=table[["prediction"]].to_numpy(dtype=np.float64),
        data=frame.iloc[row_ids].reset_index(drop=True),
        row_ids=row_ids,
        total_rows=int(summary["rows_total"]),
        feature_names=tuple(names),
        output=summary["output"],
        method=f"{summary['method']} (batch run)",
        task=task,
        classes=None if label is None else (label,),
        binary_single=False,
        notes=(
            f"Explained by a batch run on Dask ({summary['rows_done']:,} rows)"
            + ("." if len(table) >= total else f"; {len(table):,} of them are shown, every row is in {result.out}."),
        ),
    )
