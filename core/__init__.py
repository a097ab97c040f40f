"""ModelLens core: loading, alignment, explaining, importance, figures, storage and reports.

Pure Python: nothing here imports streamlit (a test and ruff's TID251 enforce it). Public names are
re-exported lazily so that light modules (the safe unpickler, the wire codec) can be imported by the
Azure AutoML worker's older Python without pulling in the whole engine.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    # errors
    "ModelLensError": "core.errors",
    "ModelLoadError": "core.errors",
    "UnsafeModelError": "core.errors",
    "MissingDependencyError": "core.errors",
    "DataError": "core.errors",
    "SchemaError": "core.errors",
    "ExplanationError": "core.errors",
    "WorkerError": "core.errors",
    "CancelledError": "core.errors",
    "ShareError": "core.errors",
    "Settings": "core.config",
    # the stable API (issues 3 and 4)
    "load_model": "core.loading.models",
    "LoadedModel": "core.loading.models",
    "load_table": "core.data.tables",
    "align": "core.data.alignment",
    "Aligned": "core.data.alignment",
    "make_explainer": "core.engine.explain",
    "Explainer": "core.engine.explain",
    "Explanation": "core.explanation",
    "global_importances": "core.engine.importance",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import public names on first use (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'core' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
