"""The model worker process: ``python -m core.worker.main``.

It serves the operations of :mod:`core.worker.ops` through the request loop of :mod:`core.isolation.serve`
(which also sandboxes it); the model it loads never leaves this process.
"""

from __future__ import annotations

from typing import Any

from core.isolation.serve import WorkerState, serve

__all__ = ["main"]


def _handle(state: WorkerState, request: dict[str, Any]) -> Any:
    from core.worker import ops

    op = request.pop("op", "")
    handler = getattr(ops, f"op_{op}", None)
    if handler is None:
        raise ValueError(f"unknown worker operation {op!r}")
    return handler(state, **request)


def main() -> None:
    """Serve requests until stdin closes."""
    from core.worker import ops

    serve(_handle, ops.warm_up, ops.runtime_info)


if __name__ == "__main__":
    main()
