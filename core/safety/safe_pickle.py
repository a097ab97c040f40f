"""An allowlisting unpickler, enforced opcode by opcode inside the real unpickling.

Why: an uploaded pickle is a program. Scanners that match a denylist with their own parser are beaten by
computed names, memo tricks, nested pickles and compressed joblib files, so this module *is* the unpickler
(a subclass of the reference pure-Python one) and checks each step as it happens:

* GLOBAL / STACK_GLOBAL resolve only names on the allowlist (:mod:`core.safety.allowlist`): exact functions and
  values, and classes listed one by one (:mod:`core.safety.allowlist_sklearn`); module names are checked before
  anything is imported, dotted names are refused, and re-exported functions or modules never resolve.
* REDUCE calls only allowlisted callables, each after its own argument validator (no huge allocations,
  no object dtypes passed to numpy constructors, no class-level BUILD).
* NEWOBJ instantiates only allowed classes, with no arguments (as every legitimate file does).
* BUILD, SETITEM(S), APPEND(S) and ADDITEMS act only on the container types legitimate files use; a numpy
  dtype takes state once, right after it is made and before any array uses it, and never gains or loses
  object semantics that way (that would turn raw bytes into object pointers).
* INST, OBJ, EXT*, PERSID and out-of-band buffers are refused: model files never use them.
* joblib containers are read here too: its compressors are decompressed with a size cap, legacy ``ZF``
  files are refused, array bytes are read from the stream (never ``np.empty`` of an attacker's shape),
  and object arrays (a nested pickle) go through this same unpickler.

A refused name does not stop the scan: it becomes an inert placeholder, so the final
:class:`~core.errors.UnsafeModelError` lists *every* refused global and no refused code has run.
After loading, :mod:`core.safety.state_audit` walks the object graph: depth bound, pure functions only, method
names, file inputs, keyword arguments, ``n_jobs`` and tree node indices.

Nothing here prevents native code from crashing on hostile state (a corrupted booster buffer), which is
why loading happens in a resource-limited worker process (:mod:`core.isolation.workers`).

Must stay importable by Python 3.9 with numpy 1.23 (the Azure AutoML worker runs it).
"""

from __future__ import annotations

import _compat_pickle
import bz2
import functools
import importlib
import importlib.util
import io
import logging
import lzma
import math
import pickle
import struct
import sys
import types
import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, cast

import numpy as np

from core.errors import MissingDependencyError, ModelLoadError, UnsafeModelError
from core.safety import allowlist, state_audit

if TYPE_CHECKING:  # typing.TypeGuard is Python 3.10+; the AutoML runtime imports this module under 3.9
    from typing import TypeGuard

__all__ = [
    "Policy",
    "automl_policy",
    "SafeLoadResult",
    "audit_object",
    "default_policy",
    "safe_load",
    "type_name_allowed",
]

log = logging.getLogger(__name__)

MAX_DEPTH = state_audit.MAX_DEPTH
MAX_CONTAINER_ITEMS = 50_000_000
_NUMPY2 = int(np.__version__.split(".")[0]) >= 2
_PLAIN = state_audit.PLAIN


class _Refusal(Exception):
    """Raised by a validator: the operation is refused (the reason names it)."""


class _Refused:
    """Inert placeholder for a refused global or the result of an operation on one."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"<refused {self.name}>"


@dataclass(frozen=True)
class Policy:
    """What a pickle may reference.

    Attributes:
        exact: ``(module, name) -> roles`` (see :mod:`core.safety.allowlist`).
        classes: ``(module, name)`` of the classes that may be instantiated (checked to be real classes
            defined in that module).
        class_prefixes: Packages whose real classes are all allowed (only the AutoML worker uses one).
        allow_getattr: Allow ``builtins.getattr(AllowedClass, "name")`` for the ``(module, class, name)``
            triples in ``getattr_targets`` (the shape Azure AutoML writes), each resolving to a function
            defined on that class, and nothing else.
        getattr_targets: The permitted getattr references.
        max_bytes: Cap on the decompressed stream and on array payloads.
        value_class_prefixes: Modules whose allowed classes may be stored as values (AutoML keeps
            ``StandardScalerWrapper.cls = sklearn.preprocessing.StandardScaler``).
    """

    exact: dict[tuple[str, str], str] = field(default_factory=lambda: dict(allowlist.EXACT))
    classes: frozenset[tuple[str, str]] = allowlist.SKLEARN_CLASSES
    class_prefixes: tuple[str, ...] = allowlist.CLASS_PREFIXES
    allow_getattr: bool = False
    getattr_targets: frozenset[tuple[str, str, str]] = frozenset()
    max_bytes: int = 1024 * 1024 * 1024
    value_class_prefixes: tuple[str, ...] = ()


def default_policy(max_bytes: int = 1024 * 1024 * 1024) -> Policy:
    """The policy for ordinary uploads (scikit-learn, XGBoost, LightGBM, CatBoost, joblib)."""
    return Policy(max_bytes=max_bytes)


def automl_policy(max_bytes: int = 1024 * 1024 * 1024) -> Policy:
    """The policy inside the Azure AutoML runtime worker.

    The default list, plus real classes defined in the AutoML runtime's modules and sklearn_pandas, the pandas
    timestamp helper, xgboost 1.x's label encoder, and ``builtins.getattr`` only as
    ``getattr(AllowedClass, "plain_name")`` naming a function of that class.
    """
    exact = {**allowlist.EXACT, **allowlist.OPTIONAL_PANDAS}
    exact[("builtins", "getattr")] = "R"
    exact[("xgboost.compat", "XGBoostLabelEncoder")] = "C"
    return Policy(
        exact=exact,
        class_prefixes=allowlist.AUTOML_CLASS_PREFIXES,
        allow_getattr=True,
        getattr_targets=allowlist.AUTOML_GETATTR,
        max_bytes=max_bytes,
        value_class_prefixes=("sklearn.preprocessing.",),
    )


@dataclass
class SafeLoadResult:
    """A safely loaded object and what was learned on the way.

    Attributes:
        obj: The unpickled object.
        container: ``pickle`` or ``joblib`` (+ compressor, e.g. ``joblib/gzip``).
        protocol: The pickle protocol of the stream.
        sklearn_versions: scikit-learn versions recorded in estimator states (version skew notices).
        missing: Packages the file needs that are not installed (only filled when nothing was refused).
    """

    obj: object
    container: str
    protocol: int
    sklearn_versions: set[str] = field(default_factory=set)
    missing: dict[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------
# name resolution


def _canonical_module(module: str) -> str:
    """Map numpy-1 and numpy-2 spellings of numpy internals to the installed numpy's."""
    if _NUMPY2 and (module == "numpy.core" or module.startswith("numpy.core.")):
        return "numpy._core" + module[len("numpy.core") :]
    if not _NUMPY2 and (module == "numpy._core" or module.startswith("numpy._core.")):
        return "numpy.core" + module[len("numpy._core") :]
    return module


