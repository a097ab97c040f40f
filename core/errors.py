"""Typed errors: every failure a user can cause reaches them as one sentence that says what to do.

Hierarchy::

    ModelLensError                  base: the page shows str(error) and stops
    ├── ModelLoadError              the model file cannot be loaded (empty, truncated, wrong format)
    │   ├── UnsafeModelError        the file asks for code outside the allowlist (lists every global)
    │   └── MissingDependencyError  the model needs a package or runtime this server lacks
    ├── DataError                   the table cannot be read or used
    │   └── SchemaError             the table does not have the columns the model needs
    ├── ExplanationError            an explanation is malformed or does not add up
    ├── WorkerError                 the model's worker process crashed, timed out or ran out of memory
    │   └── SandboxError            this server cannot sandbox model workers, so it refuses uploads
    ├── CancelledError              the user cancelled a long computation
    └── ShareError                  a share link is unknown, malformed or expired

All messages are plain text written for the user: what went wrong, then what to do next. They never
contain a traceback; details go to the server log.
"""

from __future__ import annotations

__all__ = [
    "CancelledError",
    "DataError",
    "ExplanationError",
    "MissingDependencyError",
    "ModelLensError",
    "ModelLoadError",
    "SandboxError",
    "SchemaError",
    "ShareError",
    "UnsafeModelError",
    "WorkerError",
]


class ModelLensError(Exception):
    """Base class of every error ModelLens shows to a user."""


class ModelLoadError(ModelLensError):
    """The model file cannot be loaded."""


class UnsafeModelError(ModelLoadError):
    """The file would run code outside the allowlist; nothing of it ran.

    Attributes:
        refused: Every refused global (``module.name``) or construct, sorted.
        custom_code: True when the refusal is because the file carries custom Python code.
    """

    def __init__(self, message: str, refused: list[str] | tuple[str, ...] = (), *, custom_code: bool = False):
        super().__init__(message)
        self.refused = tuple(refused)
        self.custom_code = custom_code


class MissingDependencyError(ModelLoadError):
    """The model needs a package (or a runtime) that is not installed here.

    Attributes:
        package: The missing distribution, e.g. ``catboost``.
        trained_version: The version the model was trained with, when the upload says so.
    """

    def __init__(self, message: str, package: str = "", trained_version: str | None = None):
        super().__init__(message)
        self.package = package
        self.trained_version = trained_version


class DataError(ModelLensError):
    """The uploaded table cannot be read or used."""


class SchemaError(DataError):
    """The table lacks columns the model needs.

    Attributes:
        missing: The required columns that are absent.
    """

    def __init__(self, message: str, missing: list[str] | tuple[str, ...] = ()):
        super().__init__(message)
        self.missing = tuple(missing)


class ExplanationError(ModelLensError):
    """An explanation is malformed (shapes, names) or does not add up to the prediction."""


class WorkerError(ModelLensError):
    """The worker process that holds the model failed: crash, timeout or memory limit."""


class SandboxError(WorkerError):
    """This server cannot confine model workers (no Landlock, no seccomp), so it refuses to open uploads."""


class CancelledError(ModelLensError):
    """A long computation was cancelled by the user."""


class ShareError(ModelLensError):
    """A share link is unknown, malformed or expired."""


class EngineMissing(WorkerError):
    """Internal: a (fresh) worker has no explainer under that key yet; the client builds it and retries."""
