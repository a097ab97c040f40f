"""Azure AutoML models: loaded safely in their own runtime, explained exactly in the ensemble's units.

Every model here is a real AutoML pipeline built in the runtime (see conftest.py); every expected number
comes from that runtime (``expected_output.npy``), never from the code under test.
"""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile

import numpy as np
import pandas as pd
import pytest

from core.data.alignment import align
from core.engine.explain import make_explainer
from core.errors import UnsafeModelError
from core.loading.models import load_model
from tests.automl.conftest import NAMES, meta
from tests.conftest import ROOT

DT = "azureml.automl.runtime.featurization.data_transformer"
# Relative gap allowed between the model's own output and the explanation's prediction: XGBoost members add
# their trees in float32 and shap's interventional kernel keeps leaf values in float32 (about 1e-6 of the output
# at most; models without an exactly explained tree member agree to rounding).
FLOAT32 = 2e-5


@pytest.fixture(scope="module")
def loaded(automl_models):
    """Each model loaded once, with its table aligned."""
    out = {}
    for name in NAMES:
        folder = automl_models[name]
        model = load_model((folder / "model.pkl").read_bytes(), "model.pkl")
        data = pd.read_csv(folder / "data.csv")
        out[name] = (model, align(model, data, target=meta(folder)["target_column"]).frame, folder)
    return out


@pytest.mark.parametrize("name", NAMES)
def test_the_card_describes_the_ensemble_and_its_runtime(loaded, name):
    model, frame, folder = loaded[name]
    info = meta(folder)
    assert model.library == "Azure AutoML"
    assert model.task == {"classification": "multiclass" if len(info["labels"] or []) > 2 else "binary"}.get(
        info["task"], "regression"
    )
    if info["labels"]:
        assert [str(c) for c in model.classes] == sorted(info["labels"])  # AutoML's label order is sorted
    assert list(model.feature_names) == info["raw_columns"] == list(frame.columns)
    assert model.outputs == (("raw",) if model.task == "regression" else ("probability",))
    assert model.runtime["python"].startswith("3.10.")
    assert model.runtime["versions"]["azureml-automl-runtime"].startswith("1.62")
    assert any(n.startswith("Azure AutoML model (runtime 1.62.0, Python 3.10.") for n in model.notices)
    members, featurization = model.automl_tables()
    assert [m["member"] for m in members] == [m["name"] for m in info["members"]]
    assert [m["weight"] for m in members] == [pytest.approx(m["weight"], abs=1e-4) for m in info["members"]]
    assert {row["column"] for row in featurization} == set(info["raw_columns"])
    assert "azureml" not in " ".join(sys.modules)  # the AutoML code never ran in the test's (server's) process


@pytest.mark.parametrize("name", NAMES)
def test_base_plus_contributions_is_the_models_own_output(loaded, name):
    model, frame, folder = loaded[name]
    expected = np.load(folder / "expected_output.npy")
    rows = np.arange(0, len(frame), 7)  # every 7th row: all models, all row kinds, in under a minute
    result = make_explainer(model, frame).explain_all(rows)
    assert result.output == ("raw" if model.task == "regression" else "probability")
    total = result.base + result.values.sum(axis=1)
    assert np.abs(total - result.prediction).max() <= 1e-9 * max(1.0, np.abs(result.prediction).max())
    own = expected[rows]
    gap = np.abs(result.prediction - own) / np.maximum(1.0, np.abs(own))
    assert gap.max() <= FLOAT32
    if name == "multiclass_str":  # no member is XGBoost explained exactly: the pipeline's output to rounding
        assert gap.max() <= 1e-12
    if model.task != "regression":
        assert np.allclose(result.values.sum(axis=2), 0.0, atol=1e-6)  # probabilities: class shares cancel (float32)
    assert "weighted sum of its members' SHAP values" in result.method


def test_a_column_the_row_shares_with_every_background_row_gets_nothing(automl_models):
    folder = automl_models["binary_int"]
    data = pd.read_csv(folder / "data.csv").assign(**{"mean radius": 14.2, "site": "north"})
    model = load_model((folder / "model.pkl").read_bytes(), "model.pkl")
    frame = align(model, data, target="diagnosis").frame
    result = make_explainer(model, frame).explain_all(np.arange(12))
    for column in ("mean radius", "site"):
        assert np.abs(result.values[:, list(frame.columns).index(column)]).max() <= 1e-12, column
    assert np.abs(result.values).max() > 1e-3  # the other columns do move the prediction