def _exact_roles(policy: Policy, module: str, name: str) -> str | None:
    roles = policy.exact.get((module, name))
    if roles is None and not _NUMPY2 and module.startswith("numpy.core"):
        roles = policy.exact.get(("numpy._core" + module[len("numpy.core") :], name))
    return roles


def _is_installed(top: str) -> bool:
    return top in sys.modules or importlib.util.find_spec(top) is not None


class _Resolver:
    """Resolves (module, name) to an object under a policy, remembering what it refused or lacked."""

    def __init__(self, policy: Policy):
        self.policy = policy
        self.roles: dict[int, str] = {}  # id(obj) -> roles, for objects this resolver handed out
        self.refused: dict[str, str] = {}  # "module.name" -> reason
        self.missing: dict[str, str] = {}  # pip name -> first global that needed it
        self.keep: list[object] = []  # keep resolved objects alive so ids stay unique
        self.custom: set[str] = set()  # refused globals that are custom code (user modules, cloudpickle)

    def resolve(self, module: str, name: str) -> object:
        qual = f"{module}.{name}"
        if not (allowlist.SAFE_MODULE_RE.match(module) and name.isidentifier()):
            return self.refuse(qual, "not a plain module and name")
        module = _canonical_module(module)
        top = module.split(".")[0]
        if top in allowlist.KNOWN_PACKAGES and not _is_installed(top):
            self.missing.setdefault(allowlist.KNOWN_PACKAGES[top], qual)
            return _Refused(qual)
        roles = _exact_roles(self.policy, module, name)
        if roles is None:
            roles = self._rule_roles(module, name)
        if roles is None:
            if _is_custom_code(module):
                self.custom.add(qual)
            return self.refuse(qual, "not on the allowlist")
        try:
            obj = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            return self.refuse(qual, "does not exist in the installed libraries")
        if roles == "class" and not (isinstance(obj, type) and obj.__module__ == module):
            return self.refuse(qual, "not a class defined in an allowed module")
        if roles == "numpy" and not (isinstance(obj, np.ufunc) or _is_numpy_scalar_type(obj)):
            return self.refuse(qual, "not a numpy ufunc or scalar type")
        roles = {"class": "C", "numpy": "V"}.get(roles, roles)
        self.roles[id(obj)] = self.roles.get(id(obj), "") + roles
        self.keep.append(obj)
        return obj

    def _rule_roles(self, module: str, name: str) -> str | None:
        if module == "numpy":
            return "numpy"  # ufuncs and scalar types, checked after resolution
        if name.startswith("__pyx_unpickle_") and module in allowlist.CYTHON_REDUCE_MODULES:
            return "R"  # Cython's generated unpickle helper; its validator checks the class it rebuilds
        if name.startswith("__"):
            return None
        if (module, name) in self.policy.classes:
            return "class"
        for prefix in self.policy.class_prefixes:
            if module.startswith(prefix) and not allowlist.DENY_MODULE_RE.search(module):
                return "class"
        return None

    def value_allowed(self, obj: object) -> bool:
        """True for objects a model may hold as values: V-role globals (resolved here or on the list)."""
        return self.has(obj, "V") or id(obj) in _static_value_ids(self.policy)

    def refuse(self, qual: str, reason: str) -> _Refused:
        self.refused.setdefault(qual, reason)
        return _Refused(qual)

    def has(self, obj: object, role: str) -> bool:
        """True when this resolver handed out obj with the given role."""
        return role in self.roles.get(id(obj), "")

    def allowed_class(self, cls: object) -> TypeGuard[type[object]]:
        """True for a class whose instances may exist: resolved with role C, or allowed by list or rule.

        Objects built by allowed callables (a RandomState from its constructor) have classes the stream
        never named; they are judged by the same list and rule.
        """
        if not isinstance(cls, type):
            return False
        if self.has(cls, "C"):
            return True
        module = _canonical_module(cls.__module__ or "")
        roles = _exact_roles(self.policy, module, cls.__qualname__) or ""
        if "C" in roles or (module, cls.__qualname__) in self.policy.classes:
            return True
        return any(
            module.startswith(p) and not allowlist.DENY_MODULE_RE.search(module) for p in self.policy.class_prefixes
        )


_VALUE_IDS: dict[int, tuple[set[int], list[object]]] = {}


def _static_value_ids(policy: Policy) -> set[int]:
    """Ids of every importable V-role object on the policy's list (for objects not loaded by pickle)."""
    cached = _VALUE_IDS.get(id(policy))
    if cached is None:
        objects = []
        for (module, name), roles in policy.exact.items():
            if "V" in roles:
                try:
                    objects.append(getattr(importlib.import_module(_canonical_module(module)), name))
                except (ImportError, AttributeError):
                    continue
        cached = ({id(o) for o in objects}, objects)
        _VALUE_IDS[id(policy)] = cached
    return cached[0]


def _is_numpy_scalar_type(obj: object) -> bool:
    return isinstance(obj, type) and issubclass(obj, np.generic)


# ---------------------------------------------------------------------------------------------------
# argument validators for REDUCE-able callables


def _require(condition: bool, reason: str) -> None:
    if not condition:
        raise _Refusal(reason)


def _is_shape(value: object) -> bool:
    return isinstance(value, tuple) and all(isinstance(n, int) and 0 <= n < 2**40 for n in value)


def _nbytes(shape: tuple[int, ...], dtype: np.dtype) -> int:
    return math.prod(shape) * dtype.itemsize


_plain_tree = state_audit.plain_data


