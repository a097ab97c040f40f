#!/usr/bin/env python
"""Build Azure-AutoML-style ``model.pkl`` test fixtures locally (no Azure).

Run inside the AutoML runtime venv (Python 3.10, azureml-automl-runtime 1.62):

    venv/bin/python build_models.py OUTDIR

Writes OUTDIR/<name>/ for six models (the brief's three, a dense-featurizer case, two all-exact ensembles):

* ``binary_int``        breast_cancer, integer labels 0/1, PreFittedSoftVotingClassifier
* ``multiclass_str``    wine, string labels, PipelineWithYTransformations(LabelEncoder)
* ``regression``        diabetes (unscaled), PreFittedSoftVotingRegressor
* ``binary_dense``      breast_cancer numeric + date only -> the featurizer returns a dense ndarray (extra case)
* ``binary_trees``      the same data, every member behind a per-column scaler (all explained exactly)
* ``regression_trees``  diabetes again, LightGBM, XGBoost, ElasticNet and RandomForest, each behind a per-column
                        scaler (issue 15: every member explained exactly, XGBoost on scaled, non-float32 inputs)

Each folder holds ``model.pkl`` (pickle protocol 4, like AutoML), ``conda_env_v_1_0_0.yml``,
``scoring_file_v_1_0_0.py``, ``data.csv`` (raw columns + target, as a user would upload them),
``engineered_feature_names.json``, ``featurization_summary.json`` and ``meta.json``.

The featurizer is AutoML's own (``_suggest_featurizers_and_create_datatransformer``), the members come
from ``PipelineSpec.from_dict(...).instantiate_pipeline_spec(...)`` exactly as an AutoML child run builds
them, and the ensemble is assembled the way AutoML's ensemble iteration does it (members rebuilt with
``make_pipeline`` after the featurizer step is removed, iteration numbers as estimator names).
Everything is seeded; re-running gives byte-identical pickles.
"""

import json
import logging
import os
import pickle
import sys
import tempfile
import time
import warnings

# Some pickled state follows set/dict-of-set iteration order (string hashing), e.g. the featurizer's
# per-type counters: re-exec with a fixed hash seed so the pickles are byte-for-byte reproducible.
if os.environ.get("PYTHONHASHSEED") != "0":
    os.environ["PYTHONHASHSEED"] = "0"
    os.execv(sys.executable, [sys.executable, *sys.argv])  # noqa: S606 - this script, re-run

T_START = time.time()

warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from azureml.automl.runtime.data_transformation import (  # noqa: E402
    _suggest_featurizers_and_create_datatransformer,
)
from azureml.automl.runtime.shared.pipeline_spec import PipelineSpec  # noqa: E402
from azureml.automl.runtime.shared.problem_info import ProblemInfo  # noqa: E402
from azureml.training.tabular.models.pipeline_with_ytransformations import (  # noqa: E402
    PipelineWithYTransformations,
)
from azureml.training.tabular.models.voting_ensemble import (  # noqa: E402
    PreFittedSoftVotingClassifier,
    PreFittedSoftVotingRegressor,
)
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine  # noqa: E402
from sklearn.pipeline import Pipeline, make_pipeline  # noqa: E402
from sklearn.preprocessing import LabelEncoder  # noqa: E402

T_IMPORTS = time.time() - T_START

SEED = 20240601
# Legacy module path that real AutoML pipeline specs carry; instantiate() rewrites it.
WRAPPERS = "automl.client.core.runtime.model_wrappers"


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------
def _add_columns(X, y_for_signal, rng, cat_name, cat_levels, hash_name, date_name, start, nan_cols):
    """Add a low-cardinality string categorical (weakly tied to the target), a high-cardinality
    string id (-> HashOneHotEncoder), a date column and missing values."""
    n = len(X)
    # categorical: level depends a little on the (rank of the) target so it carries signal
    r = pd.Series(y_for_signal).rank(pct=True).to_numpy()
    idx = np.clip((r * len(cat_levels) + rng.normal(0, 1.2, n)).astype(int), 0, len(cat_levels) - 1)
    X[cat_name] = np.array(cat_levels, dtype=object)[idx]
    X[hash_name] = [f"{hash_name[:1].upper()}-{i:03d}" for i in rng.randint(0, 150, n)]
    X[date_name] = pd.Timestamp(start) + pd.to_timedelta(rng.randint(0, 1100, n), unit="D")
    for c, frac in nan_cols.items():
        X.loc[rng.rand(n) < frac, c] = np.nan
    X.loc[rng.rand(n) < 0.04, cat_name] = np.nan
    return X


