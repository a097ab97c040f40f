"""Shared fixtures: isolated ModelLens home, settings, a worker pool that is always cleaned up."""

from __future__ import annotations

import fcntl
import os
import subprocess
from pathlib import Path

import pytest

from core.runtimes import registry as runtimes

# Tests start many worker pools; a spare worker started ahead by each would cost seconds of CPU apiece (an AutoML
# runtime's spare more). The tests of the spares themselves turn them on in their settings.
os.environ.setdefault("MODELLENS_SPARE_WORKERS", "0")
os.environ.setdefault("MODELLENS_SPARE_AUTOML", "0")

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own MODELLENS_HOME (demo cache, store) unless it sets one."""
    home = tmp_path_factory.getbasetemp() / "modellens-home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("MODELLENS_HOME", str(home))
    monkeypatch.delenv("MODELLENS_TRUST_PICKLES", raising=False)
    return home


@pytest.fixture
def settings():
    from core.config import Settings

    return Settings.from_env()


@pytest.fixture
def pool(settings):
    from core.isolation.workers import WorkerPool

    pool = WorkerPool(settings)
    yield pool
    pool.close()


# -- Azure AutoML: the installed runtime and real AutoML models built in it (see tests/automl) ----------------
AUTOML_BUILDER = ROOT / "tests" / "automl" / "build_models.py"
AUTOML_NAMES = ("binary_int", "multiclass_str", "regression", "binary_dense", "binary_trees")


def automl_root() -> Path:
    """Where the tests look for the AutoML runtime: MODELLENS_RUNTIMES, else ModelLens's default folder."""
    return Path(os.environ.get("MODELLENS_RUNTIMES") or Path.home() / ".modellens" / "runtimes").expanduser()


@pytest.fixture(scope="session")
def automl_runtime() -> runtimes.RuntimeRecord:
    record = runtimes.get_runtime(automl_root(), runtimes.DEFAULT_VERSION)
    if record is None:
        pytest.fail(
            f"No Azure AutoML runtime in {automl_root()}: run `make automl-runtime` (Python 3.10 needed; about 3 minutes "
            "once), or point MODELLENS_RUNTIMES at an installed one."
        )
    return record


@pytest.fixture(scope="session")
def automl_models(automl_runtime: runtimes.RuntimeRecord, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real AutoML models, built once per run (by the first of the parallel test processes that needs them)."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # xdist: one temp root per run
    out = shared / "automl-models"
    with open(shared / "automl-models.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the other processes wait for the build, then reuse it
        if not (out / "built").exists():
            out.mkdir(exist_ok=True)
            built = subprocess.run(
                [str(automl_runtime.python_executable), str(AUTOML_BUILDER), str(out)],
                capture_output=True, text=True, timeout=300, check=False,
                env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")},
            )  # fmt: skip
            assert built.returncode == 0, built.stdout + built.stderr
            (out / "built").touch()
    return {name: out / name for name in AUTOML_NAMES}


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("PYTHONHASHSEED", "0")
