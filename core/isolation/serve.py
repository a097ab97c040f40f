"""The request loop every worker process runs, whatever it serves (a model, the Azure AutoML runtime).

Reads plain-data requests on stdin and answers on stdout (:mod:`core.isolation.wire`); whatever the worker loads
never leaves its process. Before anything else it moves into its own namespaces and caps its address space;
after importing its libraries, and before reading the first request, it confines itself with the OS
sandbox (:mod:`core.safety.sandbox`: Landlock, seccomp, no capabilities) and reports which layers hold in its
first message. Before each request it caps its CPU time (``SIGXCPU`` ends a runaway request; the server
sees the crash and reports it). stdout is kept for the protocol: anything a library prints goes to stderr
(the server log).

Must stay importable by Python 3.9 (the Azure AutoML runtime's worker serves with it).
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

__all__ = ["WorkerState", "numba_cache_read_only", "serve"]

log = logging.getLogger("modellens.worker")


def _set_memory_limit() -> None:
    megabytes = int(os.environ.get("MODELLENS_WORKER_MEMORY_MB", "0") or 0)
    if megabytes > 0:
        limit = megabytes * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _limit_cpu(seconds: int) -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = int(usage.ru_utime + usage.ru_stime + seconds) + 1
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def numba_cache_read_only() -> None:
    """Compiled kernels still load from numba's on-disk cache, but a new compilation is not saved.

    In the sandbox the cache folders beside the sources are read-only, and numba raises when it cannot save a
    function it just compiled for a new signature; the compiled code works, so keep it and go on.
    """
    try:
        from numba.core import caching
    except ImportError:  # the Azure AutoML runtime has no numba
        return
    save: Any = caching.Cache.save_overload  # numba leaves it unannotated

    def save_overload(self: Any, sig: Any, data: Any) -> None:
        try:
            save(self, sig, data)
        except OSError:
            log.debug("numba's cache is read-only in the sandbox: %s not saved", sig)

    caching.Cache.save_overload = save_overload  # type: ignore[method-assign]  # deliberate patch, see above


class WorkerState:
    """What lives in the worker: the model, its card, and the explainers built on it."""

    def __init__(self) -> None:
        self.model: Any = None
        self.card: dict[str, Any] = {}
        self.engines: dict[str, Any] = {}


def _error_reply(exc: BaseException) -> dict[str, Any]:
    from core import errors

    if isinstance(exc, errors.ModelLensError):
        fields = ("refused", "custom_code", "package", "trained_version", "missing")
        extra = {k: getattr(exc, k) for k in fields if hasattr(exc, k)}
        extra = {k: (list(v) if isinstance(v, tuple) else v) for k, v in extra.items()}
        return {"ok": False, "error": type(exc).__name__, "message": str(exc), "extra": extra}
    log.error("worker request failed:\n%s", "".join(traceback.format_exception(exc)))
    return {
        "ok": False,
        "error": "WorkerError",
        "message": f"The model failed while computing this ({type(exc).__name__}); details are in the server log.",
    }


def serve(handle: Callable[[Any, dict[str, Any]], Any], warm_up: Callable[[], Any], info: Callable[[], Any]) -> None:
    """The request loop shared by every worker kind (this one, and the Azure AutoML runtime's)."""
    from core.safety import sandbox

    with contextlib.suppress(OSError, ValueError):  # below the server's priority: pages stay quick when we are busy
        os.nice(max(0, int(os.environ.get("MODELLENS_WORKER_NICE", "0") or 0)))
    report = sandbox.SandboxReport()
    spec = sandbox.spec_from_env()
    if spec is not None:
        sandbox.enter_early(report)
    _set_memory_limit()
    protocol_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # library prints must not corrupt the protocol
    sys.stdout = sys.stderr
    level = os.environ.get("MODELLENS_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        stream=sys.stderr,
        format="%(asctime)s worker %(levelname)s %(message)s",
    )
    from core.isolation import wire

    warm_up()
    if spec is not None:
        sandbox.confine(spec, report)
        log.info("sandbox: %s", report.as_dict())
        numba_cache_read_only()
    sandbox.watch_parent()

    def send(message: dict[str, Any]) -> None:
        try:
            wire.write_message(protocol_out, message)
        except OSError:  # the server closed the pipe (it stopped this worker): nothing left to answer
            os._exit(0)

    send({"ok": True, "result": {**info(), "sandbox": report.as_dict() if spec else None}})
    state = WorkerState()
    cpu_budget = int(os.environ.get("MODELLENS_WORKER_CPU_SECONDS", "600") or 600)
    stdin = sys.stdin.buffer
    while True:
        try:
            request = wire.read_message(stdin)
        except EOFError:
            break
        _limit_cpu(cpu_budget)
        started = time.perf_counter()
        try:
            reply: dict[str, Any] = {"ok": True, "result": handle(state, request)}
        except MemoryError:
            reply = {"ok": False, "error": "WorkerError", "message": "The model ran out of memory in its worker."}
            send(reply)
            os._exit(3)
        except Exception as exc:  # noqa: BLE001 - every failure becomes one typed reply
            reply = _error_reply(exc)
        log.debug("request took %.3fs", time.perf_counter() - started)
        send(reply)