def data_binary():
    rng = np.random.RandomState(SEED)
    d = load_breast_cancer(as_frame=True)
    cols = [
        "mean radius",
        "mean texture",
        "mean smoothness",
        "mean compactness",
        "mean concave points",
        "mean symmetry",
        "radius error",
        "worst area",
        "worst concavity",
        "worst symmetry",
    ]
    X = d.data[cols].copy()
    y = d.target.to_numpy().astype(np.int64)  # 0 = malignant, 1 = benign
    X = _add_columns(
        X,
        y + rng.rand(len(y)),
        rng,
        "site",
        ["north", "south", "east", "west", "central"],
        "clinic",
        "visit_date",
        "2019-01-01",
        {"mean radius": 0.08, "worst concavity": 0.05, "mean texture": 0.03},
    )
    return X, y, "diagnosis"


WINE_NAMES = np.array(["Barolo", "Grignolino", "Barbera"], dtype=object)


def data_multiclass():
    rng = np.random.RandomState(SEED + 1)
    d = load_wine(as_frame=True)
    cols = [
        "alcohol",
        "malic_acid",
        "ash",
        "magnesium",
        "total_phenols",
        "flavanoids",
        "color_intensity",
        "hue",
        "proline",
    ]
    X = d.data[cols].copy()
    y = WINE_NAMES[d.target.to_numpy()]
    X = _add_columns(
        X,
        d.target.to_numpy() + rng.rand(len(y)),
        rng,
        "region",
        ["Piemonte", "Toscana", "Veneto", "Sicilia"],
        "estate",
        "harvest_date",
        "2015-09-01",
        {"magnesium": 0.1, "hue": 0.05},
    )
    return X, y, "cultivar"


def data_dense():
    """Numeric + date only: no featurizer emits sparse output, so DataTransformer.transform returns a DENSE
    ndarray (np.hstack combiner) and XGBoost sees 0.0 as a value (in the CSR models implicit zeros are missing)."""
    rng = np.random.RandomState(SEED + 3)
    d = load_breast_cancer(as_frame=True)
    cols = [
        "mean radius",
        "mean texture",
        "mean smoothness",
        "mean concavity",
        "texture error",
        "worst radius",
        "worst smoothness",
        "worst concave points",
    ]
    X = d.data[cols].copy()
    n = len(X)
    X["exam_date"] = pd.Timestamp("2020-06-01") + pd.to_timedelta(rng.randint(0, 700, n), unit="D")
    for c, frac in {"mean radius": 0.07, "worst smoothness": 0.05}.items():
        X.loc[rng.rand(n) < frac, c] = np.nan
    return X, d.target.to_numpy().astype(np.int64), "diagnosis"


def data_regression():
    rng = np.random.RandomState(SEED + 2)
    d = load_diabetes(as_frame=True, scaled=False)
    X = d.data.copy()
    X["sex"] = np.where(X["sex"].to_numpy() == 1, "F", "M").astype(object)
    X = X.rename(columns={"s1": "tc", "s2": "ldl", "s3": "hdl", "s4": "tch", "s5": "ltg", "s6": "glu"})
    y = d.target.to_numpy().astype(np.float64)
    X = _add_columns(
        X,
        y,
        rng,
        "clinic_region",
        ["A", "B", "C"],
        "physician",
        "visit_date",
        "2018-03-01",
        {"bmi": 0.06, "glu": 0.1, "hdl": 0.04},
    )
    return X, y, "disease_progression"


def data_regression_money():
    """Diabetes plus a yearly income in dollars and cents and the visit's Unix time in seconds: more significant
    digits than float32 holds (its step is 128 s at today's Unix times), so neighbouring values share or border
    a float32 value. XGBoost and scikit-learn trees read their input as float32, LightGBM and ElasticNet as float64."""
    X, y, target = data_regression()
    rng = np.random.RandomState(SEED + 4)
    r = pd.Series(y).rank(pct=True).to_numpy()
    income = np.round(np.exp(10.6 + 0.9 * r + rng.normal(0, 0.25, len(y))), 2)
    X.insert(3, "income", income)
    X.loc[rng.rand(len(y)) < 0.05, "income"] = np.nan
    start = 1_700_000_000 + 3600 * (1 - r) * 24
    X.insert(6, "recorded_at", (start + rng.randint(0, 2 * 86400, len(y))).astype(np.int64))
    return X, y, target


