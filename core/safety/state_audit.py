"""The post-load audit: is the state of an allowed object graph inert, or can it make predict() act?

Why: :mod:`core.safety.safe_pickle` decides which classes and functions may exist; this module decides whether
their *state* is safe to run. Built only from allowed classes, a model can still, through its state:

* name a method that a meta-estimator looks up and calls (``StackingRegressor.stack_method_=['tofile']`` on
  a stored array writes a file; so do ``response_method``, a scorer's ``_response_method``, ``method`` ...);
* call a callable *instance* or a bound method where a function is called (``FunctionTransformer.func``),
  or shadow a class's method with instance state;
* read files (a text vectorizer with ``input='filename'`` reads the files the table names);
* start processes (``n_jobs``: sanitised to ``None``, never refused, since real models carry ``n_jobs=-1``;
  keyword arguments that pass ``n_jobs`` to a function are refused);
* make native predict code index out of bounds (scikit-learn ``Tree`` and HistGradientBoosting
  ``TreePredictor`` nodes).

The walk is iterative with a depth bound. Every refusal names the class, the attribute and the value
(``CalibratedClassifierCV.method='tofile'``) and goes to the loader's resolver, so one error lists them all.
The walker gets its policy through ``u``, the :class:`core.safety.safe_pickle.SafeUnpickler` that loaded the graph
(``u.resolver.refuse``, ``u.resolver.value_allowed``, ``u.resolver.allowed_class``, ``u.is_pure_function``).

Must stay importable by Python 3.9 with numpy 1.23 (the Azure AutoML worker runs it).
"""

from __future__ import annotations

import functools
import types
from typing import Any

import numpy as np

from core.safety import allowlist

__all__ = ["MAX_DEPTH", "audit_graph", "binary_tree_state_ok", "qualname"]

MAX_DEPTH = 2000
PLAIN = (str, bytes, bytearray, int, float, bool, complex, type(None), np.generic)
_PLAIN = PLAIN
_FUNCTION_TYPES = (
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.MethodWrapperType,
    types.WrapperDescriptorType,
    types.MethodDescriptorType,
    types.ClassMethodDescriptorType,
    np.ufunc,
)
_TEXT_ANALYZERS = frozenset({"word", "char", "char_wb"})


def qualname(obj: object) -> str:
    """``module.QualifiedName`` of a function, class or (for anything else) the object's type."""
    module = getattr(obj, "__module__", None) or type(obj).__module__
    return f"{module}.{getattr(obj, '__qualname__', type(obj).__qualname__)}"


def audit_graph(root: object, u: Any) -> None:
    """Walk everything reachable from root and refuse (through ``u.resolver``) whatever could act."""
    stack = [(root, 0, "model")]
    seen: set[int] = set()
    while stack:
        obj, depth, where = stack.pop()
        if isinstance(obj, _PLAIN) or id(obj) in seen:
            continue
        seen.add(id(obj))
        if depth > MAX_DEPTH:
            u.resolver.refuse("object graph", f"nested deeper than {MAX_DEPTH} levels")
            return
        try:
            children = _children(obj, where, u)
        except Exception:  # noqa: BLE001 - hostile state may break any library code the walk touches
            u.resolver.refuse(f"{where} (malformed {type(obj).__name__} state)", "it cannot be checked")
            continue
        stack.extend((child, depth + 1, label) for child, label in children)


