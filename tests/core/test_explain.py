"""Explainer: chunking, progress, cancellation, the progressive sample and the job around it."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest

from core.errors import CancelledError, ExplanationError
from core.explain import MIN_SAMPLE_ROWS, make_explainer, sample_order
from core.jobs import ExplainJob, describe_eta
from tests.core import zoo


@pytest.fixture(scope="module")
def forest():
    X, y, _, _ = zoo.numeric(n=600)
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=30, random_state=0).fit(X, y), X


def test_chunks_report_progress_and_cover_every_row_once(forest):
    model, X = forest
    explainer = make_explainer(model, X)
    seen = []
    result = explainer.explain_all(progress=lambda done, total: seen.append((done, total)), chunk_rows=100)
    assert [d for d, _ in seen] == [100, 200, 300, 400, 500, 600] and {t for _, t in seen} == {600}
    assert sorted(result.row_ids.tolist()) == list(range(600))
    np.testing.assert_allclose(result.for_class(1).prediction, model.predict_proba(X)[:, 1], atol=1e-12)


def test_cancel_stops_after_the_current_chunk(forest):
    model, X = forest
    explainer = make_explainer(model, X)
    cancel = threading.Event()
    done = []

    def progress(d: int, total: int) -> None:
        done.append(d)
        cancel.set()

    with pytest.raises(CancelledError):
        explainer.explain_all(progress=progress, cancel=cancel, chunk_rows=50)
    assert done == [50]


def test_sample_is_sized_to_the_budget_and_labelled(forest):
    model, X = forest
    explainer = make_explainer(model, X)
    per_row = explainer.estimate_seconds_per_row()
    assert per_row > 0
    n = explainer.sample_size(budget_seconds=per_row * 120)
    assert n in (119, 120)  # 120 rows' worth of budget at the measured (cached) cost per row
    sample = explainer.explain_sample(budget_seconds=per_row * 120)
    expl = sample.for_class()
    assert len(expl) == n and expl.sample == (n, 600)
    assert expl.coverage_label == f"computed on {n:,} of 600 rows"
    assert np.array_equal(sample.row_ids, sample_order(600)[:n])


def test_job_samples_then_refines_to_every_row(forest):
    model, X = forest
    job = ExplainJob(make_explainer(model, X), budget_seconds=1e-6, parallel=1)
    sample = job.run_sample()
    assert len(sample) == MIN_SAMPLE_ROWS and job.status().state == "sampled"
    assert job.start_refinement()
    assert job.wait(120)
    status = job.status()
    assert status.state == "done" and status.done == 600
    full = job.result
    assert full is not None and list(full.row_ids) == list(range(600))
    assert "of 600 rows" in describe_eta(status)


def test_job_answers_a_row_outside_the_sample(forest):
    model, X = forest
    job = ExplainJob(make_explainer(model, X), budget_seconds=1e-6, parallel=1)
    sample = job.run_sample()
    outside = next(r for r in range(600) if r not in set(sample.row_ids.tolist()))
    row = job.row(outside).for_class(1).row(0)
    assert row.row_id == outside
    assert row.prediction == pytest.approx(model.predict_proba(X.iloc[[outside]])[0, 1])


def test_job_cancel_keeps_the_sample(forest):
    model, X = forest
    explainer = make_explainer(model, X)
    job = ExplainJob(explainer, budget_seconds=1e-6, parallel=1)
    job.run_sample()
    job.cancel()
    job.start_refinement()
    assert job.wait(60)
    assert job.status().state == "cancelled"
    assert len(job.result) == MIN_SAMPLE_ROWS


def test_unknown_class_and_empty_table(forest):
    model, X = forest
    result = make_explainer(model, X).explain_all(range(5))
    with pytest.raises(ExplanationError, match="Unknown class"):
        result.for_class("nope")
    with pytest.raises(ExplanationError, match="no rows"):
        make_explainer(model, pd.DataFrame(columns=X.columns))
