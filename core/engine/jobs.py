"""Progressive explanation of a whole table: a sample first, the rest in the background.

:class:`ExplainJob` is what keeps global views from waiting for every row: :meth:`ExplainJob.run_sample`
explains a seeded sample sized to a time budget (pages label it "computed on N of M rows"), then
:meth:`ExplainJob.start_refinement` explains the remaining rows in chunks on every core (extra workers of
the model, or a Dask cluster) while :meth:`ExplainJob.row` answers clicks at once from the model's main
worker. Progress (rows done, rate, ETA) and cancellation are thread-safe. A cancelled or failed pass keeps every
row it finished (pages use them), and :meth:`ExplainJob.resume` explains only the rows still missing.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from core.engine.explain import Explainer, ExplainResult
from core.errors import CancelledError, ModelLensError

__all__ = ["ExplainJob", "JobStatus", "describe_eta"]

log = logging.getLogger(__name__)

Refiner = Callable[[np.ndarray, Callable[[int, int], None], threading.Event], ExplainResult]


@dataclass(frozen=True)
class JobStatus:
    """A snapshot of a job's progress.

    Attributes:
        state: ``pending``, ``sampling``, ``refining``, ``done``, ``cancelled`` or ``failed``.
        done: Rows explained so far. total: Rows in the table.
        rows_per_second: Recent throughput (0 until measured). eta_seconds: Time left, or None.
        message: The error sentence when failed.
    """

    state: str
    done: int
    total: int
    rows_per_second: float = 0.0
    eta_seconds: float | None = None
    message: str = ""

    @property
    def running(self) -> bool:
        """True while work is under way."""
        return self.state in ("sampling", "refining")


class ExplainJob:
    """Explain a table progressively. Thread-safe; one per (model, table, units).

    Args:
        explainer: The explainer of the model on the table.
        budget_seconds: Work budget of the first sample.
        parallel: Worker processes for the refinement (default: every core).
        refiner: Optional replacement for the refinement (e.g. a Dask cluster); called with the remaining
            row ids, a progress callback and the cancel event.
    """

    def __init__(
        self,
        explainer: Explainer,
        *,
        budget_seconds: float = 2.0,
        parallel: int | None = None,
        refiner: Refiner | None = None,
    ):
        self.explainer = explainer
        self.budget_seconds = budget_seconds
        self.parallel = parallel or max(1, os.cpu_count() or 1)
        self.refiner = refiner
        self._lock = threading.RLock()  # state; never held while explaining, so status() answers at once
        self._sampling = threading.Lock()  # one first sample at a time
        self._sample_progress = (0, 0)  # (rows, of) of the first sample under way, for those waiting for it
        self._cancel = threading.Event()
        self._sample: ExplainResult | None = None
        self._full: ExplainResult | None = None
        self._rows: dict[int, ExplainResult] = {}
        self._pieces: list[ExplainResult] = []  # chunks the running pass has finished
        self._state, self._done, self._error = "pending", 0, ""
        self._started = self._refine_started = 0.0
        self._thread: threading.Thread | None = None
        self._background: threading.Thread | None = None
        self._final = False

    # -- results --------------------------------------------------------------------------------------
    @property
    def result(self) -> ExplainResult | None:
        """The best result so far: every row when refinement finished, else the sample."""
        with self._lock:
            return self._full or self._sample

    def status(self) -> JobStatus:
        """Progress snapshot with rate and ETA."""
        with self._lock:
            total = self.explainer.n_rows
            rate, eta = 0.0, None
            if self._state == "refining" and self._refine_started:
                sample = len(self._sample) if self._sample is not None else 0
                elapsed = time.monotonic() - self._refine_started
                refined = max(0, self._done - sample)
                if refined and elapsed > 0:
                    rate = refined / elapsed
                    eta = (total - self._done) / rate
            return JobStatus(self._state, self._done, total, rate, eta, self._error)

    # -- work -------------------------------------------------------------------------------------------
    def run_sample(self, progress: Callable[[int, int], None] | None = None) -> ExplainResult:
        """Explain the first sample (idempotent; later calls return it at once).

        Raises:
            ModelLensError: Whatever stopped the explanation (worker crash, bad units, ...).
        """
        while not self._sampling.acquire(timeout=0.25):
            # Another thread explains it (another session, the Overview's background start): report its progress.
            # A Streamlit page's progress bar is also where a click interrupts the wait; without it, the page's
            # script sat in this lock and a user's click waited for someone else's sample.
            if progress is not None:
                with self._lock:
                    seen = self._sample_progress
                progress(*seen)
        try:
            with self._lock:
                if self._sample is not None:
                    return self._sample
                self._state, self._started = "sampling", time.monotonic()

            def report(done: int, total: int) -> None:
                with self._lock:
                    self._sample_progress = (done, total)
                if progress is not None:
                    progress(done, total)

            try:
                sample = self.explainer.explain_sample(self.budget_seconds, progress=report)
            except ModelLensError as exc:
                with self._lock:
                    self._state, self._error = "failed", str(exc)
                raise
            with self._lock:
                self._sample, self._done = sample, len(sample)
                if len(sample) >= self.explainer.n_rows:
                    self._full, self._state = sample.sorted_by_row(), "done"
                else:
                    self._state = "sampled"
            return sample
        finally:
            self._sampling.release()

    def start(self) -> bool:
        """Explain the first sample, then every row, all in the background; False when already under way.

        A page that draws no SHAP values yet (the Overview) calls this after drawing, so its first chart never
        waits for an explanation, and the pages that do find the sample ready or nearly.
        """
        with self._lock:
            if self._sample is not None or self._state != "pending" or self._background is not None:
                return False
            self._background = threading.Thread(target=self._sample_then_refine, daemon=True, name="explain-sample")
            self._background.start()
            return True

    def _sample_then_refine(self) -> None:
        try:
            self.run_sample()
        except ModelLensError:
            return  # the state says failed, with the sentence; the next page that needs the sample tries again
        except Exception as exc:  # noqa: BLE001 - the thread must report, never die silently
            log.exception("first sample crashed")
            with self._lock:
                self._state, self._error = "failed", f"The first explanation stopped ({type(exc).__name__})."
            return
        self.start_refinement()

    def adopt(self, result: ExplainResult, *, refine: bool = True) -> None:
        """Start from a saved result (a share link, a batch run): shown at once, never recomputed.

        Args:
            result: The saved rows.
            refine: False when the result is all there will be (a batch run's sample of a huge table: its
                rows hold one class, every row is already in the run's folder, and nothing is re-explained).
        """
        with self._sampling, self._lock:
            if self._sample is not None:
                return
            self._final = not refine
            self._sample, self._done = result, len(result)
            if len(result) >= self.explainer.n_rows:
                self._full, self._state = result.sorted_by_row(), "done"
            else:
                self._state = "sampled"

    def start_refinement(self) -> bool:
        """Explain the remaining rows in a background thread; False when there is nothing to do."""
        with self._lock:
            if self._sample is None or self._full is not None or self._thread is not None or self._final:
                return False
            self._state, self._refine_started = "refining", time.monotonic()
            self._thread = threading.Thread(target=self._refine, daemon=True, name="explain-refine")
            self._thread.start()
            return True

    def resume(self) -> bool:
        """Explain, in the background, the rows a cancelled or failed pass left; False when there are none."""
        with self._lock:
            if self._state not in ("cancelled", "failed") or self._sample is None or self._full is not None:
                return False
            if self._thread is not None and self._thread.is_alive():
                return False
            self._cancel, self._thread, self._error = threading.Event(), None, ""
            return self.start_refinement()

    def _progress(self, done: int, total: int) -> None:
        with self._lock:
            self._done = (len(self._sample) if self._sample is not None else 0) + done

    def _finished_chunk(self, part: ExplainResult) -> None:
        with self._lock:
            self._pieces.append(part)

    def _keep_finished(self) -> None:
        """Fold the chunks a stopped pass finished into the rows pages use (caller holds the lock)."""
        assert self._sample is not None
        for part in self._pieces:
            self._sample = self._sample.concat(part)
        self._pieces, self._done = [], len(self._sample)

    def _refine(self) -> None:
        assert self._sample is not None
        remaining = self.explainer.remaining_after(self._sample)
        cancel = self._cancel
        try:
            if self.refiner is not None:
                rest = self.refiner(remaining, self._progress, cancel)
            else:
                rest = self.explainer.explain_all(
                    remaining,
                    progress=self._progress,
                    cancel=cancel,
                    parallel=self.parallel,
                    on_chunk=self._finished_chunk,
                )
            full = self._sample.concat(rest).sorted_by_row()
            with self._lock:
                self._full, self._state, self._done, self._pieces = full, "done", full.total_rows, []
        except CancelledError:
            with self._lock:
                self._keep_finished()
                self._state = "cancelled"
        except ModelLensError as exc:
            log.warning("refinement failed: %s", exc)
            with self._lock:
                self._keep_finished()
                self._state, self._error = "failed", str(exc)
        except Exception as exc:  # noqa: BLE001 - the thread must report, never die silently
            log.exception("refinement crashed")
            with self._lock:
                self._keep_finished()
                self._state, self._error = "failed", f"The full-table explanation stopped ({type(exc).__name__})."

    def cancel(self) -> None:
        """Stop the refinement after its current chunk; every finished row stays (see :meth:`resume`)."""
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the refinement thread; True when it has finished."""
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def row(self, row_id: int) -> ExplainResult:
        """One row's explanation, at once: from the results so far, or computed on the model's main worker."""
        with self._lock:
            for result in (self._full, self._sample, self._rows.get(row_id)):
                if result is not None:
                    pos = np.flatnonzero(result.row_ids == row_id)
                    if len(pos):
                        return result.take(pos[:1])
        single = self.explainer.explain_all([row_id])
        with self._lock:
            self._rows[row_id] = single
        return single


def describe_eta(status: JobStatus) -> str:
    """``1,200 of 10,000 rows · 450 rows/s · about 20 s left``."""
    text = f"{status.done:,} of {status.total:,} rows"
    if status.rows_per_second:
        text += f" · {status.rows_per_second:,.0f} rows/s"
    if status.eta_seconds is not None:
        eta = status.eta_seconds
        text += f" · about {eta:.0f} s left" if eta < 120 else f" · about {eta / 60:.0f} min left"
    return text