def test_a_row_alone_gets_the_values_it_gets_among_others(loaded):
    model, frame, _ = loaded["binary_int"]
    explainer = make_explainer(model, frame)
    together = explainer.explain_all(np.arange(10))
    alone = explainer.explain_all(np.array([6]))
    np.testing.assert_allclose(alone.values[0], together.values[6], rtol=0, atol=1e-12)


def test_no_engineered_view_when_a_member_reads_whole_rows(loaded):
    model, frame, _ = loaded["binary_dense"]
    result = make_explainer(model, frame).explain_all(np.arange(5))
    assert result.engineered is None  # its ExtraTrees sits behind a row normaliser: raw columns only
    assert "exact Shapley (all 512 coalitions of raw columns)" in result.method


def test_the_engineered_view_when_every_member_is_exact(loaded):
    model, frame, folder = loaded["binary_trees"]
    result = make_explainer(model, frame).explain_all(np.arange(20))
    names = list(result.engineered_names)
    assert result.engineered.shape == (20, len(names), 2) and result.engineered_data.shape == (20, len(names))
    assert "permutation" not in result.method and "exact Shapley" not in result.method
    # AutoML names each engineered column after its raw column ("mean radius_ImputationMarker", ...): folding
    # by name must give the raw values the engine folded by AutoML's engineered -> raw map
    for j, column in enumerate(frame.columns):
        block = [i for i, n in enumerate(names) if n.startswith(f"{column}_")]
        assert block, column
        np.testing.assert_allclose(result.engineered[:, block].sum(axis=1), result.values[:, j], atol=1e-12)
    engineered = result.for_class(1, view="engineered")
    assert engineered.view == "engineered" and list(engineered.feature_names) == names
    np.testing.assert_allclose(engineered.prediction, np.load(folder / "expected_output.npy")[:20, 1], atol=1e-6)


def test_the_output_zip_with_its_conda_file_names_the_runtime_version(automl_models):
    folder = automl_models["regression"]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.write(folder / "model.pkl", "outputs/model.pkl")
        archive.write(folder / "conda_env_v_1_0_0.yml", "outputs/conda_env_v_1_0_0.yml")
        archive.write(folder / "scoring_file_v_1_0_0.py", "outputs/scoring_file_v_1_0_0.py")
    model = load_model(buffer.getvalue(), "automl_output.zip")
    assert model.container == "automl-zip" and model.task == "regression"
    assert not any("does not say which AutoML version" in n for n in model.notices)
    bare = load_model((folder / "model.pkl").read_bytes(), "model.pkl")
    assert any("does not say which AutoML version" in n for n in bare.notices)


def test_an_mlflow_folder_zip_and_a_version_modellens_does_not_know(automl_models):
    folder = automl_models["binary_int"]
    conda = (folder / "conda_env_v_1_0_0.yml").read_text().replace("runtime==1.62.0", "runtime==1.58.0")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.write(folder / "model.pkl", "model/model.pkl")
        archive.writestr("model/MLmodel", "flavors:\n  python_function:\n    loader_module: mlflow.sklearn\n")
        archive.writestr("model/conda.yaml", conda)
        archive.writestr("model/requirements.txt", "azureml-train-automl-runtime==1.58.0\nxgboost<=1.5.2\n")
    model = load_model(buffer.getvalue(), "mlflow_model.zip")
    assert model.container == "automl-zip" and model.classes == (0, 1)
    assert any("AutoML 1.58.0 is not a version ModelLens knows" in n and "1.62.0, was used" in n for n in model.notices)


def _str(text: str) -> bytes:
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


def _global(module: str, name: str) -> bytes:
    return _str(module) + _str(name) + b"\x93"  # SHORT_BINUNICODE x2, STACK_GLOBAL


def _automl_pickle(payload: bytes) -> bytes:
    """A protocol-4 pickle that names AutoML's featurizer (so it is routed to the runtime), then ``payload``."""
    return b"\x80\x04" + _global(DT, "DataTransformer") + b"0" + payload + b"."  # POP, ..., STOP


