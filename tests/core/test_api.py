"""The stable API the issues name, used the way a notebook would: ``import core`` and nothing else."""

from __future__ import annotations

import importlib
import pickle

import numpy as np
import pytest

import core
from core.isolation.workers import close_default_pool
from tests.conftest import ROOT
from tests.core import zoo


def test_notebook_flow_through_the_stable_names(pool):
    for module in (ROOT / "core").rglob("*.py"):  # every submodule imported, as in the app: none may shadow a name
        if module.stem not in {"__init__", "__main__"}:
            importlib.import_module(".".join(module.relative_to(ROOT).with_suffix("").parts))
    model, frame = zoo.builders()["pipe_rf"]()
    table = frame.assign(churned=model.predict(frame)).to_csv(index=False).encode()

    loaded = core.load_model(pickle.dumps(model), "churn.pkl", pool=pool)
    data = core.load_table(table, "customers.csv")
    aligned = core.align(loaded, data)
    explainer = core.make_explainer(loaded, aligned, output="probability")  # what align returns, as is
    expl = explainer.explain([0, 3, 7], class_label=1)

    assert isinstance(loaded, core.LoadedModel) and isinstance(aligned, core.Aligned)
    assert isinstance(explainer, core.Explainer) and isinstance(expl, core.Explanation)
    assert aligned.target_name == "churned" and list(expl.feature_names) == list(loaded.feature_names)
    assert explainer.target_name == "churned" and explainer.notices == aligned.notices and explainer.notices
    np.testing.assert_array_equal(explainer.target.to_numpy(), model.predict(frame))
    np.testing.assert_allclose(expl.prediction, model.predict_proba(frame.iloc[[0, 3, 7]])[:, 1], rtol=1e-6)
    np.testing.assert_allclose(expl.base_values + expl.values.sum(axis=1), expl.prediction, rtol=1e-6)
    kinds = [imp.kind for imp in core.global_importances(expl)]
    assert kinds[0] == "shap"


def test_the_readme_python_block_runs_as_written(tmp_path, monkeypatch, capsys):
    text = (ROOT / "README.md").read_text()
    block = text.split("## Python API", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    model, frame = zoo.builders()["pipe_rf"]()
    (tmp_path / "churn.pkl").write_bytes(pickle.dumps(model))
    frame.assign(churned=model.predict(frame)).to_csv(tmp_path / "customers.csv", index=False)
    monkeypatch.chdir(tmp_path)
    try:
        exec(compile(block, "README.md", "exec"), {})  # noqa: S102 - the project's own README
    finally:
        close_default_pool()
    assert capsys.readouterr().out.strip() == "churned ['shap']"


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="not_a_name"):
        core.not_a_name  # noqa: B018
