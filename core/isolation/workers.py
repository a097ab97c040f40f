"""Model workers: each uploaded model lives in its own resource-limited process, never in the server.

The server talks to a worker over its stdin/stdout with plain-data messages (:mod:`core.isolation.wire`). A worker
runs in the OS sandbox (:mod:`core.safety.sandbox`) with a private scratch directory made here and deleted when
it stops; it has an address-space cap and a per-request CPU-time limit (set by the worker itself before it
reads a model), an environment with nothing but its own settings, and a wall-clock deadline enforced here.
A worker whose sandbox does not hold is stopped before it sees a model (:class:`~core.errors.SandboxError`)
unless the operator set ``MODELLENS_ALLOW_UNSANDBOXED=1``. When it crashes (a
segfault in native code from a tampered tree, memory exhausted, time limit), the request fails with a
:class:`~core.errors.WorkerError` that says what happened; the server and other sessions carry on, and the
next request starts a fresh worker. Idle workers are reaped by :class:`WorkerPool`.

A worker may run another Python (the Azure AutoML runtime): only plain data crosses the boundary.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core import errors
from core.config import Settings
from core.isolation import wire
from core.safety import sandbox

__all__ = ["ModelWorker", "WorkerPool", "close_default_pool", "default_pool"]

log = logging.getLogger(__name__)

_WORKER_COMMAND = [sys.executable, "-m", "core.worker.main"]
_ENV_KEEP = ("LANG", "LC_ALL", "TZ", "NUMBA_CACHE_DIR", "MODELLENS_LOG_LEVEL", "MODELLENS_ALLOW_UNSANDBOXED")
_SIGNALS = {
    signal.SIGSEGV: "crashed in native code (segmentation fault)",
    signal.SIGBUS: "crashed in native code (bus error)",
    signal.SIGILL: "crashed in native code (illegal instruction)",
    signal.SIGABRT: "aborted in native code (often memory exhausted)",
    signal.SIGXCPU: "used up its CPU-time limit",
    signal.SIGKILL: "was killed (memory or time limit)",
}


def _worker_env(settings: Settings, scratch: Path, spec: dict[str, str]) -> dict[str, str]:
    """Nothing of the server's environment but locale and thread settings: no secrets, no paths."""
    env = {k: v for k, v in os.environ.items() if k in _ENV_KEEP or k.endswith("_NUM_THREADS")}
    env["PYTHONPATH"] = str(_import_root(scratch))
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["JOBLIB_MULTIPROCESSING"] = "0"  # a model's n_jobs runs as threads: the sandbox starts no processes
    # matplotlib (imported by shap) reads its font cache while the worker imports, before the sandbox; without
    # this every worker would rebuild it in its empty scratch home (seconds per start)
    env["MPLCONFIGDIR"] = os.environ.get("MPLCONFIGDIR") or str(Path.home() / ".cache" / "matplotlib")
    env["MODELLENS_WORKER_MEMORY_MB"] = str(settings.worker_memory_mb)
    env["MODELLENS_WORKER_CPU_SECONDS"] = str(settings.worker_cpu_seconds)
    env["MODELLENS_WORKER_NICE"] = str(settings.worker_nice)
    env.update(spec)
    return env


def _import_root(scratch: Path) -> Path:
    """A folder holding only ``core`` (a link), so the worker imports ModelLens without reading the checkout."""
    root = scratch / "python"
    root.mkdir(exist_ok=True)
    link = root / "core"
    if not link.exists():
        link.symlink_to(sandbox.CORE_DIR, target_is_directory=True)
    return root


