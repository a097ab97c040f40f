"""A bounded, static look at the globals a pickle names, made in the server without running any of it.

Why: the dashboard must choose a worker before any worker exists (an Azure AutoML ``model.pkl`` needs the AutoML
runtime's worker, every other pickle the engine's), and the names a pickle asks for are the ones the allowlist
will judge, so they can be listed before a worker starts. Both are read in the Streamlit process itself, where
an upload must cost no more than linear time and bounded memory: an 800-byte bz2 "joblib" can decompress to a
gigabyte of opcodes.

Bounds, whatever the file says:

* at most :data:`SCAN_BYTES` of the (decompressed) stream are looked at: compressed joblib files go through
  the incremental decompressors with ``max_length`` (:func:`core.safety.safe_pickle.open_prefix`), so a bomb costs
  that prefix and no more;
* at most :data:`MAX_OPS` opcodes are read;
* the symbolic stack machine does constant work per opcode (MARK pops each item once, the memo is a dict,
  nothing is copied), so the scan is linear in what it reads.

A stream cut by either bound, truncated, damaged, or reaching raw joblib array bytes ends the listing early;
the result says it is partial. This is detection only, never a security decision: the allowlisting unpickler
(:mod:`core.safety.safe_pickle`) decides in the worker, opcode by opcode.
"""

from __future__ import annotations

import io
import logging
import pickletools
from dataclasses import dataclass

from core.errors import ModelLoadError
from core.safety import safe_pickle

__all__ = ["MAX_OPS", "SCAN_BYTES", "GlobalScan", "list_globals", "scan_globals"]

log = logging.getLogger(__name__)

SCAN_BYTES = 32 * 1024 * 1024
MAX_OPS = 200_000

_STRING_OPS = frozenset(
    {"SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8", "STRING", "BINSTRING", "SHORT_BINSTRING"}
)
_PUT_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_GET_OPS = frozenset({"GET", "BINGET", "LONG_BINGET"})
_MARK = object()


@dataclass(frozen=True)
class GlobalScan:
    """The globals a pickle names, in order of first appearance.

    Attributes:
        globals: ``(module, name)`` pairs, each once.
        partial: True when the scan stopped before the pickle's STOP opcode.
        stopped: Why a partial scan stopped (empty when complete).
    """

    globals: tuple[tuple[str, str], ...]
    partial: bool = False
    stopped: str = ""


def scan_globals(data: bytes, *, max_bytes: int = SCAN_BYTES, max_ops: int = MAX_OPS) -> GlobalScan:
    """List the globals a pickle or joblib file names, reading a bounded prefix and never executing it.

    Args:
        data: The raw upload (plain pickle or any joblib container).
        max_bytes: Most decompressed bytes to look at.
        max_ops: Most opcodes to read.

    Returns:
        The globals found; ``partial`` says whether the listing stopped early, ``stopped`` why.
    """
    try:
        stream, _kind, whole = safe_pickle.open_prefix(data, max_bytes)
    except ModelLoadError as exc:  # UnsafeModelError (legacy ZF) included: nothing to list, the worker refuses it
        return GlobalScan((), partial=True, stopped=str(exc))
    machine = _Machine()
    stopped = machine.run(stream, max_ops)
    if stopped and not machine.capped and not whole and len(stream) >= max_bytes:
        stopped = f"only the first {max_bytes // 2**20} MB of the decompressed stream were scanned"
    return GlobalScan(tuple(dict.fromkeys(machine.found)), partial=bool(stopped), stopped=stopped)


def list_globals(data: bytes, *, max_bytes: int = SCAN_BYTES, max_ops: int = MAX_OPS) -> list[tuple[str, str]]:
    """The ``(module, name)`` globals :func:`scan_globals` finds (best effort, bounded, detection only)."""
    return list(scan_globals(data, max_bytes=max_bytes, max_ops=max_ops).globals)


class _Machine:
    """Strings tracked through the stack and the memo, so STACK_GLOBAL names are the values really pushed."""

    def __init__(self) -> None:
        self.stack: list[object] = []
        self.memo: dict[int, object] = {}
        self.found: list[tuple[str, str]] = []
        self.capped = False

    def run(self, stream: bytes, max_ops: int) -> str:
        """Step through at most ``max_ops`` opcodes; the reason it stopped early, or ``""`` at STOP."""
        count = 0
        try:
            for op, arg, _pos in pickletools.genops(io.BytesIO(stream)):
                if op.name == "STOP":
                    return ""
                count += 1
                if count > max_ops:
                    self.capped = True
                    return f"only the first {max_ops:,} opcodes were scanned"
                self.step(op, arg)
        except Exception as exc:  # noqa: BLE001 - damaged, truncated or raw array bytes: the listing ends here
            log.debug("static scan stopped early", exc_info=True)
            return f"the stream could not be read further ({type(exc).__name__})"
        return "the stream ended without a STOP opcode"

    def step(self, op: pickletools.OpcodeInfo, arg: object) -> None:
        """Apply one opcode's effect on the symbolic stack (O(1) amortised)."""
        module: object  # a str from GLOBAL, anything from the stack for STACK_GLOBAL
        attr: object
        name, stack = op.name, self.stack
        if name == "GLOBAL" and isinstance(arg, str):
            module, _, attr = arg.partition(" ")
            self.found.append((module, attr))
            stack.append(None)
        elif name == "STACK_GLOBAL":
            attr, module = stack.pop(), stack.pop()
            if isinstance(module, str) and isinstance(attr, str):
                self.found.append((module, attr))
            stack.append(None)
        elif name in _STRING_OPS:
            stack.append(arg)
        elif name == "MEMOIZE":
            self.memo[len(self.memo)] = stack[-1] if stack else None
        elif name in _PUT_OPS and isinstance(arg, int):
            self.memo[arg] = stack[-1] if stack else None
        elif name in _GET_OPS and isinstance(arg, int):
            stack.append(self.memo.get(arg))
        elif name == "MARK":
            stack.append(_MARK)
        else:
            self._generic(op)

    def _generic(self, op: pickletools.OpcodeInfo) -> None:
        before = op.stack_before
        stack = self.stack
        n = len(before)
        if n >= 2 and before[-2] is pickletools.markobject and before[-1] is pickletools.stackslice:
            while stack and stack.pop() is not _MARK:
                pass
            n -= 2
        del stack[max(0, len(stack) - n) :]
        stack.extend([None] * len(op.stack_after))