def _children(obj: object, where: str, u: Any) -> list[tuple[object, str]]:
    if isinstance(obj, np.ndarray):
        return [(v, where) for v in obj.ravel()] if obj.dtype.hasobject else []
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [(v, where) for v in obj]
    if isinstance(obj, dict):
        return [(v, where) for v in (*obj.keys(), *obj.values())]
    if isinstance(obj, type):
        _check_class_value(obj, where, u)
        return []
    if isinstance(obj, functools.partial):
        _check_function(obj.func, where, u)
        _check_kwargs(obj.keywords, where, u, plain=False)  # its values are walked like any others
        return [(v, where) for v in (*obj.args, *(obj.keywords or {}).values())]
    if isinstance(obj, _FUNCTION_TYPES):
        _check_function(obj, where, u)
        return []
    if callable(obj):
        _check_callable_instance(obj, where, u)
    _check_state(obj, u)
    name = type(obj).__name__
    state = getattr(obj, "__dict__", None)
    items = state.items() if isinstance(state, dict) else ()
    children = [(v, f"{name}.{k}") for k, v in items if isinstance(k, str)]
    children = [(v, label) for v, label in children if not _rebuilt(v, label)]
    for slot in getattr(type(obj), "__slots__", ()):
        if isinstance(slot, str) and hasattr(obj, slot):
            children.append((getattr(obj, slot), f"{name}.{slot}"))
    return children


def _rebuilt(value: object, label: str) -> bool:
    expected = allowlist.REBUILT_ATTRS.get(label)
    return expected is not None and (type(value).__module__, type(value).__qualname__) == expected


# ---------------------------------------------------------------------------------------------------
# callables


def _check_class_value(cls: type, where: str, u: Any) -> None:
    value_class = cls.__module__.startswith(u.policy.value_class_prefixes) and u.resolver.allowed_class(cls)
    numpy_scalar = issubclass(cls, np.generic)
    if not (u.resolver.value_allowed(cls) or numpy_scalar or value_class):
        u.resolver.refuse(f"{where}={qualname(cls)} (a class stored as a value)", "only data types may be stored")


def _check_function(func: object, where: str, u: Any) -> None:
    if not u.is_pure_function(func):
        u.resolver.refuse(
            f"{where}={_callable_name(func)}", "only pure functions from the allowlist may be stored in a model"
        )


def _callable_name(func: object) -> str:
    owner = getattr(func, "__self__", None)
    if owner is not None and not isinstance(owner, (type, types.ModuleType)):
        return f"{type(owner).__name__}.{getattr(func, '__name__', '?')} (a method bound to an object)"
    return qualname(func)


def _check_callable_instance(obj: object, where: str, u: Any) -> None:
    cls = type(obj)
    slot = where.rpartition(".")[2]
    if slot in allowlist.CALL_SLOTS:
        reason = "a callable object where only pure functions may be called"
    elif cls.__module__ not in allowlist.CALLABLE_INSTANCE_MODULES or not u.resolver.allowed_class(cls):
        reason = "callable objects of this class may not be stored in a model"
    else:
        return
    u.resolver.refuse(f"{where}={qualname(cls)} instance", reason)


# ---------------------------------------------------------------------------------------------------
# attribute state


def _check_state(obj: object, u: Any) -> None:
    cls = type(obj)
    state = getattr(obj, "__dict__", None)
    if isinstance(state, dict) and not isinstance(obj, types.ModuleType):
        if not all(isinstance(k, str) for k in state):
            u.resolver.refuse(f"{cls.__name__} (state keyed by objects)", "attribute names must be strings")
        for key in [k for k in state if isinstance(k, str)]:
            _check_attribute(obj, key, u)
        if cls.__module__ == "sklearn.feature_extraction.text":
            _check_text_vectorizer(obj, state, u)
    _check_native_state(obj, u)


def _check_attribute(obj: object, key: str, u: Any) -> None:
    cls, state = type(obj), obj.__dict__
    value = state[key]
    label = f"{cls.__name__}.{key}"
    if key == "n_jobs":
        state[key] = None  # real models carry n_jobs=-1: run single-process instead of refusing
    elif allowlist.METHOD_ATTR_RE.search(key):
        _check_method_names(cls, key, value, u)
    elif key in allowlist.KWARGS_ATTRS:
        _check_kwargs(value, label, u)
    member = getattr(cls, key, None) if cls.__module__.startswith(allowlist.SHADOW_CHECKED) else None
    if callable(member) and not isinstance(member, type) and not key.startswith("__"):
        u.resolver.refuse(f"{label} (instance state replacing a method)", "state may not replace a method")


