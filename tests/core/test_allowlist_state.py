"""Allowed classes with hostile state: each attack acts under a naive loader and is refused by name here.

Every payload is a real fitted scikit-learn model, tampered as an attacker would (tests/core/attacks.py).
A naive loader (plain pickle in a subprocess) shows what it does; the safe loader must refuse it naming the
class, attribute and value, and legitimate uses of the same attributes must keep loading.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from core.errors import UnsafeModelError
from core.loading.model_io import read_model
from core.safety import allowlist
from core.safety.safe_pickle import audit_object, safe_load
from tests.core import attacks


def _naive(path: Path, action: str, *args: str) -> subprocess.CompletedProcess:
    """Load path with plain pickle in a fresh interpreter, then run action (a statement using `model`)."""
    code = f"import pickle, sys, numpy as np\nmodel = pickle.loads(open(sys.argv[1], 'rb').read())\n{action}\n"
    return subprocess.run(
        [sys.executable, "-c", code, str(path), *args], capture_output=True, text=True, timeout=120, check=False
    )


def _refusal(data: bytes) -> UnsafeModelError:
    with pytest.raises(UnsafeModelError) as info:
        safe_load(data)
    return info.value


# --- 1. a method name plus a stored array: arbitrary file write, then code execution ---------------------


def test_stacking_tofile_plants_python_under_a_naive_loader_and_is_refused(tmp_path):
    marker = tmp_path / "planted_code_ran"
    planted = tmp_path / "sitecustomize.py"
    code = f"open({str(marker)!r}, 'w').write('ran')\n".encode()
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(attacks.stacking_tofile(code), protocol=4))

    _naive(path, "try:\n    model.predict(sys.argv[2])\nexcept Exception:\n    pass", str(planted))
    assert planted.read_bytes() == code, "predict() did not write the attacker's bytes"
    subprocess.run([sys.executable, str(planted)], check=True, timeout=60)
    assert marker.read_text() == "ran", "the planted file is not runnable Python"

    planted.unlink()
    marker.unlink()
    error = _refusal(path.read_bytes())
    assert "StackingRegressor.stack_method_=['tofile']" in str(error)
    assert "--trust" not in str(error)
    assert not planted.exists() and not marker.exists()


def test_the_dashboard_loader_refuses_it_in_its_worker(pool):
    from core.loading.models import load_model

    data = pickle.dumps(attacks.stacking_tofile(b"x = 1\n"), protocol=4)
    with pytest.raises(UnsafeModelError) as info:
        load_model(data, "model.pkl", pool=pool)
    assert "StackingRegressor.stack_method_=['tofile']" in info.value.refused


def test_the_same_chain_as_skops_is_refused_after_skops_loads_it(tmp_path):
    import skops.io as sio

    data = sio.dumps(attacks.stacking_tofile(b"x = 1\n"))
    with pytest.raises(UnsafeModelError, match=r"StackingRegressor\.stack_method_=\['tofile'\]"):
        read_model(data, "model.skops")


@pytest.mark.parametrize("name", sorted(attacks.method_name_gadgets()))
def test_other_method_name_and_callable_gadgets_are_refused_by_name(name):
    model, expected = attacks.method_name_gadgets()[name]
    error = _refusal(pickle.dumps(model, protocol=4))
    assert expected in str(error), str(error)


def test_skops_trusts_only_types_skops_and_the_allowlist_both_accept():
    import skops.io as sio
    from sklearn.neighbors import KNeighborsClassifier

    X, y = np.arange(40.0).reshape(-1, 2), np.arange(20) % 2
    data = sio.dumps(KNeighborsClassifier(n_neighbors=3).fit(X, y))  # KDTree: not trusted by skops itself
    with pytest.raises(UnsafeModelError, match="KDTree"):
        read_model(data, "knn.skops")


@pytest.mark.parametrize(
    ("func", "shown"),
    [(np.add.reduce, "ufunc.reduce (a method bound to an object)"), ((1).__add__, "int.__add__")],
)
def test_bound_methods_and_method_wrappers_are_not_pure_functions(func, shown):
    from sklearn.preprocessing import FunctionTransformer

    with pytest.raises(UnsafeModelError) as info:
        audit_object(FunctionTransformer(func=func))
    assert f"FunctionTransformer.func={shown}" in str(info.value) or shown in str(info.value), str(info.value)


# --- 2. text vectorizers told to read files ----------------------------------------------------------


def test_text_vectorizer_reads_the_files_the_table_names_under_a_naive_loader(tmp_path):
    secret = tmp_path / "environ"
    secret.write_text("MODELLENS_PASSWORD=secret token\n")
    path = tmp_path / "vectorizer.pkl"
    path.write_bytes(pickle.dumps(attacks.text_reader(), protocol=4))
    result = _naive(path, "print(int(model.transform([sys.argv[2]]).sum()))", str(secret))
    assert result.stdout.strip() == "2", result.stderr  # 'secret' and 'token' counted from the file's text

    error = _refusal(path.read_bytes())
    assert "CountVectorizer.input='filename'" in str(error)


@pytest.mark.parametrize(
    ("kind", "mode"), [("TfidfVectorizer", "file"), ("HashingVectorizer", "filename"), ("CountVectorizer", "file")]
)
def test_every_text_vectorizer_file_mode_is_refused(kind, mode):
    error = _refusal(pickle.dumps(attacks.text_reader(kind, mode), protocol=4))
    assert f"{kind}.input={mode!r}" in str(error)


# --- 3. process fan-out --------------------------------------------------------------------------------


def test_n_jobs_in_keyword_arguments_starts_processes_under_a_naive_loader(tmp_path):
    path = tmp_path / "fan_out.pkl"
    path.write_bytes(pickle.dumps(attacks.n_jobs_fan_out(4), protocol=4))
    action = (
        "import psutil\nmodel.transform(np.random.default_rng(0).normal(size=(30, 6)))\n"
        "print(len(psutil.Process().children(recursive=True)))"
    )
    result = _naive(path, action)
    assert int(result.stdout.strip()) >= 2, result.stderr

    assert "FunctionTransformer.kw_args['n_jobs']=4" in str(_refusal(path.read_bytes()))
    partial = pickle.dumps(attacks.n_jobs_fan_out(4, via_partial=True), protocol=4)
    assert "FunctionTransformer.func['n_jobs']=4" in str(_refusal(partial))


def test_n_jobs_attributes_are_set_to_none_not_refused():
    from sklearn.ensemble import RandomForestClassifier, StackingClassifier
    from sklearn.linear_model import LogisticRegression

    X, y = np.random.default_rng(0).normal(size=(60, 3)), np.arange(60) % 2
    forest = RandomForestClassifier(n_estimators=5, n_jobs=-1, random_state=0)
    model = StackingClassifier([("rf", forest)], final_estimator=LogisticRegression(), n_jobs=3).fit(X, y)
    loaded = safe_load(pickle.dumps(model, protocol=4)).obj
    assert loaded.n_jobs is None and loaded.estimators_[0].n_jobs is None and loaded.estimators[0][1].n_jobs is None
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


# --- 4. native crashes from state validated too early or not at all -------------------------------------


def test_dtype_rebuilt_after_its_array_turns_integers_into_object_pointers(tmp_path):
    path = tmp_path / "dtype.pkl"
    path.write_bytes(attacks.dtype_rebuilt_after_use())
    result = _naive(path, "print(model.dtype.hasobject)\nsys.stdout.flush()\nimport os\nos._exit(0)")
    assert result.stdout.strip() == "True", result.stderr  # int64 payload bytes now read as PyObject*

    assert "BUILD on a numpy dtype that is already in use" in str(_refusal(path.read_bytes()))


def test_dtype_state_may_not_add_objects_even_before_use():
    dtype = attacks._g("numpy", "dtype") + attacks._s("i8") + b"\x89\x88\x87R"
    state = b"(K\x03" + attacks._s("|") + b"NNNJ\x08\x00\x00\x00J\x08\x00\x00\x00K\x3ft"
    assert "holds objects" in str(_refusal(b"\x80\x02" + dtype + state + b"b."))


@pytest.mark.parametrize(
    ("flags", "expected"),
    [(0x80, "object dtype into raw bytes"), (0x57, "flags that do not match the dtype")],
)
def test_dtype_state_flags_must_be_the_ones_numpy_computes(flags, expected):
    """Found by the fuzz: object-dtype flags changed by BUILD made numpy read object arrays' bytes raw."""
    dtype = attacks._g("numpy", "dtype") + attacks._s("O8") + b"\x89\x88\x87R"
    state = b"(K\x03" + attacks._s("|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK" + bytes([flags]) + b"t"
    assert expected in str(_refusal(b"\x80\x02" + dtype + state + b"b."))


def test_a_datetime_dtype_needs_its_unit_in_the_state():
    """Found by the fuzz (seed 99): 'f8' flipped to 'm8' kept a float's state, and numpy's setstate crashed."""
    data = pickle.dumps(np.zeros(2), protocol=2)
    assert data.count(b"f8") == 1
    assert "numpy dtype state" in str(_refusal(data.replace(b"f8", b"m8")))
    dates = np.array(["2026-12-03", "NaT"], dtype="M8[ns]")
    np.testing.assert_array_equal(safe_load(pickle.dumps(dates, protocol=2)).obj, dates)


def test_hist_gradient_boosting_feature_index_crashes_a_naive_loader_and_is_refused(tmp_path):
    path = tmp_path / "hgb.pkl"
    path.write_bytes(pickle.dumps(attacks.hgb_feature_out_of_bounds(), protocol=4))
    result = _naive(path, "model.predict(np.zeros((4, 3)))")
    assert result.returncode != 0  # SIGSEGV on these machines

    assert "HistGradientBoostingRegressor predictors (node indices out of bounds)" in str(_refusal(path.read_bytes()))


class _TamperedTree:
    """Pickles as a KDTree whose index array points past its data (what the fuzz found crashing __setstate__)."""

    def __init__(self):
        from sklearn.neighbors import KDTree

        self.tree = KDTree(np.random.default_rng(0).normal(size=(40, 3)), leaf_size=5)

    def __reduce__(self):
        new_obj, args, state = self.tree.__reduce__()[:3]
        state = list(state)
        state[1] = state[1] + 10**9
        return new_obj, args, tuple(state)


def test_neighbour_tree_state_is_checked_before_its_setstate_trusts_it():
    assert "KDTree state (indices out of bounds)" in str(_refusal(pickle.dumps(_TamperedTree(), protocol=4)))


def _categorical_hgb():
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=120), "c": pd.Categorical(rng.choice(["a", "b", "c"], 120))})
    y = ((frame["c"] == "b") ^ (frame["x"] > 0)).astype(int)
    return HistGradientBoostingClassifier(max_iter=5, categorical_features="from_dtype").fit(frame, y), frame


