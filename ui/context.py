"""What every page works on: the model, the aligned table, the explainer, the progressive job, the result.

Each stage comes from a cache in :mod:`ui.loaders`, so calling :func:`current` from the sidebar and from a
page in the same run costs nothing the second time. Errors are raised as typed core errors; pages wrap
the call in :func:`ui.render.guard`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import streamlit as st

from core.classes import default_class
from core.data.alignment import Aligned
from core.data.demo import DEMOS
from core.engine.explain import Explainer, ExplainResult
from core.engine.jobs import ExplainJob
from core.errors import ModelLensError
from core.explanation import Explanation
from core.loading.models import LoadedModel
from core.store import ShareRecord
from ui import loaders, render, state


class NeedInput(ModelLensError):
    """Nothing to explain yet: the user still has to upload (or pick a demo)."""

    is_prompt = True  # nothing went wrong: pages show it as a prompt, not an error (ui.render.guard)


@dataclass(frozen=True)
class Source:
    """Where the model and the table come from (an upload, a demo, or a share link)."""

    model_bytes: bytes
    model_name: str
    data_bytes: bytes
    data_name: str
    label: str
    is_demo: bool
    share: ShareRecord | None = None
    saved_result: bytes | None = None


@dataclass(frozen=True, eq=False)
class Context:
    """Everything a page draws from."""

    source: Source
    model: LoadedModel
    aligned: Aligned
    explainer: Explainer
    job: ExplainJob
    result: ExplainResult | None  # None only from ``current(wait=False)`` before the first sample is ready
    class_label: Any
    model_key: str
    data_key: str

    def explanation(self, view: str = "raw") -> Explanation:
        """The selected class's explanation of every row explained so far (waits for the first sample)."""
        result = self.result if self.result is not None else self.job.run_sample()
        return result.for_class(self.class_label, view=view)

    def prediction_units(self) -> str:
        """The name of the prediction's units: the class's probability / log-odds, or the target's name."""
        if not self.model.is_classifier:
            return self.aligned.target_name or "model output"
        return self.explainer.units(self.class_label)

    @property
    def read_only(self) -> bool:
        """True for shared links (no uploads)."""
        return self.source.share is not None


def source() -> Source:
    """The model and table to explain: the uploads, else the chosen demo.

    Raises:
        NeedInput: Upload mode with a file still missing.
    """
    app = state.get()
    if app.share_id:
        opened = loaders.share(app.share_id).unwrap()
        record = opened.record
        state.adopt_share_settings(record.id, record.settings)
        return Source(
            opened.model, record.model_name, opened.data, record.data_name, record.title, False, record, opened.result
        )
    model_file = state.uploaded("model_file")
    data_file = state.uploaded("data_file")
    if app.use_upload:
        if model_file is None or data_file is None:
            given = model_file or data_file
            missing = "a model file" if model_file is None else "a data file (CSV, Parquet or Excel)"
            received = f"Received {given.name} ({render.size_label(given.size)}). " if given is not None else ""
            raise NeedInput(
                f"{received}Upload {missing} in the sidebar to explain your own model, or switch back to a demo."
            )
        return Source(
            model_file.getvalue(),
            model_file.name,
            data_file.getvalue(),
            data_file.name,
            f"{model_file.name} on {data_file.name}",
            False,
        )
    model_bytes, model_name, data_bytes, data_name = loaders.demo_source(app.demo)
    return Source(model_bytes, model_name, data_bytes, data_name, DEMOS[app.demo].title, True)


def model_and_table() -> tuple[Source, LoadedModel, Aligned, str, str]:
    """Load the model (in its worker) and the table, and align them; an upload's first opening says so on the page."""
    src, pair, opened = source(), state.upload_pair(), state.get().opened
    if pair is None or pair in opened:
        return _open(src, lambda what, name: None)
    with render.opening({src.model_name: len(src.model_bytes), src.data_name: len(src.data_bytes)}) as step:
        try:
            found = _open(src, step)
        except ModelLensError:
            opened.add(pair)  # refused: later runs show the reason without this box
            raise
    opened.add(pair)
    return found


def _open(src: Source, step: Callable[[str, str], None]) -> tuple[Source, LoadedModel, Aligned, str, str]:
    model_key, data_key = loaders.digest(src.model_bytes), loaders.digest(src.data_bytes)
    step("Loading {} safely, in its own worker", src.model_name)
    queue, notice = loaders.worker_pool().queue(), st.empty()
    if queue:  # shown while this run waits for a worker, gone once the model is loaded
        notice.info(
            f"Every model worker of this server is busy: {queue} request(s) wait before yours, so yours is number "
            f"{queue + 1}. Your model loads as soon as a worker is free."
        )
    try:
        model = loaders.model(model_key, src.model_name, loaders.settings().trust_pickles, src.model_bytes).unwrap()
    finally:
        notice.empty()
    step("Reading {}", src.data_name)
    table = loaders.table(data_key, src.data_name, src.data_bytes).unwrap()
    step("Matching {} to the model's columns", src.data_name)
    aligned = loaders.aligned(model.sha256, data_key, state.get().target, model, table).unwrap()
    return src, model, aligned, model.sha256, data_key


def current(*, progress: Any = None, wait: bool = True) -> Context:
    """The full context; explains the first sample if it is not ready (reporting to ``progress``).

    With ``wait=False`` (a page that draws no SHAP values, the Overview) nothing is explained here: the context
    carries whatever result is ready (maybe None) and the page starts the job in the background when it has drawn.
    """
    src, model, aligned, model_key, data_key = model_and_table()
    app = state.get()
    output = app.output if app.output in model.outputs else "auto"
    target = app.target
    explainer = loaders.explainer(model_key, data_key, target, output, model, aligned).unwrap()
    job = loaders.job(model_key, data_key, target, output, explainer, model)
    saved = src.saved_result
    if saved is not None and src.share is not None and src.share.settings.get("output") == explainer.output:
        job.adopt(ExplainResult.from_bytes(saved, aligned.frame))
    batch = loaders.batch_result(model_key, data_key, aligned, model.task).value
    if batch is not None and batch.output == explainer.output and _same_class(batch, model, app.class_label):
        job.adopt(batch, refine=False)
    if wait:
        job.run_sample(progress=progress)
        job.start_refinement()
    result = job.result
    label = app.class_label
    if model.classes and label is not None and not any(str(c) == str(label) for c in model.classes):
        label = None
    return Context(src, model, aligned, explainer, job, result, label, model_key, data_key)


def _same_class(result: ExplainResult, model: LoadedModel, label: Any) -> bool:
    """True when a one-class result (a batch run) explains the class the user is looking at."""
    if not model.classes:
        return True
    wanted = label if label is not None else default_class(model.classes)
    return result.classes is not None and str(result.classes[0]) == str(wanted)