def _check_method_names(cls: type, key: str, value: object, u: Any) -> None:
    if value is None:
        return
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        u.resolver.refuse(f"{cls.__name__}.{key} (not a method name)", "must name prediction methods")
        return
    allowed = _allowed_method_values(cls, key)
    if any(n not in allowed for n in names):
        u.resolver.refuse(
            f"{cls.__name__}.{key}={value!r}",
            "a method name a meta-estimator calls must be predict, predict_proba, predict_log_proba, "
            "decision_function, transform or auto",
        )


@functools.lru_cache(maxsize=512)
def _allowed_method_values(cls: type, key: str) -> frozenset[str]:
    """Prediction methods, plus the options the class itself declares for that parameter (``'sigmoid'``).

    Declared options that are also method names of arrays or builtin containers are never accepted.
    """
    extra = set(allowlist.METHOD_VALUES_EXTRA.get(key, ()))
    extra |= set(allowlist.METHOD_VALUES_EXTRA.get(f"{cls.__name__}.{key}", ()))
    constraints = getattr(cls, "_parameter_constraints", None)
    if isinstance(constraints, dict):
        for constraint in constraints.get(key.strip("_"), ()):
            if type(constraint).__name__ == "StrOptions":
                extra |= {o for o in constraint.options if isinstance(o, str)}
    return frozenset(allowlist.PREDICT_METHODS | (extra - _OBJECT_METHOD_NAMES))


_OBJECT_METHOD_NAMES = frozenset(
    n for t in (np.ndarray, str, bytes, list, dict, tuple, set, object) for n in dir(t) if n not in {"transform"}
)


def _check_kwargs(value: object, where: str, u: Any, *, plain: bool = True) -> None:
    if value is None:
        return
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        u.resolver.refuse(f"{where} (not a dict of names)", "keyword arguments must be a dict of plain data")
    elif "n_jobs" in value:
        shown = repr(value["n_jobs"]) if isinstance(value["n_jobs"], (int, type(None))) else "..."
        u.resolver.refuse(f"{where}['n_jobs']={shown}", "it would start processes at predict time")
    elif plain and not plain_data(value):
        u.resolver.refuse(f"{where} (holds objects)", "keyword arguments may hold only plain data")


