"""Where finished batch runs are, so the dashboard can use them for the same model and data.

One JSON line per finished run in ``<MODELLENS_HOME>/batch/index.jsonl``: model sha256, data fingerprint
(``sha256:<hex>`` of a single local file), output folder, time.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from core.config import Settings

__all__ = ["find_batch", "record_batch"]


def _index(settings: Settings | None = None) -> Path:
    return (settings or Settings.from_env()).home / "batch" / "index.jsonl"


def record_batch(summary: dict[str, Any], out: str, settings: Settings | None = None) -> None:
    """Remember a finished run (appended atomically: one line, one write)."""
    path = _index(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = out if "://" in out else str(Path(out).resolve())
    line = json.dumps(
        {
            "model_sha256": summary["model_sha256"],
            "data_fingerprint": summary["data_fingerprint"],
            "out": out,
            "rows": summary["rows_done"],
            "finished": time.time(),
        }
    )
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def find_batch(model_sha256: str, data_sha256: str, settings: Settings | None = None) -> str | None:
    """The newest finished run's folder for this model and this data file (by content hash), if any."""
    path = _index(settings)
    if not path.exists():
        return None
    best = None
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        matches = entry.get("model_sha256") == model_sha256 and entry.get("data_fingerprint") == f"sha256:{data_sha256}"
        present = "://" in entry.get("out", "") or Path(entry.get("out", ""), "summary.json").exists()
        if matches and present and (best is None or entry["finished"] > best["finished"]):
            best = entry
    return None if best is None else best["out"]
