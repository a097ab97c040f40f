"""Reading model uploads: format detection (static, safe anywhere) and loading (worker process only).

Two layers:

* :func:`inspect_upload` looks at the bytes without running anything: which container it is (pickle,
  joblib, skops, native booster, MLflow / Azure AutoML zip), which member holds the model, which package
  pins the upload carries, and whether it is an Azure AutoML model (a static scan of the pickle's globals).
  The dashboard uses it to choose a worker. It runs in the server, so it is linear in the upload's size and
  bounded in memory: zips are read through :mod:`core.loading.model_zip`, a pickle's globals through
  :mod:`core.safety.pickle_scan`, JSON is recognised by its first key, zips nest at most :data:`MAX_ZIP_DEPTH` deep.
* :func:`read_model` turns the bytes into a Python object. It is called only inside a model worker
  (:mod:`core.worker.main`, with memory and CPU limits) or a Dask worker process (:mod:`core.batch.task`, the
  cluster's own limits), never in the server: pickles go through the allowlisting unpickler unless the deployment trusts
  uploads (``MODELLENS_TRUST_PICKLES=1``), skops files through skops' audit, boosters through their
  libraries' own parsers.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from core.errors import MissingDependencyError, ModelLoadError, UnsafeModelError
from core.loading import model_zip
from core.safety import allowlist, pickle_scan, safe_pickle

__all__ = ["UploadInfo", "inspect_upload", "read_model", "sha256_of"]

log = logging.getLogger(__name__)

MODEL_MEMBERS = ("model.pkl", "model.joblib", "model.pickle", "model.skops")
MAX_ZIP_DEPTH = 3  # a model zip inside a zip inside a zip, no deeper
JSON_PARSE_CAP = 8 << 20
PEEK_BYTES = pickle_scan.SCAN_BYTES  # more than JSON_PARSE_CAP: a cut JSON member is never parsed
_FIRST_KEY_LEARNER = re.compile(rb'\s*"learner"\s*:')


def sha256_of(data: bytes) -> str:
    """Content hash used to key workers, caches and the share store."""
    return hashlib.sha256(data).hexdigest()


@dataclass
class UploadInfo:
    """What an upload is, learned without running any of it.

    Attributes:
        format: ``pickle``, ``joblib``, ``skops``, ``xgboost-json``, ``xgboost-ubj``, ``lightgbm-txt``,
            ``catboost-cbm``.
        model_bytes: The bytes of the model itself (the zip member for zips).
        container: ``file``, ``mlflow-zip`` or ``automl-zip``.
        member: The zip member the model came from, if any.
        pins: Package versions the upload declares (conda / requirements files), lower-case names.
        automl: True for an Azure AutoML model.
        globals: Globals the pickle names (bounded static scan; detection only).
        globals_partial: True when that scan stopped early (a size or opcode cap, or raw array bytes).
    """

    format: str
    model_bytes: bytes
    container: str = "file"
    member: str | None = None
    pins: dict[str, str] = field(default_factory=dict)
    automl: bool = False
    globals: list[tuple[str, str]] = field(default_factory=list)
    globals_partial: bool = False

    @property
    def automl_runtime(self) -> str | None:
        """The AutoML runtime version the upload was trained with, when its files say so."""
        for name in ("azureml-train-automl-runtime", "azureml-automl-runtime", "azureml-training-tabular"):
            if name in self.pins:
                return self.pins[name]
        return None


def inspect_upload(data: bytes, filename: str, *, max_bytes: int = 1024**3, peek: bool = False) -> UploadInfo:
    """Identify an upload's format without executing it, in time and memory linear in its size.

    Args:
        data: The uploaded bytes.
        filename: The upload's name (a hint; the content decides).
        max_bytes: Cap on the model itself (a zip member's uncompressed size).
        peek: Read only the first :data:`PEEK_BYTES` of a zip's model member (the server's look, enough for
            the format, pins and AutoML detection); ``model_bytes`` is then that prefix. Workers read it whole.

    Raises:
        ModelLoadError: Empty file, damaged or hostile zip, or nothing recognisable as a model.
    """
    return _inspect(data, filename, max_bytes, depth=0, peek=peek)


def _inspect(data: bytes, filename: str, max_bytes: int, depth: int, peek: bool = False) -> UploadInfo:
    if not data:
        raise ModelLoadError("The model file is empty. Upload the file the model was saved to.")
    if data[:4] == b"PK\x03\x04":
        if depth >= MAX_ZIP_DEPTH:
            raise ModelLoadError(
                f"This zip nests zips more than {MAX_ZIP_DEPTH} deep; upload the innermost model zip itself."
            )
        return _inspect_zip(data, filename, max_bytes, depth, peek)
    fmt = _sniff(data, filename)
    info = UploadInfo(format=fmt, model_bytes=data)
    if fmt in ("pickle", "joblib"):
        scan = pickle_scan.scan_globals(data)
        info.globals, info.globals_partial = list(scan.globals), scan.partial
        info.automl = _looks_automl(info.globals)
    return info


def _sniff(data: bytes, filename: str) -> str:
    head = data[:64]
    if head.startswith(b"CBM1"):
        return "catboost-cbm"
    if head.lstrip().startswith(b"tree\n") or head.startswith(b"tree\r\n"):
        return "lightgbm-txt"
    if head.lstrip()[:1] == b"{":
        return _sniff_json(data)
    if safe_pickle.looks_like_pickle(data):
        return "pickle"
    suffix = PurePosixPath(filename.lower()).suffix
    raise ModelLoadError(
        f"This {suffix or 'file'} is not a model file ModelLens can read: upload a pickle/joblib (.pkl, .joblib), "
        "skops (.skops), XGBoost (.json, .ubj), LightGBM (.txt), CatBoost (.cbm) or an MLflow / AutoML zip."
    )


def _sniff_json(data: bytes) -> str:
    """XGBoost JSON or UBJSON, decided from the first key: never a parse of the whole (maybe huge) document.

    XGBoost writes its keys sorted, so a JSON model opens with ``{"learner"``. Small documents whose keys were
    reordered are parsed (under :data:`JSON_PARSE_CAP`) to look for the key anywhere at the top level.
    """
    text = data.lstrip()[1:]
    body = text.lstrip()[:1]
    if body not in (b'"', b"}"):  # not text JSON: UBJSON opens with a type marker or a length
        return "xgboost-ubj"
    if _FIRST_KEY_LEARNER.match(text[:4096]):
        return "xgboost-json"
    if len(data) <= JSON_PARSE_CAP:
        try:
            doc = json.loads(data)
        except ValueError:
            return "xgboost-ubj"
        if isinstance(doc, dict) and "learner" in doc:
            return "xgboost-json"
    raise ModelLoadError("This JSON file is not an XGBoost model (it has no 'learner' section).")


def _looks_automl(found: list[tuple[str, str]]) -> bool:
    return any(module.startswith("azureml.") for module, _ in found)


def _inspect_zip(data: bytes, filename: str, max_bytes: int, depth: int, peek: bool) -> UploadInfo:
    archive, names = model_zip.open_zip(data, filename)
    if any(n.endswith("schema.json") for n in names) and not any(_is_model_member(n) for n in names):
        return UploadInfo(format="skops", model_bytes=data)
    model_names = [n for n in names if _is_model_member(n)]
    if not model_names:
        raise ModelLoadError(
            "This zip holds no model: expected an MLflow or Azure AutoML model folder with a model.pkl."
        )
    member = sorted(model_names, key=lambda n: (n.count("/"), n))[0]
    pins = model_zip.zip_pins(archive, names)
    model_bytes = model_zip.read_member(archive, member, max_bytes, keep=PEEK_BYTES if peek else None)
    if model_bytes[:4] == b"PK\x03\x04" and len(model_bytes) == PEEK_BYTES:  # a zip is read from its end
        model_bytes = model_zip.read_member(archive, member, max_bytes)
    info = _inspect(model_bytes, member, max_bytes, depth + 1, peek)
    info.container, info.member = "mlflow-zip", member
    info.pins = pins
    if info.automl or any(n.startswith("azureml-") for n in pins):
        info.automl = info.automl or "azureml-train-automl-runtime" in pins
        info.container = "automl-zip"
    return info


def _is_model_member(name: str) -> bool:
    return PurePosixPath(name).name in MODEL_MEMBERS


# ---------------------------------------------------------------------------------------------------
# worker side


@dataclass
class LoadFacts:
    """What loading learned besides the object: container, protocol and recorded library versions."""

    format: str
    container: str
    protocol: int | None = None
    sklearn_versions: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)


def read_model(
    data: bytes, filename: str, *, trusted: bool = False, policy: safe_pickle.Policy | None = None
) -> tuple[Any, LoadFacts]:
    """Load an upload into a Python object. Worker processes only: never call this in the server.

    Args:
        data: The uploaded bytes.
        filename: The upload's name (a hint; the content decides the format).
        trusted: Load pickles with the plain unpickler (local single-user opt-in).
        policy: Allowlist policy for pickles (default: :func:`core.safety.safe_pickle.default_policy`).

    Raises:
        UnsafeModelError: The file was refused (every refused global listed).
        MissingDependencyError: A needed package is not installed.
        ModelLoadError: Any other reason the file cannot be loaded.
    """
    policy = policy or safe_pickle.default_policy()
    info = inspect_upload(data, filename, max_bytes=policy.max_bytes)
    facts = LoadFacts(format=info.format, container=info.container)
    loader = _LOADERS.get(info.format)
    if loader is None:
        obj = _load_pickle(info.model_bytes, trusted, policy, facts)
    else:
        obj = loader(info.model_bytes, trusted, policy, facts)
    facts.notices.extend(_pin_notices(info.pins))
    return obj, facts


def _load_pickle(data: bytes, trusted: bool, policy: safe_pickle.Policy, facts: LoadFacts) -> Any:
    if trusted:
        import joblib

        try:
            obj = joblib.load(io.BytesIO(data))  # noqa: S301 - explicit local opt-in (--trust)
        except ModuleNotFoundError as exc:
            raise MissingDependencyError(
                f"This model needs the '{exc.name}' package, which is not installed here.",
                package=exc.name or "",
            ) from exc
        except Exception as exc:
            raise ModelLoadError(f"The model file could not be loaded ({type(exc).__name__}: {exc}).") from exc
        facts.notices.append("Loaded as trusted: the safe loader was bypassed for this file (--trust).")
        return obj
    result = safe_pickle.safe_load(data, policy)
    facts.container = result.container if facts.container == "file" else facts.container
    facts.format = "joblib" if result.container.startswith("joblib") else "pickle"
    facts.protocol = result.protocol
    facts.sklearn_versions = sorted(result.sklearn_versions)
    return result.obj


def _load_skops(data: bytes, trusted: bool, policy: safe_pickle.Policy, facts: LoadFacts) -> Any:
    """Load a skops file trusting only types that skops trusts by default *and* ModelLens's allowlist accepts.

    Beyond skops's defaults, only the few types whose state :mod:`core.safety.state_audit` checks itself are
    trusted (:data:`core.safety.allowlist.SKOPS_EXTRA_TRUSTED`: trees and HistGradientBoosting predictors with their
    index bounds, dtypes, ``Bunch``, calibrators). The loaded object then gets the same state audit as a pickle.
    """
    try:
        import skops.io as sio
    except ImportError as exc:
        raise MissingDependencyError("Loading .skops files needs the 'skops' package.", package="skops") from exc
    try:
        untrusted = sio.get_untrusted_types(data=data)
        named = _skops_type_names(data)
    except Exception as exc:
        raise ModelLoadError(f"This skops file is damaged ({type(exc).__name__}).") from exc
    not_skops = [t for t in untrusted if t not in allowlist.SKOPS_EXTRA_TRUSTED]
    not_ours = sorted(t for t in set(named) | set(untrusted) if not _skops_type_allowed(t, policy))
    refused = [] if trusted else sorted(set(not_skops) | set(not_ours))
    if refused:
        raise UnsafeModelError(
            f"This skops file uses types that skops does not trust by default or that are outside ModelLens's "
            f"allowlist: {', '.join(refused)}. Nothing was loaded; re-export the model with standard scikit-learn "
            "objects only, or as pickle/joblib (ModelLens's own loader checks tree structures).",
            refused,
        )
    obj = sio.loads(data, trusted=untrusted)
    safe_pickle.audit_object(obj, policy)
    return obj


_SKOPS_PLAIN = frozenset(
    f"builtins.{n}"
    for n in ("dict", "list", "tuple", "str", "int", "float", "bool", "NoneType", "slice", "set", "frozenset", "bytes")
)


def _skops_type_allowed(name: str, policy: safe_pickle.Policy) -> bool:
    return name in _SKOPS_PLAIN or safe_pickle.type_name_allowed(name, policy)


def _skops_type_names(data: bytes) -> list[str]:
    """Every ``module.Class`` a skops file's schema names (objects, functions, types), walked iteratively."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        info = archive.getinfo("schema.json")
        if info.file_size > 64 * 2**20:
            raise ModelLoadError("This skops file's schema is larger than any model needs; it was refused.")
        schema = json.loads(archive.read(info))
    names: list[str] = []
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("__module__"), str) and isinstance(node.get("__class__"), str):
                names.append(f"{node['__module__']}.{node['__class__']}")
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return names


