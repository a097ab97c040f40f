"""The modellens command: model cards as JSON, exit statuses, explanations as JSON/CSV/Parquet."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

import pandas as pd
import pytest

from tests.conftest import ROOT
from tests.core import attacks, zoo


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "core.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    base = tmp_path_factory.mktemp("cli")
    model, F = zoo.builders()["pipe_rf"]()
    frame = F.copy()
    frame["churn"] = model.predict(F)
    frame.loc[0, "city"] = '=HYPERLINK("http://x")'
    (base / "model.pkl").write_bytes(pickle.dumps(model))
    frame.to_csv(base / "data.csv", index=False)
    (base / "evil.pkl").write_bytes(pickle.dumps(attacks.Reduce(__import__("os").system, "true")))
    (base / "broken.pkl").write_bytes(b"\x80\x04garbage")
    (base / "automl.pkl").write_bytes(
        b"\x80\x04" + attacks._s("azureml.training.tabular.models.x") + attacks._s("Y") + b"\x93."
    )
    return base


def test_inspect_prints_the_model_card(files):
    out = run("inspect", str(files / "model.pkl"))
    assert out.returncode == 0, out.stderr
    card = json.loads(out.stdout)
    assert card["task"] == "binary" and card["estimator"] == "RandomForestClassifier"
    assert card["feature_names"] == ["age", "income", "tenure", "city", "plan"]


@pytest.mark.parametrize(
    ("name", "code", "text"),
    [
        ("evil.pkl", 3, "posix.system"),
        ("automl.pkl", 4, "modellens runtime install azureml-automl"),
        ("broken.pkl", 5, "truncated or damaged"),
    ],
)
def test_inspect_exit_status(files, name, code, text, tmp_path, monkeypatch):
    monkeypatch.setenv("MODELLENS_RUNTIMES", str(tmp_path))  # no AutoML runtime: exit 4 with the install command
    out = run("inspect", str(files / name))
    assert out.returncode == code, out.stderr
    assert text in out.stderr and "Traceback" not in out.stderr


def test_explain_json_rows_and_class(files, tmp_path):
    target = tmp_path / "out.json"
    out = run(
        "explain",
        str(files / "model.pkl"),
        str(files / "data.csv"),
        "--rows",
        "0-3,7",
        "--class",
        "1",
        "--out",
        str(target),
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(target.read_text())
    assert doc["row_ids"] == [0, 1, 2, 3, 7] and doc["class_label"] == 1 and doc["output"] == "probability"
    assert set(doc) >= {"feature_names", "values", "base_values", "prediction", "method"}
    for base, values, pred in zip(doc["base_values"], doc["values"], doc["prediction"], strict=True):
        assert base + sum(values) == pytest.approx(pred, abs=1e-9)
    assert "looks like the target" in out.stderr


def test_explain_csv_neutralises_formulas_and_parquet_needs_out(files, tmp_path):
    out = run("explain", str(files / "model.pkl"), str(files / "data.csv"), "--rows", "0", "--format", "csv")
    assert out.returncode == 0, out.stderr
    assert "'=HYPERLINK" in out.stdout
    assert run("explain", str(files / "model.pkl"), str(files / "data.csv"), "--format", "parquet").returncode == 2
    target = tmp_path / "v.parquet"
    assert (
        run(
            "explain",
            str(files / "model.pkl"),
            str(files / "data.csv"),
            "--rows",
            "0-9",
            "--format",
            "parquet",
            "--out",
            str(target),
        ).returncode
        == 0
    )
    table = pd.read_parquet(target)
    assert len(table) == 10 and "shap:age" in table.columns and "prediction" in table.columns
