"""Shared fixtures: isolated ModelLens home, settings, a worker pool that is always cleaned up."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
    from core.worker import WorkerPool

    pool = WorkerPool(settings)
    yield pool
    pool.close()


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("PYTHONHASHSEED", "0")