class ModelWorker:
    """A handle to one worker process; requests on it are serialised.

    Args:
        settings: Limits (memory, CPU time) and paths.
        command: The worker command (default: this Python running :mod:`core.worker.main`).
        label: A name for logs and messages.
        spawns: The interpreter this worker may start (the Azure AutoML runtime's), if any; its trees
            become readable and it alone becomes executable in the sandbox.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        command: list[str] | None = None,
        label: str = "model",
        spawns: str | None = None,
    ):
        self.settings = settings or Settings.from_env()
        self.command = command or _WORKER_COMMAND
        self.label = label
        self.spawns = spawns
        self.scratch: Path | None = None
        self.pool: WorkerPool | None = None  # set by the pool that holds it: it admits the process
        self.proc: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}
        self.last_used = time.monotonic()
        self.lock = threading.RLock()
        self.busy = False
        self.spare = False  # a pool's spare: started ahead, never evicts anyone to start

    # -- lifecycle ------------------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 120.0) -> None:
        """Start the process, wait until it has imported its libraries and confined itself.

        Raises:
            SandboxError: The worker's sandbox does not hold and the operator did not allow that.
            WorkerError: The worker did not start.
        """
        with self.lock:
            if self.alive:
                return
            if self.pool is not None and not self.spare and self._adopt(self.pool.take_spare(self)):
                self.pool.refill_spare(self.spawns)  # only now: until then this worker held no process
                return
            self._remove_scratch()
            self.scratch = Path(tempfile.mkdtemp(prefix="modellens-worker-"))
            read, execute = _runtime_trees(self.spawns) if self.spawns else ((), ())
            spec = sandbox.spec_env(self.scratch, read=read, execute=execute)
            with self.pool.admission(self) if self.pool is not None else contextlib.nullcontext():
                self.proc = subprocess.Popen(  # noqa: S603 - fixed command, no shell
                    self.command,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    env=_worker_env(self.settings, self.scratch, spec),
                    cwd=str(self.scratch),
                    process_group=0,
                )
            self.info = self._receive(time.monotonic() + timeout)
            log.info("worker %s started (pid %s), sandbox %s", self.label, self.proc.pid, self.info.get("sandbox"))
            self._require_sandbox()

    def _adopt(self, spare: ModelWorker | None) -> bool:
        """Take over a started spare's process and scratch directory (it has no model yet); False without one."""
        if spare is None:
            return False
        with spare.lock:
            proc, scratch, info = spare.proc, spare.scratch, spare.info
            spare.proc, spare.scratch = None, None
        if proc is None or proc.poll() is not None:
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
            return False
        self._remove_scratch()
        self.proc, self.scratch, self.info = proc, scratch, info
        self.last_used = time.monotonic()
        log.info("worker %s took over a spare worker (pid %s)", self.label, proc.pid)
        return True

    def _require_sandbox(self) -> None:
        report = self.info.get("sandbox") or {}
        if report.get("active") or self.settings.allow_unsandboxed:
            return
        self.close()
        why = "; ".join(report.get("problems") or ["the worker reported no sandbox"])
        raise errors.SandboxError(
            f"This server cannot sandbox model workers ({why}), so it does not open models. Run it on Linux "
            "5.13 or newer with Landlock enabled (see SECURITY.md), or set MODELLENS_ALLOW_UNSANDBOXED=1 to "
            "accept the risk on a machine only you use."
        )

    @property
    def sandbox(self) -> dict[str, Any] | None:
        """The layers the worker reported when it started (None for an unsandboxed worker)."""
        return self.info.get("sandbox")

    def _remove_scratch(self) -> None:
        scratch, self.scratch = self.scratch, None
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)

    def close(self) -> None:
        """Stop the process (politely, then by force)."""
        with self.lock:
            proc, self.proc = self.proc, None
        if proc is None:
            self._remove_scratch()
            return
        try:
            if proc.poll() is None and proc.stdin:
                proc.stdin.close()
                proc.wait(timeout=2)
        except (OSError, subprocess.TimeoutExpired):
            pass
        if proc.poll() is None:
            _kill(proc)
        for stream in (proc.stdin, proc.stdout):
            if stream:
                stream.close()
        self._remove_scratch()

    # -- requests ------------------------------------------------------------------------------------
    def call(self, op: str, timeout: float | None = None, **payload: Any) -> Any:
        """Send one request and return its result.

        Raises:
            ModelLensError: The typed error the worker reported (unsafe model, missing dependency, ...).
            WorkerError: The worker crashed, hit a limit, or did not answer in time.
        """
        with self.lock:
            if not self.alive:
                self.start()
            self.busy = True
            try:
                assert self.proc is not None and self.proc.stdin is not None
                deadline = time.monotonic() + (timeout or self.settings.worker_cpu_seconds * 2 + 60)
                try:
                    wire.write_message(self.proc.stdin, {"op": op, **payload})
                except (BrokenPipeError, OSError):
                    raise self._crashed() from None
                return self._receive(deadline)
            finally:
                self.busy = False
                self.last_used = time.monotonic()

    def _receive(self, deadline: float) -> Any:
        assert self.proc is not None and self.proc.stdout is not None
        try:
            head = self._read(8, deadline)
            (size,) = struct.unpack("<Q", head)
            reply = wire.decode(self._read(size, deadline))
        except TimeoutError:
            _kill(self.proc)
            raise errors.WorkerError(
                f"The {self.label} worker did not answer in time and was stopped; try fewer rows, or a smaller model."
            ) from None
        except (EOFError, OSError, wire.WireError):
            raise self._crashed() from None
        if reply.get("ok"):
            return reply.get("result")
        raise _error_from(reply)

    def _read(self, size: int, deadline: float) -> bytes:
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        chunks, remaining = [], size
        while remaining:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([fd], [], [], wait)[0]:
                raise TimeoutError
            chunk = os.read(fd, min(remaining, 1 << 24))
            if not chunk:
                raise EOFError
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def _crashed(self) -> errors.WorkerError:
        proc = self.proc
        code = None
        if proc is not None:
            try:
                code = proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                _kill(proc)
                code = proc.poll()
        self.close()
        reason = "stopped unexpectedly"
        if code is not None and code < 0:
            reason = _SIGNALS.get(signal.Signals(-code), f"was stopped by signal {-code}")
        elif code:
            reason = f"exited with status {code}"
        log.warning("worker %s %s", self.label, reason)
        return errors.WorkerError(
            f"The {self.label} worker {reason}; the file may be damaged or tampered with, or need more memory. "
            "The dashboard is fine: the next action starts a fresh worker."
        )