class _Validators:
    """Argument checks, one per REDUCE-able callable; each raises _Refusal or returns the result."""

    def __init__(self, unpickler: SafeUnpickler):
        self.u = unpickler
        self.table = {}
        for (module, name), check in self._checks().items():
            try:
                obj = getattr(importlib.import_module(_canonical_module(module)), name)
            except (ImportError, AttributeError):
                continue
            self.table[id(obj)] = (obj, check)

    def _checks(self) -> dict[tuple[str, str], Callable[[Any, tuple[Any, ...]], Any]]:
        return {
            ("numpy", "dtype"): self.dtype,
            ("numpy._core.multiarray", "_reconstruct"): self.reconstruct,
            ("numpy._core.multiarray", "scalar"): self.scalar,
            ("numpy._core.numeric", "_frombuffer"): self.frombuffer,
            ("numpy.ma.core", "_mareconstruct"): self.mareconstruct,
            ("numpy.random._pickle", "__randomstate_ctor"): self.random_ctor,
            ("numpy.random._pickle", "__bit_generator_ctor"): self.random_ctor,
            ("numpy.random._pickle", "__generator_ctor"): self.random_ctor,
            ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence"): self.seed_sequence,
            ("builtins", "slice"): self.slice,
            ("builtins", "bytearray"): self.bytes_like,
            ("builtins", "bytes"): self.bytes_like,
            ("builtins", "set"): self.collection,
            ("builtins", "frozenset"): self.collection,
            ("builtins", "complex"): self.complex,
            ("_codecs", "encode"): self.codecs_encode,
            ("copyreg", "_reconstructor"): self.reconstructor,
            ("collections", "OrderedDict"): self.ordered_dict,
            ("collections", "defaultdict"): self.defaultdict,
            ("functools", "partial"): self.partial,
            ("sklearn.tree._tree", "Tree"): self.tree,
            ("sklearn.metrics._dist_metrics", "newObj"): self.new_obj,
            ("sklearn.neighbors._kd_tree", "newObj"): self.new_obj,
            ("sklearn.neighbors._ball_tree", "newObj"): self.new_obj,
            ("pandas._libs.tslibs.timestamps", "_unpickle_timestamp"): self.scalars_only,
            ("pandas._libs.tslibs.timedeltas", "_timedelta_unpickle"): self.scalars_only,
            ("pandas._libs.tslibs.nattype", "__nat_unpickle"): self.scalars_only,
        }

    def call(self, func: object, args: tuple[Any, ...]) -> object:
        entry = self.table.get(id(func))
        if entry is not None and entry[0] is func and self.u.resolver.has(func, "R"):
            return entry[1](func, args)
        if getattr(func, "__name__", "").startswith("__pyx_unpickle_") and self.u.resolver.has(func, "R"):
            return self.pyx_unpickle(func, args)
        if self.u.resolver.allowed_class(func) and func.__module__ in allowlist.CYTHON_REDUCE_MODULES:
            return self.scalars_only(func, args)
        if func is getattr and self.u.policy.allow_getattr:
            return self.getattr(func, args)
        raise _Refusal(f"calling {_qualname(func)} is not allowed")

    # numpy -----------------------------------------------------------------------------------------
    def dtype(self, func: Any, args: tuple[Any, ...]) -> Any:
        _require(1 <= len(args) <= 3 and isinstance(args[0], str), "numpy.dtype needs a type code")
        _require(len(args[0]) <= 16 and args[0][-1:].isalnum(), f"numpy.dtype({args[0]!r})")
        _require(all(isinstance(a, bool) or a in (0, 1) for a in args[1:]), "numpy.dtype flags")
        dtype = func(*args)
        if len(args) == 3 and args[2]:  # a copy, not numpy's shared singleton: it may take its state once
            self.u.fresh_dtypes[id(dtype)] = dtype
        return dtype

    def reconstruct(self, func: Any, args: tuple[Any, ...]) -> Any:
        _require(len(args) == 3 and args[0] is np.ndarray, "numpy _reconstruct of a non-ndarray")
        _require(args[1] == (0,) and args[2] in (b"b", "b"), "numpy _reconstruct with a real shape")
        return func(*args)

    def scalar(self, func: Any, args: tuple[Any, ...]) -> Any:
        _require(len(args) in (1, 2) and isinstance(args[0], np.dtype), "numpy scalar needs a dtype")
        _require(not args[0].hasobject, "numpy scalar of object dtype")
        self.u.used_dtype(args[0])
        if len(args) == 2:
            _require(isinstance(args[1], (bytes, bytearray)), "numpy scalar data must be bytes")
            _require(len(args[1]) == args[0].itemsize, "numpy scalar data of the wrong size")
        return func(*args)

    def frombuffer(self, func: Any, args: tuple[Any, ...]) -> Any:
        _require(len(args) == 4 and isinstance(args[1], np.dtype), "numpy _frombuffer arguments")
        buf, dtype, shape, order = args
        _require(not dtype.hasobject and _is_shape(shape) and order in ("C", "F"), "numpy _frombuffer")
        self.u.used_dtype(dtype)
        _require(isinstance(buf, (bytes, bytearray)), "numpy _frombuffer needs in-band bytes")
        _require(len(buf) == _nbytes(shape, dtype), "numpy _frombuffer size does not match its shape")
        return func(*args)

    def mareconstruct(self, func: Any, args: tuple[Any, ...]) -> Any:
        _require(len(args) == 4 and args[1] is np.ndarray, "numpy.ma _mareconstruct arguments")
        _require(args[0] is np.ma.MaskedArray and args[2] == (0,), "numpy.ma _mareconstruct shape")
        return func(*args)

    def random_ctor(self, func: Any, args: tuple[Any, ...]) -> Any:
        for arg in args:
            ok = isinstance(arg, str) and arg.isidentifier() and len(arg) < 32
            ok = ok or self.u.resolver.has(arg, "C") or self.u.resolver.has(arg, "R")
            ok = ok or (type(arg).__module__ or "").startswith("numpy.random")
            _require(ok, "numpy random constructor arguments")
        return func(*args)

    def seed_sequence(self, func: Any, args: tuple[Any, ...]) -> Any:
        from numpy.random.bit_generator import SeedSequence

        _require(len(args) == 3 and args[0] is SeedSequence and isinstance(args[1], int), "SeedSequence")
        _require(args[2] is None or _plain_tree(args[2]), "SeedSequence state")
        return func(*args)

    # builtins ----------------------------------------------------------------------------------------
    def slice(self, func: Any, args: tuple[Any, ...]) -> Any:
        _require(len(args) <= 3 and all(a is None or isinstance(a, int) for a in args), "slice arguments")
        return func(*args)

    def bytes_like(self, func: Any, args: tuple[Any, ...]) -> Any:
        if len(args) == 2:
            _require(isinstance(args[0], str) and args[1] in ("latin1", "latin-1"), f"{func.__name__}(str)")
        else:
            _require(len(args) == 0 or isinstance(args[0], (bytes, bytearray)), f"{func.__name__}(int)")
        return func(*args)

    def collection(self, func: Any, args: tuple[Any, ...]) -> Any:
        _require(len(args) <= 1, f"{func.__name__} arguments")
        _require(not args or isinstance(args[0], (list, tuple)), f"{func.__name__} of a non-list")
        return func(*args)

    def complex(self, func: Any, args: tuple[Any, ...]) -> Any:
        _require(len(args) <= 2 and all(isinstance(a, (int, float)) for a in args), "complex arguments")
        return func(*args)

    def codecs_encode(self, func: Any, args: tuple[Any, ...]) -> Any:
        _require(len(args) == 2 and isinstance(args[0], str), "_codecs.encode arguments")
        _require(args[1] in ("latin1", "latin-1"), "_codecs.encode with an encoding other than latin1")
        return func(*args)

    def reconstructor(self, func: Any, args: tuple[Any, ...]) -> Any:
        _require(len(args) == 3 and self.u.resolver.allowed_class(args[0]), "copyreg._reconstructor class")
        _require(args[1] in (object, dict, list), "copyreg._reconstructor base")
        _require(args[2] is None or _plain_tree(args[2]), "copyreg._reconstructor state")
        return func(*args)

    def ordered_dict(self, func: Any, args: tuple[Any, ...]) -> Any:
        _require(len(args) <= 1 and (not args or isinstance(args[0], list)), "OrderedDict arguments")
        return func(*args)

    def defaultdict(self, func: Any, args: tuple[Any, ...]) -> Any:
        factories = (None, list, dict, set, int, float, str, tuple, OrderedDict)
        _require(len(args) <= 1 and (not args or args[0] in factories), "defaultdict factory")
        return func(*args)

    def partial(self, func: Any, args: tuple[Any, ...]) -> Any:
        _require(len(args) >= 1 and self.u.is_pure_function(args[0]), "functools.partial of an impure function")
        _require(all(_plain_tree(a) for a in args[1:]), "functools.partial arguments")
        return func(*args)

    def pyx_unpickle(self, func: Any, args: tuple[Any, ...]) -> Any:
        _require(len(args) == 3 and isinstance(args[1], int), f"{func.__name__} arguments")
        cls, state = args[0], args[2]
        expected = func.__name__[len("__pyx_unpickle_") :]
        _require(self.u.resolver.allowed_class(cls) and cls.__name__ == expected, f"{func.__name__} of another class")
        _require(state is None or _plain_tree(state), f"{func.__name__} state")
        return func(*args)

    def scalars_only(self, func: Any, args: tuple[Any, ...]) -> Any:
        _require(all(isinstance(a, _PLAIN) for a in args), f"{_qualname(func)} with non-scalar arguments")
        return func(*args)

    # scikit-learn ----------------------------------------------------------------------------------
    def tree(self, func: Any, args: tuple[Any, ...]) -> Any:
        _require(len(args) == 3 and isinstance(args[0], int) and isinstance(args[2], int), "Tree arguments")
        n_classes = args[1]
        _require(isinstance(n_classes, np.ndarray) and n_classes.dtype.kind in "iu", "Tree n_classes")
        _require(0 < args[0] < 10**8 and 0 < args[2] < 10**5 and n_classes.size == args[2], "Tree sizes")
        _require(bool((n_classes >= 1).all() and (n_classes < 10**7).all()), "Tree n_classes range")
        return func(*args)

    def new_obj(self, func: Any, args: tuple[Any, ...]) -> Any:
        _require(len(args) == 1 and self.u.resolver.allowed_class(args[0]), "newObj of a class not allowed")
        return func(*args)

    def getattr(self, func: Any, args: tuple[Any, ...]) -> Any:
        _require(len(args) == 2 and isinstance(args[1], str), "getattr arguments")
        owner, name = args
        _require(self.u.resolver.allowed_class(owner), "getattr on a non-allowed class")
        _require(name.isidentifier() and not name.startswith("__"), f"getattr of {name!r}")
        target = (owner.__module__, owner.__qualname__, name)
        _require(
            target in self.u.policy.getattr_targets, f"getattr({owner.__qualname__}, {name!r}), not a known reference"
        )
        member = owner.__dict__.get(name)
        if isinstance(member, (staticmethod, classmethod)):
            member = member.__func__
        _require(isinstance(member, types.FunctionType), f"getattr of {name!r}: not a function of the class")
        self.u.dynamic_functions.add(id(member))
        self.u.resolver.keep.append(member)
        return getattr(owner, name)


