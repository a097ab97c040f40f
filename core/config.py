"""Settings read once from the environment (``MODELLENS_*`` variables); frozen and explicit."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Settings"]

_TRUE = {"1", "true", "yes", "on"}


def _env_int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    try:
        return int(raw) if raw else default
    except ValueError as exc:
        raise ValueError(f"{name} must be a whole number, not {raw!r}.") from exc


def _env_float(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    try:
        return float(raw) if raw else default
    except ValueError as exc:
        raise ValueError(f"{name} must be a number, not {raw!r}.") from exc


def _default_max_workers() -> int:
    # each model explains its whole table on one worker per core besides its main one: room for a few models
    return max(16, 4 * (os.cpu_count() or 1))


def _default_workers_memory_mb() -> int:
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):  # pragma: no cover - every Linux has both
        total = 8 * 1024**3
    return int(total / 2 / 1024**2)


@dataclass(frozen=True, slots=True)
class Settings:
    """Every knob of a ModelLens deployment.

    Attributes:
        home: Data directory (demo cache, runtimes, store). ``MODELLENS_HOME``, default ``~/.modellens``.
        store_dir: Share store directory. ``MODELLENS_STORE``, default ``<home>/store``.
        trust_pickles: Load pickles with the plain unpickler (local single-user opt-in only).
            ``MODELLENS_TRUST_PICKLES=1`` or ``modellens --trust``.
        max_model_bytes: Cap on a model file after decompression. ``MODELLENS_MAX_MODEL_MB``.
        max_rows: Cap on rows of an uploaded table. ``MODELLENS_MAX_ROWS``.
        worker_memory_mb: Address-space cap of a model worker. ``MODELLENS_WORKER_MEMORY_MB``.
        worker_cpu_seconds: CPU-time budget of one worker request. ``MODELLENS_WORKER_CPU_SECONDS``.
        worker_idle_seconds: Idle workers are stopped after this long. ``MODELLENS_WORKER_IDLE_SECONDS``.
        max_workers: Model worker processes alive at once, server-wide; the least recently used idle one
            is stopped to make room. ``MODELLENS_MAX_WORKERS``, default four per core (at least 16).
        workers_memory_mb: Resident memory all model workers may use together (same eviction).
            ``MODELLENS_WORKERS_MEMORY_MB``, default half the machine's memory.
        worker_wait_seconds: How long a request waits for room when every worker is busy.
            ``MODELLENS_WORKER_WAIT_SECONDS``.
        worker_nice: How much lower the model workers' CPU priority is than the server's (Unix ``nice``), so a
            server whose workers keep every core busy still answers pages and health checks at once.
            ``MODELLENS_WORKER_NICE``, default 10; 0 for the same priority.
        spare_workers: Workers kept started ahead (libraries imported, sandbox on, no model yet), so the next
            model skips a worker's start (seconds). ``MODELLENS_SPARE_WORKERS``, default 1; 0 for none.
        spare_automl: Whether to keep, when an Azure AutoML runtime is installed, one more spare worker with
            that runtime started in it (the newest installed), so an AutoML upload skips the runtime's start
            (seconds). ``MODELLENS_SPARE_AUTOML``, default 1; 0 for none.
        explain_budget_seconds: Work budget of the first (sampled) global view. ``MODELLENS_BUDGET_SECONDS``.
        share_days: Default lifetime of a share link. ``MODELLENS_SHARE_DAYS``.
        password: Optional password for the whole app. ``MODELLENS_PASSWORD``.
        dask_scheduler: Address of a Dask scheduler for full-table work. ``MODELLENS_DASK_SCHEDULER``.
        automl_python: Python 3.9/3.10 interpreter for the AutoML runtime. ``MODELLENS_AUTOML_PYTHON``.
        read_only: Serve the demos and share links only: no uploads. ``MODELLENS_READ_ONLY=1``.
        allow_unsandboxed: Open models even where the OS sandbox cannot be set up (an operator's explicit
            choice; every page then shows a warning). ``MODELLENS_ALLOW_UNSANDBOXED=1``.
        login_for: Require login to upload (share links stay viewable by link).
            ``MODELLENS_LOGIN_FOR=uploads`` (default) or ``all``.
    """

    home: Path = field(default_factory=lambda: Path.home() / ".modellens")
    store_dir: Path = field(default_factory=lambda: Path.home() / ".modellens" / "store")
    trust_pickles: bool = False
    max_model_bytes: int = 1024 * 1024 * 1024
    max_rows: int = 2_000_000
    worker_memory_mb: int = 6144
    worker_cpu_seconds: int = 600
    worker_idle_seconds: int = 900
    max_workers: int = field(default_factory=lambda: _default_max_workers())
    workers_memory_mb: int = field(default_factory=lambda: _default_workers_memory_mb())
    worker_wait_seconds: int = 120
    spare_workers: int = 1
    spare_automl: int = 1
    worker_nice: int = 10
    explain_budget_seconds: float = 2.0
    share_days: int = 30
    password: str | None = None
    dask_scheduler: str | None = None
    automl_python: str | None = None
    read_only: bool = False
    allow_unsandboxed: bool = False
    login_for: str = "uploads"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """Build settings from ``env`` (default: ``os.environ``).

        Raises:
            ValueError: A variable holds a value of the wrong kind; the message names it.
        """
        env = dict(os.environ if env is None else env)
        home = Path(env.get("MODELLENS_HOME") or Path.home() / ".modellens").expanduser()
        login_for = env.get("MODELLENS_LOGIN_FOR", "uploads").strip().lower() or "uploads"
        if login_for not in {"uploads", "all"}:
            raise ValueError(f"MODELLENS_LOGIN_FOR must be 'uploads' or 'all', not {login_for!r}.")
        return cls(
            home=home,
            store_dir=Path(env.get("MODELLENS_STORE") or home / "store").expanduser(),
            trust_pickles=env.get("MODELLENS_TRUST_PICKLES", "").strip().lower() in _TRUE,
            max_model_bytes=_env_int(env, "MODELLENS_MAX_MODEL_MB", 1024) * 1024 * 1024,
            max_rows=_env_int(env, "MODELLENS_MAX_ROWS", 2_000_000),
            worker_memory_mb=_env_int(env, "MODELLENS_WORKER_MEMORY_MB", 6144),
            worker_cpu_seconds=_env_int(env, "MODELLENS_WORKER_CPU_SECONDS", 600),
            worker_idle_seconds=_env_int(env, "MODELLENS_WORKER_IDLE_SECONDS", 900),
            max_workers=_env_int(env, "MODELLENS_MAX_WORKERS", _default_max_workers()),
            workers_memory_mb=_env_int(env, "MODELLENS_WORKERS_MEMORY_MB", _default_workers_memory_mb()),
            worker_wait_seconds=_env_int(env, "MODELLENS_WORKER_WAIT_SECONDS", 120),
            spare_workers=_env_int(env, "MODELLENS_SPARE_WORKERS", 1),
            spare_automl=_env_int(env, "MODELLENS_SPARE_AUTOML", 1),
            worker_nice=_env_int(env, "MODELLENS_WORKER_NICE", 10),
            explain_budget_seconds=_env_float(env, "MODELLENS_BUDGET_SECONDS", 2.0),
            share_days=_env_int(env, "MODELLENS_SHARE_DAYS", 30),
            password=env.get("MODELLENS_PASSWORD") or None,
            dask_scheduler=env.get("MODELLENS_DASK_SCHEDULER") or None,
            automl_python=env.get("MODELLENS_AUTOML_PYTHON") or None,
            read_only=env.get("MODELLENS_READ_ONLY", "").strip().lower() in _TRUE,
            allow_unsandboxed=env.get("MODELLENS_ALLOW_UNSANDBOXED", "").strip().lower() in _TRUE,
            login_for=login_for,
        )