def plain_data(value: object, depth: int = 0) -> bool:
    """True when value is made only of plain scalars, dtypes and numeric arrays (shallow-bounded)."""
    if depth > 8:
        return False
    if isinstance(value, (*_PLAIN, np.dtype)):
        return True
    if isinstance(value, np.ndarray):
        return not value.dtype.hasobject
    if isinstance(value, (tuple, list)):
        return all(plain_data(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(plain_data(k, depth + 1) and plain_data(v, depth + 1) for k, v in value.items())
    return False


def _check_text_vectorizer(obj: object, state: dict[str, Any], u: Any) -> None:
    name = type(obj).__name__
    if "input" in state and state["input"] != "content":
        u.resolver.refuse(
            f"{name}.input={state['input']!r}", "a text vectorizer may only read the table's text, not files"
        )
    analyzer = state.get("analyzer")
    if isinstance(analyzer, str) and analyzer not in _TEXT_ANALYZERS:
        u.resolver.refuse(f"{name}.analyzer={analyzer!r}", "unknown analyzer")


# ---------------------------------------------------------------------------------------------------
# native structures


def _check_native_state(obj: object, u: Any) -> None:
    """Refuse tree structures whose indices would make native predict code read out of bounds."""
    cls = type(obj)
    try:
        if cls.__module__ == "sklearn.tree._tree" and cls.__name__ == "Tree":
            ok, label = _tree_ok(obj), "sklearn.tree._tree.Tree"
        elif cls.__module__ == "sklearn.ensemble._hist_gradient_boosting.predictor":
            ok, label = _predictor_ok(obj, None, None), "HistGradientBoosting TreePredictor"
        elif cls.__module__ == "sklearn.ensemble._hist_gradient_boosting.gradient_boosting":
            ok, label = _hist_gradient_boosting_ok(obj), f"{cls.__name__} predictors"
        else:
            return
    except (AttributeError, KeyError, TypeError, ValueError, IndexError):
        ok, label = False, f"{cls.__name__} (malformed native state)"
    if not ok:
        u.resolver.refuse(f"{label} (node indices out of bounds)", "tampered tree")


def _tree_ok(tree: Any) -> bool:
    n = tree.node_count
    left, right, feature = tree.children_left, tree.children_right, tree.feature
    internal = left != -1
    idx = np.nonzero(internal)[0]
    ok = (left[internal] > idx).all() and (right[internal] > idx).all()
    ok = ok and (left < n).all() and (right < n).all() and (right[~internal] == -1).all()
    return bool(ok and (feature[internal] < tree.n_features).all() and (feature[internal] >= 0).all())


def _predictor_ok(predictor: Any, n_features: int | None, is_categorical: Any) -> bool:
    nodes = predictor.nodes
    n = len(nodes)
    if not isinstance(nodes, np.ndarray) or n == 0:
        return False
    inner = nodes["is_leaf"] == 0
    idx = np.nonzero(inner)[0]
    left, right, feature = nodes["left"][inner], nodes["right"][inner], nodes["feature_idx"][inner]
    ok = (left > idx).all() and (right > idx).all() and (left < n).all() and (right < n).all()
    ok = ok and (feature >= 0).all() and (n_features is None or (feature < n_features).all())
    categorical = inner & (nodes["is_categorical"] != 0)
    if categorical.any():
        bitsets = min(len(predictor.raw_left_cat_bitsets), len(predictor.binned_left_cat_bitsets))
        bitset_idx = nodes["bitset_idx"][categorical]
        ok = ok and (bitset_idx >= 0).all() and (bitset_idx < bitsets).all()
        if is_categorical is not None:
            ok = ok and bool(np.asarray(is_categorical)[nodes["feature_idx"][categorical]].all())
    return bool(ok)


def _hist_gradient_boosting_ok(estimator: Any) -> bool:
    predictors = getattr(estimator, "_predictors", None)
    if predictors is None:
        return True  # not fitted
    n_features = int(estimator.n_features_in_)
    is_categorical = getattr(getattr(estimator, "_bin_mapper", None), "is_categorical_", None)
    if is_categorical is not None and len(is_categorical) != n_features:
        return False
    return all(_predictor_ok(p, n_features, is_categorical) for group in predictors for p in group)


def binary_tree_state_ok(state: object) -> bool:
    """True when a KDTree / BallTree state is consistent (checked before its __setstate__ trusts it)."""
    if not (isinstance(state, tuple) and len(state) == 13):
        return False
    data, idx, nodes, bounds = state[:4]
    counts, metric, weights = state[4:11], state[11], state[12]
    arrays_ok = all(isinstance(a, np.ndarray) for a in (data, idx, nodes, bounds))
    if not (arrays_ok and all(isinstance(c, int) and not isinstance(c, bool) for c in counts)):
        return False
    leaf_size, n_levels, n_nodes = counts[:3]
    if not (data.ndim == 2 and data.dtype.kind == "f" and idx.ndim == 1 and idx.dtype == np.intp):
        return False
    n, d = data.shape
    if not (len(idx) == n and (n == 0 or (idx.min() >= 0 and idx.max() < n))):
        return False
    if not (nodes.dtype.names == ("idx_start", "idx_end", "is_leaf", "radius") and nodes.shape == (n_nodes,)):
        return False
    starts, ends = nodes["idx_start"], nodes["idx_end"]
    if not ((starts >= 0).all() and (starts <= ends).all() and (ends <= n).all()):
        return False
    shape_ok = bounds.ndim == 3 and bounds.shape[1:] == (n_nodes, d) and bounds.dtype == data.dtype
    sizes_ok = leaf_size > 0 and 0 < n_levels < 64 and n_nodes == 2**n_levels - 1
    weights_ok = weights is None or (isinstance(weights, np.ndarray) and weights.shape == (n,))
    metric_ok = type(metric).__module__ == "sklearn.metrics._dist_metrics"
    return bool(shape_ok and sizes_ok and weights_ok and metric_ok)
