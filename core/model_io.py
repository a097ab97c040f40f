"""Reading model uploads: format detection (static, safe anywhere) and loading (worker process only).

Two layers:

* :func:`inspect_upload` looks at the bytes without running anything: which container it is (pickle,
  joblib, skops, native booster, MLflow / Azure AutoML zip), which member holds the model, which package
  pins the upload carries, and whether it is an Azure AutoML model (a static scan of the pickle's globals).
  The dashboard uses it to choose a worker.
* :func:`read_model` turns the bytes into a Python object. It is called only inside a model worker
  (:mod:`core.worker_main`, with memory and CPU limits) or a Dask worker process (:mod:`core.batch`, the
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

from core import safe_pickle
from core.errors import MissingDependencyError, ModelLoadError, UnsafeModelError

__all__ = ["UploadInfo", "inspect_upload", "read_model", "sha256_of"]

log = logging.getLogger(__name__)

MODEL_MEMBERS = ("model.pkl", "model.joblib", "model.pickle", "model.skops")
ENV_MEMBERS = re.compile(r"(^|/)(conda\.ya?ml|conda_env[^/]*\.ya?ml|requirements\.txt|MLmodel|python_env\.yaml)$")
_PIN = re.compile(r"^\s*-?\s*([A-Za-z0-9_.\-\[\]]+)\s*(==|=|~=|<=|>=)\s*([A-Za-z0-9_.*+\-]+)")


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
        globals: Globals the pickle names (static scan; detection only).
    """

    format: str
    model_bytes: bytes
    container: str = "file"
    member: str | None = None
    pins: dict[str, str] = field(default_factory=dict)
    automl: bool = False
    globals: list[tuple[str, str]] = field(default_factory=list)

    @property
    def automl_runtime(self) -> str | None:
        """The AutoML runtime version the upload was trained with, when its files say so."""
        for name in ("azureml-train-automl-runtime", "azureml-automl-runtime", "azureml-training-tabular"):
            if name in self.pins:
                return self.pins[name]
        return None


def inspect_upload(data: bytes, filename: str, *, max_bytes: int = 1024**3) -> UploadInfo:
    """Identify an upload's format without executing it.

    Raises:
        ModelLoadError: Empty file, damaged zip, or nothing recognisable as a model.
    """
    if not data:
        raise ModelLoadError("The model file is empty. Upload the file the model was saved to.")
    if data[:4] == b"PK\x03\x04":
        return _inspect_zip(data, filename, max_bytes)
    fmt = _sniff(data, filename)
    info = UploadInfo(format=fmt, model_bytes=data)
    if fmt in ("pickle", "joblib"):
        info.globals = safe_pickle.list_globals(data, max_bytes)
        info.automl = _looks_automl(info.globals)
    return info


def _sniff(data: bytes, filename: str) -> str:
    head = data[:64]
    if head.startswith(b"CBM1"):
        return "catboost-cbm"
    if head.lstrip().startswith(b"tree\n") or head.startswith(b"tree\r\n"):
        return "lightgbm-txt"
    if head.lstrip()[:1] == b"{":
        try:
            doc = json.loads(data)
        except ValueError:
            return "xgboost-ubj"
        if isinstance(doc, dict) and "learner" in doc:
            return "xgboost-json"
        raise ModelLoadError("This JSON file is not an XGBoost model (it has no 'learner' section).")
    if safe_pickle.looks_like_pickle(data):
        return "pickle"
    suffix = PurePosixPath(filename.lower()).suffix
    raise ModelLoadError(
        f"This {suffix or 'file'} is not a model file ModelLens can read: upload a pickle/joblib (.pkl, .joblib), "
        "skops (.skops), XGBoost (.json, .ubj), LightGBM (.txt), CatBoost (.cbm) or an MLflow / AutoML zip."
    )


def _looks_automl(found: list[tuple[str, str]]) -> bool:
    return any(module.startswith("azureml.") for module, _ in found)


def _inspect_zip(data: bytes, filename: str, max_bytes: int) -> UploadInfo:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = [i.filename for i in archive.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, ValueError) as exc:
        raise ModelLoadError(f"The zip file {filename!r} is damaged ({exc}).") from exc
    if any(n.endswith("schema.json") for n in names) and not any(_is_model_member(n) for n in names):
        return UploadInfo(format="skops", model_bytes=data)
    model_names = [n for n in names if _is_model_member(n)]
    if not model_names:
        raise ModelLoadError(
            "This zip holds no model: expected an MLflow or Azure AutoML model folder with a model.pkl."
        )
    member = sorted(model_names, key=lambda n: (n.count("/"), n))[0]
    model_bytes = _read_member(archive, member, max_bytes)
    pins: dict[str, str] = {}
    for name in names:
        if ENV_MEMBERS.search(name):
            pins.update(parse_pins(_read_member(archive, name, 1 << 20).decode("utf-8", "replace")))
    info = inspect_upload(model_bytes, member, max_bytes=max_bytes)
    info.container, info.member = "mlflow-zip", member
    info.pins = pins
    if info.automl or any(n.startswith("azureml-") for n in pins):
        info.automl = info.automl or "azureml-train-automl-runtime" in pins
        info.container = "automl-zip"
    return info


def _is_model_member(name: str) -> bool:
    return PurePosixPath(name).name in MODEL_MEMBERS


def _read_member(archive: zipfile.ZipFile, name: str, cap: int) -> bytes:
    info = archive.getinfo(name)
    if info.flag_bits & 0x1:
        raise ModelLoadError(f"The zip member {name!r} is encrypted; upload an unencrypted zip.")
    if info.file_size > cap:
        raise ModelLoadError(f"The zip member {name!r} is larger than the {cap // 2**20} MB cap.")
    with archive.open(info) as fh:
        out = fh.read(cap + 1)
    if len(out) > cap:
        raise ModelLoadError(f"The zip member {name!r} expands beyond the {cap // 2**20} MB cap.")
    return out


def parse_pins(text: str) -> dict[str, str]:
    """Package pins from a conda environment, requirements file or MLmodel (``name==version`` lines)."""
    pins = {}
    for line in text.splitlines():
        match = _PIN.match(line)
        if match:
            name = match.group(1).lower().split("[")[0]
            if name not in ("python", "pip"):
                pins[name] = match.group(3)
            elif name == "python":
                pins["python"] = match.group(3)
    return pins


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
        policy: Allowlist policy for pickles (default: :func:`core.safe_pickle.default_policy`).

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
    try:
        import skops.io as sio
    except ImportError as exc:
        raise MissingDependencyError("Loading .skops files needs the 'skops' package.", package="skops") from exc
    try:
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as exc:
        raise ModelLoadError(f"This skops file is damaged ({type(exc).__name__}).") from exc
    refused = [t for t in untrusted if not trusted and not safe_pickle.type_name_allowed(t, policy)]
    if refused:
        raise UnsafeModelError(
            f"This skops file uses types outside ModelLens's allowlist: {', '.join(refused)}. Nothing was loaded; "
            "re-export the model with standard scikit-learn objects only.",
            refused,
        )
    obj = sio.loads(data, trusted=untrusted)
    safe_pickle.audit_object(obj, policy)
    return obj


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
