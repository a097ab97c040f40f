"""`modellens whatif` and `modellens counterfactual`, run as real commands on a pickled pipeline and a CSV; the JSON
is checked against the same model in this process.
"""

from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest

from tests.core import zoo
from tests.core.test_cli import run


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    base = tmp_path_factory.mktemp("cli-whatif")
    model, features = zoo.builders()["pipe_rf"]()
    table = features.assign(churn=model.predict(features))  # a target column: detected and set aside by align
    (base / "model.pkl").write_bytes(pickle.dumps(model))
    table.to_csv(base / "data.csv", index=False)
    return base, model, pd.read_csv(base / "data.csv").drop(columns="churn")


def _edited(features, row, changes):
    edited = features.iloc[[row]].copy()
    for column, (_, new) in changes.items():
        edited[column] = new
    return edited


def test_whatif_prints_both_exact_explanations_and_the_edited_prediction_is_the_models(files):
    base, model, features = files
    row = 3
    city = next(c for c in ("Paris", "Lyon") if c != features["city"].iloc[row])
    out = run("whatif", str(base / "model.pkl"), str(base / "data.csv"), "--row", str(row),
              "--set", f"city={city}", "--set", "age=71", "--class", "1")  # fmt: skip
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["row"] == row and doc["class"] == 1 and doc["output"] == "probability"
    assert doc["changed"] == {"city": [features["city"].iloc[row], city], "age": [features["age"].iloc[row], 71.0]}
    for side in ("original", "edited"):
        assert doc[side]["base"] + sum(doc[side]["contributions"].values()) == pytest.approx(doc[side]["prediction"])
    edited = features.iloc[[row]].assign(city=city, age=71.0)
    assert doc["edited"]["prediction"] == pytest.approx(model.predict_proba(edited)[0, 1], abs=1e-9)
    assert doc["original"]["prediction"] == pytest.approx(model.predict_proba(features.iloc[[row]])[0, 1], abs=1e-9)


def test_whatif_bad_values_exit_6_and_a_malformed_set_exits_2(files):
    base, _, _ = files
    model, data = str(base / "model.pkl"), str(base / "data.csv")
    out = run("whatif", model, data, "--row", "0", "--set", "city=Berlin")
    assert out.returncode == 6 and "not a level of 'city'" in out.stderr and "Traceback" not in out.stderr
    out = run("whatif", model, data, "--row", "0", "--set", "age=old")
    assert out.returncode == 6 and "'age' is a number" in out.stderr
    out = run("whatif", model, data, "--row", "0", "--set", "age")
    assert out.returncode == 2 and "COL=VALUE" in out.stderr


def test_counterfactual_candidates_reach_the_class_with_frozen_and_bounded_columns(files):
    base, model, features = files
    predicted = model.predict(features)
    row = int(np.flatnonzero((predicted == 0) & (features["city"] != "Paris").to_numpy())[0])
    lo, hi = float(features["income"].quantile(0.1)), float(features["income"].quantile(0.9))
    out = run("counterfactual", str(base / "model.pkl"), str(base / "data.csv"), "--row", str(row), "--target", "1",
              "--freeze", "age", "plan", "--bound", f"income={lo}:{hi}", "-k", "3")  # fmt: skip
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["class"] == 1 and doc["output"] == "probability" and doc["row"] == row
    candidates = doc["candidates"]
    assert 1 <= len(candidates) <= 3
    for candidate in candidates:
        changes = candidate["changes"]
        assert changes and not set(changes) & {"age", "plan"}
        for column, (old, new) in changes.items():
            original = features[column].iloc[row]
            assert (old == original or (old is None and pd.isna(original))) and (features[column] == new).any()
        if "income" in changes:
            assert lo <= changes["income"][1] <= hi
        edited = _edited(features, row, changes)
        assert model.predict(edited)[0] == 1
        assert candidate["prediction"] == pytest.approx(model.predict_proba(edited)[0, 1], abs=1e-9)
        assert candidate["base"] + sum(candidate["contributions"].values()) == pytest.approx(candidate["prediction"])
    assert [len(c["changes"]) for c in candidates] == sorted(len(c["changes"]) for c in candidates)


def test_counterfactual_threshold_and_a_goal_already_met(files):
    base, model, features = files
    model_path, data = str(base / "model.pkl"), str(base / "data.csv")
    proba = model.predict_proba(features)[:, 1]
    row = int(np.flatnonzero(proba < 0.4)[0])
    out = run("counterfactual", model_path, data, "--row", str(row), "--target", ">0.6", "-k", "2")
    assert out.returncode == 0, out.stderr
    candidates = json.loads(out.stdout)["candidates"]
    assert candidates
    for candidate in candidates:
        assert model.predict_proba(_edited(features, row, candidate["changes"]))[0, 1] > 0.6

    met = int(np.flatnonzero(proba > 0.6)[0])
    out = run("counterfactual", model_path, data, "--row", str(met), "--target", ">0.6")
    assert out.returncode == 0 and json.loads(out.stdout)["candidates"] == []
    assert f"row {met} already reaches a prediction > 0.6" in out.stderr

    out = run("counterfactual", model_path, data, "--row", "0", "--target", "maybe")
    assert out.returncode == 6 and "none of the model's classes" in out.stderr
