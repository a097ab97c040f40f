"""Issue 14, finding 5: how long the server spends on each hostile upload before it answers.

Each payload (tests/core/hostile.py, built streaming, kilobytes on disk) goes through the function the
Streamlit server calls on an upload (``inspect_upload`` for models, ``load_table`` for tables), and the table
shows the median time and what the parse ended in. Before the fixes these held the server for minutes to hours.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression

from bench.common import load, table, timed
from core.data.tables import load_table
from core.errors import ModelLensError
from core.loading.model_io import inspect_upload
from tests.core import hostile
from tests.core.hostile import GIB, MIB


def _outcome(fn: Callable[[], Any]) -> str:
    try:
        result = fn()
    except ModelLensError as exc:
        return f"{type(exc).__name__}: {str(exc)[:60]}…"
    if hasattr(result, "globals_partial"):
        return f"{result.format}, automl={result.automl}, partial scan={result.globals_partial}"
    return f"table {getattr(result, 'shape', '?')}"


def _cases() -> dict[str, tuple[int, Callable[[], Any]]]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 3))
    model = LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))
    payloads = {
        "1 MiB requirements.txt of spaces (zip)": (hostile.pins_zip(model, b" " * MIB), inspect_upload, "model.zip"),
        "1 MiB CSV, line 2 a run of quote/delimiters": (hostile.quote_run_csv(MIB), load_table, "upload.csv"),
        "bz2 joblib of 1 GiB of opcodes": (hostile.bz2_opcode_bomb(GIB), inspect_upload, "model.joblib"),
        "zip member of 1 GiB of JSON": (hostile.json_zip(GIB), inspect_upload, "model.zip"),
        "zip member of 64 MiB of JSON": (hostile.json_zip(64 * MIB), inspect_upload, "model.zip"),
        "Parquet of 20 M rows": (hostile.parquet_rows(20_000_000), load_table, "big.parquet"),
        "700-deep nested zip": (hostile.nested_zip(model, 700), inspect_upload, "model.zip"),
        "xlsx whose sheet expands to 1 GiB": (hostile.xlsx_bomb(GIB), load_table, "bomb.xlsx"),
    }
    return {
        name: (len(data), (lambda fn=fn, data=data, filename=filename: fn(data, filename)))
        for name, (data, fn, filename) in payloads.items()
    }


def run(*, quick: bool = False) -> None:
    """Print the hostile-upload table: size on disk, median parse time, outcome."""
    print("## Hostile uploads: server-side parse time (issue 14)\n")
    repeats = 1 if quick else 5
    rows = []
    for name, (size, parse) in _cases().items():
        outcome = _outcome(parse)
        median = statistics.median(timed(lambda parse=parse: _outcome(parse)) for _ in range(repeats))
        rows.append([name, f"{size / 1024:,.1f} KiB", f"{median * 1000:,.1f} ms", outcome])
    print(table(["upload", "on disk", f"median of {repeats}", "ends in"], rows))
    print(f"\nLoad average during the run: {load()}.")
