"""Batch explanations on Dask: equal to the single-process engine whatever the partitioning, robust to a killed
worker, cancellable within one mini-batch, resumable only for the same model, data and settings."""

from __future__ import annotations

import json
import logging
import os
import pickle
import signal
import time
from pathlib import Path

import dask.dataframe
import numpy as np
import pandas as pd
import pytest

from core.batch.job import BatchJob, BatchResult
from core.data.alignment import align
from core.engine.engine import Engine
from core.errors import CancelledError, DataError, ModelLensError
from core.loading.models import load_model
from tests.core import zoo

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=logging.ERROR
    )
    client = Client(cluster)
    yield client
    client.close()
    cluster.close()


def _models() -> dict:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import Ridge
    from sklearn.neighbors import KNeighborsRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    F, yb, yr = zoo.tabular(n=600)
    F = F.fillna({"tenure": 2.0})
    tree, _ = zoo.builders()["pipe_rf"]()
    prep = ColumnTransformer(
        [("num", StandardScaler(), ["age", "income", "tenure"]), ("cat", OneHotEncoder(), ["city", "plan"])]
    )
    linear = make_pipeline(prep, Ridge()).fit(F, yr)
    agnostic = make_pipeline(
        ColumnTransformer([("cat", OneHotEncoder(), ["city", "plan"])], remainder="passthrough"), KNeighborsRegressor()
    ).fit(F, yr)
    return {"tree": (tree, F), "linear": (linear, F), "agnostic": (agnostic, F)}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    base = tmp_path_factory.mktemp("batch")
    out = {}
    for name, (model, frame) in _models().items():
        (base / f"{name}.pkl").write_bytes(pickle.dumps(model))
        frame.assign(target=0.0).to_csv(base / f"{name}.csv", index=False)
        out[name] = (base / f"{name}.pkl", base / f"{name}.csv", model)
    return out


def _read(out: Path) -> pd.DataFrame:
    """The output folder read as one Parquet dataset, the way the README tells users to."""
    frame = pd.read_parquet(out, ignore_prefixes=["_", ".", "summary"])
    return frame.sort_values("row_id").reset_index(drop=True)


def _single_process(model_path: Path, data_path: Path, out: Path) -> pd.DataFrame:
    """What the dashboard's engine gives for every row with the batch's own background."""
    model_bytes = model_path.read_bytes()
    card = load_model(model_bytes, model_path.name)
    frame = align(card, pd.read_csv(data_path), target="target").frame
    engine = Engine(pickle.loads(model_bytes), pd.read_feather(out / "_background.arrow"), n_threads=1)
    result = engine.explain(frame, np.arange(len(frame)))
    return pd.DataFrame(result.values[:, :, -1], columns=[f"shap:{c}" for c in frame.columns]).assign(
        prediction=result.prediction[:, -1], base_value=result.base[:, -1]
    )


@pytest.mark.parametrize("name", ["tree", "linear", "agnostic"])
def test_batch_equals_the_single_process_engine_whatever_the_partitioning(client, files, tmp_path, name):
    model_path, data_path, _ = files[name]
    outputs = []
    for rows_per_task in (97, 250):
        out = tmp_path / f"out-{rows_per_task}"
        job = BatchJob(
            str(model_path),
            str(data_path),
            str(out),
            client=client,
            rows_per_task=rows_per_task,
            target="target",
            mini_batch=64,
        )
        summary = job.result(timeout=300)
        assert summary["rows_done"] == 600 and json.loads((out / "summary.json").read_text())["rows_done"] == 600
        outputs.append(_read(out))
        assert len(dask.dataframe.read_parquet(str(out))) == 600  # the folder is one Parquet dataset for Dask too
    a, b = outputs
    assert list(a["row_id"]) == list(range(600))
    np.testing.assert_allclose(a.drop(columns="row_id"), b.drop(columns="row_id"), rtol=0, atol=1e-9)
    reference = _single_process(model_path, data_path, tmp_path / "out-97")
    for column in reference.columns:
        np.testing.assert_allclose(a[column], reference[column], rtol=0, atol=1e-9, err_msg=column)
    total = a["base_value"] + a.filter(like="shap:").sum(axis=1)
    np.testing.assert_allclose(total, a["prediction"], atol=1e-9)
    summary = json.loads((tmp_path / "out-97" / "summary.json").read_text())
    assert summary["mean_abs"]["age"] == pytest.approx(np.abs(a["shap:age"]).mean())
    assert {"model_sha256", "data_fingerprint", "method", "output", "timings"} <= set(summary)