def test_hist_gradient_boosting_categorical_splits_load_and_bitset_index_is_bounded():
    model, frame = _categorical_hgb()
    loaded = safe_load(pickle.dumps(model, protocol=4)).obj
    np.testing.assert_array_equal(loaded.predict_proba(frame), model.predict_proba(frame))

    predictor = model._predictors[0][0]
    categorical = np.nonzero(predictor.nodes["is_categorical"] & (predictor.nodes["is_leaf"] == 0))[0]
    assert categorical.size, "the fixture should split on the categorical column"
    predictor.nodes["bitset_idx"][categorical[0]] = 10**6
    assert "node indices out of bounds" in str(_refusal(pickle.dumps(model, protocol=4)))


# --- what stays allowed --------------------------------------------------------------------------------


def _legitimate_models():
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.compose import make_column_selector, make_column_transformer
    from sklearn.ensemble import StackingClassifier
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import FixedThresholdClassifier
    from sklearn.neighbors import KNeighborsRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from xgboost import XGBClassifier

    X, y = np.random.default_rng(0).normal(size=(60, 3)), np.arange(60) % 2
    texts = np.array(["good day", "bad day", "good night", "bad night"] * 15)
    import pandas as pd

    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    selector = make_column_transformer((StandardScaler(), make_column_selector(dtype_include="number")))
    return {
        "isotonic": (CalibratedClassifierCV(LogisticRegression(), method="isotonic", cv=2), X, y),
        "stack_proba": (StackingClassifier([("lr", LogisticRegression())], stack_method="predict_proba"), X, y),
        "fixed_proba": (FixedThresholdClassifier(LogisticRegression(), response_method="predict_proba"), X, y),
        "knn_kd_tree": (KNeighborsRegressor(algorithm="kd_tree", n_jobs=-1), X, y.astype(float)),
        "gaussian_process": (GaussianProcessRegressor(ConstantKernel() * RBF()), X, y.astype(float)),
        "tfidf": (make_pipeline(TfidfVectorizer(), LogisticRegression()), texts, y),
        "column_selector": (make_pipeline(selector, LogisticRegression()), frame, y),
        "xgboost_hist": (XGBClassifier(tree_method="hist", sampling_method="uniform", n_estimators=3, n_jobs=1), X, y),
    }


@pytest.mark.parametrize("name", sorted(_legitimate_models()))
def test_legitimate_uses_of_the_audited_attributes_still_load(name):
    model, X, y = _legitimate_models()[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, y)
    loaded = safe_load(pickle.dumps(model, protocol=4)).obj
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_every_installed_estimator_is_on_the_class_list():
    from sklearn.utils import all_estimators

    missing = {(c.__module__, c.__qualname__) for _, c in all_estimators()} - allowlist.SKLEARN_CLASSES
    assert not missing, f"add these to core/safety/allowlist_sklearn.py after checking their state: {sorted(missing)}"


@pytest.mark.parametrize(
    "qualname",
    [
        "sklearn.calibration.CalibrationDisplay",
        "sklearn.tree._tree.DepthFirstTreeBuilder",
        "sklearn.base.BaseEstimator",
    ],
)
def test_sklearn_classes_off_the_list_are_refused(qualname):
    module, _, name = qualname.rpartition(".")
    data = b"\x80\x04" + attacks._s(module) + attacks._s(name) + b"\x93)\x81."
    assert qualname in _refusal(data).refused