def _qualname(obj: object) -> str:
    return obj.name if isinstance(obj, _Refused) else state_audit.qualname(obj)


# ---------------------------------------------------------------------------------------------------
# the unpickler


def _has_refused(*values: object) -> bool:
    for value in values:
        if isinstance(value, _Refused):
            return True
        if isinstance(value, (tuple, list)) and any(isinstance(v, _Refused) for v in value):
            return True
        if isinstance(value, dict) and any(isinstance(v, _Refused) for v in value.values()):
            return True
    return False


class SafeUnpickler(pickle._Unpickler):
    """The reference pure-Python unpickler with every dangerous opcode checked or refused."""

    dispatch: ClassVar[dict[int, Callable[[Any], None]]] = dict(pickle._Unpickler.dispatch)

    if TYPE_CHECKING:  # the pure-Python base's internals, which typeshed does not declare
        proto: int
        fix_imports: bool
        stack: list[Any]

        def append(self, obj: object, /) -> None: ...
        def read(self, n: int, /) -> bytes: ...
        def readline(self) -> bytes: ...
        def readinto(self, buf: bytearray, /) -> int: ...
        def pop_mark(self) -> list[Any]: ...

    def __init__(
        self, file: io.BytesIO, policy: Policy, *, joblib_arrays: bool = False, parent: SafeUnpickler | None = None
    ):
        super().__init__(file, fix_imports=True, encoding="latin1")
        self.file_handle = file
        self.policy = policy
        self.joblib_arrays = joblib_arrays
        self.resolver: _Resolver = parent.resolver if parent else _Resolver(policy)
        self.dynamic_functions: set[int] = parent.dynamic_functions if parent else set()
        self.sklearn_versions: set[str] = parent.sklearn_versions if parent else set()
        self.validators: _Validators = parent.validators if parent else _Validators(self)
        self.array_bytes: list[int] = parent.array_bytes if parent else [0]
        self.fresh_dtypes: dict[int, np.dtype] = parent.fresh_dtypes if parent else {}
        self.stream_size = file.getbuffer().nbytes

    # -- globals --------------------------------------------------------------------------------------
    def find_class(self, module: str, name: str) -> object:
        if self.proto < 3 and self.fix_imports:
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
        return self.resolver.resolve(module, name)

    def load_stack_global(self) -> None:
        name = self.stack.pop()
        module = self.stack.pop()
        if type(name) is not str or type(module) is not str:
            self.append(self.resolver.refuse(f"{_qualname(module)}.{_qualname(name)}", "computed global name"))
            return
        self.append(self.find_class(module, name))

    dispatch[pickle.STACK_GLOBAL[0]] = load_stack_global

    # Opcodes legitimate model files never use: each is refused, its operands consumed and an inert
    # placeholder pushed, so the scan goes on and the error can list everything.
    def load_inst(self) -> None:
        module = self.readline()[:-1].decode("utf-8", "replace")
        name = self.readline()[:-1].decode("utf-8", "replace")
        self.pop_mark()
        self.append(self.resolver.refuse(f"{module}.{name}", "INST opcode (legitimate files never use it)"))

    def load_obj(self) -> None:
        self.pop_mark()
        self.append(self.resolver.refuse("opcode OBJ", "legitimate model files never use it"))

    def _refused_ext(self, width: int) -> None:
        code = int.from_bytes(self.read(width), "little")
        self.append(self.resolver.refuse(f"opcode EXT{width} (extension code {code})", "extension registry"))

    def load_ext1(self) -> None:
        self._refused_ext(1)

    def load_ext2(self) -> None:
        self._refused_ext(2)

    def load_ext4(self) -> None:
        self._refused_ext(4)

    def load_persid(self) -> None:
        self.readline()
        self.append(self.resolver.refuse("opcode PERSID", "persistent ids load external objects"))

    def load_binpersid(self) -> None:
        self.stack.pop()
        self.append(self.resolver.refuse("opcode BINPERSID", "persistent ids load external objects"))

    def load_next_buffer(self) -> None:
        self.append(self.resolver.refuse("opcode NEXT_BUFFER", "out-of-band buffers"))

    def load_readonly_buffer(self) -> None:
        self.resolver.refuse("opcode READONLY_BUFFER", "out-of-band buffers")

    def load_bytearray8(self) -> None:
        """BYTEARRAY8 without pickle's allocation of the declared size before reading (a memory bomb)."""
        (size,) = struct.unpack("<Q", self.read(8))
        if size > self.stream_size:
            raise ModelLoadError("The model file is damaged: a byte string is longer than the file. Upload it again.")
        data = bytearray(size)
        if self.readinto(data) != size:
            raise ModelLoadError("The model file is truncated: a byte string ends early. Upload the complete file.")
        self.append(data)

    dispatch[pickle.BYTEARRAY8[0]] = load_bytearray8

    for _op in (
        "INST",
        "OBJ",
        "EXT1",
        "EXT2",
        "EXT4",
        "PERSID",
        "BINPERSID",
        "NEXT_BUFFER",
        "READONLY_BUFFER",
    ):
        dispatch[getattr(pickle, _op)[0]] = locals()[f"load_{_op.lower()}"]
    del _op

    # -- calls ------------------------------------------------------------------------------------------
    def _guarded(self, label: str, thunk: Callable[[], object]) -> object:
        try:
            return thunk()
        except _Refusal as refusal:
            return self.resolver.refuse(label, str(refusal))
        except (MemoryError, RecursionError):
            raise
        except Exception as exc:  # a validated call failed: the file is malformed or hostile
            if self.resolver.refused:
                return _Refused(label)
            raise ModelLoadError(f"The model file is damaged: {label} could not be rebuilt ({exc}).") from exc

    def load_reduce(self) -> None:
        args = self.stack.pop()
        func = self.stack[-1]
        if _has_refused(func, args) or not isinstance(args, tuple):
            self.stack[-1] = _Refused(f"call of {_qualname(func)}")
            return
        self.stack[-1] = self._guarded(f"{_qualname(func)}(...)", lambda: self.validators.call(func, args))

    dispatch[pickle.REDUCE[0]] = load_reduce

    def _new(self, cls: object, args: object, kwargs: object) -> object:
        label = f"{_qualname(cls)}.__new__"
        if _has_refused(cls, args, kwargs):
            return _Refused(label)
        if not self.resolver.allowed_class(cls):
            return self.resolver.refuse(label, "instantiating this is not allowed")
        if args != () or kwargs not in (None, {}):
            return self.resolver.refuse(label + "(with arguments)", "legitimate files pass no arguments")
        return self._guarded(label, lambda: cls.__new__(cls))

    def load_newobj(self) -> None:
        args = self.stack.pop()
        cls = self.stack.pop()
        self.append(self._new(cls, args, None))

    dispatch[pickle.NEWOBJ[0]] = load_newobj

    def load_newobj_ex(self) -> None:
        kwargs = self.stack.pop()
        args = self.stack.pop()
        cls = self.stack.pop()
        self.append(self._new(cls, args, kwargs))

    dispatch[pickle.NEWOBJ_EX[0]] = load_newobj_ex

    # -- state and containers ---------------------------------------------------------------------
    def load_build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        if _has_refused(inst, state):
            return
        label = f"BUILD of {_qualname(type(inst))}"
        if isinstance(inst, type):
            self.resolver.refuse(f"BUILD on class {_qualname(inst)}", "state may only be set on instances")
            return
        result = self._guarded(label, lambda: _build(self, inst, state))
        if isinstance(result, _Refused):
            self.stack[-1] = result
        elif self.joblib_arrays and _is_array_wrapper(inst):
            self.stack[-1] = self._guarded("joblib array", lambda: _read_joblib_array(self, inst))

    dispatch[pickle.BUILD[0]] = load_build

    def load_setitem(self) -> None:
        value = self.stack.pop()
        key = self.stack.pop()
        self._set_items(self.stack[-1], [key, value])

    dispatch[pickle.SETITEM[0]] = load_setitem

    def load_setitems(self) -> None:
        items = self.pop_mark()
        self._set_items(self.stack[-1], items)

    dispatch[pickle.SETITEMS[0]] = load_setitems

    def _set_items(self, target: object, items: list[Any]) -> None:
        if isinstance(target, _Refused):
            return
        if not isinstance(target, dict) or (type(target) is not dict and not self.resolver.allowed_class(type(target))):
            self.resolver.refuse(f"SETITEM on {_qualname(type(target))}", "only dicts take items")
            return
        for i in range(0, len(items) - 1, 2):
            if not isinstance(items[i], _Refused):
                target[items[i]] = items[i + 1]

    def load_append(self) -> None:
        value = self.stack.pop()
        self._append_items(self.stack[-1], [value])

    dispatch[pickle.APPEND[0]] = load_append

    def load_appends(self) -> None:
        items = self.pop_mark()
        self._append_items(self.stack[-1], items)

    dispatch[pickle.APPENDS[0]] = load_appends

    def _append_items(self, target: object, items: list[Any]) -> None:
        if isinstance(target, _Refused):
            return
        if type(target) is not list:
            self.resolver.refuse(f"APPEND on {_qualname(type(target))}", "only lists take appends")
            return
        if len(target) + len(items) > MAX_CONTAINER_ITEMS:
            raise ModelLoadError("The model file holds a list larger than any model needs; it was refused.")
        target.extend(items)

    def load_additems(self) -> None:
        items = self.pop_mark()
        target = self.stack[-1]
        if isinstance(target, _Refused):
            return
        if type(target) is not set:
            self.resolver.refuse(f"ADDITEMS on {_qualname(type(target))}", "only sets take items")
            return
        target.update(i for i in items if not isinstance(i, _Refused))

    dispatch[pickle.ADDITEMS[0]] = load_additems

    # -- helpers ------------------------------------------------------------------------------------
    def used_dtype(self, dtype: object) -> None:
        """Record that an array or scalar uses dtype: from now on its state may not change."""
        self.fresh_dtypes.pop(id(dtype), None)

    def is_pure_function(self, func: object) -> bool:
        """True for callables a model may hold: pure scikit-learn/scipy functions and numpy ufuncs."""
        if isinstance(func, np.ufunc):
            return True
        if id(func) in self.dynamic_functions:
            return True
        if isinstance(func, types.MethodType) and id(func.__func__) in self.dynamic_functions:
            return isinstance(func.__self__, type) and self.resolver.allowed_class(func.__self__)
        if isinstance(func, functools.partial):
            return self.is_pure_function(func.func) and all(_plain_tree(a) for a in func.args)
        key = (getattr(func, "__module__", None), getattr(func, "__name__", None))
        return key in allowlist.PURE_FUNCTIONS and self.resolver.value_allowed(func)


