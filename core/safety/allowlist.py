"""What an uploaded pickle may reference: the exact globals real model files use, and nothing else.

Derived from 701 real model files (scikit-learn, XGBoost, LightGBM, CatBoost, joblib; numpy 1.x and 2.x);
see ``shared/research/safe-loading.md``. Roles: ``R`` may be called by REDUCE (each has an argument
validator in :mod:`core.safety.safe_pickle`), ``C`` is a class that may be instantiated (NEWOBJ with no
arguments) and receive state (BUILD), ``V`` may be stored as a value.

This module must stay importable by Python 3.9 with numpy 1.23 (the Azure AutoML worker runs it).
"""

from __future__ import annotations

import re

from core.safety.allowlist_sklearn import SKLEARN_CLASSES

__all__ = [
    "AUTOML_CLASS_PREFIXES",
    "CALLABLE_INSTANCE_MODULES",
    "CALL_SLOTS",
    "AUTOML_GETATTR",
    "CLASS_PREFIXES",
    "CUSTOM_CODE_MODULES",
    "CYTHON_REDUCE_MODULES",
    "DENY_MODULE_RE",
    "EXACT",
    "KNOWN_PACKAGES",
    "KWARGS_ATTRS",
    "MALICIOUS_GLOBALS",
    "MALICIOUS_MODULE_RE",
    "METHOD_ATTR_RE",
    "METHOD_VALUES_EXTRA",
    "OPTIONAL_PANDAS",
    "PREDICT_METHODS",
    "REBUILT_ATTRS",
    "PURE_FUNCTIONS",
    "SAFE_MODULE_RE",
    "SHADOW_CHECKED",
    "SKOPS_EXTRA_TRUSTED",
    "SKLEARN_CLASSES",
]

# numpy helpers are listed under their numpy-2 module; core.safety.safe_pickle maps the numpy-1 spelling
# (numpy.core.*) to whichever the installed numpy provides.
EXACT: dict[tuple[str, str], str] = {
    ("numpy", "ndarray"): "CV",
    ("numpy", "dtype"): "RV",
    ("numpy._core.multiarray", "_reconstruct"): "R",
    ("numpy._core.multiarray", "scalar"): "R",
    ("numpy._core.numeric", "_frombuffer"): "R",
    ("numpy.ma.core", "_mareconstruct"): "R",
    ("numpy.ma.core", "MaskedArray"): "CV",
    ("numpy.random._pickle", "__randomstate_ctor"): "R",
    ("numpy.random._pickle", "__bit_generator_ctor"): "RV",
    ("numpy.random._pickle", "__generator_ctor"): "R",
    ("numpy.random._mt19937", "MT19937"): "CV",
    ("numpy.random._pcg64", "PCG64"): "CV",
    ("numpy.random._pcg64", "PCG64DXSM"): "CV",
    ("numpy.random._philox", "Philox"): "CV",
    ("numpy.random._sfc64", "SFC64"): "CV",
    ("numpy.random.bit_generator", "SeedSequence"): "CV",
    ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence"): "R",
    ("numpy.random.mtrand", "RandomState"): "CV",
    ("numpy.random._generator", "Generator"): "CV",
    ("builtins", "slice"): "R",
    ("builtins", "bytearray"): "R",
    ("builtins", "bytes"): "R",
    ("builtins", "set"): "RV",
    ("builtins", "frozenset"): "RV",
    ("builtins", "complex"): "RV",
    ("builtins", "object"): "V",
    ("builtins", "dict"): "V",
    ("builtins", "list"): "V",
    ("builtins", "tuple"): "V",
    ("builtins", "int"): "V",
    ("builtins", "float"): "V",
    ("builtins", "str"): "V",
    ("builtins", "bool"): "V",
    ("_codecs", "encode"): "R",
    ("copyreg", "_reconstructor"): "R",
    ("collections", "OrderedDict"): "RCV",
    ("collections", "defaultdict"): "RC",
    ("functools", "partial"): "RC",
    ("joblib.numpy_pickle", "NumpyArrayWrapper"): "C",
    ("sklearn.tree._tree", "Tree"): "RC",
    ("sklearn.metrics._dist_metrics", "newObj"): "R",
    ("sklearn.neighbors._kd_tree", "newObj"): "R",
    ("sklearn.neighbors._ball_tree", "newObj"): "R",
    ("sklearn.utils.validation", "check_array"): "V",
    ("sklearn.feature_selection._univariate_selection", "f_classif"): "V",
    ("sklearn.feature_selection._univariate_selection", "f_regression"): "V",
    ("sklearn.feature_selection._univariate_selection", "r_regression"): "V",
    ("sklearn.feature_selection._univariate_selection", "chi2"): "V",
    ("sklearn.feature_selection._univariate_selection", "f_oneway"): "V",
    ("sklearn.feature_selection._mutual_info", "mutual_info_classif"): "V",
    ("sklearn.feature_selection._mutual_info", "mutual_info_regression"): "V",
    ("scipy.interpolate._bsplines", "BSpline"): "C",
    ("scipy._lib.array_api_compat.numpy._aliases", "asarray"): "V",
    ("scipy.sparse._csr", "csr_matrix"): "C",
    ("scipy.sparse._csc", "csc_matrix"): "C",
    ("scipy.sparse._coo", "coo_matrix"): "C",
    ("scipy.sparse._dia", "dia_matrix"): "C",
    ("scipy.sparse._csr", "csr_array"): "C",
    ("scipy.sparse._csc", "csc_array"): "C",
    # Boosting libraries: exact classes only. Their modules also expose DMatrix / Dataset / Pool,
    # which read local files when constructed, so no prefix rule here.
    ("xgboost.sklearn", "XGBClassifier"): "C",
    ("xgboost.sklearn", "XGBRegressor"): "C",
    ("xgboost.sklearn", "XGBRanker"): "C",
    ("xgboost.sklearn", "XGBRFClassifier"): "C",
    ("xgboost.sklearn", "XGBRFRegressor"): "C",
    ("xgboost.sklearn", "XGBModel"): "C",
    ("xgboost.core", "Booster"): "C",
    ("lightgbm.sklearn", "LGBMClassifier"): "C",
    ("lightgbm.sklearn", "LGBMRegressor"): "C",
    ("lightgbm.sklearn", "LGBMRanker"): "C",
    ("lightgbm.sklearn", "LGBMModel"): "C",
    ("lightgbm.basic", "Booster"): "C",
    ("catboost.core", "CatBoostClassifier"): "C",
    ("catboost.core", "CatBoostRegressor"): "C",
    ("catboost.core", "CatBoostRanker"): "C",
    ("catboost.core", "CatBoost"): "C",
}