def _load_xgboost(data: bytes, trusted: bool, policy: safe_pickle.Policy, facts: LoadFacts) -> Any:
    xgb = _import_optional("xgboost")
    booster = xgb.Booster()
    try:
        booster.load_model(bytearray(data))
    except xgb.core.XGBoostError as exc:
        raise ModelLoadError(f"This XGBoost model file is damaged or from an unknown version ({exc}).") from exc
    return booster


def _load_lightgbm(data: bytes, trusted: bool, policy: safe_pickle.Policy, facts: LoadFacts) -> Any:
    lgb = _import_optional("lightgbm")
    try:
        return lgb.Booster(model_str=data.decode("utf-8"))
    except (UnicodeDecodeError, lgb.basic.LightGBMError) as exc:
        raise ModelLoadError(f"This LightGBM model file is damaged ({exc}).") from exc


def _load_catboost(data: bytes, trusted: bool, policy: safe_pickle.Policy, facts: LoadFacts) -> Any:
    catboost = _import_optional("catboost")
    model = catboost.CatBoost()
    try:
        model.load_model(blob=data)
    except catboost.CatBoostError as exc:
        raise ModelLoadError(f"This CatBoost model file is damaged ({exc}).") from exc
    return model


def _import_optional(name: str) -> Any:
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise MissingDependencyError(
            f"This model needs the '{name}' package, which this server does not have: install it (pip install {name}).",
            package=name,
        ) from exc


_LOADERS = {
    "skops": _load_skops,
    "xgboost-json": _load_xgboost,
    "xgboost-ubj": _load_xgboost,
    "lightgbm-txt": _load_lightgbm,
    "catboost-cbm": _load_catboost,
}


def _pin_notices(pins: dict[str, str]) -> list[str]:
    import importlib.metadata as md

    notices = []
    for dist in ("scikit-learn", "xgboost", "lightgbm", "catboost", "numpy", "pandas"):
        trained = pins.get(dist)
        if not trained:
            continue
        try:
            here = md.version(dist if dist != "xgboost" else "xgboost-cpu")
        except md.PackageNotFoundError:
            try:
                here = md.version(dist)
            except md.PackageNotFoundError:
                continue
        if trained.split(".")[:2] != here.split(".")[:2]:
            notices.append(f"Trained with {dist} {trained}; this server runs {here}.")
    return notices