def _is_array_wrapper(inst: object) -> bool:
    cls = type(inst)
    return cls.__name__ == "NumpyArrayWrapper" and cls.__module__ == "joblib.numpy_pickle"


def _build(u: SafeUnpickler, inst: object, state: Any) -> object:
    """Apply BUILD's state to inst after type-specific checks."""
    if isinstance(inst, np.ma.MaskedArray):
        _check_masked_state(state, u)
    elif isinstance(inst, np.ndarray):
        _check_array_state(state, u)
    elif isinstance(inst, np.dtype):
        _check_dtype_state(u, inst, state)
    elif isinstance(inst, functools.partial):
        _require(isinstance(state, tuple) and len(state) == 4, "partial state")
        _require(u.is_pure_function(state[0]), f"functools.partial of {_qualname(state[0])}")
        _require(all(_plain_tree(a) for a in state[1]), "partial arguments")
    elif not u.resolver.allowed_class(type(inst)):
        raise _Refusal(f"setting state on {_qualname(type(inst))} is not allowed")
    elif type(inst).__module__ in _BINARY_TREE_MODULES:
        _require(state_audit.binary_tree_state_ok(state), f"{type(inst).__name__} state (indices out of bounds)")
    if isinstance(state, dict) and isinstance(state.get("_sklearn_version"), str):
        u.sklearn_versions.add(state["_sklearn_version"])
    _apply_state(inst, state)
    return inst


