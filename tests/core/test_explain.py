"""Explainer: chunking, progress, cancellation, the progressive sample and the job around it."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest

from core.engine.explain import MIN_SAMPLE_ROWS, make_explainer, sample_order
from core.engine.jobs import ExplainJob, describe_eta
from core.errors import CancelledError, ExplanationError
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


class _CancelsAfter(ExplainJob):
    """A real job that presses Cancel itself once ``rows`` rows of its pass are done (a user's click, on cue)."""

    def __init__(self, explainer, rows: int):
        super().__init__(explainer, budget_seconds=1e-6, parallel=1)
        self.rows = rows

    def _progress(self, done: int, total: int) -> None:
        super()._progress(done, total)
        if done >= self.rows:
            self.cancel()


def test_cancel_keeps_every_finished_row_and_resume_explains_the_rest_once(forest):
    model, X = forest
    explainer = make_explainer(model, X)
    explainer._seconds_per_row = 0.5 / 50  # chunks of 50 rows
    asked: list[int] = []
    explain_all = explainer.explain_all

    def counting(rows=None, **kwargs):
        asked.append(len(rows))
        return explain_all(rows, **kwargs)

    explainer.explain_all = counting
    job = _CancelsAfter(explainer, rows=100)
    sample = job.run_sample()
    assert job.start_refinement() and job.wait(120)
    status = job.status()
    kept = job.result
    assert status.state == "cancelled" and kept is not None
    assert len(kept) == status.done == len(sample) + 100  # two chunks finished before the cancel took effect
    assert len(set(kept.row_ids.tolist())) == len(kept)
    np.testing.assert_allclose(
        kept.for_class(1).prediction, model.predict_proba(X.iloc[kept.row_ids])[:, 1], atol=1e-12
    )

    job.rows = 10**9
    assert job.resume() and job.wait(120)
    assert job.status().state == "done" and not job.resume()
    assert asked[-2:] == [600 - len(sample), 600 - len(sample) - 100]  # the second pass asked only for what was missing
    full = job.result
    assert full is not None and list(full.row_ids) == list(range(600))
    np.testing.assert_allclose(full.for_class(1).prediction, model.predict_proba(X)[:, 1], atol=1e-12)


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


def test_a_pipeline_explained_without_a_fold_plan_has_no_model_importance_and_no_error(pool):
    """Issue 20: a logistic-regression pipeline's importances failed in its worker on a text column."""
    import pickle

    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    import core

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"amount": rng.normal(10, 3, 200), "term": rng.choice(["term_36", "term_60"], 200)})
    y = ((frame.amount > 10) ^ (frame.term == "term_60")).astype(int)
    encode = make_column_transformer((OneHotEncoder(), ["term"]), (StandardScaler(), ["amount"]))
    pipe = make_pipeline(encode, LogisticRegression()).fit(frame, y)
    model = core.load_model(pickle.dumps(pipe), "lr.pkl", pool=pool)
    aligned = core.align(model, frame)
    assert core.make_explainer(model, aligned, output="probability").importances() == {}
    folded = core.make_explainer(model, aligned, output="log-odds").importances()
    assert folded["model"]["values"].shape == (2,)  # |coef| x spread, summed onto the two raw columns


def test_start_explains_the_sample_then_every_row_in_the_background(forest):
    model, X = forest
    explainer = make_explainer(model, X)
    job = ExplainJob(explainer, budget_seconds=1e-6, parallel=1)
    assert job.result is None and job.status().state == "pending"
    assert job.start() and not job.start()
    job._background.join(120)
    assert job.wait(120)
    full = job.result
    assert job.status().state == "done" and full is not None and list(full.row_ids) == list(range(600))
    for label in (0, 1):  # the units a page names before any row is explained are the explanation's own
        assert explainer.units(label) == full.for_class(label).units


def test_the_rows_timed_for_the_estimate_are_the_first_rows_of_the_sample_explained_once():
    from sklearn.neighbors import KNeighborsClassifier

    X, y, _, _ = zoo.numeric(n=300)
    model = KNeighborsClassifier().fit(X, y)  # explained model-agnostically: seeded by row id
    explainer = make_explainer(model, X)
    asked: list[int] = []
    explain_all = explainer.explain_all

    def counting(rows=None, **kwargs):
        asked.append(len(rows))
        return explain_all(rows, **kwargs)

    explainer.explain_all = counting
    sample = explainer.explain_sample(1e-6)
    n = len(sample)
    assert n == MIN_SAMPLE_ROWS and asked == [n - 5]  # the five timed rows were not explained again
    assert np.array_equal(sample.row_ids, sample_order(300)[:n])
    again = explain_all(sample_order(300)[:n])  # the same rows in one pass: the same values
    np.testing.assert_allclose(sample.values, again.values, atol=1e-12)
    np.testing.assert_allclose(sample.base, again.base, atol=1e-12)
    np.testing.assert_allclose(sample.for_class(1).prediction, model.predict_proba(X.iloc[sample.row_ids])[:, 1])


def test_waiting_for_a_sample_another_thread_explains_reports_its_progress_and_can_be_interrupted(forest):
    """A second session (or a page behind the Overview's background start) waits for the sample under way; the
    wait calls its progress with that sample's own, which is where a Streamlit page can be interrupted by a
    click. Before, it sat in a lock until the other thread finished."""
    model, X = forest
    job = ExplainJob(make_explainer(model, X), budget_seconds=1e-6, parallel=1)
    reported, release = threading.Event(), threading.Event()
    first: list[tuple[int, int]] = []

    def hold(done: int, total: int) -> None:  # the first thread stops inside its sample, holding it
        first.append((done, total))
        reported.set()
        release.wait(60)

    owner = threading.Thread(target=job.run_sample, kwargs={"progress": hold})
    owner.start()
    assert reported.wait(60)

    class Clicked(Exception):
        pass

    seen: list[tuple[int, int]] = []

    def page(done: int, total: int) -> None:
        seen.append((done, total))
        raise Clicked  # what a Streamlit rerun request does in a page's progress bar

    with pytest.raises(Clicked):
        job.run_sample(progress=page)
    assert seen == first[-1:] and job.result is None  # the other thread's progress; its sample not done yet
    release.set()
    owner.join(60)
    assert job.run_sample(progress=page) is job.result  # ready now: no wait, no progress
    assert len(seen) == 1