NEW_WORKER_BYTES = 400 * 1024**2  # what a fresh worker takes once its libraries are imported (about 360 MB)


def _resident(workers: list[ModelWorker]) -> int:
    """Resident memory of the workers' processes and their children (the AutoML runtime), in bytes."""
    import psutil

    total = 0
    for worker in workers:
        proc = worker.proc
        if proc is None:
            continue
        try:
            process = psutil.Process(proc.pid)
            total += sum(p.memory_info().rss for p in (process, *process.children(recursive=True)))
        except psutil.Error:
            continue
    return total


def _runtime_trees(python: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """What a worker that starts another interpreter must read (its venv and base install) and execute."""
    venv = Path(python).parent.parent
    base = Path(os.path.realpath(python)).parent.parent
    return (str(venv), str(base)), (python,)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:  # pragma: no cover - a zombie that ignores SIGKILL
        log.error("worker %s did not die", proc.pid)


_ERRORS: dict[str, Callable[..., errors.ModelLensError]] = {
    "ModelLoadError": errors.ModelLoadError,
    "DataError": errors.DataError,
    "ExplanationError": errors.ExplanationError,
    "WorkerError": errors.WorkerError,
    "SandboxError": errors.SandboxError,
    "CancelledError": errors.CancelledError,
    "EngineMissing": errors.EngineMissing,
}


def _error_from(reply: dict[str, Any]) -> errors.ModelLensError:
    kind, message, extra = reply.get("error", ""), reply.get("message", ""), reply.get("extra") or {}
    if kind == "UnsafeModelError":
        return errors.UnsafeModelError(message, extra.get("refused", []), custom_code=bool(extra.get("custom_code")))
    if kind == "MissingDependencyError":
        return errors.MissingDependencyError(message, extra.get("package", ""), extra.get("trained_version"))
    if kind == "SchemaError":
        return errors.SchemaError(message, extra.get("missing", []))
    return _ERRORS.get(kind, errors.WorkerError)(message)


class WorkerPool:
    """Workers keyed by model (sha256 + trust + runtime), shared by every session that loads the same bytes.

    A background thread stops workers idle for longer than ``settings.worker_idle_seconds``. Extra
    workers of the same model (``helpers``) serve full-table jobs on every core while the main worker
    keeps answering clicks. The pool has a server-wide budget: at most ``settings.max_workers`` processes
    and ``settings.workers_memory_mb`` of resident memory. A worker about to start waits its turn
    (:meth:`admission`, first come first served); the least recently used idle workers are stopped to make
    room, and when every worker is busy for ``settings.worker_wait_seconds`` the request fails with a
    sentence that says so.

    The pool keeps ``settings.spare_workers`` (0 or 1) worker started ahead: libraries imported and sandbox
    on, with no model. A worker of this Python about to start takes it over instead (a worker's start costs
    seconds of CPU), and a new spare starts in the background when there is room without stopping anyone.
    With ``settings.spare_automl`` and ``automl_python`` (an installed Azure AutoML runtime's interpreter, which
    the caller looks up: :func:`core.loading.models.spare_runtime`), a second spare is kept for AutoML models: a
    worker whose sandbox lets it run that runtime, with the runtime already started in it
    (:func:`core.methods.automl.warm`), so an AutoML upload skips both starts. Spares are stopped
    first when the budget needs room, the AutoML one (the larger) before the other.
    """

    instances: weakref.WeakSet[WorkerPool] = weakref.WeakSet()

    def __init__(self, settings: Settings | None = None, *, reap_every: float = 30.0, automl_python: str | None = None):
        WorkerPool.instances.add(self)
        self.settings = settings or Settings.from_env()
        self._workers: dict[tuple[str, ...], list[ModelWorker]] = {}
        self._lock = threading.Lock()
        self._admission = threading.Lock()
        self._waiting = 0  # worker starts waiting for admission
        self._stop = threading.Event()
        self._reaper = threading.Thread(target=self._reap_loop, args=(reap_every,), daemon=True, name="worker-reaper")
        self._reaper.start()
        self._spares: dict[str | None, ModelWorker] = {}  # by the runtime it may start (None: this Python only)
        self._spares_ready: dict[str | None, threading.Event] = {}  # set when no spare of that kind is starting
        self._runtime = automl_python if self.settings.spare_automl > 0 else None  # the AutoML spare's runtime
        self.refill_spare()
        runtime = self.automl_python()
        if runtime is not None:
            self.refill_spare(runtime)

    @property
    def _spare(self) -> ModelWorker | None:
        """The spare of this Python (no runtime)."""
        with self._lock:
            return self._spares.get(None)

    @property
    def _spare_ready(self) -> threading.Event:
        return self._ready(None)

    def _ready(self, kind: str | None) -> threading.Event:
        with self._lock:
            if kind not in self._spares_ready:
                self._spares_ready[kind] = threading.Event()
                self._spares_ready[kind].set()
            return self._spares_ready[kind]

    def automl_python(self) -> str | None:
        """The interpreter of the AutoML runtime whose spare this pool keeps, or None."""
        return self._runtime

    # -- the spare ------------------------------------------------------------------------------------
    def refill_spare(self, runtime: str | None = None) -> bool:
        """Start a spare worker in the background if the settings ask for one and there is room; True if started.

        ``runtime``: the AutoML runtime's interpreter, for the AutoML spare (only :meth:`automl_python`'s).
        """
        if self._stop.is_set():
            return False
        if runtime is None and self.settings.spare_workers < 1:
            return False
        if runtime is not None and runtime != self.automl_python():
            return False
        ready = self._ready(runtime)
        with self._lock:
            if self._spares.get(runtime) is not None or not ready.is_set():
                return False
            ready.clear()
        threading.Thread(target=self._start_spare, args=(runtime,), daemon=True, name="spare-worker").start()
        return True

    def _start_spare(self, runtime: str | None) -> None:
        spare = ModelWorker(self.settings, label="spare" if runtime is None else "AutoML spare", spawns=runtime)
        spare.pool, spare.spare = self, True
        kept = False
        try:
            spare.start()
            if runtime is not None:
                spare.call("warm_automl", python=runtime)
            with self._lock:
                if not self._stop.is_set():
                    self._spares[runtime], kept = spare, True
        except errors.ModelLensError as exc:
            log.info("no %s: %s", spare.label, exc)
        finally:
            if not kept:
                spare.close()
            self._ready(runtime).set()

    def take_spare(self, taker: ModelWorker) -> ModelWorker | None:
        """The started spare for a worker of this pool's Python, settings and runtime (waiting for one starting)."""
        if taker.settings != self.settings or taker.command != _WORKER_COMMAND:
            return None
        kind = taker.spawns
        if kind is not None and kind != self.automl_python():
            return None
        self._ready(kind).wait(taker.settings.worker_wait_seconds)
        with self._lock:
            spare = self._spares.pop(kind, None)
        if spare is None or not spare.alive:
            return None
        return spare  # the taker refills once it holds the process (ModelWorker.start)

    def get(self, key: tuple[str, ...], factory: Callable[[], ModelWorker], index: int = 0) -> ModelWorker:
        """The ``index``-th worker for key, created with factory when missing."""
        with self._lock:
            group = self._workers.setdefault(key, [])
            while len(group) <= index:
                worker = factory()
                worker.pool = self
                group.append(worker)
            return group[index]

    @contextlib.contextmanager
    def admission(self, newcomer: ModelWorker) -> Any:
        """Hold a place for one more worker process while it is started; stop idle ones to make room.

        Raises:
            WorkerError: Every worker stayed busy for ``settings.worker_wait_seconds``.
        """
        deadline = time.monotonic() + self.settings.worker_wait_seconds
        if newcomer.spare:
            with self._admission:
                if not self._room_for(newcomer):  # a spare never stops anyone, nor waits
                    raise errors.WorkerError("No room for a spare worker.")
                yield
            return
        admitted = False
        with self._lock:
            self._waiting += 1
        try:
            with self._admission:
                while not self._room_for(newcomer):
                    if self._evict_one(newcomer):
                        continue
                    if time.monotonic() > deadline:
                        raise errors.WorkerError(
                            f"Every model worker of this server is busy (at most {self.settings.max_workers} "
                            f"processes, {self.settings.workers_memory_mb} MB together); try again in a minute."
                        )
                    time.sleep(0.2)
                with self._lock:
                    self._waiting -= 1
                admitted = True
                yield
        finally:
            if not admitted:
                with self._lock:
                    self._waiting -= 1

    def queue(self) -> int:
        """Worker starts waiting for room right now; 0 when a new worker could start at once.

        A page shows it ("you are number N") before asking for a worker, so a full server says why it waits.
        """
        alive = [w for w in self._all_workers() if w.alive]
        if self._room_for(ModelWorker(self.settings)) or any(not w.busy for w in alive):
            return 0
        with self._lock:
            return self._waiting

    def _room_for(self, newcomer: ModelWorker) -> bool:
        alive = [w for w in self._all_workers() if w is not newcomer and w.alive]
        if not alive:
            return True
        budget = self.settings.workers_memory_mb * 1024**2
        return len(alive) < self.settings.max_workers and _resident(alive) + NEW_WORKER_BYTES <= budget

    def _evict_one(self, newcomer: ModelWorker) -> bool:
        """Stop the least recently used idle worker; False when every other worker is busy."""
        with self._lock:
            kinds = sorted((k for k, w in self._spares.items() if w is not newcomer), key=lambda k: k is None)
            spare = self._spares.pop(kinds[0]) if kinds else None  # the AutoML spare first: it is the larger
        if spare is not None and spare.alive:
            log.info("stopping the %s worker to make room", spare.label)
            spare.close()
            return True
        candidates = [w for w in self.workers() if w is not newcomer and w.alive and not w.busy]
        for worker in sorted(candidates, key=lambda w: w.last_used):
            if worker.lock.acquire(blocking=False):
                try:
                    log.info("stopping the idle %s worker last used longest ago, to make room", worker.label)
                    worker.close()
                    return True
                finally:
                    worker.lock.release()
        return False

    def workers(self, key: tuple[str, ...] | None = None) -> list[ModelWorker]:
        """Every worker handle in the pool (or of one model)."""
        with self._lock:
            if key is not None:
                return list(self._workers.get(key, []))
            return [w for group in self._workers.values() for w in group]

    def _all_workers(self) -> list[ModelWorker]:
        with self._lock:
            spare = list(self._spares.values())
        return [*self.workers(), *spare]

    def reap(self, now: float | None = None) -> int:
        """Stop idle workers; returns how many were stopped."""
        now = time.monotonic() if now is None else now
        stopped = 0
        for worker in self.workers():
            idle = now - worker.last_used
            if worker.alive and not worker.busy and idle > self.settings.worker_idle_seconds:
                worker.close()
                stopped += 1
        return stopped

    def _reap_loop(self, every: float) -> None:
        while not self._stop.wait(every):
            try:
                self.reap()
            except Exception:  # pragma: no cover - the reaper must never die
                log.exception("worker reaper failed")

    def close(self) -> None:
        """Stop every worker and the reaper."""
        self._stop.set()
        for worker in self._all_workers():
            worker.close()
        with self._lock:
            self._workers.clear()
            self._spares.clear()


_DEFAULT: WorkerPool | None = None
_DEFAULT_LOCK = threading.Lock()


def default_pool() -> WorkerPool:
    """A process-wide pool for the CLI and scripts (the dashboard keeps its own in ``st.cache_resource``)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = WorkerPool()
        return _DEFAULT


def close_default_pool() -> None:
    """Stop the process-wide pool's workers, if it was ever created."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        pool, _DEFAULT = _DEFAULT, None
    if pool is not None:
        pool.close()


def close_all_pools() -> None:
    """Stop every pool's workers (tests, and the process's exit)."""
    for pool in list(WorkerPool.instances):
        pool.close()


atexit.register(close_all_pools)