def test_an_automl_file_that_runs_a_command_is_refused_in_the_runtime(automl_models, tmp_path):
    marker = tmp_path / "pwned"
    evil = _automl_pickle(_global("posix", "system") + _str(f"touch {marker}") + b"\x85R")  # TUPLE1, REDUCE
    with pytest.raises(UnsafeModelError) as info:
        load_model(evil, "model.pkl")
    assert "posix.system" in str(info.value)
    assert not marker.exists()


def test_getattr_fetches_only_the_function_automl_files_use(automl_models):
    fetch = _global("builtins", "getattr") + _global(DT, "DataTransformer") + _str("fit") + b"\x86R"  # TUPLE2
    with pytest.raises(UnsafeModelError, match=r"getattr\(DataTransformer, 'fit'\), not a known reference"):
        load_model(_automl_pickle(fetch), "model.pkl")


def test_cli_explains_an_automl_model(automl_models, tmp_path):
    folder = automl_models["multiclass_str"]
    out = subprocess.run(
        [sys.executable, "-m", "core.cli", "explain", str(folder / "model.pkl"), str(folder / "data.csv"),
         "--rows", "0-2", "--class", "Barolo", "--target", "cultivar", "--format", "csv"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    table = pd.read_csv(io.StringIO(out.stdout))
    expected = np.load(folder / "expected_output.npy")[:3, 1]  # Barolo is the second class (sorted labels)
    np.testing.assert_allclose(table["prediction"], expected, rtol=0, atol=1e-9)


def test_cli_report_shows_the_ensemble_members(automl_models, tmp_path):
    folder = automl_models["binary_int"]
    target = tmp_path / "report.html"
    out = subprocess.run(
        [sys.executable, "-m", "core.cli", "report", str(folder / "model.pkl"), str(folder / "data.csv"),
         "--rows", "3", "--target", "diagnosis", "--out", str(target)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    html = target.read_text()
    for name in meta(folder)["members"]:
        assert f"<td>member {name['name']}</td>" in html
    assert "MaxAbsScaler → LightGBMClassifier, weight 0.333" in html and "Azure AutoML" in html


def test_a_batch_run_on_dask_starts_the_runtime_in_its_worker(automl_models, tmp_path):
    folder = automl_models["binary_dense"]
    out_dir = tmp_path / "shap"
    out = subprocess.run(
        [sys.executable, "-m", "core.cli", "explain", str(folder / "model.pkl"), str(folder / "data.csv"),
         "--target", "diagnosis", "--out", str(out_dir), "--workers", "1", "--rows-per-task", "300"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    table = pd.concat([pd.read_parquet(p) for p in sorted(out_dir.glob("part-*.parquet"))], ignore_index=True)
    assert len(table) == 569 and table["row_id"].tolist() == list(range(569))
    expected = np.load(folder / "expected_output.npy")[:, 1]
    np.testing.assert_allclose(table["prediction"], expected, rtol=0, atol=FLOAT32)
    shap = table[[c for c in table.columns if c.startswith("shap:")]].to_numpy()
    np.testing.assert_allclose(table["base_value"] + shap.sum(axis=1), table["prediction"], rtol=0, atol=1e-9)


def test_the_regression_ensemble_of_issue_15_is_exact_on_every_row(loaded):
    # LightGBM (MaxAbsScaler), XGBoost (StandardScalerWrapper), ElasticNet and RandomForest, all explained exactly,
    # on a table with a Unix time in seconds (float32 steps of 128 s there) and incomes in cents: rows lie within a
    # float32 step of LightGBM's double thresholds and XGBoost's float32 splits
    model, frame, folder = loaded["regression_trees"]
    assert [m["steps"][-1] for m in meta(folder)["members"]] == [
        "lightgbmregressor", "xgboostregressor", "elasticnet", "randomforestregressor"
    ]  # fmt: skip
    expected = np.load(folder / "expected_output.npy")
    result = make_explainer(model, frame).explain_all(np.arange(len(frame)))
    assert "permutation" not in result.method and "exact Shapley" not in result.method
    for algorithm in ("LightGBMRegressor", "XGBoostRegressor", "ElasticNet", "RandomForestRegressor"):
        assert algorithm in result.method
    total = result.base + result.values.sum(axis=1)
    np.testing.assert_allclose(total, result.prediction, rtol=1e-12, atol=0)
    gap = np.abs(result.prediction - expected) / np.maximum(1.0, np.abs(expected))
    assert gap.max() <= FLOAT32  # only XGBoost's own float32 sum is left (a misrouted row is off by 1e-3 or more)
    raw, engineered = result.for_class(), result.for_class(view="engineered")
    assert list(engineered.feature_names) == list(result.engineered_names)
    np.testing.assert_allclose(engineered.values.sum(axis=1) + engineered.base_values, raw.prediction, rtol=1e-12)
    names = list(result.engineered_names)
    for j, column in enumerate(frame.columns):  # AutoML names each engineered column after its raw column
        block = [i for i, n in enumerate(names) if n.startswith(f"{column}_")]
        np.testing.assert_allclose(engineered.values[:, block].sum(axis=1), raw.values[:, j], atol=1e-9)


def test_what_if_and_counterfactuals_on_an_automl_ensemble(loaded):
    from core.whatif.counterfactual import counterfactuals, parse_goal
    from core.whatif.scenario import allowed_values, what_if

    model, frame, _ = loaded["binary_int"]
    explainer = make_explainer(model, frame)
    site = next(v for v in allowed_values(model, frame, "site") if v != frame["site"].iloc[3])
    result = what_if(explainer, model, 3, {"site": site, "mean radius": 21.5}, class_label=model.classes[1])
    edited = frame.iloc[[3]].assign(site=site, **{"mean radius": 21.5})
    own = model.predict(edited, "probability")[0, 1]  # the ensemble in its own runtime
    assert result.edited.prediction[0] == pytest.approx(own, rel=FLOAT32)
    for side in (result.original, result.edited):
        assert side.base_values[0] + side.values.sum() == pytest.approx(side.prediction[0], abs=1e-9)
    assert set(result.changed) == {"site", "mean radius"}

    label = model.classes[0]
    row = int(np.argmax(model.predict(frame.head(40), "probability")[:, 1]))  # predicted the other class
    found = counterfactuals(model, explainer, row, parse_goal(str(label), model.classes, model.task), k=2)
    assert found
    for candidate in found:
        copy = frame.iloc[[row]].assign(**{c: new for c, (_, new) in candidate.changes.items()})
        assert model.predict(copy, "probability")[0, 0] > 0.5  # the model itself now predicts the asked class


def test_an_automl_upload_takes_the_spare_with_its_runtime_started_ahead(automl_models, automl_runtime):
    """The AutoML spare: a sandboxed worker with the runtime already started in it (its Python 3.10 importing
    azureml is seconds of CPU), which the upload's worker takes over, runtime and all; a new one follows."""
    import dataclasses

    import psutil

    from core.config import Settings
    from core.isolation.workers import WorkerPool

    settings = dataclasses.replace(Settings.from_env(), spare_workers=0, spare_automl=1)
    from core.loading.models import spare_runtime

    assert spare_runtime(settings) == str(automl_runtime.python_executable)  # what the dashboard's pool is given
    pool = WorkerPool(settings, automl_python=spare_runtime(settings))
    try:
        assert pool.automl_python() == str(automl_runtime.python_executable)
        assert pool._ready(pool.automl_python()).wait(180)
        spare = pool._spares[pool.automl_python()]
        runtime = [c for c in psutil.Process(spare.proc.pid).children() if "automl_worker" in " ".join(c.cmdline())]
        assert len(runtime) == 1 and (spare.sandbox or {}).get("active")  # started ahead, inside the sandbox
        spare_pid = spare.proc.pid
        folder = automl_models[NAMES[0]]
        model = load_model((folder / "model.pkl").read_bytes(), "model.pkl", pool=pool, settings=settings)
        worker = model.handle.worker()
        assert worker.proc.pid == spare_pid
        assert runtime[0].pid in [c.pid for c in psutil.Process(worker.proc.pid).children()]
        assert model.runtime["python"].startswith("3.10.")
        data = pd.read_csv(folder / "data.csv")
        frame = align(model, data, target=meta(folder)["target_column"]).frame
        expected = np.load(folder / "expected_output.npy")
        np.testing.assert_allclose(model.predict(frame, model.outputs[0]).reshape(expected.shape), expected)
        assert pool._ready(pool.automl_python()).wait(180)  # a replacement, not the same process
        assert pool._spares[pool.automl_python()].proc.pid != worker.proc.pid
    finally:
        pool.close()