# --------------------------------------------------------------------------------------------
# pipeline specs, in the JSON shape AutoML's service sends (spec_class / module / class_name / kwargs)
# --------------------------------------------------------------------------------------------
def _obj(spec_class, module, class_name, **kw):
    return {
        "spec_class": spec_class,
        "module": module,
        "class_name": class_name,
        "param_args": [],
        "param_kwargs": kw,
        "prepared_kwargs": {},
    }


def maxabs():
    return _obj("preproc", "sklearn.preprocessing", "MaxAbsScaler")


def stdscaler(with_mean, with_std):
    return _obj("preproc", WRAPPERS, "StandardScalerWrapper", with_mean=with_mean, with_std=with_std)


def sparse_norm(norm):
    return _obj("preproc", WRAPPERS, "SparseNormalizer", norm=norm)


def spec(pid, *objs):
    return {"pipeline_id": pid, "module": "sklearn.pipeline", "class_name": "Pipeline", "objects": list(objs)}


XGB_KW = dict(
    booster="gbtree",
    colsample_bytree=0.7,
    eta=0.1,
    gamma=0.0,
    max_depth=6,
    max_leaves=15,
    n_estimators=50,
    reg_alpha=0.0,
    reg_lambda=1.5625,
    subsample=0.8,
    tree_method="auto",
)

BINARY_MEMBERS = [  # (iteration, weight, spec)
    ("0", 5 / 15, spec("0", maxabs(), _obj("sklearn", WRAPPERS, "LightGBMClassifier", min_data_in_leaf=20))),
    (
        "7",
        3 / 15,
        spec(
            "7", sparse_norm("l2"), _obj("sklearn", WRAPPERS, "XGBoostClassifier", objective="reg:logistic", **XGB_KW)
        ),
    ),
    (
        "12",
        3 / 15,
        spec(
            "12",
            stdscaler(False, True),
            _obj(
                "sklearn",
                "sklearn.linear_model",
                "LogisticRegression",
                C=2.559547922699533,
                class_weight="balanced",
                multi_class="multinomial",
                penalty="l2",
                solver="lbfgs",
            ),
        ),
    ),
    (
        "5",
        2 / 15,
        spec(
            "5",
            maxabs(),
            _obj(
                "sklearn",
                "sklearn.ensemble",
                "ExtraTreesClassifier",
                bootstrap=False,
                class_weight="balanced",
                criterion="gini",
                max_features=0.5,
                min_samples_leaf=0.01,
                min_samples_split=0.01,
                n_estimators=25,
            ),
        ),
    ),
    (
        "9",
        2 / 15,
        spec(
            "9",
            stdscaler(False, False),
            _obj(
                "sklearn",
                WRAPPERS,
                "XGBoostClassifier",
                objective="reg:logistic",
                **dict(XGB_KW, max_depth=3, n_estimators=25, eta=0.3),
            ),
        ),
    ),
]

MULTI_MEMBERS = [
    ("0", 6 / 15, spec("0", maxabs(), _obj("sklearn", WRAPPERS, "LightGBMClassifier", min_data_in_leaf=20))),
    (
        "4",
        3 / 15,
        spec(
            "4",
            stdscaler(False, False),
            _obj("sklearn", WRAPPERS, "XGBoostClassifier", objective="reg:logistic", **XGB_KW),
        ),
    ),
    (
        "8",
        3 / 15,
        spec(
            "8",
            sparse_norm("l1"),
            _obj(
                "sklearn",
                "sklearn.ensemble",
                "RandomForestClassifier",
                bootstrap=True,
                class_weight="balanced",
                criterion="entropy",
                max_features="sqrt",
                min_samples_leaf=0.01,
                min_samples_split=0.056,
                n_estimators=25,
            ),
        ),
    ),
    (
        "11",
        3 / 15,
        spec(
            "11",
            maxabs(),
            _obj(
                "sklearn",
                "sklearn.linear_model",
                "LogisticRegression",
                C=16.768329368110066,
                class_weight=None,
                multi_class="ovr",
                penalty="l2",
                solver="liblinear",
            ),
        ),
    ),
]