def test_a_killed_worker_loses_no_partition(client, files, tmp_path):
    model_path, data_path, _ = files["agnostic"]
    reference = tmp_path / "reference"
    BatchJob(str(model_path), str(data_path), str(reference), client=client, rows_per_task=40, target="target").result(
        300
    )
    out = tmp_path / "killed"
    job = BatchJob(
        str(model_path), str(data_path), str(out), client=client, rows_per_task=40, target="target", mini_batch=10
    )
    while job.progress().tasks_done < 2:
        time.sleep(0.05)
    pids = client.run(os.getpid)
    os.kill(next(iter(pids.values())), signal.SIGKILL)
    job.result(timeout=300)
    got, want = _read(out), _read(reference)
    assert list(got["row_id"]) == list(range(600))  # none lost, none duplicated
    pd.testing.assert_frame_equal(got, want)


def test_cancel_stops_within_a_mini_batch_and_resume_computes_only_the_rest(client, files, tmp_path):
    model_path, data_path, _ = files["agnostic"]
    out = tmp_path / "cancelled"
    job = BatchJob(
        str(model_path), str(data_path), str(out), client=client, rows_per_task=30, target="target", mini_batch=5
    )
    while job.progress().tasks_done < 3:
        time.sleep(0.02)
    cancelled_at = time.monotonic()
    job.cancel()
    with pytest.raises(CancelledError):
        job.result(timeout=120)
    assert time.monotonic() - cancelled_at < 15
    finished = sorted(out.glob("_part-*.json"))
    assert 3 <= len(finished) < 20 and len(sorted(out.glob("part-*.parquet"))) == len(finished)
    assert not list(out.glob("_tmp-*"))
    resumed = BatchJob(
        str(model_path), str(data_path), str(out), client=client, rows_per_task=30, target="target", resume=True
    )
    assert resumed.progress().tasks_done == len(finished)
    resumed.result(timeout=300)
    fresh = [s for s in resumed._stats.values() if s.get("fresh", True)]
    assert len(fresh) == 20 - len(finished)
    assert list(_read(out)["row_id"]) == list(range(600))


def test_resume_refuses_other_model_data_or_settings(client, files, tmp_path):
    tree_model, tree_data, _ = files["tree"]
    out = tmp_path / "run"
    BatchJob(str(tree_model), str(tree_data), str(out), client=client, rows_per_task=300, target="target").result(300)
    with pytest.raises(ModelLensError, match="already holds a batch run"):
        BatchJob(str(tree_model), str(tree_data), str(out), client=client, rows_per_task=300, target="target")
    with pytest.raises(ModelLensError, match="another model"):
        BatchJob(
            str(files["linear"][0]),
            str(tree_data),
            str(out),
            client=client,
            rows_per_task=300,
            target="target",
            resume=True,
        )
    other = tmp_path / "other.csv"
    pd.read_csv(tree_data).head(500).to_csv(other, index=False)
    with pytest.raises(ModelLensError, match="another data"):
        BatchJob(str(tree_model), str(other), str(out), client=client, rows_per_task=300, target="target", resume=True)
    with pytest.raises(ModelLensError, match="another settings"):
        BatchJob(
            str(tree_model),
            str(tree_data),
            str(out),
            client=client,
            rows_per_task=300,
            target="target",
            resume=True,
            sample=50,
        )


def test_fsspec_memory_url_and_lazy_reading_of_results(files, tmp_path):
    import fsspec
    from distributed import Client, LocalCluster

    model_path, data_path, model = files["tree"]
    fs = fsspec.filesystem("memory")
    frame = pd.read_csv(data_path)
    for i in range(3):
        with fs.open(f"/tables/customers/part-{i}.parquet", "wb") as fh:
            frame.iloc[i * 200 : (i + 1) * 200].to_parquet(fh, index=False)
    with (
        LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster,
        Client(cluster) as local,
    ):
        job = BatchJob(
            str(model_path),
            "memory://tables/customers/",
            str(tmp_path / "out"),
            client=local,
            target="target",
            rows_per_task=150,
        )
        summary = job.result(timeout=300)
    assert summary["rows_done"] == 600 and summary["data_fingerprint"].startswith("meta:")
    result = BatchResult(str(tmp_path / "out"))
    rows = result.rows([5, 399, 598])
    assert list(rows["row_id"]) == [5, 399, 598]
    np.testing.assert_allclose(
        rows["prediction"], model.predict_proba(frame.drop(columns="target").iloc[[5, 399, 598]])[:, 1]
    )
    assert len(result.sample(100)) == 100


