"""`modellens compare`, run as a real command on pickled pipelines and CSVs; the JSON is checked against the library
call (core.cohorts) on the same model in this process.
"""

from __future__ import annotations

import io
import json
import pickle

import numpy as np
import pandas as pd
import pytest

from core.cohorts.compare import cohort_mask, cohort_table, compare_cohorts
from core.cohorts.diff import explanation_diff
from core.data.alignment import align
from core.engine.explain import make_explainer
from core.loading.models import load_model
from tests.core import zoo
from tests.core.test_cli import run


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from core.config import Settings
    from core.isolation.workers import WorkerPool

    base = tmp_path_factory.mktemp("cli-compare")
    model, features = zoo.builders()["pipe_rf"]()
    table = features.assign(churn=model.predict(features))  # a target column: detected and set aside by align
    (base / "model.pkl").write_bytes(pickle.dumps(model))
    table.to_csv(base / "data.csv", index=False)
    table.assign(age=table["age"] + 15).to_csv(base / "older.csv", index=False)
    pool = WorkerPool(Settings.from_env())
    yield base, model, load_model(pickle.dumps(model), "model.pkl", pool=pool)
    pool.close()


def _check(features: list[dict], expected: pd.DataFrame) -> None:
    assert [f["feature"] for f in features] == list(expected["feature"])
    for key in ("shift", "low", "high"):
        np.testing.assert_allclose([f[key] for f in features], expected[key], atol=1e-9)
    shifts = [abs(f["shift"]) for f in features]
    assert shifts == sorted(shifts, reverse=True)


def test_two_cohorts_give_the_library_numbers_and_metrics_per_cohort(files):
    base, model, loaded = files
    out = run("compare", str(base / "model.pkl"), str(base / "data.csv"), "--cohort", "young=age<=50",
              "--cohort", "old=age>50, city!=Paris", "--class", "1")  # fmt: skip
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    aligned = align(loaded, pd.read_csv(base / "data.csv"))
    expl = make_explainer(loaded, aligned).explain(class_label=1)
    table = cohort_table(aligned.frame, expl.prediction, expl.units, aligned.target)
    masks = {"young": cohort_mask(table, "age<=50"), "old": cohort_mask(table, "age>50, city!=Paris")}
    proba = model.predict_proba(aligned.frame)
    expected = compare_cohorts(expl, masks, target=aligned.target, prediction=proba, classes=(0, 1), task="binary")
    _check(doc["features"], expected.difference("young", "old", signed=True))
    assert all(f["drift"] is None for f in doc["features"])
    assert doc["rows"] == {"everyone": 240, "young": int(masks["young"].sum()), "old": int(masks["old"].sum())}
    old = masks["old"]
    assert doc["metrics"]["old"]["accuracy"] == pytest.approx((proba[old].argmax(1) == aligned.target[old]).mean())


def test_two_tables_on_one_model_show_the_shifted_column_first_with_its_drift_and_csv_is_the_same_table(files):
    base, _, loaded = files
    args = ("compare", str(base / "model.pkl"), str(base / "data.csv"), "--against", str(base / "older.csv"))
    out, csv = run(*args), run(*args, "--format", "csv")
    assert out.returncode == 0 and csv.returncode == 0, out.stderr + csv.stderr
    doc = json.loads(out.stdout)
    first, second = align(loaded, pd.read_csv(base / "data.csv")), align(loaded, pd.read_csv(base / "older.csv"))
    both = make_explainer(loaded, pd.concat([first.frame, second.frame], ignore_index=True)).explain_all()
    e1, e2 = both.take(np.arange(240)).for_class(None), both.take(np.arange(240, 480)).for_class(None)
    expected = explanation_diff(e1, e2, first_frame=first.frame, second_frame=second.frame)
    _check(doc["features"], expected.features)
    drift = {f["feature"]: f["drift"] for f in doc["features"]}
    assert max(drift, key=drift.get) == "age" and drift["age"] > 0.25 and drift["city"] == pytest.approx(0)
    assert doc["rows"] == {"first": 240, "second": 240} and doc["drift_statistic"] == "PSI"
    assert set(doc["metrics"]) == {"first", "second"}
    frame = pd.read_csv(io.StringIO(csv.stdout))
    assert list(frame.columns) == ["feature", "shift", "low", "high", "drift"]
    assert list(frame["feature"]) == [f["feature"] for f in doc["features"]]


def test_a_model_against_itself_shows_no_difference_and_mistakes_are_one_sentence(files):
    base, _, _ = files
    model_path, data = str(base / "model.pkl"), str(base / "data.csv")
    out = run("compare", model_path, data, "--against-model", model_path, "--rows", "100")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert all(f["shift"] == 0 and f["low"] == 0 and f["high"] == 0 and f["drift"] is None for f in doc["features"])
    assert doc["rows"] == {"first": 100, "second": 100} and len(doc["disagreements"]) == 10
    assert all(d["difference"] == 0 for d in doc["disagreements"])
    bad = run("compare", model_path, data, "--cohort", "a=salary>3", "--cohort", "b=age>3")
    assert bad.returncode == 6 and "no column named 'salary'" in bad.stderr
    one = run("compare", model_path, data, "--cohort", "a=age>3")
    assert one.returncode == 2 and "exactly two cohorts" in one.stderr
    both = run("compare", model_path, data, "--cohort", "a=age>3", "--against", data)
    assert both.returncode == 2 and "not allowed with" in both.stderr