DENSE_MEMBERS = [
    ("0", 7 / 15, spec("0", maxabs(), _obj("sklearn", WRAPPERS, "LightGBMClassifier", min_data_in_leaf=20))),
    (
        "2",
        5 / 15,
        spec(
            "2",
            stdscaler(True, True),
            _obj(
                "sklearn",
                WRAPPERS,
                "XGBoostClassifier",
                objective="reg:logistic",
                **dict(XGB_KW, max_depth=4, n_estimators=40),
            ),
        ),
    ),
    (
        "6",
        3 / 15,
        spec(
            "6",
            sparse_norm("l2"),
            _obj(
                "sklearn",
                "sklearn.ensemble",
                "ExtraTreesClassifier",
                bootstrap=False,
                class_weight=None,
                criterion="entropy",
                max_features=0.6,
                min_samples_leaf=0.01,
                min_samples_split=0.01,
                n_estimators=25,
            ),
        ),
    ),
]

# every member behind a per-column scaler: each is explained exactly on engineered columns (ModelLens's
# engineered view of an AutoML model)
TREES_MEMBERS = [
    DENSE_MEMBERS[0],
    DENSE_MEMBERS[1],
    ("6", 3 / 15, spec("6", maxabs(), *DENSE_MEMBERS[2][2]["objects"][1:])),
]

REG_MEMBERS = [
    ("0", 4 / 15, spec("0", maxabs(), _obj("sklearn", WRAPPERS, "LightGBMRegressor", min_data_in_leaf=20))),
    (
        "3",
        4 / 15,
        spec(
            "3",
            stdscaler(False, True),
            _obj(
                "sklearn",
                WRAPPERS,
                "XGBoostRegressor",
                objective="reg:squarederror",
                **dict(XGB_KW, eta=0.05, max_depth=4, n_estimators=100),
            ),
        ),
    ),
    (
        "6",
        2 / 15,
        spec(
            "6",
            maxabs(),
            _obj("sklearn", "sklearn.linear_model", "ElasticNet", alpha=0.001, l1_ratio=0.5, max_iter=5000),
        ),
    ),
    (
        "9",
        3 / 15,
        spec(
            "9",
            sparse_norm("max"),
            _obj(
                "sklearn",
                "sklearn.ensemble",
                "ExtraTreesRegressor",
                bootstrap=False,
                criterion="mse",
                max_features=0.5,
                min_samples_leaf=0.004,
                min_samples_split=0.005,
                n_estimators=25,
            ),
        ),
    ),
    (
        "10",
        2 / 15,
        spec(
            "10",
            maxabs(),
            _obj(
                "sklearn",
                "sklearn.ensemble",
                "RandomForestRegressor",
                bootstrap=True,
                criterion="squared_error",
                max_features=0.7,
                min_samples_leaf=0.01,
                min_samples_split=0.01,
                n_estimators=25,
            ),
        ),
    ),
]

# issue 15's ensemble: the four member kinds, each behind a per-column scaler, so all are explained exactly.
# The StandardScalerWrapper divides by the column's deviation: XGBoost's inputs are then float64 values off
# the float32 grid its split conditions live on.
REG_TREES_MEMBERS = [
    ("0", 5 / 15, REG_MEMBERS[0][2]),
    ("3", 4 / 15, REG_MEMBERS[1][2]),
    ("6", 2 / 15, REG_MEMBERS[2][2]),
    ("10", 4 / 15, REG_MEMBERS[4][2]),
]


# --------------------------------------------------------------------------------------------
# build
# --------------------------------------------------------------------------------------------
def fit_featurizer(task, X, y, workdir):
    dt = _suggest_featurizers_and_create_datatransformer(
        task=task, X=X, y=y, enable_feature_sweeping=False, is_cross_validation=True, working_dir=workdir
    )
    dt.fit(X, y)
    # A freshly fitted DataTransformer has _is_inference_time=False, and then transform() switches to a
    # disk-based combiner (pickles chunks into working_directory) whenever available RAM <= 50% of total
    # (memory_utilities._is_low_memory). __getstate__ pickles _is_inference_time=True anyway, so set it now:
    # the builder then always uses the in-memory combiner, exactly like a loaded model does.
    dt._is_inference_time = True
    return dt


