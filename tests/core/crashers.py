"""Models whose prediction misbehaves, for worker isolation tests (loaded with trusted=True only)."""

from __future__ import annotations

import ctypes
import time

import numpy as np


class _Base:
    classes_ = None
    n_features_in_ = 2

    def fit(self, X, y=None):
        return self


class SegfaultRegressor(_Base):
    """predict() dereferences a null pointer: the process dies with SIGSEGV."""

    def predict(self, X):
        ctypes.string_at(0)
        return np.zeros(len(X))


class MemoryHogRegressor(_Base):
    """predict() asks for far more memory than a worker may have."""

    def predict(self, X):
        return np.ones((200_000, 100_000))[: len(X), 0]


class SpinRegressor(_Base):
    """predict() burns CPU forever."""

    def predict(self, X):
        while True:
            sum(range(10_000))


class SleepyRegressor(_Base):
    """predict() never returns (but uses no CPU)."""

    def predict(self, X):
        time.sleep(3600)
        return np.zeros(len(X))


class FineRegressor(_Base):
    """A model that works, for checking the worker after a crash."""

    def predict(self, X):
        return np.asarray(X, dtype=float).sum(axis=1)