# pandas objects inside a model: off for ordinary uploads, on in the AutoML worker.
OPTIONAL_PANDAS: dict[tuple[str, str], str] = {
    ("pandas._libs.tslibs.timestamps", "_unpickle_timestamp"): "R",
    ("pandas._libs.tslibs.timedeltas", "_timedelta_unpickle"): "R",
    ("pandas._libs.tslibs.nattype", "__nat_unpickle"): "R",
}

# Class-only prefix rules: the module is checked before it is imported, the name may not contain
# a dot, and the object must be a class whose __module__ is exactly that module. Ordinary uploads use
# none: their scikit-learn classes are listed one by one (SKLEARN_CLASSES, core.safety.allowlist_sklearn).
CLASS_PREFIXES: tuple[str, ...] = ()
AUTOML_CLASS_PREFIXES: tuple[str, ...] = (
    "sklearn.",
    "azureml.automl.runtime.",
    "azureml.training.tabular.",
    "azureml.automl.core.",
    "sklearn_pandas.",
)

# The only ``builtins.getattr(Class, name)`` references real AutoML files hold: CountVectorizer's tokenizer.
# A fetched function is called at predict time with the user's data, so each one is listed, never a pattern.
AUTOML_GETATTR: frozenset[tuple[str, str, str]] = frozenset(
    {("azureml.automl.runtime.featurization.data_transformer", "DataTransformer", "_wrap_in_lst")}
)

# Sub-packages that are never imported: side effects on import, file or network I/O, test code,
# re-exports of os / numpy.load / importlib.
DENY_MODULE_RE = re.compile(
    r"(^|\.)(tests?|testing|_testing|conftest|experimental|datasets|externals|_build_utils|"
    r"__check_build|_show_versions|_distributor_init|_config|cache|_cache|io|_io|utilities|"
    r"logging_utilities|file_utilities|telemetry|_vendor|vendor)(\.|$)"
    r"|^sklearn\.utils\.(parallel|_joblib|discovery|fixes|_openmp_helpers|_repr_html)(\.|$)"
)

SAFE_MODULE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")

# Extension types whose legitimate __reduce__ is (cls, (scalars...)).
CYTHON_REDUCE_MODULES = frozenset({"sklearn._loss._loss", "sklearn.linear_model._sgd_fast"})

# Functions a model may hold as values (FunctionTransformer.func, SelectKBest.score_func, partial.func):
# they are called at predict time with our data, so only pure computations belong here. numpy
# ufuncs (np.log1p, np.expm1, ...) are allowed by rule in core.safety.safe_pickle.
PURE_FUNCTIONS: frozenset[tuple[str, str]] = frozenset(
    key for key, roles in EXACT.items() if roles == "V" and key[0].startswith(("sklearn.", "scipy."))
)

# Top-level modules of libraries a model may legitimately need, with their pip names: a global
# from one of these that is not installed is a missing dependency, not custom code.
KNOWN_PACKAGES: dict[str, str] = {
    "sklearn": "scikit-learn",
    "numpy": "numpy",
    "scipy": "scipy",
    "joblib": "joblib",
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "catboost": "catboost",
    "pandas": "pandas",
    "azureml": "azureml-automl-runtime",
    "sklearn_pandas": "sklearn-pandas",
    "lz4": "lz4",
}