_BINARY_TREE_MODULES = frozenset({"sklearn.neighbors._kd_tree", "sklearn.neighbors._ball_tree"})


def _check_dtype_state(u: SafeUnpickler, dtype: np.dtype, state: Any) -> None:
    """A dtype's one BUILD: right after it was made, before use, and never adding object semantics."""
    _require(u.fresh_dtypes.pop(id(dtype), None) is dtype, "BUILD on a numpy dtype that is already in use")
    _require(isinstance(state, tuple) and len(state) in (8, 9) and _plain_tree(state), "numpy dtype state")
    _version, endian, subarray, names, fields, elsize, alignment, flags = state[:8]
    _require((len(state) == 9) == (dtype.kind in "mM"), "numpy dtype state")  # datetimes add their unit
    _require(len(state) == 8 or _datetime_unit_ok(state[8]), "numpy datetime unit")
    _require(endian in ("<", ">", "|", "=") and isinstance(flags, int) and 0 <= flags < 256, "numpy dtype state")
    _require(isinstance(elsize, int) and isinstance(alignment, int) and elsize in (-1, dtype.itemsize), "dtype size")
    _require(subarray is None or _dtype_subarray_ok(subarray), "numpy dtype subarray")
    _require((names is None) == (fields is None), "numpy dtype fields")
    field_dtypes = [] if fields is None else _dtype_fields(names, fields, dtype.itemsize)
    object_flags = 0x01 | 0x04  # NPY_ITEM_REFCOUNT / NPY_ITEM_IS_POINTER
    adds_objects = bool(flags & object_flags) or any(d.hasobject for d in field_dtypes)
    _require(dtype.hasobject or not adds_objects, "BUILD turning a numpy dtype into one that holds objects")
    _require(not dtype.hasobject or bool(flags & 0x01), "BUILD turning an object dtype into raw bytes")
    expected = dtype.flags if fields is None else _struct_flags(names, fields, elsize, aligned=bool(flags & 0x80))
    _require(flags == expected, "numpy dtype flags that do not match the dtype")


def _struct_flags(names: tuple[str, ...], fields: dict[str, Any], itemsize: int, *, aligned: bool) -> int:
    """The flags numpy computes for a structured dtype with these fields (numpy trusts the pickled ones)."""
    formats, offsets = [fields[n][0] for n in names], [fields[n][1] for n in names]
    spec: Any = {"names": list(names), "formats": formats, "offsets": offsets, "itemsize": itemsize}
    return cast(int, np.dtype(spec, align=aligned).flags)  # spec: Any, as numpy types it as a private TypedDict


_DATETIME_UNITS = frozenset(b"Y M W D h m s ms us ns ps fs as generic".split())


def _datetime_unit_ok(metadata: object) -> bool:
    """The datetime tail of a numpy dtype's state: (metadata or None, (unit, multiplier, 1, 1))."""
    if not (isinstance(metadata, tuple) and len(metadata) == 2 and isinstance(metadata[0], (dict, type(None)))):
        return False
    unit = metadata[1]
    return (
        isinstance(unit, tuple)
        and len(unit) == 4
        and unit[0] in _DATETIME_UNITS
        and all(isinstance(n, int) and 0 < n < 2**31 for n in unit[1:])
    )


def _dtype_subarray_ok(subarray: object) -> bool:
    return (
        isinstance(subarray, tuple)
        and len(subarray) == 2
        and isinstance(subarray[0], np.dtype)
        and _is_shape(subarray[1])
        and not subarray[0].hasobject
    )


def _dtype_fields(names: Any, fields: Any, itemsize: int) -> list[np.dtype]:
    """The field dtypes of a structured dtype's state, each checked to lie inside the item (numpy trusts it)."""
    _require(isinstance(names, tuple) and all(isinstance(n, str) for n in names), "numpy dtype field names")
    _require(isinstance(fields, dict) and all(isinstance(k, str) for k in fields), "numpy dtype fields")
    _require(set(names) <= set(fields), "numpy dtype fields")  # titles add keys beside the names
    found = []
    for value in fields.values():
        _require(isinstance(value, tuple) and len(value) in (2, 3), "numpy dtype field")
        field, offset = value[0], value[1]
        _require(isinstance(field, np.dtype) and isinstance(offset, int), "numpy dtype field")
        _require(offset >= 0 and offset + field.itemsize <= itemsize, "numpy dtype field outside the item")
        _require(len(value) == 2 or value[2] is None or isinstance(value[2], str), "numpy dtype field title")
        found.append(field)
    return found


def _apply_state(inst: object, state: Any) -> None:
    setstate = getattr(inst, "__setstate__", None)
    if setstate is not None and not isinstance(inst, type):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # version-skew warnings become notices elsewhere
            setstate(state)
        return
    slotstate = None
    if isinstance(state, tuple) and len(state) == 2:
        state, slotstate = state
    if state:
        _require(isinstance(state, dict), "object state must be a dict")
        inst.__dict__.update({k: v for k, v in state.items() if isinstance(k, str)})
    if slotstate:
        _require(isinstance(slotstate, dict), "slot state must be a dict")
        for key, value in slotstate.items():
            _require(isinstance(key, str) and not key.startswith("__"), "slot name")
            setattr(inst, key, value)