def _normalise_object_ids(root):
    """scikit-learn's CountVectorizer caches ``_stop_words_id = id(self.stop_words)`` (a memory address) and
    pickles it. It is only a cache key (a mismatch just re-checks the stop words), so zero it for
    reproducible bytes. Real AutoML pickles carry an address there."""
    seen = set()
    stack = [root]
    while stack:
        o = stack.pop()
        if id(o) in seen or isinstance(o, (str, bytes, int, float, np.ndarray, pd.DataFrame, pd.Series)):
            continue
        seen.add(id(o))
        if isinstance(o, dict):
            stack.extend(o.values())
        elif isinstance(o, (list, tuple, set)):
            stack.extend(o)
        elif hasattr(o, "__dict__"):
            if "_stop_words_id" in o.__dict__:
                o._stop_words_id = 0
            stack.extend(o.__dict__.values())


def fit_members(members, problem_info, Xt, y):
    fitted = []
    for it, _w, d in members:
        child = PipelineSpec.from_dict(d).instantiate_pipeline_spec(problem_info, random_state=SEED % 1000)
        child.fit(Xt, y)
        # AutoML's ensemble iteration drops the featurizer step from each child run's pipeline and
        # rebuilds it with make_pipeline -> lower-case step names ('maxabsscaler', 'lightgbmclassifier', ...)
        fitted.append((it, make_pipeline(*[s for _, s in child.steps])))
    return fitted, [w for _, w, _ in members]


def problem_info_for(task, Xt, n_classes):
    return ProblemInfo(
        dataset_samples=Xt.shape[0],
        dataset_features=Xt.shape[1],
        dataset_classes=n_classes,
        task=task,
        is_sparse=True,
        num_threads=1,
        metric="AUC_weighted" if task == "classification" else "normalized_root_mean_squared_error",
    )


def build_binary(workdir):
    X, y, target = data_binary()
    dt = fit_featurizer("classification", X, y, workdir)
    Xt = dt.transform(X)
    pinfo = problem_info_for("classification", Xt, 2)
    members, weights = fit_members(BINARY_MEMBERS, pinfo, Xt, y)
    ens = PreFittedSoftVotingClassifier(estimators=members, weights=weights, classification_labels=np.unique(y))
    model = Pipeline(steps=[("datatransformer", dt), ("prefittedsoftvotingclassifier", ens)])
    return model, X, y, target, "classification"


def build_multiclass(workdir):
    X, y, target = data_multiclass()
    # AutoML label-encodes non-integer labels (data_transformation._y_transform) and trains on the codes
    le = LabelEncoder().fit(y)
    y_enc = le.transform(y)
    dt = fit_featurizer("classification", X, y_enc, workdir)
    Xt = dt.transform(X)
    pinfo = problem_info_for("classification", Xt, len(le.classes_))
    members, weights = fit_members(MULTI_MEMBERS, pinfo, Xt, y_enc)
    ens = PreFittedSoftVotingClassifier(estimators=members, weights=weights, classification_labels=np.unique(y_enc))
    inner = Pipeline(steps=[("datatransformer", dt), ("prefittedsoftvotingclassifier", ens)])
    # pipeline_run_helper._augment_transformers wraps the fitted pipeline like this for classification
    model = PipelineWithYTransformations(inner, "LabelEncoder", le)
    return model, X, y, target, "classification"


def build_trees(workdir):
    X, y, target = data_dense()
    dt = fit_featurizer("classification", X, y, workdir)
    Xt = dt.transform(X)
    pinfo = problem_info_for("classification", Xt, 2)
    pinfo.is_sparse = False
    members, weights = fit_members(TREES_MEMBERS, pinfo, Xt, y)
    ens = PreFittedSoftVotingClassifier(estimators=members, weights=weights, classification_labels=np.unique(y))
    model = Pipeline(steps=[("datatransformer", dt), ("prefittedsoftvotingclassifier", ens)])
    return model, X, y, target, "classification"


def build_dense(workdir):
    X, y, target = data_dense()
    dt = fit_featurizer("classification", X, y, workdir)
    Xt = dt.transform(X)
    assert isinstance(Xt, np.ndarray), type(Xt)
    pinfo = problem_info_for("classification", Xt, 2)
    pinfo.is_sparse = False
    members, weights = fit_members(DENSE_MEMBERS, pinfo, Xt, y)
    ens = PreFittedSoftVotingClassifier(estimators=members, weights=weights, classification_labels=np.unique(y))
    model = Pipeline(steps=[("datatransformer", dt), ("prefittedsoftvotingclassifier", ens)])
    return model, X, y, target, "classification"