def test_missing_or_unreadable_data_is_one_sentence(client, files, tmp_path):
    model_path = files["tree"][0]
    with pytest.raises(DataError, match="No data found at"):
        BatchJob(str(model_path), str(tmp_path / "nope.csv"), str(tmp_path / "out"), client=client)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match="Cannot read"):
        BatchJob(str(model_path), str(broken), str(tmp_path / "out2"), client=client)


def test_dashboard_refinement_on_a_cluster_equals_the_local_one(client, files):
    from core.batch.refiner import DaskRefiner
    from core.engine.explain import make_explainer
    from core.engine.jobs import ExplainJob

    model_path, data_path, model = files["tree"]
    frame = pd.read_csv(data_path).drop(columns="target")
    explainer = make_explainer(model, frame)
    local = ExplainJob(explainer, budget_seconds=1e-6, parallel=1)
    local.run_sample()
    local.start_refinement()
    assert local.wait(120)
    refiner = DaskRefiner(
        client.scheduler.address,
        explainer,
        model=model_path.read_bytes(),
        model_name="m.pkl",
        trusted=False,
        chunk_rows=97,
    )
    remote = ExplainJob(explainer, budget_seconds=1e-6, refiner=refiner)
    remote.run_sample()
    remote.start_refinement()
    assert remote.wait(300) and remote.status().state == "done"
    np.testing.assert_allclose(remote.result.values, local.result.values, atol=1e-12)
    assert list(remote.result.row_ids) == list(range(600))


def test_dashboard_shows_a_batch_run_sample_without_re_explaining(client, files, tmp_path):
    """A batch run too big to read whole reaches the pages as a one-class sample; nothing is recomputed."""
    from core.batch.refiner import batch_explain_result
    from core.engine.explain import make_explainer
    from core.engine.jobs import ExplainJob

    model_path, data_path, model = files["tree"]
    out = tmp_path / "run"
    BatchJob(str(model_path), str(data_path), str(out), client=client, rows_per_task=100, target="target").result(300)
    frame = pd.read_csv(data_path).drop(columns="target")
    stored = _read(out)

    sampled = batch_explain_result(BatchResult(str(out)), frame, task="binary", max_rows=150)
    assert 150 <= len(sampled) < 600 and sampled.total_rows == 600 and sampled.classes == (1,)
    assert f"{len(sampled)} of them are shown" in sampled.notes[0]
    np.testing.assert_allclose(
        sampled.values[:, :, 0], stored.set_index("row_id").loc[sampled.row_ids, [f"shap:{c}" for c in frame]]
    )
    job = ExplainJob(make_explainer(model, frame), budget_seconds=1e-6, parallel=1)
    job.adopt(sampled, refine=False)
    assert job.start_refinement() is False and job.status().state == "sampled" and job.result is sampled

    whole = batch_explain_result(BatchResult(str(out)), frame, task="binary")
    assert list(whole.row_ids) == list(range(600)) and whole.notes[0].endswith("(600 rows).")
    job = ExplainJob(make_explainer(model, frame), budget_seconds=1e-6, parallel=1)
    job.adopt(whole, refine=False)
    assert job.status().state == "done" and job.result.total_rows == 600


def test_batch_reads_csv_dialects_like_the_upload_reader(files, tmp_path):
    """Semicolons with decimal commas (a European Excel export) and latin-1 read as the comma CSV does."""
    from core.batch.sources import open_table

    _, data_path, _ = files["tree"]
    frame = pd.read_csv(data_path).assign(city=lambda f: f["city"].replace({"Lyon": "Besançon"}))
    european = tmp_path / "export.csv"
    european.write_bytes(frame.to_csv(index=False, sep=";", decimal=",").encode("latin-1"))
    got = open_table(str(european)).compute().reset_index(drop=True)
    pd.testing.assert_frame_equal(got, frame, check_dtype=False)