def _check_array_state(state: Any, u: SafeUnpickler) -> None:
    _require(isinstance(state, tuple) and len(state) == 5, "ndarray state")
    _version, shape, dtype, _fortran, raw = state
    _require(_is_shape(shape) and isinstance(dtype, np.dtype), "ndarray shape/dtype")
    u.used_dtype(dtype)
    if dtype.hasobject:
        _require(isinstance(raw, list) and len(raw) == math.prod(shape), "object ndarray items")
        _require(all(_object_item_ok(v, u) for v in raw), "object ndarray holding non-scalar objects")
        return
    _require(isinstance(raw, (bytes, bytearray, str)), "ndarray data must be bytes")
    size = _nbytes(shape, dtype)
    _require(len(raw) == size, "ndarray data does not match its shape")
    u.array_bytes[0] += size
    _require(u.array_bytes[0] <= u.policy.max_bytes, "arrays larger than the size cap")


def _object_item_ok(value: object, u: SafeUnpickler) -> bool:
    """Items of object arrays: plain scalars, or instances of allowed classes (GradientBoosting's trees)."""
    if isinstance(value, (*_PLAIN, _Refused)):
        return True
    return not isinstance(value, type) and not callable(value) and u.resolver.allowed_class(type(value))


def _check_masked_state(state: Any, u: SafeUnpickler) -> None:
    _require(isinstance(state, tuple) and len(state) == 7, "masked array state")
    _version, shape, dtype, _fortran, raw, mask, fill = state
    _require(_is_shape(shape) and isinstance(dtype, np.dtype) and not dtype.hasobject, "masked array dtype")
    u.used_dtype(dtype)
    _require(isinstance(raw, (bytes, bytearray)) and len(raw) == _nbytes(shape, dtype), "masked array data")
    _require(isinstance(mask, (bytes, bytearray)) and len(mask) <= len(raw) + 8, "masked array mask")
    _require(isinstance(fill, _PLAIN), "masked array fill value")


def _read_joblib_array(u: SafeUnpickler, wrapper: object) -> np.ndarray | _Refused:
    """Read the array joblib wrote after a NumpyArrayWrapper, without trusting its shape."""
    attrs: Any = vars(wrapper)  # untrusted: each value is checked below
    dtype, shape, order = attrs.get("dtype"), attrs.get("shape"), attrs.get("order")
    _require(attrs.get("subclass") in (np.ndarray, np.matrix) and isinstance(dtype, np.dtype), "joblib array type")
    _require(_is_shape(shape) and order in ("C", "F"), "joblib array shape")
    u.used_dtype(dtype)
    f = u.file_handle
    if dtype.hasobject:
        array = SafeUnpickler(f, u.policy, parent=u).load()
        if isinstance(array, _Refused):
            return array
        _require(isinstance(array, np.ndarray) and array.shape == tuple(shape), "joblib object array")
        return cast(np.ndarray, array)
    if attrs.get("numpy_array_alignment_bytes") is not None:
        pad = f.read(1)
        _require(len(pad) == 1, "truncated joblib array")
        f.read(pad[0])
    size = _nbytes(shape, dtype)
    u.array_bytes[0] += size
    _require(u.array_bytes[0] <= u.policy.max_bytes, "arrays larger than the size cap")
    data = f.read(size)
    if len(data) != size:
        raise ModelLoadError("The model file is truncated: an array ends early. Upload the complete file.")
    flat = np.frombuffer(data, dtype=dtype).copy()
    return flat.reshape(shape[::-1]).T if order == "F" else flat.reshape(shape)


# ---------------------------------------------------------------------------------------------------
# containers


_JOBLIB_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"BZ", "bz2"),
    (b"\xfd7zXZ", "xz"),
    (b"\x5d\x00", "lzma"),
    (b"\x04\x22\x4d\x18", "lz4"),
    (b"\x78", "zlib"),
)


# First opcodes of protocol 0/1 pickles (which have no PROTO header).
_PROTOCOL0_STARTS = {bytes([c]) for c in b"(c]}ILNFSVX)JKM"}


def looks_like_pickle(data: bytes) -> bool:
    """True when the bytes start like a pickle or one of joblib's containers (a sniff, not a check)."""
    head = data[:8]
    return (
        head[:1] == b"\x80"
        or head[:2] == b"ZF"
        or any(head.startswith(magic) for magic, _ in _JOBLIB_MAGIC)
        or head[:1] in _PROTOCOL0_STARTS
    )


def _inflate(data: bytes, kind: str, limit: int) -> tuple[bytes, bool]:
    """At most ``limit`` bytes of a compressed stream's output, and whether that is all of it.

    The incremental decompressors' ``max_length`` bounds the work and memory by ``limit`` whatever the input.
    """
    if kind == "lz4":
        try:
            import lz4.frame
        except ImportError as exc:
            raise MissingDependencyError(
                "This joblib file is lz4-compressed and the lz4 package is not installed; "
                "install it (pip install lz4) or re-save the model without lz4.",
                package="lz4",
            ) from exc
        decompressor = lz4.frame.LZ4FrameDecompressor()
        out = decompressor.decompress(data, max_length=limit)
    elif kind == "bz2":
        decompressor = bz2.BZ2Decompressor()
        out = decompressor.decompress(data, max_length=limit)
    elif kind in ("xz", "lzma"):
        fmt = lzma.FORMAT_XZ if kind == "xz" else lzma.FORMAT_ALONE
        decompressor = lzma.LZMADecompressor(format=fmt)
        out = decompressor.decompress(data, max_length=limit)
    else:
        decompressor = zlib.decompressobj(31 if kind == "gzip" else 15)
        out = decompressor.decompress(data, limit)
    return out, bool(decompressor.eof) or len(out) < limit


def _decompress(data: bytes, kind: str, cap: int) -> bytes:
    """Decompress a joblib stream, refusing output larger than cap bytes."""
    out, _ = _inflate(data, kind, cap + 1)
    if len(out) > cap:
        raise ModelLoadError(
            f"The model file expands to more than {cap // 2**20} MB when decompressed; "
            "ModelLens refuses it (raise MODELLENS_MAX_MODEL_MB if the model really is that large)."
        )
    return out


def _container(data: bytes) -> str:
    """``pickle`` or the joblib compressor a stream starts with; legacy ``ZF`` files refused."""
    if data.startswith(b"ZF"):
        raise UnsafeModelError(
            "This is a legacy joblib (<0.9) 'ZF' file, which ModelLens refuses: it is read by a different, "
            "unsafe loader. Re-save the model with a current joblib.",
            ["joblib legacy ZF container"],
        )
    if data[:1] == b"\x80":
        return "pickle"
    for magic, kind in _JOBLIB_MAGIC:
        if data.startswith(magic):
            return kind
    if data[:1] in _PROTOCOL0_STARTS:
        return "pickle"
    raise ModelLoadError("This file is not a pickle or joblib model (its first bytes do not match either format).")


def _damaged(kind: str, exc: Exception) -> ModelLoadError:
    return ModelLoadError(f"The {kind}-compressed model file is damaged or truncated ({exc}).")


_INFLATE_ERRORS = (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError)


def _open_stream(data: bytes, cap: int) -> tuple[bytes, str]:
    kind = _container(data)
    if kind == "pickle":
        return data, "pickle"
    try:
        return _decompress(data, kind, cap), f"joblib/{kind}"
    except _INFLATE_ERRORS as exc:
        raise _damaged(kind, exc) from exc


