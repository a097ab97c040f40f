"""load_model end to end (through a worker): every upload format, the model card, and clear load errors."""

from __future__ import annotations

import io
import pickle
import zipfile

import numpy as np
import pytest

from core.errors import MissingDependencyError, ModelLoadError, UnsafeModelError
from core.loading.models import load_model
from tests.core import zoo


@pytest.fixture(scope="module")
def models():
    built = zoo.builders()
    return {name: built[name]() for name in ("rf_clf", "xgb_multi", "lgbm_reg", "catboost_clf", "pipe_rf")}


def test_pipeline_card(pool, models):
    model, F = models["pipe_rf"]
    loaded = load_model(pickle.dumps(model), "churn.pkl", pool=pool)
    assert loaded.task == "binary" and loaded.classes == (0, 1) and loaded.library == "scikit-learn"
    assert loaded.estimator == "RandomForestClassifier" and loaded.class_name == "sklearn.pipeline.Pipeline"
    assert loaded.feature_names == ("age", "income", "tenure", "city", "plan")
    assert loaded.input_kinds["city"] == "categorical" and loaded.input_kinds["age"] == "numeric"
    assert set(loaded.categories["city"]) == {"Lyon", "Paris", "Nice"}
    assert [s["class"] for s in loaded.steps] == ["ColumnTransformer", "RandomForestClassifier"]
    assert "OneHotEncoder" in loaded.steps[0]["detail"]
    assert loaded.outputs == ("probability",) and len(loaded.sha256) == 64
    np.testing.assert_allclose(loaded.predict(F.iloc[:5]), model.predict_proba(F.iloc[:5]))


def test_skops_with_trusted_type_audit(pool, models):
    import skops.io as sio

    model, X = models["rf_clf"]
    loaded = load_model(sio.dumps(model), "forest.skops", pool=pool)
    assert loaded.format == "skops" and loaded.estimator == "RandomForestClassifier"
    np.testing.assert_allclose(loaded.predict(X.iloc[:5]), model.predict_proba(X.iloc[:5]))


def test_skops_with_untrusted_type_is_refused(pool):
    import operator

    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    data = sio.dumps(FunctionTransformer(func=operator.add).fit(np.ones((2, 1))))
    with pytest.raises(UnsafeModelError, match="operator.add"):
        load_model(data, "bad.skops", pool=pool)


@pytest.mark.parametrize("fmt", ["json", "ubj"])
def test_xgboost_native_files(pool, models, tmp_path, fmt):
    model, X = models["xgb_multi"]
    path = tmp_path / f"model.{fmt}"
    model.get_booster().save_model(path)
    loaded = load_model(path.read_bytes(), path.name, pool=pool)
    assert loaded.format == f"xgboost-{fmt}" and loaded.task == "multiclass" and loaded.classes == (0, 1, 2)
    np.testing.assert_allclose(loaded.predict(X.iloc[:5], "probability"), model.predict_proba(X.iloc[:5]), rtol=1e-6)


def test_lightgbm_text_file(pool, models):
    model, X = models["lgbm_reg"]
    loaded = load_model(model.booster_.model_to_string().encode(), "model.txt", pool=pool)
    assert loaded.format == "lightgbm-txt" and loaded.task == "regression"
    np.testing.assert_allclose(loaded.predict(X.iloc[:5], "raw")[:, 0], model.predict(X.iloc[:5]), rtol=1e-9)


def test_catboost_cbm(pool, models, tmp_path):
    model, X = models["catboost_clf"]
    path = tmp_path / "model.cbm"
    model.save_model(str(path))
    loaded = load_model(path.read_bytes(), path.name, pool=pool)
    assert loaded.format == "catboost-cbm" and loaded.library == "CatBoost"


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buf.getvalue()


def test_mlflow_zip_with_pins_reports_version_skew(pool, models):
    model, X = models["rf_clf"]
    data = _zip(
        {
            "model/MLmodel": b"flavors:\n  sklearn:\n    pickled_model: model.pkl\n    sklearn_version: 1.3.0\n",
            "model/model.pkl": pickle.dumps(model),
            "model/conda.yaml": b"dependencies:\n- python=3.11\n- pip:\n  - scikit-learn==1.3.0\n",
            "model/requirements.txt": b"scikit-learn==1.3.0\n",
        }
    )
    loaded = load_model(data, "mlflow-model.zip", pool=pool)
    assert loaded.container == "mlflow-zip"
    assert any("Trained with scikit-learn 1.3.0" in n for n in loaded.notices)


def test_automl_model_without_runtime_gives_the_install_command(pool, tmp_path, monkeypatch):
    from tests.core.attacks import _s

    monkeypatch.setenv("MODELLENS_RUNTIMES", str(tmp_path))  # no runtime installed there

    pickled = _s("azureml.training.tabular.models.pipeline_with_ytransformations") + _s("PipelineWithYTransformations")
    data = _zip(
        {
            "model.pkl": b"\x80\x04" + pickled + b"\x93)\x81.",
            "conda_env_v_1_0_0.yml": b"dependencies:\n- python=3.10\n- pip:\n  - azureml-train-automl-runtime==1.62.0\n",
        }
    )
    with pytest.raises(
        MissingDependencyError,
        match=r"\(trained with AutoML 1\.62\.0, Python 3\.10\).*`modellens runtime install azureml-automl --version "
        r"1\.62\.0`",
    ) as info:
        load_model(data, "automl.zip", pool=pool)
    assert info.value.trained_version == "1.62.0"


@pytest.mark.parametrize(
    ("data", "name", "message"),
    [
        (b"", "model.pkl", "empty"),
        (pickle.dumps(list(range(100)), protocol=4)[:-20], "model.pkl", "truncated"),
        (b"age,city\n1,Lyon\n", "model.pkl", "not a model file"),
        (pickle.dumps({"weights": [1, 2, 3]}), "model.pkl", "not a model"),
        (b'{"not": "xgboost"}', "model.json", "not an XGBoost model"),
        (_zip({"readme.txt": b"hi"}), "model.zip", "holds no model"),
    ],
)
def test_load_errors_are_one_clear_sentence(pool, data, name, message):
    with pytest.raises(ModelLoadError, match=message) as info:
        load_model(data, name, pool=pool)
    assert "\n" not in str(info.value) and "Traceback" not in str(info.value)