# Modules whose globals mean "this file carries custom Python code".
CUSTOM_CODE_MODULES = re.compile(r"^(__main__|cloudpickle|dill|types|marshal)(\.|$)")


# --- the post-load state audit (core.safety.state_audit) --------------------------------------------------

# What an attribute that names a method to call may say (StackingClassifier.stack_method_,
# FixedThresholdClassifier.response_method, a scorer's _response_method ...): a meta-estimator calls
# getattr(estimator, name)(X), so any other name (``tofile`` on a stored array) is a gadget.
PREDICT_METHODS: frozenset[str] = frozenset(
    {"predict", "predict_proba", "predict_log_proba", "decision_function", "transform", "auto"}
)
# Attributes checked as method names: every name ending in "method" or "method_". Besides prediction
# methods, a value may be one of the options the class itself declares for that parameter (in its
# _parameter_constraints, e.g. CalibratedClassifierCV.method='sigmoid') or listed here.
METHOD_ATTR_RE = re.compile(r"method_?$")
METHOD_VALUES_EXTRA: dict[str, frozenset[str]] = {
    "_fit_method": frozenset({"brute", "kd_tree", "ball_tree"}),
    "_CalibratedClassifier.method": frozenset({"sigmoid", "isotonic", "temperature"}),
    "tree_method": frozenset({"auto", "exact", "approx", "hist", "gpu_hist"}),  # XGBoost, no constraints table
    "sampling_method": frozenset({"uniform", "gradient_based"}),
}

# Attributes whose value is called with the user's data: only pure functions, never a callable object.
CALL_SLOTS: frozenset[str] = frozenset(
    {
        "func",
        "inverse_func",
        "score_func",
        "_score_func",
        "analyzer",
        "tokenizer",
        "preprocessor",
        "strip_accents",
        "metric",
        "weights",
        "importance_getter",
        "affinity",
    }
)
# Classes whose instances are callable and that fitted models legitimately hold (a GaussianProcess's
# kernel_, HistGradientBoosting's _loss, a search's scorer_, ColumnTransformer's make_column_selector,
# SplineTransformer's BSpline): allowed anywhere except in a call slot.
CALLABLE_INSTANCE_MODULES: frozenset[str] = frozenset(
    {
        "sklearn.gaussian_process.kernels",
        "sklearn._loss.loss",
        "sklearn.metrics._scorer",
        "sklearn.compose._column_transformer",
        "scipy.interpolate._bsplines",
    }
)
# Attributes a class rebuilds itself when unpickled, from checked arrays, as an object of a class no pickle
# may name (so an attacker cannot supply it): "Class.attribute" -> (module, class) of the rebuilt object.
# The audit does not descend into them.
REBUILT_ATTRS: dict[str, tuple[str, str]] = {
    "IsotonicRegression.f_": ("scipy.interpolate._interpolate", "interp1d"),
}
# Keyword-argument dicts passed to a function at predict time: plain data only, and never n_jobs.
KWARGS_ATTRS: frozenset[str] = frozenset({"kw_args", "inv_kw_args", "_kwargs", "metric_params", "kernel_params"})
# Libraries whose instances are checked for state that replaces a method of their class.
SHADOW_CHECKED: tuple[str, ...] = ("sklearn.", "xgboost.", "lightgbm.", "catboost.", "scipy.")

# Types skops does not trust by default that a .skops upload may still hold, because core.safety.state_audit
# checks their state itself (tree and predictor index bounds, calibrator method names). Everything else in
# a skops file must be trusted by skops's defaults and accepted by this allowlist.
SKOPS_EXTRA_TRUSTED: frozenset[str] = frozenset(
    {
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
        "sklearn.utils._bunch.Bunch",
        "numpy.dtype",
    }
)

# Refused globals that no model and no honest custom code needs (issue 19): a refusal naming one of these
# never suggests ``--trust``. Modules by name (any member), plus single members of otherwise ordinary modules.
MALICIOUS_MODULE_RE = re.compile(
    r"^(os|posix|nt|subprocess|_posixsubprocess|socket|_socket|ssl|importlib|pickle|_pickle|cPickle|"
    r"ctypes|_ctypes|pty|shutil|runpy|code|codeop|pkgutil|webbrowser|multiprocessing|asyncio|urllib|urllib2|"
    r"http|httplib|ftplib|smtplib|telnetlib|commands|sys|signal|resource|requests|pathlib|tempfile|io|_io)"
    r"(\.|$)"
)
MALICIOUS_GLOBALS: frozenset[str] = frozenset(
    {f"builtins.{n}" for n in ("eval", "exec", "compile", "open", "__import__", "breakpoint", "input")}
    | {"numpy.load", "numpy.fromfile", "numpy.memmap", "joblib.load", "pandas.read_pickle", "marshal.loads"}
    | {"operator.attrgetter", "operator.methodcaller", "copyreg.add_extension", "_codecs.decode"}
)
