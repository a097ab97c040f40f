"""A finished batch run for the same model and data file is what the dashboard shows (all N rows)."""

from __future__ import annotations

import logging

import pytest

from core.batch.job import BatchJob
from core.config import Settings
from core.data.demo import demo_files
from tests.pages.test_pages import _fresh_caches, app, chart  # noqa: F401 - _fresh_caches is an autouse fixture

pytestmark = pytest.mark.slow


def test_the_dashboard_uses_a_matching_batch_run(tmp_path):
    from distributed import Client, LocalCluster

    settings = Settings.from_env()
    model_path, data_path = demo_files("breast-cancer", settings.home)
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0", silence_logs=logging.ERROR
        ) as cluster,
        Client(cluster) as client,
    ):
        job = BatchJob(
            str(model_path),
            str(data_path),
            str(tmp_path / "run"),
            client=client,
            rows_per_task=200,
            target="diagnosis",
            class_label="malignant",
        )
        job.result(timeout=300)  # a run from Python records itself for the dashboard, like the CLI's
    at = app().run()
    assert any("batch run" in c.value for c in at.sidebar.caption)  # the caption is markdown-escaped
    at.switch_page("pages/global_importance.py").run()
    assert "all 569 rows" in chart(at, "Global importance")["layout"]["xaxis"]["title"]["text"]