def build_regression(workdir, spec_members=REG_MEMBERS, data=data_regression):
    X, y, target = data()
    dt = fit_featurizer("regression", X, y, workdir)
    Xt = dt.transform(X)
    pinfo = problem_info_for("regression", Xt, None)
    members, weights = fit_members(spec_members, pinfo, Xt, y)
    ens = PreFittedSoftVotingRegressor(estimators=members, weights=weights)
    model = Pipeline(steps=[("datatransformer", dt), ("prefittedsoftvotingregressor", ens)])
    return model, X, y, target, "regression"


def build_regression_trees(workdir):
    return build_regression(workdir, REG_TREES_MEMBERS, data_regression_money)


# --------------------------------------------------------------------------------------------
# side files
# --------------------------------------------------------------------------------------------
def _versions():
    from importlib.metadata import version

    out = {}
    for p in [
        "azureml-automl-runtime",
        "azureml-training-tabular",
        "azureml-automl-core",
        "azureml-core",
        "numpy",
        "pandas",
        "scikit-learn",
        "scipy",
        "lightgbm",
        "xgboost",
        "joblib",
        "sklearn-pandas",
    ]:
        try:
            out[p] = version(p)
        except Exception:
            out[p] = None
    return out


def conda_env_text(v):
    return f"""# Conda environment specification. The dependencies defined in this file will
# be automatically provisioned for runs with userManagedDependencies=False.
# (ModelLens test fixture: written by build_models.py in the shape AutoML downloads use.)

name: project_environment
dependencies:
  # The python interpreter version.
- python={sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}

- pip:
  - azureml-train-automl-runtime==1.62.0
  - inference-schema
  - xgboost<=1.5.2
  - azureml-interpret==1.62.0
  - azureml-defaults==1.62.0
- numpy=={v["numpy"]}
- pandas=={v["pandas"]}
- scikit-learn=={v["scikit-learn"]}
- lightgbm=={v["lightgbm"]}
- psutil==5.9.3
channels:
- anaconda
- conda-forge
"""


def _sample_literal(s):
    v = s.dropna().iloc[0]
    if pd.api.types.is_datetime64_any_dtype(s):
        return 'pd.Series(["{}"], dtype="datetime64[ns]")'.format(pd.Timestamp(v).strftime("%Y-%m-%dT%H:%M:%S.000Z"))
    if s.dtype == object:
        return 'pd.Series(["example_value"], dtype="object")'
    if pd.api.types.is_integer_dtype(s):
        return f'pd.Series([{int(v)}], dtype="{s.dtype}")'
    return f'pd.Series([{float(v)!r}], dtype="{s.dtype}")'


def scoring_file_text(X, y, task):
    cols = ",\n".join(f"    {json.dumps(c)}: {_sample_literal(X[c])}" for c in X.columns)
    if task != "classification":
        out = "np.array([0.0])"
    else:
        out = 'np.array(["example_value"])' if np.asarray(y).dtype == object else "np.array([0])"
    return f"""# ModelLens test fixture: a scoring script in the shape of AutoML's scoring_file_v_1_0_0.py
# (written by build_models.py; not Microsoft's file).
import json
import logging
import os

import joblib
import numpy as np
import pandas as pd

from inference_schema.schema_decorators import input_schema, output_schema
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.parameter_types.pandas_parameter_type import PandasParameterType
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType

input_sample = pd.DataFrame({{
{cols}
}})
output_sample = {out}
method_sample = StandardPythonParameterType("predict")

try:
    log_server.enable_telemetry(INSTRUMENTATION_KEY)  # noqa: F821 (present only in Azure images)
except Exception:
    pass


def init():
    global model
    model_path = os.path.join(os.getenv("AZUREML_MODEL_DIR", "."), "model.pkl")
    model = joblib.load(model_path)


@input_schema("method", method_sample, convert_to_provided_type=False)
@input_schema("data", PandasParameterType(input_sample))
@output_schema(NumpyParameterType(output_sample))
def run(data, method="predict"):
    try:
        if method == "predict_proba":
            result = model.predict_proba(data)
        elif method == "predict":
            result = model.predict(data)
        else:
            raise Exception(f"Invalid predict method argument received ({{method}})")
        if isinstance(result, pd.DataFrame):
            result = result.values
        return json.dumps({{"result": result.tolist()}})
    except Exception as e:
        return json.dumps({{"error": str(e)}})
"""


