"""Separate Python runtimes for models the dashboard's own Python cannot load (Azure AutoML).

An Azure AutoML ``model.pkl`` needs Microsoft's AutoML runtime: Python 3.10 (3.9 for runtime 1.60 only) with
numpy 1.23, pandas 1.5 and scikit-learn 1.5. ModelLens installs it as a virtualenv of its own, from pinned
constraints only (``core/runtimes/pins``), under :func:`runtimes_root`::

    <root>/azureml-automl-1.62.0/venv/                   the virtualenv
    <root>/azureml-automl-1.62.0/modellens-runtime.json  its record, written last (after the import check)
    <root>/wheels/xgboost-1.5.2-cp310-*.whl              CPU-only xgboost, built once from the sdist

Only the versions in :data:`KNOWN_VERSIONS` are ever installed; nothing an upload names.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

from core.config import Settings
from core.errors import MissingDependencyError
from core.fileio import write_atomic

__all__ = [
    "DEFAULT_VERSION",
    "KNOWN_VERSIONS",
    "NAME",
    "KnownRuntime",
    "RuntimeRecord",
    "check_imports",
    "find_python",
    "get_runtime",
    "install",
    "installed",
    "nearest_known",
    "remove",
    "runtimes_root",
]

logger = logging.getLogger(__name__)

NAME = "azureml-automl"
DEFAULT_VERSION = "1.62.0"
RECORD_FILE = "modellens-runtime.json"
PINS_DIR = Path(__file__).parent / "pins"
XGBOOST = "xgboost==1.5.2"
KEY_PACKAGES = (
    *("azureml-automl-runtime", "azureml-automl-core", "azureml-training-tabular", "azureml-core", "xgboost"),
    *("lightgbm", "scikit-learn", "numpy", "pandas", "scipy", "setuptools", "pip"),
)
# Variables that would make the runtime's Python or pip read or write another environment.
_FOREIGN_ENV = frozenset(
    {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONEXECUTABLE", "VIRTUAL_ENV", "__PYVENV_LAUNCHER__"}
    | {"PIP_USER", "PIP_TARGET", "PIP_PREFIX", "PIP_ROOT", "PIP_CONSTRAINT", "PIP_REQUIREMENT", "PIP_UPGRADE"}
)
_PROBE = "import sys; print('%d.%d.%d' % sys.version_info[:3]); print(sys.executable)"
_CHECK = """
import json, warnings
from importlib import metadata
warnings.filterwarnings("ignore")
import azureml.automl.runtime.featurization.data_transformer, azureml.training.tabular.models.voting_ensemble
import xgboost, lightgbm, sklearn, numpy, pandas
print(json.dumps({name: metadata.version(name) for name in %r}))
"""

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class KnownRuntime:
    """A known-good Azure AutoML runtime.

    Attributes:
        version: ModelLens' name for it, e.g. ``1.62.0``.
        requirements: The pip requirements installed (xgboost is added separately).
        python_minors: Python versions it installs on, preferred first.
        constraints: The pinned constraints file (``pip freeze --all`` of a verified install).
    """

    version: str
    requirements: tuple[str, ...]
    python_minors: tuple[str, ...]
    constraints: Path

    @property
    def package_count(self) -> int:
        """How many packages the constraints file pins."""
        lines = self.constraints.read_text(encoding="utf-8").splitlines()
        return sum(1 for line in lines if line.strip() and not line.lstrip().startswith("#"))


# version: (azureml-automl-runtime, azureml-core, Python versions); NOTES §2.3 of the AutoML research. There is
# no azureml-core 1.62; 1.61/1.62 need urllib3 >= 2.5, which botocore forbids on Python 3.9.
_TABLE = (
    ("1.60.0", "1.60.0", "1.60.0.post1", ("3.10", "3.9")),
    ("1.61.0", "1.61.0", "1.61.0.post4", ("3.10",)),
    ("1.62.0", "1.62.0.post1", "1.61.0.post4", ("3.10",)),
)
KNOWN_VERSIONS: Mapping[str, KnownRuntime] = MappingProxyType(
    {
        version: KnownRuntime(
            version,
            (f"azureml-automl-runtime=={runtime}", f"azureml-core=={core}"),
            minors,
            PINS_DIR / f"{NAME}-{version.rsplit('.', 1)[0]}.txt",
        )
        for version, runtime, core, minors in _TABLE
    }
)


@dataclass(frozen=True, slots=True)
class RuntimeRecord:
    """An installed runtime, as recorded in ``<folder>/modellens-runtime.json`` after its import check passed.

    Attributes:
        name: ``azureml-automl``.
        version: The known version it was installed as, e.g. ``1.62.0``.
        path: The runtime's folder (the record's parent; not stored, so a moved folder keeps working).
        python: The base interpreter the virtualenv was created from.
        python_version: Its version, e.g. ``3.10.13``.
        packages: Versions of the key distributions, read inside the runtime.
        xgboost: ``cpu`` (wheel built from the sdist) or ``pypi`` (PyPI's wheel with CUDA).
        created: When the install finished (ISO 8601, UTC).
    """

    name: str
    version: str
    path: Path
    python: str
    python_version: str
    packages: dict[str, str] = field(default_factory=dict, hash=False)
    xgboost: str = "cpu"
    created: str = ""

    @property
    def python_executable(self) -> Path:
        """The virtualenv's own interpreter: run model code with this."""
        return _venv_python(self.path / "venv")

    def to_json(self) -> dict[str, object]:
        """The record as stored (everything but ``path``)."""
        keys = ("name", "version", "python", "python_version", "packages", "xgboost", "created")
        return {key: getattr(self, key) for key in keys}

    @classmethod
    def read(cls, file: Path) -> RuntimeRecord:
        """Read a record file.

        Raises:
            OSError: The file cannot be read.
            ValueError: It is not a valid record.
        """
        data = json.loads(file.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("packages", {}), dict):
            raise ValueError(f"{file} is not a runtime record")
        try:
            fields = {key: str(data[key]) for key in ("name", "version", "python", "python_version")}
        except KeyError as exc:
            raise ValueError(f"{file} lacks {exc}") from exc
        packages = {str(k): str(v) for k, v in data.get("packages", {}).items()}
        extra = {"xgboost": str(data.get("xgboost", "cpu")), "created": str(data.get("created", ""))}
        return cls(path=file.parent, packages=packages, **fields, **extra)


def _venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _numbers(version: str | None) -> tuple[int, int, int] | None:
    match = re.match(r"\s*v?(\d+)(?:\.(\d+))?(?:\.(\d+))?", version or "")
    if match is None:
        return None
    major, minor, patch = (int(group or 0) for group in match.groups())
    return major, minor, patch


def _key(version: str) -> tuple[int, int, int]:
    return _numbers(version) or (0, 0, 0)


def _nearest(version: str | None, candidates: Sequence[str]) -> str:
    ordered = sorted(candidates, key=_key)
    if version is not None and version in ordered:
        return version
    wanted = _numbers(version)
    if wanted is None or wanted >= _key(ordered[-1]):
        return ordered[-1]
    if wanted <= _key(ordered[0]):
        return ordered[0]

    def distance(candidate: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
        have = _key(candidate)
        return tuple(abs(a - b) for a, b in zip(have, wanted, strict=True)), tuple(-n for n in have)

    return min(ordered, key=distance)


def nearest_known(version: str | None) -> str:
    """The known runtime version for ``version``.

    Args:
        version: A version such as ``1.62.0``, ``1.62.0.post1`` or ``1.61``; None or unparseable text means
            the newest.

    Returns:
        ``version`` itself when known, else the nearest known version by numeric comparison (the newest
        above the newest, the oldest below the oldest).
    """
    return _nearest(version, list(KNOWN_VERSIONS))


def _clean_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    clean = {k: v for k, v in (os.environ if env is None else env).items() if k not in _FOREIGN_ENV}
    clean.update(PYTHONNOUSERSITE="1", PYTHONUNBUFFERED="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    return clean


def _probe(candidate: Path, env: Mapping[str, str]) -> tuple[str, Path] | None:
    """Run ``candidate``: its version and real executable (a pyenv shim resolves to its target), or None."""
    try:
        out = subprocess.run(  # noqa: S603 - an interpreter path, no shell
            [str(candidate), "-c", _PROBE], capture_output=True, text=True, timeout=30, env=_clean_env(env), check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines or _numbers(lines[0]) is None:
        return None
    real = Path(lines[1].strip()) if len(lines) > 1 and Path(lines[1].strip()).is_file() else candidate
    return lines[0].strip(), real


def _newest_first(paths: Iterator[Path], pattern: str) -> list[Path]:
    """Interpreters under versioned folders, newest patch first (numerically: 3.10.13 before 3.10.9)."""

    def version(path: Path) -> tuple[int, ...]:
        for part in reversed(path.parts):
            if match := re.search(pattern, part):
                return tuple(int(n or 0) for n in match.groups())
        return (0,)

    return sorted(paths, key=version, reverse=True)


def _candidates(minors: Sequence[str], env: Mapping[str, str]) -> Iterator[tuple[str, Path]]:
    if env.get("MODELLENS_AUTOML_PYTHON"):
        yield "MODELLENS_AUTOML_PYTHON", Path(env["MODELLENS_AUTOML_PYTHON"]).expanduser()
    for minor in minors:
        if env.get("PATH") and (found := shutil.which(f"python{minor}", path=env["PATH"])):
            yield "PATH", Path(found)
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    pyenv = Path(env.get("PYENV_ROOT") or home / ".pyenv").expanduser() / "versions"
    data = Path(env.get("XDG_DATA_HOME") or home / ".local" / "share")
    uv = Path(env.get("UV_PYTHON_INSTALL_DIR") or data / "uv" / "python").expanduser()
    for minor in minors:
        for path in _newest_first(pyenv.glob(f"{minor}.*/bin/python"), r"^(\d+)\.(\d+)\.(\d+)$"):
            yield "pyenv", path
    for minor in minors:
        for path in _newest_first(uv.glob(f"cpython-{minor}[.-]*/bin/python{minor}"), r"^cpython-(\d+)\.(\d+)\.?(\d*)"):
            yield "uv", path


def _find(explicit: str | None, minors: Sequence[str], env: Mapping[str, str]) -> tuple[Path, str]:
    """The interpreter to build a runtime from, and its version."""
    wanted = " or ".join(minors)
    if explicit:
        probed = _probe(Path(shutil.which(explicit, path=env.get("PATH")) or explicit).expanduser(), env)
        if probed is None or ".".join(probed[0].split(".")[:2]) not in minors:
            what = f"Python {probed[0]}" if probed else "not a working Python interpreter"
            raise MissingDependencyError(f"{explicit} is {what}; the runtime needs Python {wanted}.", package="python")
        return probed[1], probed[0]
    for source, candidate in _candidates(minors, env):
        probed = _probe(candidate, env)
        if probed and ".".join(probed[0].split(".")[:2]) in minors:
            logger.info("Python %s for the runtime: %s (from %s)", probed[0], probed[1], source)
            return probed[1], probed[0]
        logger.debug("Not usable for the runtime (%s): %s", source, candidate)
    raise MissingDependencyError(
        f"No Python {wanted} found for the Azure AutoML runtime: install one (e.g. `pyenv install {minors[0]}` or "
        f"`uv python install {minors[0]}`), or point ModelLens at it with `--python /path/to/python{minors[0]}` or "
        "the MODELLENS_AUTOML_PYTHON variable.",
        package=f"python{minors[0]}",
    )


def find_python(
    explicit: str | None = None, *, minors: Sequence[str] = ("3.10",), env: Mapping[str, str] | None = None
) -> Path:
    """Find a Python interpreter for a runtime, checking each candidate by running it.

    Candidates, in order: ``explicit``; ``MODELLENS_AUTOML_PYTHON``; ``python3.10`` (then the other ``minors``)
    on ``PATH``; pyenv (``$PYENV_ROOT`` or ``~/.pyenv``, ``versions/3.10.*``, newest patch first); uv's managed
    Pythons (``~/.local/share/uv/python/cpython-3.10*``). An explicit interpreter that does not qualify is an
    error rather than silently replaced by another.

    Args:
        explicit: A path (or command name) given by the user, e.g. ``--python``.
        minors: The allowed ``major.minor`` versions, preferred first.
        env: Environment to read ``MODELLENS_AUTOML_PYTHON``, ``PATH``, ``PYENV_ROOT`` and ``HOME`` from
            (default: ``os.environ``).

    Returns:
        The interpreter's executable (a pyenv shim resolved to the interpreter it runs).

    Raises:
        MissingDependencyError: ``explicit`` does not qualify, or no candidate does; the message says what to
            install and how to point ModelLens at it.
    """
    return _find(explicit, tuple(minors), os.environ if env is None else env)[0]


def runtimes_root(settings: Settings | None = None, *, env: Mapping[str, str] | None = None) -> Path:
    """Where runtimes live: ``MODELLENS_RUNTIMES`` if set, else ``<settings.home>/runtimes``."""
    override = (os.environ if env is None else env).get("MODELLENS_RUNTIMES")
    if override:
        return Path(override).expanduser()
    return (settings or Settings.from_env()).home / "runtimes"


def installed(root: Path) -> list[RuntimeRecord]:
    """Every runtime under ``root`` with a readable record, oldest version first (half-built ones are skipped)."""
    records = []
    for file in root.glob(f"{NAME}-*/{RECORD_FILE}"):
        try:
            records.append(RuntimeRecord.read(file))
        except (OSError, ValueError) as exc:
            logger.warning("Ignoring an unreadable runtime record %s: %s", file, exc)
    return sorted(records, key=lambda record: _key(record.version))


def get_runtime(root: Path, version: str | None = None) -> RuntimeRecord | None:
    """The installed runtime to use for ``version``.

    Args:
        root: The runtimes folder (:func:`runtimes_root`).
        version: The wanted runtime version, e.g. from the model's conda file; None: the newest installed.

    Returns:
        That version if installed, else the nearest installed known version; None when none is installed
        (records whose interpreter is gone do not count).
    """
    usable = {
        record.version: record
        for record in installed(root)
        if record.version in KNOWN_VERSIONS and record.python_executable.exists()
    }
    return usable[_nearest(version, list(usable))] if usable else None


def _folder(root: Path, version: str) -> Path:
    if not re.fullmatch(r"\d+(\.\d+){0,3}", version):
        raise ValueError(f"{version!r} is not a runtime version such as {DEFAULT_VERSION}.")
    return root / f"{NAME}-{version}"


@contextlib.contextmanager
def _locked(root: Path, version: str, say: Progress) -> Iterator[None]:
    """Hold ``<root>/.azureml-automl-<version>.lock``: one install or removal of a version at a time."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{NAME}-{version}.lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"Waiting for another install of {NAME} {version} to finish…")
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def remove(root: Path, version: str) -> bool:
    """Remove the runtime ``version`` (installed or half-built) from ``root``.

    Returns:
        True if there was one.

    Raises:
        ValueError: ``version`` is not a version number.
    """
    folder = _folder(root, version)
    if not folder.exists():
        return False
    with _locked(root, version, logger.info):
        (folder / RECORD_FILE).unlink(missing_ok=True)  # no longer "installed", even if the removal stops midway
        shutil.rmtree(folder, ignore_errors=True)
    return not folder.exists()


def _usable(folder: Path) -> RuntimeRecord | None:
    """The record in ``folder`` if there is one and its interpreter runs."""
    file = folder / RECORD_FILE
    if not file.is_file():
        return None
    try:
        record = RuntimeRecord.read(file)
        command = [str(record.python_executable), "-c", "pass"]
        ran = subprocess.run(command, capture_output=True, timeout=60, env=_clean_env(), check=False)  # noqa: S603
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    return record if ran.returncode == 0 else None


def _stream(command: list[str], *, step: str, say: Progress | None, tail: int = 8) -> None:
    """Run ``command``, passing each output line to ``say``; a failure names ``step`` and quotes the last lines."""
    last: collections.deque[str] = collections.deque(maxlen=tail)
    env = _clean_env()
    with subprocess.Popen(  # noqa: S603 - fixed commands, no shell
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace", env=env
    ) as proc:
        try:
            for line in proc.stdout or ():
                if line.strip():
                    last.append(line.strip())
                    if say is not None:
                        say("  " + line.rstrip())
        except BaseException:
            proc.kill()
            raise
    if proc.returncode != 0:
        raise MissingDependencyError(
            f"{step} failed (exit status {proc.returncode}); the last output was: {' | '.join(last) or '(none)'}",
            package="azureml-automl-runtime",
        )


def check_imports(python: Path) -> dict[str, str]:
    """Import the runtime's model code with ``python``; the key package versions it reports.

    Raises:
        MissingDependencyError: The imports fail; the message quotes the last lines of the error.
    """
    try:
        out = subprocess.run(  # noqa: S603 - the runtime's interpreter and a fixed snippet
            [str(python), "-c", _CHECK % (KEY_PACKAGES,)],
            capture_output=True, text=True, timeout=600, env=_clean_env(), check=False,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        raise MissingDependencyError(f"The runtime's Python {python} does not run: {exc}.") from exc
    if out.returncode != 0:
        last = [line.strip() for line in out.stderr.splitlines() if line.strip()][-4:]
        raise MissingDependencyError(f"The runtime does not import: {' | '.join(last)}", package=NAME)
    packages = json.loads(out.stdout.strip().splitlines()[-1])
    return {str(k): str(v) for k, v in packages.items()}


def _xgboost(root: Path, venv_python: Path, python_version: str, flavour: str, say: Progress) -> str:
    """The xgboost requirement: PyPI's wheel, or the CPU-only wheel from the wheelhouse (built there once)."""
    if flavour == "pypi":
        return XGBOOST
    tag = "cp" + "".join(python_version.split(".")[:2])
    wheelhouse = root / "wheels"
    found = sorted(wheelhouse.glob(f"xgboost-1.5.2-{tag}-*.whl"))
    if found:
        say(f"Using the CPU-only xgboost wheel {found[0]}.")
        return str(found[0])
    missing = [tool for tool in ("cmake", "g++") if shutil.which(tool) is None]
    if missing:
        raise MissingDependencyError(
            f"Building the CPU-only xgboost 1.5.2 needs cmake and g++ ({' and '.join(missing)} missing): install "
            "them (e.g. `apt-get install cmake g++`), or use PyPI's wheel (525 MB more, no compiler) with "
            "`--xgboost pypi`.",
            package=" ".join(missing),
        )
    say("Building CPU-only xgboost 1.5.2 (once, ~2.5 min)…")
    wheelhouse.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".build-", dir=wheelhouse) as build:
        # --use-pep517: a fresh venv's pip (23.0 on 3.10.13) would run the legacy `setup.py bdist_wheel`, which
        # fails without the `wheel` package; PEP 517 builds in an isolated environment that has it.
        pip = [str(venv_python), "-m", "pip", "wheel", "--no-deps", "--use-pep517", "--progress-bar", "off"]
        command = [*pip, "--no-binary", "xgboost", XGBOOST, "-w", build]
        _stream(command, step="Building xgboost 1.5.2", say=say)
        wheel = next(Path(build).glob("xgboost-*.whl"))
        target = wheelhouse / wheel.name
        os.replace(wheel, target)
    return str(target)


def _write_record(record: RuntimeRecord) -> None:
    write_atomic(record.path / RECORD_FILE, json.dumps(record.to_json(), indent=2).encode("utf-8"))


def _build(folder: Path, known: KnownRuntime, *, python: str | None, xgboost: str, say: Progress) -> RuntimeRecord:
    start = time.monotonic()
    say(f"Finding Python {' or '.join(known.python_minors)}…")
    base, base_version = _find(python, known.python_minors, os.environ)
    say(f"Using Python {base_version}: {base}")
    shutil.rmtree(folder, ignore_errors=True)  # a half-built runtime of an interrupted install
    try:
        say("Creating the virtual environment…")
        venv_python = _venv_python(folder / "venv")
        _stream([str(base), "-m", "venv", str(folder / "venv")], step="Creating the virtual environment", say=say)
        xgb = _xgboost(folder.parent, venv_python, base_version, xgboost, say)
        say(f"Installing {known.package_count} pinned packages…")
        pip = [str(venv_python), "-m", "pip", "install", "--no-input", "--progress-bar", "off"]
        _stream([*pip, "-c", str(known.constraints), *known.requirements, xgb], step="pip install", say=say)
        say("Checking the runtime imports…")
        packages = check_imports(venv_python)
        created = datetime.now(UTC).isoformat(timespec="seconds")
        record = RuntimeRecord(NAME, known.version, folder, str(base), base_version, packages, xgboost, created)
        _write_record(record)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    say(f"Done in {time.monotonic() - start:.0f} s.")
    return record


def install(
    root: Path,
    version: str = DEFAULT_VERSION,
    *,
    python: str | None = None,
    xgboost: str = "cpu",
    progress: Progress | None = None,
) -> RuntimeRecord:
    """Install the Azure AutoML runtime ``version`` under ``root``, or return it when already installed.

    Args:
        root: The runtimes folder (:func:`runtimes_root`).
        version: A known version; any other is replaced by the nearest known one (with a notice).
        python: The base interpreter to use (default: :func:`find_python`'s search).
        xgboost: ``cpu`` builds a CPU-only xgboost 1.5.2 wheel from the sdist once into ``<root>/wheels``
            (needs cmake and g++, about 2.5 min); ``pypi`` installs PyPI's wheel (525 MB CUDA library).
        progress: Called with each step and each line of pip's output (default: the log).

    Returns:
        The runtime's record, written after its import check passed.

    Raises:
        MissingDependencyError: No suitable Python, no compiler, or pip or the import check failed (the
            message quotes the last lines of the output); the half-built runtime is removed.
        ValueError: ``xgboost`` is neither ``cpu`` nor ``pypi``.
    """
    if xgboost not in ("cpu", "pypi"):
        raise ValueError(f"xgboost must be 'cpu' or 'pypi', not {xgboost!r}.")
    say = progress or logger.info
    chosen = nearest_known(version)
    if chosen != version:
        say(f"{NAME} {version} is not a known-good runtime; installing the nearest one, {chosen}.")
    folder = _folder(root, chosen)
    if record := _usable(folder):
        say(f"{NAME} {chosen} is already installed: {folder}")
        return record
    with _locked(root, chosen, say):
        if record := _usable(folder):  # another process finished it while we waited
            say(f"{NAME} {chosen} is already installed: {folder}")
            return record
        return _build(folder, KNOWN_VERSIONS[chosen], python=python, xgboost=xgboost, say=say)
