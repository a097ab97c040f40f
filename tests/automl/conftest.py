"""Azure AutoML tests. The fixtures ``automl_runtime`` and ``automl_models`` live in tests/conftest.py (the
browser tests use them too).

The runtime is the one `make automl-runtime` installs (``MODELLENS_RUNTIMES``, which `make test` sets; default
``~/.modellens/runtimes``). A missing runtime fails these tests with the command to run: they are never
skipped, because AutoML support is only real if CI runs it.

The models are built at the start of the session by ``build_models.py`` inside the runtime, with AutoML's own
featurizer and ensemble classes (about 5 s): six folders with ``model.pkl``, ``data.csv`` (raw columns and the
target), ``conda_env_v_1_0_0.yml``, ``meta.json`` and ``expected_output.npy`` (the pipeline's own
``predict_proba`` / ``predict`` on the CSV, computed in the runtime by the builder).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.runtimes import registry as runtimes
from tests.conftest import AUTOML_NAMES

__all__ = ["NAMES", "meta"]

# The browser tests use the first five; ``regression_trees`` (issue 15's ensemble) is built alongside them
NAMES = (*AUTOML_NAMES, "regression_trees")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/automl" in str(item.fspath):
            item.add_marker(pytest.mark.automl)


@pytest.fixture(autouse=True)
def _runtimes_env(automl_runtime: runtimes.RuntimeRecord, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELLENS_RUNTIMES", str(automl_runtime.path.parent))


@pytest.fixture(scope="session")
def automl_models(automl_models: dict[str, Path]) -> dict[str, Path]:
    """Every folder the builder wrote, the ones only these tests use included."""
    root = next(iter(automl_models.values())).parent
    return {name: root / name for name in NAMES}


def meta(folder: Path) -> dict:
    return json.loads((folder / "meta.json").read_text())