def open_prefix(data: bytes, limit: int) -> tuple[bytes, str, bool]:
    """The first ``limit`` bytes of the pickle stream inside a file, without decompressing more than that.

    For a bounded look in the server (:mod:`core.safety.pickle_scan`); the worker reads whole streams.

    Returns:
        The prefix, the container (``pickle`` or ``joblib/<compressor>``) and whether the prefix is the whole
        stream.

    Raises:
        UnsafeModelError: A legacy joblib ``ZF`` file.
        MissingDependencyError: lz4 is needed and not installed.
        ModelLoadError: Not a pickle, or a damaged compressed stream.
    """
    kind = _container(data)
    if kind == "pickle":
        return data[:limit], "pickle", len(data) <= limit
    try:
        out, whole = _inflate(data, kind, limit)
    except _INFLATE_ERRORS as exc:
        raise _damaged(kind, exc) from exc
    return out, f"joblib/{kind}", whole


# ---------------------------------------------------------------------------------------------------
# public API


def safe_load(data: bytes, policy: Policy | None = None) -> SafeLoadResult:
    """Load a pickle or joblib stream under the allowlist.

    Args:
        data: The raw file bytes (plain pickle, joblib plain, or any joblib compressor).
        policy: Allowlist policy; :func:`default_policy` when omitted.

    Returns:
        The loaded object with its container kind, protocol and recorded library versions.

    Raises:
        UnsafeModelError: The file references anything outside the policy, or the loaded state could act
            (:mod:`core.safety.state_audit`); every refused global or attribute is listed.
        MissingDependencyError: The file needs a known library that is not installed.
        ModelLoadError: The file is empty, truncated, damaged or not a pickle.
    """
    policy = policy or default_policy()
    if not data:
        raise ModelLoadError("The model file is empty. Upload the .pkl/.joblib file the model was saved to.")
    if len(data) > policy.max_bytes:
        raise ModelLoadError(f"The model file is larger than the {policy.max_bytes // 2**20} MB cap.")
    stream, container = _open_stream(data, policy.max_bytes)
    u = SafeUnpickler(io.BytesIO(stream), policy, joblib_arrays=True)
    obj = _run(u)
    if not u.resolver.refused and not u.resolver.missing:
        state_audit.audit_graph(obj, u)
    _raise_for_refusals(u.resolver)
    protocol = stream[1] if stream[:1] == b"\x80" and len(stream) > 1 else 0
    if container == "pickle" and _contains_joblib_wrapper(u):
        container = "joblib"
    return SafeLoadResult(obj, container, protocol, set(u.sklearn_versions), dict(u.resolver.missing))


def type_name_allowed(qualname: str, policy: Policy | None = None) -> bool:
    """True when ``module.Name`` resolves under the policy to a class or value a model may hold."""
    module, _, name = qualname.rpartition(".")
    resolver = _Resolver(policy or default_policy())
    obj = resolver.resolve(module, name)
    return not isinstance(obj, _Refused) and (resolver.has(obj, "C") or resolver.has(obj, "V"))


def audit_object(obj: object, policy: Policy | None = None) -> None:
    """Audit an object loaded by another safe loader (skops) with the same state rules (:mod:`core.safety.state_audit`).

    Like :func:`safe_load`, it sets every ``n_jobs`` it finds to ``None``.

    Raises:
        UnsafeModelError: It holds impure callables, callable objects, method names other than prediction
            methods, file inputs, tampered trees or deep nesting.
    """
    u = SafeUnpickler(io.BytesIO(b""), policy or default_policy())
    state_audit.audit_graph(obj, u)
    _raise_for_refusals(u.resolver)


def _contains_joblib_wrapper(u: SafeUnpickler) -> bool:
    return any(getattr(o, "__name__", "") == "NumpyArrayWrapper" for o in u.resolver.keep)


def _run(u: SafeUnpickler) -> object:
    try:
        return u.load()
    except (
        EOFError,
        pickle.UnpicklingError,
        IndexError,
        KeyError,
        ValueError,
        TypeError,
        struct.error,
    ) as exc:
        if not u.resolver.refused and not u.resolver.missing:
            raise ModelLoadError(
                "The model file is truncated or damaged and cannot be read "
                f"({type(exc).__name__}). Upload the complete file again."
            ) from exc
    except RecursionError as exc:
        raise ModelLoadError("The model file nests objects too deeply to be a model.") from exc
    return None


def _raise_for_refusals(resolver: _Resolver) -> None:
    if resolver.refused:
        names = sorted(resolver.refused)
        custom = sorted(resolver.custom)
        shown = [n if resolver.refused[n] == "not on the allowlist" else f"{n} ({resolver.refused[n]})" for n in names]
        malicious = [n for n in names if _looks_malicious(n)]
        if malicious:
            raise UnsafeModelError(
                f"This file was refused: it asks to run {'; '.join(shown)}. No model needs "
                f"{', '.join(malicious[:3])} (commands, files, network or code loading) and nothing in it was "
                "run; do not open it elsewhere, and ask whoever sent it how it was made.",
                names,
            )
        if custom:
            raise UnsafeModelError(
                f"This model contains custom Python code ({', '.join(custom[:6])}) and was refused, "
                "nothing of it ran: re-export it without custom functions or classes, or save it as skops "
                "or a native booster file (XGBoost .json/.ubj, LightGBM .txt). If it is your own code, "
                "on your own machine, `modellens --trust` loads it.",
                names,
                custom_code=True,
            )
        raise UnsafeModelError(
            f"This file was refused because loading or using it would run code outside ModelLens's allowlist: "
            f"{'; '.join(shown)}. Nothing in it was run; re-export the model with standard scikit-learn, "
            "XGBoost, LightGBM or CatBoost objects, or as skops.",
            names,
        )
    if resolver.missing:
        package, needed_by = next(iter(resolver.missing.items()))
        raise MissingDependencyError(
            f"This model needs the '{package}' package ({needed_by}), which this server does not have: "
            f"install it (pip install {package}) or export the model without it.",
            package=package,
        )


def _looks_malicious(refused: str) -> bool:
    """True for refused globals no model or honest custom code needs (os.system, builtins.eval, socket ...)."""
    module = refused.rpartition(".")[0]
    return refused in allowlist.MALICIOUS_GLOBALS or bool(allowlist.MALICIOUS_MODULE_RE.match(module))


def _is_custom_code(module: str) -> bool:
    """True for modules that are user code or code serialisers, not a library or the standard library."""
    if allowlist.CUSTOM_CODE_MODULES.match(module):
        return True
    top = module.split(".")[0]
    stdlib = getattr(sys, "stdlib_module_names", ())  # Python 3.10+; the 3.9 AutoML worker only misses the hint
    return top not in allowlist.KNOWN_PACKAGES and top not in stdlib and top != "__builtin__"