def save(outdir, name, model, X, y, target, task, versions):
    d = os.path.join(outdir, name)
    os.makedirs(d, exist_ok=True)
    _normalise_object_ids(model)  # set by CountVectorizer during transform()
    # The featurizer pickles its working directory (AutoML's: the compute's job folder). Pickle a fixed path so
    # the bytes are reproducible; it need not exist (__setstate__ falls back to os.getcwd()).
    dt = model.steps[0][1]
    dt.working_directory = "/mnt/azureml/cr/j/modellens0fixture/exe/wd"
    with open(os.path.join(d, "model.pkl"), "wb") as f:
        pickle.dump(model, f, protocol=4)
    df = X.copy()
    df[target] = y
    # dates as a user's CSV would hold them (ISO text); missing values as empty fields
    df.to_csv(os.path.join(d, "data.csv"), index=False, date_format="%Y-%m-%d")
    with open(os.path.join(d, "engineered_feature_names.json"), "w") as f:
        json.dump(dt.get_engineered_feature_names(), f, indent=1)
    with open(os.path.join(d, "featurization_summary.json"), "w") as f:
        json.dump(dt.get_featurization_summary(), f, indent=1)
    with open(os.path.join(d, "conda_env_v_1_0_0.yml"), "w") as f:
        f.write(conda_env_text(versions))
    with open(os.path.join(d, "scoring_file_v_1_0_0.py"), "w") as f:
        f.write(scoring_file_text(X, y, task))
    ens = model.steps[-1][1]
    est = ens.estimators if hasattr(ens, "estimators") else ens._wrappedEnsemble.estimators
    w = ens.weights if hasattr(ens, "weights") else ens._wrappedEnsemble.weights
    meta = {
        "task": task,
        "target_column": target,
        "n_rows": int(len(X)),
        "raw_columns": list(X.columns),
        "labels": [str(v) for v in np.unique(y)] if task == "classification" else None,
        "members": [
            {"name": n, "weight": float(wt), "steps": [s for s, _ in p.steps]}
            for (n, p), wt in zip(est, w, strict=False)
        ],
        "built_with": versions,
        "python": sys.version.split()[0],
    }
    with open(os.path.join(d, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    return d


def main(argv):
    if len(argv) != 2:
        print(__doc__)
        return 2
    outdir = argv[1]
    os.makedirs(outdir, exist_ok=True)
    versions = _versions()
    print(f"imports: {T_IMPORTS:.1f}s")
    with tempfile.TemporaryDirectory() as wd:
        for name, fn in [
            ("binary_int", build_binary),
            ("multiclass_str", build_multiclass),
            ("regression", build_regression),
            ("binary_dense", build_dense),
            ("binary_trees", build_trees),
            ("regression_trees", build_regression_trees),
        ]:
            t = time.time()
            model, X, y, target, task = fn(wd)
            d = save(outdir, name, model, X, y, target, task, versions)
            # sanity: the saved model reloads and predicts on the CSV as a user would feed it
            with open(os.path.join(d, "model.pkl"), "rb") as f:
                m2 = pickle.load(f)
            raw = pd.read_csv(os.path.join(d, "data.csv")).drop(columns=[target])
            if task == "classification":
                a = np.asarray(model.predict_proba(X))
                b = np.asarray(m2.predict_proba(raw))
            else:
                a, b = model.predict(X), m2.predict(raw)
            err = float(np.max(np.abs(a - b)))
            print(
                f"{name}: {time.time() - t:.1f}s  pkl={os.path.getsize(os.path.join(d, 'model.pkl'))} B  "
                f"reload-on-csv max|diff|={err:.2e}"
            )
            assert err < 1e-9, err
            # the pipeline's own output on the CSV, for the tests to check explanations against
            np.save(os.path.join(d, "expected_output.npy"), np.asarray(b, dtype=np.float64).reshape(len(raw), -1))
    print(f"total: {time.time() - T_START:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
